"""Float ncnn graph + calibration table -> INT8 ncnn graph, with ``ncnn2int8``'s semantics.

- A Convolution / ConvolutionDepthWise / InnerProduct with an input scale in the table is
  quantized: weights become int8 (``round(w * scale)``, half away from zero, clamped to
  [-127, 127], one scale per output channel / per group), followed by the bias, the weight
  scales and the input scale; ``int8_scale_term`` (param 8) is 2 for Convolution and
  InnerProduct, 1 for ConvolutionDepthWise.
- Requantize fusion: a quantized Convolution/ConvolutionDepthWise whose output feeds only
  quantized Convolution/ConvolutionDepthWise layers (directly or through one Split) gets
  ``+100`` on its term and the consumer's input scale as its top scale, so it hands int8
  straight to the next layer. Unlike ncnn2int8, fusion through a Split is skipped when the
  consumers disagree on the input scale (they would misread the shared int8 values).
- Every other tagged fp32 weight buffer is stored as fp16 (unless a value overflows fp16).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from converters.calib_table import CalibrationTable
from converters.calibration import QUANTIZABLE_TYPES
from edge.errors import EdgekitError
from edge.ncnn import param_ids
from edge.ncnn.model import Layer, NcnnModel
from edge.ncnn.validate import validate_model
from edge.ncnn.weights import Weight

FUSABLE_TYPES = ("Convolution", "ConvolutionDepthWise")
INT8_SCALE_TERM = param_ids.Convolution.INT8_SCALE_TERM  # the same id in InnerProduct
_FP16_MAX = float(np.finfo(np.float16).max)


@dataclass
class Int8WriteReport:
    """What the writer did."""

    quantized: list[str] = field(default_factory=list)
    fused: list[tuple[str, str]] = field(default_factory=list)  # (producer, consumer) requantize pairs
    fp16_buffers: int = 0


def scale_channels(layer: Layer) -> int:
    """How many weight scales the layer takes: outputs (conv, fc) or groups (depthwise)."""
    if layer.type == "ConvolutionDepthWise":
        return int(layer.get(param_ids.ConvolutionDepthWise.GROUP, 1))
    return int(layer.get(param_ids.Convolution.NUM_OUTPUT, 0))  # InnerProduct's too


def quantize_to_int8(weight: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """``round(w * scale)`` per row (half away from zero, as ncnn), clamped to [-127, 127].

    An infinite scale (ncnn2table's 127/0 for an all-zero channel) gives zeros.
    """
    scales = np.asarray(scales, dtype=np.float32)
    rows = np.asarray(weight, dtype=np.float32).reshape(scales.size, -1)
    with np.errstate(invalid="ignore"):
        scaled = np.where(np.isinf(scales)[:, None], 0.0, rows * scales[:, None])
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    return np.clip(rounded, -127, 127).astype(np.int8).reshape(-1)


def dequantized_weight(weight: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The float weight that the int8 weight represents (for error analysis)."""
    scales = np.asarray(scales, dtype=np.float32)
    q = quantize_to_int8(weight, scales).reshape(scales.size, -1).astype(np.float32)
    return (q / scales[:, None]).reshape(np.shape(weight))


def check_table(model: NcnnModel, table: CalibrationTable) -> list[Layer]:
    """The layers the table quantizes; a clear error when the table does not fit the model."""
    by_name = {layer.name: layer for layer in model.layers}
    quantizable = [layer for layer in model.layers if layer.type in QUANTIZABLE_TYPES]
    if not quantizable:
        raise EdgekitError(
            "the model has no Convolution, ConvolutionDepthWise or InnerProduct layer to quantize"
        )
    unknown = [name for name in (*table.input_scales, *table.weight_scales) if name not in by_name]
    if unknown:
        more = f" (and {len(unknown) - 3} more)" if len(unknown) > 3 else ""
        raise EdgekitError(
            f"the calibration table does not match the model: no layer named {', '.join(map(repr, unknown[:3]))}{more}"
        )
    chosen = []
    for name in table.input_scales:
        layer = by_name[name]
        if layer.type not in QUANTIZABLE_TYPES:
            raise EdgekitError(f"table entry {name!r} names a {layer.type} layer, which INT8 cannot quantize")
        if name not in table.weight_scales:
            raise EdgekitError(f"table has an input scale for {name!r} but no {name}_param_0 weight scales")
        need, got = scale_channels(layer), table.weight_scales[name].size
        if need != got:
            raise EdgekitError(
                f"the calibration table does not match the model: {name} needs {need} weight scales, the table has {got}"
            )
        weight = layer.weight("weight")
        if weight.storage == "int8" or int(layer.get(INT8_SCALE_TERM, 0)):
            raise EdgekitError(f"layer {name!r} is already INT8; quantize the fp32/fp16 model instead")
        chosen.append(layer)
    if not chosen:
        raise EdgekitError(
            "the calibration table quantizes no layer (every entry is commented out or missing)"
        )
    return chosen


def _quantize_layer(
    layer: Layer, weight_scales: np.ndarray, input_scale: float, bias_delta: np.ndarray | None
) -> None:
    weight = layer.weight("weight")
    q = quantize_to_int8(weight.array.astype(np.float32), weight_scales)
    weight.replace(q.reshape(weight.array.shape), "int8")
    if bias_delta is not None:
        _add_bias(layer, bias_delta)
    layer.set(INT8_SCALE_TERM, 1 if layer.type == "ConvolutionDepthWise" else 2)
    layer.weights = [w for w in layer.weights if w.role in ("weight", "bias")]
    layer.weights.append(Weight("weight_scales", np.asarray(weight_scales, dtype=np.float32), "untagged"))
    layer.weights.append(Weight("bottom_scales", np.array([input_scale], dtype=np.float32), "untagged"))


def _add_bias(layer: Layer, delta: np.ndarray) -> None:
    bias_key = (
        param_ids.InnerProduct.BIAS_TERM if layer.type == "InnerProduct" else param_ids.Convolution.BIAS_TERM
    )
    delta = np.asarray(delta, dtype=np.float32).reshape(-1)
    if int(layer.get(bias_key, 0)):
        bias = layer.weight("bias")
        bias.replace(bias.array.astype(np.float32) + delta)
    else:
        layer.set(bias_key, 1)
        layer.weights.insert(1, Weight("bias", delta.copy(), "untagged"))


def _fusion_target(model: NcnnModel, layer: Layer, quantized: dict[str, float]) -> Layer | None:
    """The consumer whose input scale ``layer`` can requantize to, or None."""
    consumers = model.consumers(layer.outputs[0])
    if len(consumers) != 1:
        return None
    (consumer,) = consumers
    if consumer.type in FUSABLE_TYPES:
        return consumer if consumer.name in quantized and len(consumer.inputs) == 1 else None
    if consumer.type != "Split" or len(consumer.inputs) != 1:
        return None
    targets = []
    for blob in consumer.outputs:
        after = model.consumers(blob)
        if len(after) != 1 or after[0].type not in FUSABLE_TYPES or after[0].name not in quantized:
            return None
        if len(after[0].inputs) != 1:
            return None
        targets.append(after[0])
    scales = {round(quantized[t.name], 6) for t in targets}
    return targets[0] if len(scales) == 1 else None


def _store_fp16(layer: Layer) -> int:
    converted = 0
    for weight in layer.weights:
        if weight.storage in ("fp32", "raw_fp32"):
            values = weight.array.astype(np.float32)
            if np.all(np.abs(values) <= _FP16_MAX):
                weight.replace(values.astype(np.float16), "fp16")
                converted += 1
    return converted


def _writable_copy(model: NcnnModel) -> NcnnModel:
    """A copy whose layers, params and weight records can be edited without touching ``model``.

    Weight arrays are shared: the writer only ever swaps them (:meth:`Weight.replace`), never
    writes into them, so the deep copy of every buffer that ``model.copy()`` makes is not needed
    (it dominated the cost of the many trial models that INT8 tuning writes).
    """
    out = copy.copy(model)
    clones: dict[int, Layer] = {}
    for layer in model.layers:
        clone = copy.copy(layer)
        clone.inputs, clone.outputs = list(layer.inputs), list(layer.outputs)
        clone.params = dict(layer.params)
        clone.weights = [copy.copy(w) for w in layer.weights]
        clones[id(layer)] = clone
    out.layers = [clones[id(layer)] for layer in model.layers]
    out._between_for = [clones.get(id(layer), layer) for layer in model._between_for]
    out.warnings = list(model.warnings)
    return out


def write_int8_model(
    model: NcnnModel,
    table: CalibrationTable,
    *,
    bias_deltas: dict[str, np.ndarray] | None = None,
    fuse_requantize: bool = True,
) -> tuple[NcnnModel, Int8WriteReport]:
    """A new INT8 model from float ``model`` and ``table`` (the input model is left as is).

    ``bias_deltas`` (layer -> per-output values) is added to the bias of quantized layers
    (bias correction).
    """
    if not model.has_weights:
        raise EdgekitError("the model was read without its .bin; INT8 needs the weights")
    chosen = check_table(model, table)
    out = _writable_copy(model)
    report = Int8WriteReport()
    quantized = {layer.name: float(table.input_scales[layer.name]) for layer in chosen}
    deltas = bias_deltas or {}
    for layer in out.layers:
        if layer.name in quantized:
            _quantize_layer(
                layer, table.weight_scales[layer.name], quantized[layer.name], deltas.get(layer.name)
            )
            report.quantized.append(layer.name)
        else:
            report.fp16_buffers += _store_fp16(layer)
    if fuse_requantize:
        for layer in out.layers:
            if layer.type not in FUSABLE_TYPES or layer.name not in quantized:
                continue
            target = _fusion_target(out, layer, quantized)
            if target is None:
                continue
            layer.set(INT8_SCALE_TERM, int(layer.get(INT8_SCALE_TERM)) + 100)
            layer.weights.append(
                Weight("top_scales", np.array([quantized[target.name]], dtype=np.float32), "untagged")
            )
            report.fused.append((layer.name, target.name))
    validate_model(out)
    return out, report
