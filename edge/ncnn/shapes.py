"""Shape inference over an ncnn graph: catches branches that disagree before ncnn runs them.

ncnn segfaults at run time when, say, two branches of an Eltwise or Concat disagree in size;
:func:`infer_shapes` computes every blob's shape from the input shapes and the layer params
and raises :class:`~edge.errors.ModelFormatError` where they cannot agree.
"""

from __future__ import annotations

import math

from edge.errors import ModelFormatError
from edge.ncnn.model import Layer, NcnnModel

Shape = tuple[int, ...]  # ncnn order: (w,), (w, h) or (w, h, c)

_SAME_SHAPE_TYPES = frozenset(
    [
        "AbsVal",
        "BNLL",
        "CELU",
        "Clip",
        "Dropout",
        "ELU",
        "Erf",
        "Exp",
        "GELU",
        "HardSigmoid",
        "HardSwish",
        "LRN",
        "Log",
        "Mish",
        "Power",
        "ReLU",
        "SELU",
        "Shrink",
        "Sigmoid",
        "Softmax",
        "Softplus",
        "Swish",
        "TanH",
        "Threshold",
        "UnaryOp",
        "Normalize",
    ]
)
_MAX_BLOB_ELEMENTS = 1 << 28  # 1 GiB of float32: far above real detectors, far below int overflow


class _ShapeError(Exception):
    pass


def _pair(layer: Layer, key_w: int, key_h: int, default: int) -> tuple[int, int]:
    w = layer.get(key_w, default)
    h = layer.get(key_h, w)
    if not isinstance(w, int) or not isinstance(h, int):
        raise _ShapeError(f"params {key_w}/{key_h} must be integers")
    return w, h


def _conv_out(size: int, kernel: int, dilation: int, stride: int, pad_a: int, pad_b: int) -> int:
    if kernel <= 0 or dilation <= 0 or stride <= 0:
        raise _ShapeError("kernel, dilation and stride must be positive")
    extent = dilation * (kernel - 1) + 1
    if pad_a in (-233, -234):  # SAME padding
        return (size + stride - 1) // stride
    if pad_a < 0 or pad_b < 0:
        raise _ShapeError(f"negative padding {pad_a}/{pad_b}")
    out = (size + pad_a + pad_b - extent) // stride + 1
    if out <= 0:
        raise _ShapeError(f"kernel extent {extent} does not fit the {size}-wide input (stride {stride})")
    return out


def _conv_params(layer: Layer, shape: Shape) -> tuple:
    """Input w, h, c and the (de)convolution's num_output, weight size, kernel, dilation, stride."""
    if len(shape) != 3:
        raise _ShapeError(f"expects a 3-D input, got {shape}")
    w, h, c = shape
    return (
        w, h, c, layer.get(0, 0), layer.get(6, 0),
        _pair(layer, 1, 11, 0), _pair(layer, 2, 12, 1), _pair(layer, 3, 13, 1),
    )  # fmt: skip


