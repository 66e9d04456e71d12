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

    if num_threads < 1:
        raise ModelFormatError(f"num_threads must be at least 1, got {num_threads}")
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
    """``load_param`` and ``load_model`` with their return codes checked (the net is cleared on failure)."""
    if net.load_param(str(param_path)) != 0:
        net.clear()
        raise ModelFormatError(f"{param_path}: ncnn could not load this .param (see its log above)")
    if net.load_model(str(bin_path)) != 0:
        net.clear()
        raise ModelFormatError(
            f"{bin_path}: ncnn could not load these weights (a layer refused its params or weights;"
            " see its log above)"
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


def run_net(net: Any, inputs: dict[str, np.ndarray], outputs: Iterable[str]) -> dict[str, np.ndarray]:
    """Feed ``inputs`` (CxHxW / HxW / W float32 arrays), extract ``outputs``; return numpy copies.

    Input arrays are kept alive for the extractor's whole life (``ncnn.Mat`` wraps their memory).
    Feed the shapes the net was validated for (``open_net(..., input_shapes=...)``): ncnn does not
    check that branches agree, and a size that makes them disagree can crash it.
    """
    import ncnn

    arrays = {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in inputs.items()}
    mats = {name: ncnn.Mat(array) for name, array in arrays.items()}
    extractor = net.create_extractor()
    try:
        for name, mat in mats.items():
            if extractor.input(name, mat) != 0:
                raise ModelFormatError(f"ncnn has no input blob named {name!r}")
        results: dict[str, np.ndarray] = {}
        for name in outputs:
            ret, out = extractor.extract(name)
            if ret != 0:
                raise ModelFormatError(f"ncnn could not compute blob {name!r} (error {ret})")
            results[name] = mat_to_array(out)
        return results
    finally:
        del extractor, mats, arrays
