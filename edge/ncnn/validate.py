"""Graph validation: everything ncnn would trip over, as one clear :class:`ModelFormatError`.

Wiring (names, blobs produced once and before use), Input layers, blob counts ncnn indexes
without checking, weight buffers against the layer params, and blob shapes where the inputs
have a known size (:mod:`edge.ncnn.shapes`).
"""

from __future__ import annotations

from pathlib import Path

from edge.errors import ModelFormatError
from edge.ncnn import param_ids as ids
from edge.ncnn.layouts import weight_layout
from edge.ncnn.model import Layer, NcnnModel
from edge.ncnn.shapes import infer_shapes

_SOURCELESS_TYPES = frozenset({"Input", "MemoryData"})
#: input blobs each type reads whatever its params say (ncnn indexes ``bottom_blobs`` unchecked)
_MIN_INPUTS = {
    "PriorBox": 2, "DetectionOutput": 3, "MatMul": 2, "Concat": 1, "Eltwise": 2, "RotaryEmbed": 3,
    "DeformableConv2D": 2, "CopyTo": 2, "GridSample": 2, "ROIAlign": 2, "ROIPooling": 2,
    "PSROIPooling": 2, "Proposal": 3,
}  # fmt: skip
#: types whose weights may come from input blobs: param id of the switch, of the bias switch
_DYNAMIC_WEIGHT = {
    **dict.fromkeys(
        ("Convolution", "ConvolutionDepthWise", "Convolution1D", "ConvolutionDepthWise1D"),
        (ids.Convolution.DYNAMIC_WEIGHT, ids.Convolution.BIAS_TERM),
    ),
    **dict.fromkeys(
        ("Deconvolution", "DeconvolutionDepthWise", "Deconvolution1D", "DeconvolutionDepthWise1D"),
        (ids.Deconvolution.DYNAMIC_WEIGHT, ids.Deconvolution.BIAS_TERM),
    ),
}
#: in-place layers over several blobs: ncnn writes outputs back into the input list
_INPLACE_MULTI_BLOB = frozenset({"Noop"})


def validate_model(model: NcnnModel, input_shapes: dict[str, tuple[int, ...]] | None = None) -> NcnnModel:
    """Check wiring, Input layers, weight sizes and (where inputs have a known shape) blob shapes.

    ``input_shapes`` maps input blob names to numpy-order shapes (CxHxW); without it, the
    shapes declared by the Input layers (params 0=w 1=h 2=c) are used when present.
    Raises :class:`ModelFormatError` on the first problem; returns ``model``.
    """
    src = model.param_source
    if not model.layers:
        raise ModelFormatError(f"{src}: the graph has no layers")
    names: set[str] = set()
    produced: dict[str, Layer] = {}
    for layer in model.layers:
        where = f"{src}:{layer.line_no or '?'}: layer {layer.name!r} ({layer.type})"
        _check_wiring(model, layer, where, names, produced)
        _check_arity(layer, where)
        if model.has_weights:
            _check_weights(layer, where)
    if not any(layer.type == "Input" for layer in model.layers):
        raise ModelFormatError(f"{src}: the graph has no Input layer")
    unknown = set(input_shapes or {}) - set(model.input_names())
    if unknown:
        raise ModelFormatError(f"{src}: no Input blob named {sorted(unknown)[0]!r}")
    infer_shapes(model, input_shapes)
    return model


def validate_files(
    param_path: str | Path,
    bin_path: str | Path | None,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
) -> NcnnModel:
    """Parse and fully validate a .param/.bin pair (``bin_path`` None: graph only); returns the model."""
    return validate_model(NcnnModel.read(param_path, bin_path), input_shapes)


def _check_wiring(
    model: NcnnModel, layer: Layer, where: str, names: set[str], produced: dict[str, Layer]
) -> None:
    """Names usable and unique; inputs produced by an earlier layer; outputs produced once."""
    for token in (layer.type, layer.name, *layer.inputs, *layer.outputs):
        _check_token(token, where)
    if layer.name in names:  # ncnn loads and runs it (names only matter to find_layer): a warning
        model.warnings.append(f"{where}: a layer with this name already exists")
    names.add(layer.name)
    if layer.type == "Input":
        if layer.inputs or len(layer.outputs) != 1:
            raise ModelFormatError(f"{where}: an Input layer takes 0 inputs and gives 1 output")
    elif layer.type not in _SOURCELESS_TYPES and not layer.inputs:
        raise ModelFormatError(f"{where}: has no input blob")
    for blob in layer.inputs:
        if blob not in produced:
            later = blob in {b for other in model.layers for b in other.outputs}
            why = "is produced only by a later layer" if later else "is never produced"
            raise ModelFormatError(f"{where}: input blob {blob!r} {why}")
    for blob in layer.outputs:
        if blob in produced:
            raise ModelFormatError(
                f"{where}: output blob {blob!r} is already produced by layer {produced[blob].name!r}"
            )
        if blob in layer.inputs:
            raise ModelFormatError(f"{where}: blob {blob!r} is both its input and output")
        produced[blob] = layer


