"""Output-shape rules of the ncnn layer types, as a table {layer type: rule} (see :mod:`.shapes`).

A rule gets the layer and its input shapes (ncnn order ``(w,)``, ``(w, h)`` or ``(w, h, c)``,
all known) and returns its output shapes, or None when that form of the layer is not modelled
(every output unknown). It raises :class:`ShapeError` where the shapes cannot agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from edge.ncnn import param_ids as ids
from edge.ncnn.model import Layer
from edge.ncnn.spatial_shapes import (
    Shape,
    ShapeError,
    convolution_shape,
    deconvolution_shape,
    padding_shape,
    pooling_shape,
)

Outputs = list[Shape | None]
ShapeRule = Callable[[Layer, list[Shape]], Outputs | None]

SAME_SHAPE_TYPES = frozenset(
    """
    AbsVal BNLL CELU Clip Dropout ELU Erf Exp GELU HardSigmoid HardSwish LRN Log Mish Power ReLU
    SELU Shrink Sigmoid Softmax Softplus Swish TanH Threshold UnaryOp Normalize
    """.split()  # noqa: SIM905 (a word list reads better than quoted strings)
)


def _on_first(rule: Callable[[Layer, Shape], Shape | None]) -> ShapeRule:
    """A one-output rule that reads only the first input's shape."""
    return lambda layer, shapes: [rule(layer, shapes[0])]


def _on_all(rule: Callable[[Layer, list[Shape]], Shape | None]) -> ShapeRule:
    """A one-output rule that reads every input's shape."""
    return lambda layer, shapes: [rule(layer, shapes)]


def _one_input_only(rule: Callable[[Layer, Shape], Shape | None]) -> ShapeRule:
    """A one-output rule modelled only for the single-input form of the layer."""
    return lambda layer, shapes: [rule(layer, shapes[0])] if len(shapes) == 1 else None


def _same_shape(layer: Layer, shapes: list[Shape]) -> Outputs:
    return [shapes[0]] * len(layer.outputs)


def _convolution(depthwise: bool) -> ShapeRule:
    def rule(layer: Layer, shapes: list[Shape]) -> Outputs | None:
        if len(shapes[0]) == 1 and layer.get(ids.Convolution.KERNEL_W, 0) == 1:
            return None
        return [convolution_shape(layer, shapes[0], depthwise)]

    return rule


def _deconvolution(depthwise: bool) -> ShapeRule:
    return lambda layer, shapes: [deconvolution_shape(layer, shapes[0], depthwise)]


def _concat_shape(layer: Layer, shapes: list[Shape]) -> Shape:
    dims = len(shapes[0])
    if any(len(s) != dims for s in shapes):
        raise ShapeError(f"inputs have different ranks {shapes}")
    axis = layer.get(ids.Concat.AXIS, 0)
    if not isinstance(axis, int) or not -dims <= axis < dims:
        raise ShapeError(f"axis {axis} out of range for {dims}-D inputs")
    axis = axis % dims
    index = dims - 1 - axis  # ncnn axis 0 is the outermost (c for 3-D), our tuples are (w, h, c)
    for s in shapes[1:]:
        if any(a != b for i, (a, b) in enumerate(zip(s, shapes[0], strict=True)) if i != index):
            raise ShapeError(f"inputs {shapes[0]} and {s} differ outside the concat axis")
    total = list(shapes[0])
    total[index] = sum(s[index] for s in shapes)
    return tuple(total)


def _broadcast(layer: Layer, shapes: list[Shape]) -> Shape | None:
    first = shapes[0]
    if all(s == first for s in shapes):
        return first
    if all(len(s) == len(first) for s in shapes):
        for axis in range(len(first)):
            sizes = {s[axis] for s in shapes} - {1}
            if len(sizes) > 1:
                raise ShapeError(f"inputs {shapes} cannot be broadcast together")
        return tuple(max(s[axis] for s in shapes) for axis in range(len(first)))
    return None  # mixed ranks: ncnn has several broadcast conventions; do not guess