def _conv_shape(layer: Layer, shape: Shape, depthwise: bool) -> Shape:
    w, h, c, num_output, wsize, (kernel_w, kernel_h), (dil_w, dil_h), (stride_w, stride_h) = _conv_params(
        layer, shape
    )
    pad_l = layer.get(4, 0)
    pad_r, pad_t = layer.get(15, pad_l), layer.get(14, pad_l)
    pad_b = layer.get(16, pad_t)
    group = layer.get(7, 1) if depthwise else 1
    if not isinstance(group, int) or group <= 0 or c % group or num_output % group:
        raise _ShapeError(f"group {group} does not divide {c} input / {num_output} output channels")
    need = num_output * (c // group) * kernel_w * kernel_h
    if need != wsize:
        raise _ShapeError(
            f"{c} input channels x {num_output} outputs x {kernel_w}x{kernel_h} kernel need"
            f" weight_data_size {need}, the layer has {wsize}"
        )
    return (
        _conv_out(w, kernel_w, dil_w, stride_w, pad_l, pad_r),
        _conv_out(h, kernel_h, dil_h, stride_h, pad_t, pad_b),
        num_output,
    )


def _pool_shape(layer: Layer, shape: Shape) -> Shape:
    if len(shape) != 3:
        raise _ShapeError(f"expects a 3-D input, got {shape}")
    w, h, c = shape
    if layer.get(4, 0):  # global pooling
        return (c,)
    if layer.get(7, 0):  # adaptive pooling
        out_w = layer.get(8, 0)
        out_h = layer.get(18, out_w)
        if not (isinstance(out_w, int) and isinstance(out_h, int)) or out_w <= 0 or out_h <= 0:
            raise _ShapeError("adaptive pooling needs positive output sizes")
        return (out_w, out_h, c)
    kernel_w, kernel_h = _pair(layer, 1, 11, 0)
    stride_w, stride_h = _pair(layer, 2, 12, 1)
    pad_l = layer.get(3, 0)
    pad_r, pad_t = layer.get(14, pad_l), layer.get(13, pad_l)
    pad_b = layer.get(15, pad_t)
    mode = layer.get(5, 0)
    if kernel_w <= 0 or kernel_h <= 0 or stride_w <= 0 or stride_h <= 0:
        raise _ShapeError("kernel and stride must be positive")
    if min(pad_l, pad_r, pad_t, pad_b) < 0:
        raise _ShapeError("negative padding")

    def out(size: int, kernel: int, stride: int, pad_a: int, pad_b: int) -> int:
        if mode == 0:
            padded = size + pad_a + pad_b
            tail = (padded - kernel) % stride
            padded += stride - tail if tail else 0
        elif mode in (2, 3):
            padded = size + max(0, kernel + (size - 1) // stride * stride - size)
        else:
            padded = size + pad_a + pad_b
        if padded < kernel:
            raise _ShapeError(f"kernel {kernel} larger than the padded input {padded}")
        return (padded - kernel) // stride + 1

    return (out(w, kernel_w, stride_w, pad_l, pad_r), out(h, kernel_h, stride_h, pad_t, pad_b), c)


def _concat_shape(layer: Layer, shapes: list[Shape]) -> Shape:
    dims = len(shapes[0])
    if any(len(s) != dims for s in shapes):
        raise _ShapeError(f"inputs have different ranks {shapes}")
    axis = layer.get(0, 0)
    if not isinstance(axis, int) or not -dims <= axis < dims:
        raise _ShapeError(f"axis {axis} out of range for {dims}-D inputs")
    axis = axis % dims
    index = dims - 1 - axis  # ncnn axis 0 is the outermost (c for 3-D), our tuples are (w, h, c)
    for s in shapes[1:]:
        if any(a != b for i, (a, b) in enumerate(zip(s, shapes[0], strict=True)) if i != index):
            raise _ShapeError(f"inputs {shapes[0]} and {s} differ outside the concat axis")
    total = list(shapes[0])
    total[index] = sum(s[index] for s in shapes)
    return tuple(total)


def _broadcast(shapes: list[Shape]) -> Shape | None:
    first = shapes[0]
    if all(s == first for s in shapes):
        return first
    if all(len(s) == len(first) for s in shapes):
        for axis in range(len(first)):
            sizes = {s[axis] for s in shapes} - {1}
            if len(sizes) > 1:
                raise _ShapeError(f"inputs {shapes} cannot be broadcast together")
        return tuple(max(s[axis] for s in shapes) for axis in range(len(first)))
    return None  # mixed ranks: ncnn has several broadcast conventions; do not guess


def _slice_shapes(layer: Layer, shape: Shape) -> list[Shape] | None:
    slices = layer.get(0)
    if not isinstance(slices, list) or layer.get(2) is not None:
        return None
    axis = layer.get(1, 0)
    dims = len(shape)
    if not isinstance(axis, int) or not -dims <= axis < dims:
        raise _ShapeError(f"axis {axis} out of range for a {dims}-D input")
    index = dims - 1 - axis % dims
    total, used, out = shape[index], 0, []
    for i, size in enumerate(slices):
        if size == -233:
            size = (total - used) // (len(slices) - i)
        if not isinstance(size, int) or size <= 0:
            raise _ShapeError(f"slice sizes {slices} do not fit {total}")
        used += size
        piece = list(shape)
        piece[index] = size
        out.append(tuple(piece))
    if used > total:
        raise _ShapeError(f"slice sizes {slices} add up to {used}, more than {total}")
    return out


def _innerproduct_shape(layer: Layer, shape: Shape) -> Shape:
    num_output, wsize = layer.get(0, 0), layer.get(2, 0)
    num_input = wsize // num_output if num_output else 0
    if len(shape) == 2 and shape[0] == num_input:
        return (num_output, shape[1])
    if math.prod(shape) != num_input:
        raise _ShapeError(f"input {shape} has {math.prod(shape)} values, the weights expect {num_input}")
    return (num_output,)


def _interp_shape(layer: Layer, shapes: list[Shape]) -> Shape | None:
    shape = shapes[0]
    if len(shape) != 3:
        return None
    if len(shapes) > 1:
        return (shapes[1][0], shapes[1][1], shape[2]) if len(shapes[1]) == 3 else None
    out_h, out_w = layer.get(3, 0), layer.get(4, 0)
    if not out_h or not out_w:
        h_scale, w_scale = layer.get(1, 1.0), layer.get(2, 1.0)
        if not isinstance(h_scale, int | float) or not isinstance(w_scale, int | float):
            raise _ShapeError("scales must be numbers")
        out_w, out_h = int(shape[0] * w_scale), int(shape[1] * h_scale)
    if not (isinstance(out_w, int) and isinstance(out_h, int)) or out_w <= 0 or out_h <= 0:
        raise _ShapeError(f"output size {out_w}x{out_h} is not positive")
    return (out_w, out_h, shape[2])


def _deconv_shape(layer: Layer, shape: Shape, depthwise: bool) -> Shape | None:
    w, h, c, num_output, wsize, (kernel_w, kernel_h), (dil_w, dil_h), (stride_w, stride_h) = _conv_params(
        layer, shape
    )
    group = layer.get(7, 1) if depthwise else 1
    if not isinstance(group, int) or group <= 0 or c % group or num_output % group:
        raise _ShapeError(f"group {group} does not divide {c} input / {num_output} output channels")
    need = (num_output // group) * (c // group) * kernel_w * kernel_h * group
    if need != wsize:
        raise _ShapeError(
            f"{c} input channels x {num_output} outputs x {kernel_w}x{kernel_h} kernel need"
            f" weight_data_size {need}, the layer has {wsize}"
        )
    if min(kernel_w, kernel_h, dil_w, dil_h, stride_w, stride_h) <= 0:
        raise _ShapeError("kernel, dilation and stride must be positive")
    out_w, out_h = layer.get(20, 0), layer.get(21, layer.get(20, 0))
    if isinstance(out_w, int) and isinstance(out_h, int) and out_w > 0 and out_h > 0:
        return (out_w, out_h, num_output)
    pad_l = layer.get(4, 0)
    pad_r, pad_t = layer.get(15, pad_l), layer.get(14, pad_l)
    pad_b = layer.get(16, pad_t)
    opad_r = layer.get(18, 0)
    opad_b = layer.get(19, opad_r)
    values = (pad_l, pad_r, pad_t, pad_b, opad_r, opad_b)
    if not all(isinstance(v, int) and v >= 0 for v in values):
        return None  # SAME-style (-233) padding: not modelled
    full_w = (w - 1) * stride_w + dil_w * (kernel_w - 1) + 1 + opad_r
    full_h = (h - 1) * stride_h + dil_h * (kernel_h - 1) + 1 + opad_b
    return (full_w - pad_l - pad_r, full_h - pad_t - pad_b, num_output)


def _padding_shape(layer: Layer, shape: Shape) -> Shape:
    keys = {"top": 0, "bottom": 1, "left": 2, "right": 3, "front": 7, "behind": 8}
    pads = {name: layer.get(key, 0) for name, key in keys.items()}
    if not all(isinstance(v, int) and v >= 0 for v in pads.values()):
        raise _ShapeError(f"paddings {pads} must be non-negative integers")
    grow = (
        pads["left"] + pads["right"],
        pads["top"] + pads["bottom"],
        pads["front"] + pads["behind"],
    )
    if layer.get(4, 0) == 2:  # reflect: each pad must be smaller than the padded dimension
        sides = (
            (pads["left"], pads["right"]),
            (pads["top"], pads["bottom"]),
            (pads["front"], pads["behind"]),
        )
        for size, pair in zip(shape, sides, strict=False):
            if max(pair) >= size:
                raise _ShapeError(f"reflect padding {pair} needs a dimension larger than {size}")
    if any(grow[len(shape) :]):
        raise _ShapeError(f"pads a dimension the {len(shape)}-D input does not have")
    return tuple(size + extra for size, extra in zip(shape, grow, strict=False))


def _reshape_shape(layer: Layer, shape: Shape) -> Shape | None:
    w, h, d, c = layer.get(0, -233), layer.get(1, -233), layer.get(11, -233), layer.get(2, -233)
    if layer.get(3, 0) or w == -233 or d != -233:
        return None  # permuted reshape, flatten-by-default and 4-D outputs are not modelled
    wanted = [w] if h == -233 else [w, h] if c == -233 else [w, h, c]
    if not all(isinstance(v, int) for v in wanted):
        raise _ShapeError("reshape sizes must be integers")
    dims = [shape[i] if v == 0 and i < len(shape) else v for i, v in enumerate(wanted)]
    if any(v == 0 for v in dims) or any(v < -1 for v in dims) or dims.count(-1) > 1:
        raise _ShapeError(f"reshape sizes {wanted} are not usable for the input {shape}")
    total, known = math.prod(shape), math.prod(v for v in dims if v != -1)
    if -1 in dims:
        if total % known:
            raise _ShapeError(f"cannot reshape {total} values into {wanted}")
        dims[dims.index(-1)] = total // known
    if math.prod(dims) != total:
        raise _ShapeError(f"cannot reshape {shape} ({total} values) into {tuple(dims)}")
    return tuple(dims)


_PERMUTE_3D = {0: (0, 1, 2), 1: (1, 0, 2), 2: (0, 2, 1), 3: (2, 0, 1), 4: (1, 2, 0), 5: (2, 1, 0)}


def _permute_shape(layer: Layer, shape: Shape) -> Shape | None:
    order = layer.get(0, 0)
    if len(shape) == 1:
        return shape
    if len(shape) == 2 and order in (0, 1):
        return shape if order == 0 else (shape[1], shape[0])
    if len(shape) == 3 and order in _PERMUTE_3D:
        return tuple(shape[i] for i in _PERMUTE_3D[order])
    return None


def _memorydata_shape(layer: Layer) -> Shape | None:
    w, h, c = layer.get(0, 0), layer.get(1, 0), layer.get(2, 0)
    if layer.get(11, 0) or not all(isinstance(v, int) and v >= 0 for v in (w, h, c)):
        return None
    if c:
        return (w, h, c)
    if h:
        return (w, h)
    return (w,) if w else (1,)


def _mha_shape(layer: Layer, shapes: list[Shape]) -> Shape | None:
    embed, wsize = layer.get(0, 0), layer.get(2, 0)
    qdim = wsize // embed if isinstance(embed, int) and embed > 0 and isinstance(wsize, int) else 0
    q = shapes[0]
    if len(q) != 2:
        return None
    if q[0] != qdim:
        raise _ShapeError(f"query {q} has width {q[0]}, the weights expect {qdim}")
    kdim, vdim = layer.get(3, embed), layer.get(4, embed)
    if len(shapes) == 1 and (kdim != qdim or vdim != qdim):
        raise _ShapeError(f"self-attention needs kdim/vdim equal to {qdim}")
    return (qdim, q[1])


def _gemm_shape(layer: Layer, shape: Shape) -> Shape | None:
    if layer.get(4, 0) or not layer.get(5, 0) or layer.get(2, 0) or len(shape) != 2:
        return None  # only the common "input x constant B" form is modelled
    k, n = layer.get(9, 0), layer.get(8, 0)
    if shape[0] != k:
        raise _ShapeError(f"input {shape} has width {shape[0]}, constant B expects K={k}")
    return (shape[1], n) if layer.get(14, 0) else (n, shape[1])


def _crop_shape(layer: Layer, shape: Shape) -> Shape | None:
    starts, ends, axes = layer.get(9), layer.get(10), layer.get(11)
    dims = len(shape)
    if isinstance(starts, list) and isinstance(ends, list):
        axes = axes if isinstance(axes, list) else list(range(len(starts)))
        if not len(starts) == len(ends) == len(axes):
            raise _ShapeError(f"starts {starts}, ends {ends} and axes {axes} differ in length")
        out = list(shape)
        for start, end, axis in zip(starts, ends, axes, strict=True):
            if not all(isinstance(v, int) for v in (start, end, axis)) or not -dims <= axis < dims:
                raise _ShapeError(f"crop axis {axis} / range {start}:{end} not usable for {shape}")
            index = dims - 1 - axis % dims
            size = len(range(shape[index])[start:end])
            if size <= 0:
                raise _ShapeError(f"crop {start}:{end} on axis {axis} of {shape} is empty")
            out[index] = size
        return tuple(out)
    offsets = (layer.get(0, 0), layer.get(1, 0), layer.get(2, 0))
    sizes = (layer.get(3, 0), layer.get(4, 0), layer.get(5, 0))
    if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in sizes):
        return None  # reference-blob and "-233 = rest" forms are not modelled
    for offset, size, dim in zip(offsets, sizes, shape, strict=True):
        if not isinstance(offset, int) or offset < 0 or offset + size > dim:
            raise _ShapeError(f"crop of {sizes} at {offsets} does not fit inside {shape}")
    return sizes


def _layer_output_shapes(layer: Layer, shapes: list[Shape | None]) -> list[Shape | None]:
    unknown: list[Shape | None] = [None] * len(layer.outputs)
    if layer.type == "MemoryData":
        return [_memorydata_shape(layer), *unknown[1:]]
    if not shapes or any(s is None for s in shapes):
        return unknown
    known: list[Shape] = [s for s in shapes if s is not None]
    first = known[0]
    kind = layer.type
    if kind in _SAME_SHAPE_TYPES or kind == "Split":
        return [first] * len(layer.outputs)
    if kind in ("Convolution", "ConvolutionDepthWise"):
        if len(first) == 1 and layer.get(1, 0) == 1:
            return unknown
        return [_conv_shape(layer, first, kind == "ConvolutionDepthWise")]
    if kind in ("Deconvolution", "DeconvolutionDepthWise"):
        return [_deconv_shape(layer, first, kind == "DeconvolutionDepthWise")]
    if kind == "Padding":
        return [_padding_shape(layer, first)]
    if kind == "Reshape" and len(known) == 1:
        return [_reshape_shape(layer, first)]
    if kind == "Permute":
        return [_permute_shape(layer, first)]
    if kind == "Crop" and len(known) == 1:
        return [_crop_shape(layer, first)]
    if kind == "MultiHeadAttention" and len(layer.outputs) == 1:
        return [_mha_shape(layer, known)]
    if kind == "Gemm" and len(known) == 1:
        return [_gemm_shape(layer, first)]
    if kind == "LayerNorm":
        size = layer.get(0, 0)
        if layer.get(2, 1) and size != first[0] and size != math.prod(first[:2]):
            raise _ShapeError(f"affine_size {size} does not match the input {first}")
        return [first]
    if kind == "Pooling":
        return [_pool_shape(layer, first)]
    if kind == "Concat":
        return [_concat_shape(layer, known)]
    if kind == "Eltwise":
        if any(s != first for s in known):
            raise _ShapeError(f"inputs {known} differ")
        return [first]
    if kind == "BinaryOp":
        return [_broadcast(known)]
    if kind == "Slice":
        pieces = _slice_shapes(layer, first)
        return unknown if pieces is None or len(pieces) != len(layer.outputs) else list(pieces)
    if kind == "ShuffleChannel":
        group = layer.get(0, 1)
        if len(first) != 3 or not isinstance(group, int) or group <= 0 or first[2] % group:
            raise _ShapeError(f"group {group} does not divide the channels of {first}")
        return [first]
    if kind == "InnerProduct":
        return [_innerproduct_shape(layer, first)]
    if kind == "Flatten":
        return [(math.prod(first),)]
    if kind == "Interp":
        return [_interp_shape(layer, known)]
    if kind in ("BatchNorm", "Scale", "PReLU") and len(first) >= 1:
        channels = first[-1] if len(first) == 3 else first[-1] if len(first) == 2 else first[0]
        size = layer.get(0, 0)
        if (kind == "PReLU" and size == 1) or (kind == "Scale" and size == -233):
            return [first]
        if size != channels:
            raise _ShapeError(f"has {size} channels of parameters, the input {first} has {channels}")
        return [first]
    return unknown


def _input_shape(layer: Layer) -> Shape | None:
    w, h, c = layer.get(0, 0), layer.get(1, 0), layer.get(2, 0)
    if not all(isinstance(v, int) and v >= 0 for v in (w, h, c)) or not w:
        return None
    if c:
        return (w, h or 1, c)
    return (w, h) if h else (w,)


def infer_shapes(model: NcnnModel, input_shapes: dict[str, Shape] | None = None) -> dict[str, Shape | None]:
    """Blob shapes in ncnn order ``(w, h, c)`` for the given (or declared) input shapes.

    ``input_shapes`` maps input blob names to CxHxW / HxW / W shapes as numpy sees them. Layers
    whose shape rules are not modelled give unknown (None) shapes; known inconsistencies that make
    ncnn read out of bounds (concat of mismatched branches, convolution weights not matching the
    input channels, ...) raise :class:`ModelFormatError`.
    """
    given = {name: tuple(reversed(shape)) for name, shape in (input_shapes or {}).items()}
    shapes: dict[str, Shape | None] = {}
    for layer in model.layers:
        where = f"{model.param_source}:{layer.line_no or '?'}: layer {layer.name!r} ({layer.type})"
        if layer.type == "Input":
            for blob in layer.outputs:
                shape = given.get(blob) or _input_shape(layer)
                if shape is not None and (min(shape) <= 0 or math.prod(shape) >= _MAX_BLOB_ELEMENTS):
                    raise ModelFormatError(
                        f"{where}: input shape {shape} (w, h, c) is empty or over 2^28 values"
                    )
                shapes[blob] = shape
            continue
        try:
            outs = _layer_output_shapes(layer, [shapes.get(blob) for blob in layer.inputs])
        except _ShapeError as err:
            at = f" (at input shapes {input_shapes})" if input_shapes else ""
            raise ModelFormatError(f"{where}: {err}{at}") from None
        except TypeError:
            raise ModelFormatError(f"{where}: a shape param has the wrong type") from None
        for blob, shape in zip(layer.outputs, outs, strict=False):
            if shape is not None and (min(shape) <= 0 or math.prod(shape) >= _MAX_BLOB_ELEMENTS):
                raise ModelFormatError(
                    f"{where}: output {blob!r} would have the shape {shape} (w, h, c): empty or over 2^28 values"
                )
            shapes[blob] = shape
    return shapes