def _check_token(token: str, where: str) -> None:
    """Types and names are single whitespace-free tokens of at most 255 bytes (ncnn's %255s)."""
    if not token or any(c in " \t\n\r\v\f" for c in token) or len(token.encode("utf-8")) > 255:
        raise ModelFormatError(f"{where}: {token[:40]!r} is not a usable name (empty, spaces or > 255 bytes)")


def _flag(layer: Layer, key: int) -> int:
    value = layer.get(key, 0)
    return 1 if isinstance(value, int | float) and value else 0


def _min_blobs(layer: Layer) -> tuple[int, int]:
    """Fewest (input, output) blobs ``layer`` can run with, given its params."""
    if layer.type in ("MultiHeadAttention", "SDPA"):
        mask, cache = _flag(layer, ids.SDPA.ATTN_MASK), _flag(layer, ids.SDPA.KV_CACHE)
        base = 3 if layer.type == "SDPA" else 1
        return base + mask + 2 * cache, 1 + 2 * cache
    if layer.type in _DYNAMIC_WEIGHT:
        dynamic, bias = _DYNAMIC_WEIGHT[layer.type]
        return (2 + _flag(layer, bias) if _flag(layer, dynamic) else 1), 1
    if layer.type == "Scale" and layer.get(ids.Scale.SCALE_DATA_SIZE, 0) == -233:
        return 2, 1
    return _min_inputs(layer), 1


def _min_inputs(layer: Layer) -> int:
    if layer.type == "BinaryOp":
        return 1 if layer.get(ids.BinaryOp.WITH_SCALAR, 0) else 2
    if layer.type == "Gemm":
        constants = sum(1 for key in (ids.Gemm.CONSTANT_A, ids.Gemm.CONSTANT_B) if layer.get(key, 0))
        return max(1, 2 - constants)
    return _MIN_INPUTS.get(layer.type, 0)


def _check_arity(layer: Layer, where: str) -> None:
    """Blob counts ncnn indexes without checking (too few means reading past its blob list)."""
    n_in, n_out = len(layer.inputs), len(layer.outputs)
    need, need_out = _min_blobs(layer)
    if n_in < need:
        raise ModelFormatError(f"{where}: needs at least {need} input blobs, has {n_in}")
    if n_out < need_out:
        raise ModelFormatError(f"{where}: needs at least {need_out} output blobs, has {n_out}")
    if layer.type in _INPLACE_MULTI_BLOB and n_out > n_in:
        raise ModelFormatError(
            f"{where}: an in-place layer gives at most one output per input, has {n_in} -> {n_out}"
        )
    if layer.type == "Split" and n_in != 1:
        raise ModelFormatError(f"{where}: a Split takes exactly 1 input, has {n_in}")
    if layer.type == "Slice":
        slices, indices = layer.get(ids.Slice.SLICES), layer.get(ids.Slice.INDICES)
        if isinstance(indices, list):
            if len(indices) + 1 < n_out:
                raise ModelFormatError(f"{where}: {len(indices)} slice indices for {n_out} outputs")
        elif not isinstance(slices, list) or len(slices) < n_out:
            given = len(slices) if isinstance(slices, list) else 0
            raise ModelFormatError(f"{where}: {given} slice sizes (param 0) for {n_out} outputs")


def _check_weights(layer: Layer, where: str) -> None:
    """The layer's weight buffers are the ones its params make ncnn read."""
    specs = weight_layout(layer.type, layer.params, where)
    if len(specs) != len(layer.weights):
        raise ModelFormatError(
            f"{where}: has {len(layer.weights)} weight buffers, its params need {len(specs)}"
        )
    for spec, weight in zip(specs, layer.weights, strict=True):
        if spec.role != weight.role or spec.count != weight.count:
            raise ModelFormatError(
                f"{where}: {weight.role} holds {weight.count} values, its params need {spec.role} of {spec.count}"
            )
        if spec.tagged == (weight.storage == "untagged"):
            raise ModelFormatError(
                f"{where}: {weight.role} storage {weight.storage} does not fit this buffer"
            )
