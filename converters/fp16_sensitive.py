"""fp16 builds that miss parity through rounding, not range: keep the few most sensitive layers' weights in fp32.

fp16 keeps 11 significant bits. A weight buffer that loses values to fp16's range is repaired by
:mod:`converters.fp16_repair`; but a network whose output is steep (a text detector's sigmoid map)
can miss parity from rounding alone, most of it from a few early layers. Each weighted layer's
rounding is measured alone (an fp32 build with only that layer's weights rounded to fp16, on the
sample the fp16 build agrees with least), and the fp16 build keeps fp32 storage for the 1, 2, 4, ...
(at most :data:`MAX_KEPT`) most sensitive layers until it passes. Correct wherever ncnn computes
those layers in fp32 (x86, ARM without fp16 arithmetic), as :mod:`converters.fp16_repair` says.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from converters import fp16_repair
from converters.ncnn_run import run_outputs
from converters.parity import compare, sample_labels
from converters.pnnx_runner import run_pnnx
from converters.report import KeptPrecision
from edge.manifest import Parity
from edge.ncnn.model import NcnnModel
from edge.runtime.policy import open_build_net

#: at most this many layers keep fp32 weight storage in an fp16 build
MAX_KEPT = 16
Build = tuple[Path, Path]


def fp32_twin(graph, shape: list[int], stage: Path, work: Path, rescaled: bool) -> Build:
    """The fp32 build of the graph the fp16 build was made from: the staged fp32 build, or, when
    the fp16 graph was rescaled (:func:`converters.fp16_repair.rescale_for_fp16`), a new one."""
    if not rescaled:
        return stage / "model.fp32.param", stage / "model.fp32.bin"
    produced = run_pnnx(graph, shape, work / "fp16_weights", fp16=False)
    return produced.param, produced.bin


def _worst_sample(parity: Parity, labels: list[str], cosines: list[float]) -> int:
    """The sample judged by cosine where the fp16 build agrees least."""
    by_abs = {s["sample"] for o in parity.per_output.values() for s in o.get("judged_by_abs_error", [])}
    judged = [i for i, label in enumerate(labels) if label not in by_abs] or list(range(len(labels)))
    return min(judged, key=lambda i: cosines[i])


def _agreement(build: Build, precision: str, blob_in: str, blobs: list[str], tensor, refs) -> float:
    net = open_build_net(*build, precision)
    try:
        got = run_outputs(net, blob_in, tensor, blobs)
    finally:
        net.clear()
    return min(compare(r, g)[0] for r, g in zip(refs, got, strict=True))


def keep_sensitive_layers(
    fp16: Build,
    twin: Build,
    parity: Parity,
    io: tuple[str, list[str]],
    inputs,
    references: list[list[np.ndarray]],
    measure: Callable[[], Parity],
    work: Path,
) -> tuple[Parity, list[KeptPrecision]]:
    """Keep fp32 weight storage in ``fp16`` for its most rounding-sensitive layers (``twin`` is the
    fp32 build of the same graph) until ``measure()`` passes; the fp16 files are left untouched
    when no choice of at most :data:`MAX_KEPT` layers passes. Returns the parity and what was kept."""
    if not fp16_repair.ENABLED:  # off only to show what the fp16 repairs prevent
        return parity, []
    blob_in, blobs = io
    labels = sample_labels(inputs)
    work.mkdir(parents=True, exist_ok=True)
    cosines = [
        _agreement(fp16, "fp16", blob_in, blobs, t, r)
        for t, r in zip(inputs.tensors, references, strict=True)
    ]
    worst = _worst_sample(parity, labels, cosines)
    tensor, refs = inputs.tensors[worst], references[worst]
    half = NcnnModel.read(*fp16)
    candidates = [layer.name for layer in half.layers if any(w.storage == "fp16" for w in layer.weights)]
    trial = work / "trial.param", work / "trial.bin"
    damage = []
    for name in candidates:
        model = NcnnModel.read(*twin)
        for w in model.layer(name).weights:
            if w.storage == "fp32":
                w.replace(w.as_float32().astype(np.float16).astype(np.float32), "fp32")
        model.write(*trial)
        damage.append((_agreement(trial, "fp32", blob_in, blobs, tensor, refs), name))
    damage.sort()
    backup = work / "fp16.param", work / "fp16.bin"
    for src, dst in zip(fp16, backup, strict=True):
        shutil.copyfile(src, dst)
    full = {layer.name: layer for layer in NcnnModel.read(*twin).layers}
    count = 1
    while count <= min(MAX_KEPT, len(damage)):
        model = NcnnModel.read(*backup)
        chosen = damage[:count]
        for _cos, name in chosen:
            for w16, w32 in zip(model.layer(name).weights, full[name].weights, strict=True):
                if w16.storage == "fp16":
                    w16.replace(w32.as_float32(), "fp32")
        model.write(*fp16)
        result = measure()
        if result.passed:
            kept = [
                KeptPrecision(
                    "fp16",
                    name,
                    "fp32 weight storage",
                    f"rounding its weights to fp16 alone lowers cosine to {cos:.6f} on {labels[worst]}",
                )
                for cos, name in chosen
            ]
            return result, kept
        count *= 2
    for src, dst in zip(backup, fp16, strict=True):
        shutil.copyfile(src, dst)
    return parity, []
