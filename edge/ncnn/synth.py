"""Generated weights for a graph-only model (speed measurement and load tests, not accuracy)."""

from __future__ import annotations

import numpy as np

from edge.errors import ModelFormatError
from edge.ncnn.layouts import BufferSpec, buffer_nbytes, weight_layout
from edge.ncnn.model import Layer, NcnnModel
from edge.ncnn.weights import Weight

_ONES = {"slope", "variance", "gamma", "scale", "scale_in", "scale_out"}
_ZEROS = {"mean", "beta", "per_channel_pad"}


def _synthetic_array(
    layer: Layer, spec: BufferSpec, rng: np.random.Generator | None, previous: list[Weight]
) -> np.ndarray:
    role, count = spec.role, spec.count
    if role in _ONES and not (layer.type == "PReLU" and role == "slope"):
        return np.ones(count, dtype=np.float32)
    if role in _ZEROS:
        return np.zeros(count, dtype=np.float32)
    if role == "weight_scales" and previous:
        weights = np.abs(previous[0].array.astype(np.float32)).reshape(-1)
        groups = count
        per = weights.reshape(groups, -1) if weights.size % groups == 0 else weights.reshape(1, -1)
        absmax = np.maximum(per.max(axis=1), 1e-6)
        return np.resize(127.0 / absmax, count).astype(np.float32)
    if role.endswith("scales") or role.endswith("scale"):
        return np.full(count, 127.0 / 4.0, dtype=np.float32)
    if rng is None:
        return np.full(count, 0.01, dtype=np.float32)
    if role.endswith("bias") or role == "bias_c" or role == "C" or layer.type == "PReLU":
        return rng.uniform(-0.1, 0.1, count).astype(np.float32)
    fan_in = count // spec.shape[0] if spec.shape and spec.shape[0] else count
    fan_in = max(1, fan_in if len(spec.shape) != 1 else 1)
    std = np.sqrt(1.0 / fan_in) if spec.tagged else 0.5
    return (rng.standard_normal(count) * std).astype(np.float32)


def synthesize_weights(model: NcnnModel, seed: int | None = 0, *, max_bytes: int = 2 << 30) -> NcnnModel:
    """A copy of ``model`` with generated fp32 weights for every weighted layer.

    ``seed`` chooses reproducible random weights (weights scaled by 1/sqrt(fan_in), small biases,
    BatchNorm as identity, int8 scales derived from the weights); ``seed=None`` gives constant
    weights. Like benchncnn's generated weights, this is for speed measurement and load tests,
    not accuracy. Refuses (before allocating) graphs whose weights would exceed ``max_bytes``.
    """
    layouts = []
    total = 0
    for layer in model.layers:
        where = f"{model.param_source}:{layer.line_no or '?'}: layer {layer.name!r} ({layer.type})"
        specs = weight_layout(layer.type, layer.params, where)
        total += sum(buffer_nbytes(spec, "fp32") for spec in specs)
        if total > max_bytes:
            raise ModelFormatError(
                f"{where}: the weights would exceed {max_bytes} bytes; the params ask for too much"
            )
        layouts.append(specs)
    out = model.copy()
    rng = None if seed is None else np.random.default_rng(seed)
    for layer, specs in zip(out.layers, layouts, strict=True):
        weights: list[Weight] = []
        for spec in specs:
            array = _synthetic_array(layer, spec, rng, weights)
            if spec.shape:
                array = array.reshape(spec.shape)
            weights.append(Weight(spec.role, array, "fp32" if spec.tagged else "untagged"))
        layer.weights = weights
    out.has_weights = True
    return out