def _eltwise_shape(layer: Layer, shapes: list[Shape]) -> Shape:
    if any(s != shapes[0] for s in shapes):
        raise ShapeError(f"inputs {shapes} differ")
    return shapes[0]


def _slice(layer: Layer, shapes: list[Shape]) -> Outputs | None:
    shape = shapes[0]
    slices = layer.get(ids.Slice.SLICES)
    if not isinstance(slices, list) or layer.get(ids.Slice.INDICES) is not None:
        return None
    axis = layer.get(ids.Slice.AXIS, 0)
    dims = len(shape)
    if not isinstance(axis, int) or not -dims <= axis < dims:
        raise ShapeError(f"axis {axis} out of range for a {dims}-D input")
    index = dims - 1 - axis % dims
    total, used, out = shape[index], 0, []
    for i, size in enumerate(slices):
        if size == -233:
            size = (total - used) // (len(slices) - i)
        if not isinstance(size, int) or size <= 0:
            raise ShapeError(f"slice sizes {slices} do not fit {total}")
        used += size
        piece = list(shape)
        piece[index] = size
        out.append(tuple(piece))
    if used > total:
        raise ShapeError(f"slice sizes {slices} add up to {used}, more than {total}")
    return list(out) if len(out) == len(layer.outputs) else None


def _innerproduct_shape(layer: Layer, shape: Shape) -> Shape:
    num_output = layer.get(ids.InnerProduct.NUM_OUTPUT, 0)
    wsize = layer.get(ids.InnerProduct.WEIGHT_DATA_SIZE, 0)
    num_input = wsize // num_output if num_output else 0
    if len(shape) == 2 and shape[0] == num_input:
        return (num_output, shape[1])
    if math.prod(shape) != num_input:
        raise ShapeError(f"input {shape} has {math.prod(shape)} values, the weights expect {num_input}")
    return (num_output,)


def _interp_shape(layer: Layer, shapes: list[Shape]) -> Shape | None:
    shape = shapes[0]
    if len(shape) != 3:
        return None
    if len(shapes) > 1:
        return (shapes[1][0], shapes[1][1], shape[2]) if len(shapes[1]) == 3 else None
    out_h, out_w = layer.get(ids.Interp.OUTPUT_HEIGHT, 0), layer.get(ids.Interp.OUTPUT_WIDTH, 0)
    if not out_h or not out_w:
        h_scale = layer.get(ids.Interp.HEIGHT_SCALE, 1.0)
        w_scale = layer.get(ids.Interp.WIDTH_SCALE, 1.0)
        if not isinstance(h_scale, int | float) or not isinstance(w_scale, int | float):
            raise ShapeError("scales must be numbers")
        out_w, out_h = int(shape[0] * w_scale), int(shape[1] * h_scale)
    if not (isinstance(out_w, int) and isinstance(out_h, int)) or out_w <= 0 or out_h <= 0:
        raise ShapeError(f"output size {out_w}x{out_h} is not positive")
    return (out_w, out_h, shape[2])


def _reshape_shape(layer: Layer, shape: Shape) -> Shape | None:
    r = ids.Reshape
    w, h, d, c = (layer.get(key, -233) for key in (r.W, r.H, r.D, r.C))
    if layer.get(r.PERMUTE, 0) or w == -233 or d != -233:
        return None  # permuted reshape, flatten-by-default and 4-D outputs are not modelled
    wanted = [w] if h == -233 else [w, h] if c == -233 else [w, h, c]
    if not all(isinstance(v, int) for v in wanted):
        raise ShapeError("reshape sizes must be integers")
    dims = [shape[i] if v == 0 and i < len(shape) else v for i, v in enumerate(wanted)]
    if any(v == 0 for v in dims) or any(v < -1 for v in dims) or dims.count(-1) > 1:
        raise ShapeError(f"reshape sizes {wanted} are not usable for the input {shape}")
    total, known = math.prod(shape), math.prod(v for v in dims if v != -1)
    if -1 in dims:
        if total % known:
            raise ShapeError(f"cannot reshape {total} values into {wanted}")
        dims[dims.index(-1)] = total // known
    if math.prod(dims) != total:
        raise ShapeError(f"cannot reshape {shape} ({total} values) into {tuple(dims)}")
    return tuple(dims)


