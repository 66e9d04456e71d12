"""Loading into the real ncnn and running it: validated first, every return code checked.

``numpy.array(mat)`` on an empty ``ncnn.Mat`` segfaults in the bindings and ncnn does not check
that branches agree in size, so all running goes through these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ModelFormatError
from edge.ncnn.validate import validate_files
from edge.paths import native_path
from edge.quiet import last_words, native_output

#: most ncnn threads edgekit asks for (the largest ARM servers have 128-192 cores); far more
#: makes libgomp allocate per-thread state until ncnn segfaults or the process runs out of memory
MAX_THREADS = 256


def open_net(
    param_path: str | Path,
    bin_path: str | Path,
    *,
    num_threads: int = 1,
    use_fp16_storage: bool | None = None,
    use_fp16_arithmetic: bool | None = None,
    use_int8_inference: bool | None = None,
    use_vulkan_compute: bool = False,
    lightmode: bool | None = None,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Validate ``param_path``/``bin_path``, then load them into an ``ncnn.Net``.

    ``options`` (``ncnn.Option`` attribute -> value, e.g. from :func:`edge.runtime.policy.ncnn_options`)
    are set first; the keyword flags that are not None override them.

    ``input_shapes`` (numpy-order, e.g. ``{"in0": (3, 416, 416)}``) lets validation check every
    blob shape the net will compute at that size (mismatched branches crash ncnn at run time).
    Options left as None keep ncnn's defaults. Every ncnn return code is checked; a problem is a
    :class:`ModelFormatError`.
    """
    import ncnn

    if not 1 <= num_threads <= MAX_THREADS:
        raise ModelFormatError(f"threads must be between 1 and {MAX_THREADS}, got {num_threads}")
    validate_files(param_path, bin_path, input_shapes)
    net = ncnn.Net()
    opt = net.opt
    for name, value in (options or {}).items():
        setattr(opt, name, value)
    opt.num_threads = num_threads
    opt.use_vulkan_compute = use_vulkan_compute
    if use_fp16_storage is not None:
        opt.use_fp16_storage = use_fp16_storage
        opt.use_fp16_packed = use_fp16_storage
    if use_fp16_arithmetic is not None:
        opt.use_fp16_arithmetic = use_fp16_arithmetic
    if use_int8_inference is not None:
        opt.use_int8_inference = use_int8_inference
    if lightmode is not None:
        opt.lightmode = lightmode
    _load_checked(net, param_path, bin_path)
    return net


def _load_checked(net: Any, param_path: str | Path, bin_path: str | Path) -> None:
    """``load_param`` and ``load_model`` with their return codes checked (the net is cleared on failure).

    ncnn's own log lines are captured (:func:`edge.quiet.native_output`) and quoted in the error.
    """
    with native_output() as said, native_path(param_path, ".param") as name:
        loaded = net.load_param(name)
    if loaded != 0:
        net.clear()
        raise ModelFormatError(f"{param_path}: ncnn could not load this .param{last_words(said)}")
    with native_output() as said, native_path(bin_path, ".bin") as name:
        loaded = net.load_model(name)
    if loaded != 0:
        net.clear()
        raise ModelFormatError(
            f"{bin_path}: ncnn could not load these weights (a layer refused its params or weights)"
            + last_words(said)
        )
    if not net.input_names() or not net.output_names():
        net.clear()
        raise ModelFormatError(f"{param_path}: ncnn loaded a net without inputs or outputs")


def mat_to_array(mat: Any) -> np.ndarray:
    """Copy an ``ncnn.Mat`` into numpy; an empty Mat gives an empty array.

    ``numpy.array(mat)`` on an empty Mat (what DetectionOutput returns when nothing is detected)
    segfaults in the ncnn bindings; always convert through this function.
    """
    if mat.empty():
        return np.zeros((0,), dtype=np.float32)
    sizes = {1: (mat.w,), 2: (mat.w, mat.h), 3: (mat.w, mat.h, mat.c), 4: (mat.w, mat.h, mat.d, mat.c)}
    if mat.dims not in sizes or min(sizes[mat.dims]) <= 0:
        raise ModelFormatError(
            f"ncnn produced a malformed blob (dims {mat.dims}, w {mat.w}, h {mat.h}, c {mat.c})"
        )
    return np.array(mat, copy=True)


def input_mat(array: np.ndarray) -> Any:
    """An ``ncnn.Mat`` that owns a copy of ``array`` (CxHxW / HxW / W float32), to feed an extractor.

    ``ncnn.Mat(array)`` wraps numpy's memory without a reference count, and in light mode ncnn
    runs an in-place first layer (ReLU, Clip, Sigmoid, ... on the input blob) on that borrowed
    buffer and segfaults. An owned Mat is copied by ncnn before any in-place write, so the
    caller's array is never modified either. Costs one copy of the input.
    """
    import ncnn

    return ncnn.Mat(np.ascontiguousarray(array, dtype=np.float32)).clone()


def run_net(net: Any, inputs: dict[str, np.ndarray], outputs: Iterable[str]) -> dict[str, np.ndarray]:
    """Feed ``inputs`` (CxHxW / HxW / W float32 arrays), extract ``outputs``; return numpy copies.

    Inputs are copied into owned Mats (:func:`input_mat`).
    Feed the shapes the net was validated for (``open_net(..., input_shapes=...)``): ncnn does not
    check that branches agree, and a size that makes them disagree can crash it.
    """
    mats = {name: input_mat(array) for name, array in inputs.items()}
    extractor = net.create_extractor()
    try:
        for name, mat in mats.items():
            if extractor.input(name, mat) != 0:
                raise ModelFormatError(f"ncnn has no input blob named {name!r}")
        results: dict[str, np.ndarray] = {}
        for name in outputs:
            with native_output() as said:
                ret, out = extractor.extract(name)
            if ret != 0:
                raise ModelFormatError(
                    f"ncnn could not compute blob {name!r} (error {ret}){last_words(said)}"
                )
            results[name] = mat_to_array(out)
        return results
    finally:
        del extractor, mats
