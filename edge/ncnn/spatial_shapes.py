"""Output sizes of the windowed ncnn layers: (de)convolution, pooling and padding.

Shapes are in ncnn order ``(w, h, c)``. A size the layer cannot produce (a kernel that does
not fit, weights that do not match the input channels, ...) raises :class:`ShapeError`.
"""

from __future__ import annotations

from edge.ncnn import param_ids as ids
from edge.ncnn.model import Layer

Shape = tuple[int, ...]
Conv = ids.Convolution


class ShapeError(Exception):
    """The layer's params and input shapes cannot agree (the message says how)."""


def _pair(layer: Layer, key_w: int, key_h: int, default: int) -> tuple[int, int]:
    w = layer.get(key_w, default)
    h = layer.get(key_h, w)
    if not isinstance(w, int) or not isinstance(h, int):
        raise ShapeError(f"params {key_w}/{key_h} must be integers")
    return w, h


def _conv_out(size: int, kernel: int, dilation: int, stride: int, pad_a: int, pad_b: int) -> int:
    if kernel <= 0 or dilation <= 0 or stride <= 0:
        raise ShapeError("kernel, dilation and stride must be positive")
    extent = dilation * (kernel - 1) + 1
    if pad_a in (-233, -234):  # SAME padding
        return (size + stride - 1) // stride
    if pad_a < 0 or pad_b < 0:
        raise ShapeError(f"negative padding {pad_a}/{pad_b}")
    out = (size + pad_a + pad_b - extent) // stride + 1
    if out <= 0:
        raise ShapeError(f"kernel extent {extent} does not fit the {size}-wide input (stride {stride})")
    return out


def _conv_params(layer: Layer, shape: Shape) -> tuple:
    """Input w, h, c and the (de)convolution's num_output, weight size, kernel, dilation, stride."""
    if len(shape) != 3:
        raise ShapeError(f"expects a 3-D input, got {shape}")
    w, h, c = shape
    return (
        w, h, c, layer.get(Conv.NUM_OUTPUT, 0), layer.get(Conv.WEIGHT_DATA_SIZE, 0),
        _pair(layer, Conv.KERNEL_W, Conv.KERNEL_H, 0),
        _pair(layer, Conv.DILATION_W, Conv.DILATION_H, 1),
        _pair(layer, Conv.STRIDE_W, Conv.STRIDE_H, 1),
    )  # fmt: skip


def _conv_pads(layer: Layer) -> tuple[int, int, int, int]:
    """Left, right, top, bottom padding with ncnn's defaults (right and top = left, bottom = top)."""
    pad_l = layer.get(Conv.PAD_LEFT, 0)
    pad_r, pad_t = layer.get(Conv.PAD_RIGHT, pad_l), layer.get(Conv.PAD_TOP, pad_l)
    return pad_l, pad_r, pad_t, layer.get(Conv.PAD_BOTTOM, pad_t)


def _group(layer: Layer, channels: int, num_output: int, depthwise: bool) -> int:
    group = layer.get(ids.ConvolutionDepthWise.GROUP, 1) if depthwise else 1
    if not isinstance(group, int) or group <= 0 or channels % group or num_output % group:
        raise ShapeError(f"group {group} does not divide {channels} input / {num_output} output channels")
    return group


def _check_weight_size(need: int, wsize: int, c: int, num_output: int, kernel: tuple[int, int]) -> None:
    if need != wsize:
        raise ShapeError(
            f"{c} input channels x {num_output} outputs x {kernel[0]}x{kernel[1]} kernel need"
            f" weight_data_size {need}, the layer has {wsize}"
        )