_PERMUTE_3D = {0: (0, 1, 2), 1: (1, 0, 2), 2: (0, 2, 1), 3: (2, 0, 1), 4: (1, 2, 0), 5: (2, 1, 0)}


def _permute_shape(layer: Layer, shape: Shape) -> Shape | None:
    order = layer.get(ids.Permute.ORDER_TYPE, 0)
    if len(shape) == 1:
        return shape
    if len(shape) == 2 and order in (0, 1):
        return shape if order == 0 else (shape[1], shape[0])
    if len(shape) == 3 and order in _PERMUTE_3D:
        return tuple(shape[i] for i in _PERMUTE_3D[order])
    return None


def _memorydata(layer: Layer, shapes: list[Shape]) -> Outputs:
    md = ids.MemoryData
    w, h, c = layer.get(md.W, 0), layer.get(md.H, 0), layer.get(md.C, 0)
    shape: Shape | None = None
    if not layer.get(md.D, 0) and all(isinstance(v, int) and v >= 0 for v in (w, h, c)):
        shape = (w, h, c) if c else (w, h) if h else (w,) if w else (1,)
    return [shape, *[None] * (len(layer.outputs) - 1)]


def _mha(layer: Layer, shapes: list[Shape]) -> Outputs | None:
    if len(layer.outputs) != 1:
        return None
    mha = ids.MultiHeadAttention
    embed, wsize = layer.get(mha.EMBED_DIM, 0), layer.get(mha.WEIGHT_DATA_SIZE, 0)
    qdim = wsize // embed if isinstance(embed, int) and embed > 0 and isinstance(wsize, int) else 0
    q = shapes[0]
    if len(q) != 2:
        return [None]
    if q[0] != qdim:
        raise ShapeError(f"query {q} has width {q[0]}, the weights expect {qdim}")
    kdim, vdim = layer.get(mha.KDIM, embed), layer.get(mha.VDIM, embed)
    if len(shapes) == 1 and (kdim != qdim or vdim != qdim):
        raise ShapeError(f"self-attention needs kdim/vdim equal to {qdim}")
    return [(qdim, q[1])]


def _gemm_shape(layer: Layer, shape: Shape) -> Shape | None:
    g = ids.Gemm
    if (
        layer.get(g.CONSTANT_A, 0)
        or not layer.get(g.CONSTANT_B, 0)
        or layer.get(g.TRANS_A, 0)
        or len(shape) != 2
    ):
        return None  # only the common "input x constant B" form is modelled
    k, n = layer.get(g.CONSTANT_K, 0), layer.get(g.CONSTANT_N, 0)
    if shape[0] != k:
        raise ShapeError(f"input {shape} has width {shape[0]}, constant B expects K={k}")
    return (shape[1], n) if layer.get(g.OUTPUT_TRANSPOSE, 0) else (n, shape[1])


def _crop_by_axes(layer: Layer, shape: Shape, starts: list, ends: list) -> Shape:
    axes = layer.get(ids.Crop.AXES)
    axes = axes if isinstance(axes, list) else list(range(len(starts)))
    if not len(starts) == len(ends) == len(axes):
        raise ShapeError(f"starts {starts}, ends {ends} and axes {axes} differ in length")
    dims = len(shape)
    out = list(shape)
    for start, end, axis in zip(starts, ends, axes, strict=True):
        if not all(isinstance(v, int) for v in (start, end, axis)) or not -dims <= axis < dims:
            raise ShapeError(f"crop axis {axis} / range {start}:{end} not usable for {shape}")
        index = dims - 1 - axis % dims
        size = len(range(shape[index])[start:end])
        if size <= 0:
            raise ShapeError(f"crop {start}:{end} on axis {axis} of {shape} is empty")
        out[index] = size
    return tuple(out)


def _crop_shape(layer: Layer, shape: Shape) -> Shape | None:
    cr = ids.Crop
    starts, ends = layer.get(cr.STARTS), layer.get(cr.ENDS)
    if isinstance(starts, list) and isinstance(ends, list):
        return _crop_by_axes(layer, shape, starts, ends)
    offsets = tuple(layer.get(key, 0) for key in (cr.WOFFSET, cr.HOFFSET, cr.COFFSET))
    sizes = tuple(layer.get(key, 0) for key in (cr.OUTW, cr.OUTH, cr.OUTC))
    if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in sizes):
        return None  # reference-blob and "-233 = rest" forms are not modelled
    for offset, size, dim in zip(offsets, sizes, shape, strict=True):
        if not isinstance(offset, int) or offset < 0 or offset + size > dim:
            raise ShapeError(f"crop of {sizes} at {offsets} does not fit inside {shape}")
    return sizes


def _layernorm_shape(layer: Layer, shape: Shape) -> Shape:
    size = layer.get(ids.LayerNorm.AFFINE_SIZE, 0)
    if layer.get(ids.LayerNorm.AFFINE, 1) and size != shape[0] and size != math.prod(shape[:2]):
        raise ShapeError(f"affine_size {size} does not match the input {shape}")
    return shape


def _shufflechannel_shape(layer: Layer, shape: Shape) -> Shape:
    group = layer.get(ids.ShuffleChannel.GROUP, 1)
    if len(shape) != 3 or not isinstance(group, int) or group <= 0 or shape[2] % group:
        raise ShapeError(f"group {group} does not divide the channels of {shape}")
    return shape


_PER_CHANNEL_SIZE = {
    "BatchNorm": ids.BatchNorm.CHANNELS,
    "Scale": ids.Scale.SCALE_DATA_SIZE,
    "PReLU": ids.PReLU.NUM_SLOPE,
}


def _per_channel(layer: Layer, shapes: list[Shape]) -> Outputs | None:
    """BatchNorm / Scale / PReLU: one parameter per channel."""
    first = shapes[0]
    if len(first) < 1:
        return None
    channels = first[-1] if len(first) in (2, 3) else first[0]
    size = layer.get(_PER_CHANNEL_SIZE[layer.type], 0)
    if (layer.type == "PReLU" and size == 1) or (layer.type == "Scale" and size == -233):
        return [first]
    if size != channels:
        raise ShapeError(f"has {size} channels of parameters, the input {first} has {channels}")
    return [first]


SHAPE_RULES: dict[str, ShapeRule] = {
    **dict.fromkeys(SAME_SHAPE_TYPES, _same_shape),
    "Split": _same_shape,
    "MemoryData": _memorydata,
    "Convolution": _convolution(depthwise=False),
    "ConvolutionDepthWise": _convolution(depthwise=True),
    "Deconvolution": _deconvolution(depthwise=False),
    "DeconvolutionDepthWise": _deconvolution(depthwise=True),
    "Padding": _on_first(padding_shape),
    "Reshape": _one_input_only(_reshape_shape),
    "Permute": _on_first(_permute_shape),
    "Crop": _one_input_only(_crop_shape),
    "MultiHeadAttention": _mha,
    "Gemm": _one_input_only(_gemm_shape),
    "LayerNorm": _on_first(_layernorm_shape),
    "Pooling": _on_first(pooling_shape),
    "Concat": _on_all(_concat_shape),
    "Eltwise": _on_all(_eltwise_shape),
    "BinaryOp": _on_all(_broadcast),
    "Slice": _slice,
    "ShuffleChannel": _on_first(_shufflechannel_shape),
    "InnerProduct": _on_first(_innerproduct_shape),
    "Flatten": lambda layer, shapes: [(math.prod(shapes[0]),)],
    "Interp": _on_all(_interp_shape),
    **dict.fromkeys(_PER_CHANNEL_SIZE, _per_channel),
}