def convolution_shape(layer: Layer, shape: Shape, depthwise: bool) -> Shape:
    w, h, c, num_output, wsize, kernel, (dil_w, dil_h), (stride_w, stride_h) = _conv_params(layer, shape)
    pad_l, pad_r, pad_t, pad_b = _conv_pads(layer)
    group = _group(layer, c, num_output, depthwise)
    _check_weight_size(num_output * (c // group) * kernel[0] * kernel[1], wsize, c, num_output, kernel)
    return (
        _conv_out(w, kernel[0], dil_w, stride_w, pad_l, pad_r),
        _conv_out(h, kernel[1], dil_h, stride_h, pad_t, pad_b),
        num_output,
    )


def deconvolution_shape(layer: Layer, shape: Shape, depthwise: bool) -> Shape | None:
    w, h, c, num_output, wsize, kernel, (dil_w, dil_h), (stride_w, stride_h) = _conv_params(layer, shape)
    kernel_w, kernel_h = kernel
    group = _group(layer, c, num_output, depthwise)
    need = (num_output // group) * (c // group) * kernel_w * kernel_h * group
    _check_weight_size(need, wsize, c, num_output, kernel)
    if min(kernel_w, kernel_h, dil_w, dil_h, stride_w, stride_h) <= 0:
        raise ShapeError("kernel, dilation and stride must be positive")
    de = ids.Deconvolution
    out_w, out_h = layer.get(de.OUTPUT_W, 0), layer.get(de.OUTPUT_H, layer.get(de.OUTPUT_W, 0))
    if isinstance(out_w, int) and isinstance(out_h, int) and out_w > 0 and out_h > 0:
        return (out_w, out_h, num_output)
    pad_l, pad_r, pad_t, pad_b = _conv_pads(layer)
    opad_r = layer.get(de.OUTPUT_PAD_RIGHT, 0)
    opad_b = layer.get(de.OUTPUT_PAD_BOTTOM, opad_r)
    values = (pad_l, pad_r, pad_t, pad_b, opad_r, opad_b)
    if not all(isinstance(v, int) and v >= 0 for v in values):
        return None  # SAME-style (-233) padding: not modelled
    full_w = (w - 1) * stride_w + dil_w * (kernel_w - 1) + 1 + opad_r
    full_h = (h - 1) * stride_h + dil_h * (kernel_h - 1) + 1 + opad_b
    return (full_w - pad_l - pad_r, full_h - pad_t - pad_b, num_output)


def _pooled_size(size: int, kernel: int, stride: int, pads: tuple[int, int], mode: object) -> int:
    """One pooled dimension under ncnn's pad modes (0 full, 1 valid, 2/3 SAME upper/lower)."""
    if mode == 0:
        padded = size + pads[0] + pads[1]
        tail = (padded - kernel) % stride
        padded += stride - tail if tail else 0
    elif mode in (2, 3):
        padded = size + max(0, kernel + (size - 1) // stride * stride - size)
    else:
        padded = size + pads[0] + pads[1]
    if padded < kernel:
        raise ShapeError(f"kernel {kernel} larger than the padded input {padded}")
    return (padded - kernel) // stride + 1


def pooling_shape(layer: Layer, shape: Shape) -> Shape:
    if len(shape) != 3:
        raise ShapeError(f"expects a 3-D input, got {shape}")
    w, h, c = shape
    pool = ids.Pooling
    if layer.get(pool.GLOBAL_POOLING, 0):
        return (c,)
    if layer.get(pool.ADAPTIVE_POOLING, 0):
        out_w = layer.get(pool.OUT_W, 0)
        out_h = layer.get(pool.OUT_H, out_w)
        if not (isinstance(out_w, int) and isinstance(out_h, int)) or out_w <= 0 or out_h <= 0:
            raise ShapeError("adaptive pooling needs positive output sizes")
        return (out_w, out_h, c)
    kernel_w, kernel_h = _pair(layer, pool.KERNEL_W, pool.KERNEL_H, 0)
    stride_w, stride_h = _pair(layer, pool.STRIDE_W, pool.STRIDE_H, 1)
    pad_l = layer.get(pool.PAD_LEFT, 0)
    pad_r, pad_t = layer.get(pool.PAD_RIGHT, pad_l), layer.get(pool.PAD_TOP, pad_l)
    pad_b = layer.get(pool.PAD_BOTTOM, pad_t)
    mode = layer.get(pool.PAD_MODE, 0)
    if kernel_w <= 0 or kernel_h <= 0 or stride_w <= 0 or stride_h <= 0:
        raise ShapeError("kernel and stride must be positive")
    if min(pad_l, pad_r, pad_t, pad_b) < 0:
        raise ShapeError("negative padding")
    return (
        _pooled_size(w, kernel_w, stride_w, (pad_l, pad_r), mode),
        _pooled_size(h, kernel_h, stride_h, (pad_t, pad_b), mode),
        c,
    )


def padding_shape(layer: Layer, shape: Shape) -> Shape:
    pad = ids.Padding
    keys = {"top": pad.TOP, "bottom": pad.BOTTOM, "left": pad.LEFT, "right": pad.RIGHT}
    keys |= {"front": pad.FRONT, "behind": pad.BEHIND}
    pads = {name: layer.get(key, 0) for name, key in keys.items()}
    if not all(isinstance(v, int) and v >= 0 for v in pads.values()):
        raise ShapeError(f"paddings {pads} must be non-negative integers")
    sides = (
        (pads["left"], pads["right"]),
        (pads["top"], pads["bottom"]),
        (pads["front"], pads["behind"]),
    )
    if layer.get(pad.TYPE, 0) == 2:  # reflect: each pad must be smaller than the padded dimension
        for size, pair in zip(shape, sides, strict=False):
            if max(pair) >= size:
                raise ShapeError(f"reflect padding {pair} needs a dimension larger than {size}")
    grow = tuple(a + b for a, b in sides)
    if any(grow[len(shape) :]):
        raise ShapeError(f"pads a dimension the {len(shape)}-D input does not have")
    return tuple(size + extra for size, extra in zip(shape, grow, strict=False))
