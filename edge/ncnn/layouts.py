"""Per-layer-type ``.bin`` layouts: from a layer's params, the buffers its ``load_model`` reads.

:data:`LAYOUTS` maps each weighted layer type to a function mirroring that layer's
``load_model`` (checked against the real ncnn, see tests/test_ncnn_io.py);
:data:`WEIGHTLESS_TYPES` read nothing. :func:`weight_layout` is the entry point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from edge.errors import ModelFormatError
from edge.ncnn import param_ids as ids
from edge.ncnn.weights import align4

MAX_ELEMENTS = 1 << 31  # ncnn counts elements in an int

Params = Mapping[int, object]


@dataclass(frozen=True)
class BufferSpec:
    """One buffer a layer's load_model reads: role, element count, tagged (type 0) or not."""

    role: str
    count: int
    tagged: bool
    shape: tuple[int, ...] = ()
    source: str = ""  # which params the count comes from, for error messages


class ParamReader:
    """Typed access to a layer's params as ncnn's ``ParamDict::get`` sees them, for layouts."""

    def __init__(self, layer_type: str, params: Params, where: str) -> None:
        self.layer_type, self.params, self.where = layer_type, params, where

    def int(self, key: int, default: int = 0) -> int:
        value = self.params.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ModelFormatError(
                f"{self.where}: param {key} must be an integer for {self.layer_type}, got {value!r}"
            )
        return value

    def count(self, key: int, default: int = 0) -> int:
        value = self.int(key, default)
        if value < 0:
            raise ModelFormatError(f"{self.where}: param {key}={value} must not be negative")
        return value


LayoutFn = Callable[[ParamReader], list[BufferSpec]]


def _buf(role: str, count: int, tagged: bool, source: str, shape: tuple[int, ...] = ()) -> BufferSpec:
    keep = bool(shape) and all(dim > 0 for dim in shape) and math.prod(shape) == count
    return BufferSpec(role, count, tagged, shape if keep else (), source)


def _named(label: str, key: int) -> str:
    """``"label (param key)"``: where a buffer size comes from, for error messages."""
    return f"{label} (param {key})"


# ---------------------------------------------------------------------------------------------
# (de)convolutions

Conv = ids.Convolution
_OUTPUTS = _named("num_output", Conv.NUM_OUTPUT)


def _conv_shape(p: ParamReader, num_output: int, wsize: int, kernel_keys: tuple[int, ...]) -> tuple[int, ...]:
    kernel_w = p.int(Conv.KERNEL_W, 0)
    kernel = [kernel_w]
    for key in kernel_keys:
        kernel.append(p.int(key, kernel_w))
    area = math.prod(kernel)
    if num_output <= 0 or area <= 0 or wsize % (num_output * area):
        return ()
    return (num_output, wsize // (num_output * area), *reversed(kernel))


def _int8_conv_scales(p: ParamReader, int8: str, term: int) -> list[BufferSpec]:
    """The int8 scale buffers after a quantized (depthwise) convolution's weight and bias."""
    specs = []
    if int8 == "conv" and term:
        specs += [
            _buf("weight_scales", p.count(Conv.NUM_OUTPUT), False, _OUTPUTS),
            _buf("bottom_scales", 1, False, ""),
        ]
    if int8 == "dw":
        group = p.count(ids.ConvolutionDepthWise.GROUP, 1)
        if term in (1, 101):
            specs += [
                _buf("weight_scales", group, False, _named("group", ids.ConvolutionDepthWise.GROUP)),
                _buf("bottom_scales", 1, False, ""),
            ]
        elif term in (2, 102):
            specs += [_buf("weight_scales", 1, False, ""), _buf("bottom_scales", 1, False, "")]
    if term > 100:
        specs.append(_buf("top_scales", 1, False, ""))
    return specs


def _conv_like(
    p: ParamReader, *, dynamic_key: int | None, kernel_keys: tuple[int, ...], int8: str = ""
) -> list[BufferSpec]:
    if dynamic_key is not None and p.int(dynamic_key, 0):
        return []
    num_output = p.count(Conv.NUM_OUTPUT)
    wsize = p.count(Conv.WEIGHT_DATA_SIZE)
    source = _named("weight_data_size", Conv.WEIGHT_DATA_SIZE)
    specs = [_buf("weight", wsize, True, source, _conv_shape(p, num_output, wsize, kernel_keys))]
    if p.int(Conv.BIAS_TERM, 0):
        specs.append(_buf("bias", num_output, False, _OUTPUTS))
    if int8:
        specs += _int8_conv_scales(p, int8, p.int(Conv.INT8_SCALE_TERM, 0))
    return specs


def _convolution(dynamic_key: int | None, kernel_keys: tuple[int, ...], int8: str = "") -> LayoutFn:
    def layout(p: ParamReader) -> list[BufferSpec]:
        return _conv_like(p, dynamic_key=dynamic_key, kernel_keys=kernel_keys, int8=int8)

    return layout


_KERNEL_2D = (Conv.KERNEL_H,)
_KERNEL_3D = (Conv.KERNEL_H, ids.Convolution3D.KERNEL_D)
_CONV_DYNAMIC = Conv.DYNAMIC_WEIGHT
_DECONV_DYNAMIC = ids.Deconvolution.DYNAMIC_WEIGHT

_CONVOLUTION_LAYOUTS: dict[str, LayoutFn] = {
    "Convolution": _convolution(_CONV_DYNAMIC, _KERNEL_2D, "conv"),
    "ConvolutionDepthWise": _convolution(_CONV_DYNAMIC, _KERNEL_2D, "dw"),
    "Convolution1D": _convolution(_CONV_DYNAMIC, ()),
    "ConvolutionDepthWise1D": _convolution(_CONV_DYNAMIC, ()),
    "Convolution3D": _convolution(None, _KERNEL_3D),
    "ConvolutionDepthWise3D": _convolution(None, _KERNEL_3D),
    "Deconvolution": _convolution(_DECONV_DYNAMIC, _KERNEL_2D),
    "DeconvolutionDepthWise": _convolution(_DECONV_DYNAMIC, _KERNEL_2D),
    "Deconvolution1D": _convolution(_DECONV_DYNAMIC, ()),
    "DeconvolutionDepthWise1D": _convolution(_DECONV_DYNAMIC, ()),
    "Deconvolution3D": _convolution(None, _KERNEL_3D),
    "DeconvolutionDepthWise3D": _convolution(None, _KERNEL_3D),
    "DeformableConv2D": _convolution(None, _KERNEL_2D),
}


# ---------------------------------------------------------------------------------------------
# other layer families


def _innerproduct(p: ParamReader) -> list[BufferSpec]:
    fc = ids.InnerProduct
    num_output, wsize = p.count(fc.NUM_OUTPUT), p.count(fc.WEIGHT_DATA_SIZE)
    shape = (num_output, wsize // num_output) if num_output and wsize % num_output == 0 else ()
    specs = [_buf("weight", wsize, True, _named("weight_data_size", fc.WEIGHT_DATA_SIZE), shape)]
    if p.int(fc.BIAS_TERM, 0):
        specs.append(_buf("bias", num_output, False, _OUTPUTS))
    if p.int(fc.INT8_SCALE_TERM, 0):
        specs += [_buf("weight_scales", num_output, False, _OUTPUTS), _buf("bottom_scales", 1, False, "")]
    return specs


def _batchnorm(p: ParamReader) -> list[BufferSpec]:
    c = p.count(ids.BatchNorm.CHANNELS)
    source = _named("channels", ids.BatchNorm.CHANNELS)
    return [_buf(role, c, False, source) for role in ("slope", "mean", "variance", "bias")]


def _scale(p: ParamReader) -> list[BufferSpec]:
    size_key = ids.Scale.SCALE_DATA_SIZE
    source = _named("scale_data_size", size_key)
    specs = [] if p.int(size_key, 0) == -233 else [_buf("scale", p.count(size_key), False, source)]
    if p.int(ids.Scale.BIAS_TERM, 0):
        specs.append(_buf("bias", p.count(size_key), False, source))
    return specs


def _single(role: str, key: int, label: str, default: int = 0) -> LayoutFn:
    def layout(p: ParamReader) -> list[BufferSpec]:
        return [_buf(role, p.count(key, default), False, _named(label, key))]

    return layout


def _optional(role: str, key: int, label: str) -> LayoutFn:
    def layout(p: ParamReader) -> list[BufferSpec]:
        n = p.count(key)
        return [_buf(role, n, False, _named(label, key))] if n else []

    return layout


def _chain(*parts: LayoutFn) -> LayoutFn:
    def layout(p: ParamReader) -> list[BufferSpec]:
        return [spec for part in parts for spec in part(p)]

    return layout


def _norm(size_key: int, affine_key: int, roles: tuple[str, ...], label: str) -> LayoutFn:
    def layout(p: ParamReader) -> list[BufferSpec]:
        if not p.int(affine_key, 1):
            return []
        n = p.count(size_key)
        return [_buf(role, n, False, _named(label, size_key)) for role in roles]

    return layout


def _memorydata(p: ParamReader) -> list[BufferSpec]:
    md = ids.MemoryData
    w, h, d, c = p.count(md.W), p.count(md.H), p.count(md.D), p.count(md.C)
    load_type = p.int(md.LOAD_TYPE, 1)
    if d:
        shape = (c, d, h, w)
    elif c:
        shape = (c, h, w)
    elif h:
        shape = (h, w)
    elif w:
        shape = (w,)
    else:
        shape = (1,)
    return [_buf("data", math.prod(shape), load_type == 0, "w*h*d*c (params 0,1,11,2)", shape)]


def _embed(p: ParamReader) -> list[BufferSpec]:
    em = ids.Embed
    num_output, wsize = p.count(em.NUM_OUTPUT), p.count(em.WEIGHT_DATA_SIZE)
    input_dim = p.count(em.INPUT_DIM)
    source = _named("weight_data_size", em.WEIGHT_DATA_SIZE)
    specs = [_buf("weight", wsize, True, source, (input_dim, num_output))]
    if p.int(em.BIAS_TERM, 0):
        specs.append(_buf("bias", num_output, False, _named("num_output", em.NUM_OUTPUT)))
    if p.int(em.INT8_SCALE_TERM, 0):
        specs.append(_buf("weight_scales", 1, False, ""))
    return specs


def _mha(p: ParamReader) -> list[BufferSpec]:
    mha = ids.MultiHeadAttention
    embed, wsize = p.count(mha.EMBED_DIM), p.count(mha.WEIGHT_DATA_SIZE)
    if embed == 0:
        raise ModelFormatError(f"{p.where}: MultiHeadAttention embed_dim (param 0) must be positive")
    qdim = wsize // embed
    kdim, vdim = p.count(mha.KDIM, embed), p.count(mha.VDIM, embed)
    src = "embed_dim/weight_data_size (params 0, 2)"
    specs = [
        _buf("q_weight", embed * qdim, True, src, (embed, qdim)),
        _buf("q_bias", embed, False, src),
        _buf("k_weight", embed * kdim, True, src, (embed, kdim)),
        _buf("k_bias", embed, False, src),
        _buf("v_weight", embed * vdim, True, src, (embed, vdim)),
        _buf("v_bias", embed, False, src),
        _buf("out_weight", qdim * embed, True, src, (qdim, embed)),
        _buf("out_bias", qdim, False, src),
    ]
    if p.int(mha.INT8_SCALE_TERM, 0):
        specs += [
            _buf("q_weight_scales", embed, False, src),
            _buf("k_weight_scales", embed, False, src),
            _buf("v_weight_scales", embed, False, src),
            _buf("out_weight_scale", 1, False, ""),
        ]
    return specs


def _gemm(p: ParamReader) -> list[BufferSpec]:
    g = ids.Gemm
    trans_a, trans_b = p.int(g.TRANS_A, 0), p.int(g.TRANS_B, 0)
    const_a, const_b, const_c = p.int(g.CONSTANT_A, 0), p.int(g.CONSTANT_B, 0), p.int(g.CONSTANT_C, 0)
    m, n, k = p.count(g.CONSTANT_M), p.count(g.CONSTANT_N), p.count(g.CONSTANT_K)
    broadcast_c = p.int(g.CONSTANT_BROADCAST_TYPE_C, 0)
    src = "constantM/N/K (params 7, 8, 9)"
    specs = []
    if const_a == 1:
        specs.append(_buf("A", m * k, True, src, (k, m) if trans_a else (m, k)))
    if const_b == 1:
        specs.append(_buf("B", n * k, True, src, (n, k) if trans_b else (k, n)))
    if const_c == 1 and broadcast_c != -1:
        shapes = {0: (1,), 1: (m,), 2: (m, 1), 3: (m, n), 4: (1, n)}
        if broadcast_c not in shapes:
            raise ModelFormatError(
                f"{p.where}: Gemm constant_broadcast_type_C (param 10) {broadcast_c} not in -1..4"
            )
        shape = shapes[broadcast_c]
        source = _named("constant_broadcast_type_C", g.CONSTANT_BROADCAST_TYPE_C)
        specs.append(_buf("C", math.prod(shape), True, source, shape))
    if p.int(g.INT8_SCALE_TERM, 0):
        if const_a == 1:
            specs.append(_buf("A_scales", m, False, src))
        if const_b == 1:
            specs.append(_buf("B_scale", 1, False, ""))
    return specs


def _recurrent(gates: int, bias_gates: int) -> LayoutFn:
    def layout(p: ParamReader) -> list[BufferSpec]:
        rnn = ids.LSTM
        num_output, wsize = p.count(rnn.NUM_OUTPUT), p.count(rnn.WEIGHT_DATA_SIZE)
        direction = p.int(rnn.DIRECTION, 0)
        hidden = p.count(rnn.HIDDEN_SIZE, num_output) if gates == 4 else num_output
        dirs = 2 if direction == 2 else 1
        if hidden == 0:
            raise ModelFormatError(f"{p.where}: num_output (param 0) must be positive")
        size = wsize // dirs // hidden // gates
        src = "num_output/weight_data_size (params 0, 1)"
        specs = [
            _buf("weight_xc", size * hidden * gates * dirs, True, src, (dirs, hidden * gates, size)),
            _buf("bias_c", hidden * bias_gates * dirs, True, src, (dirs, bias_gates, hidden)),
            _buf(
                "weight_hc", num_output * hidden * gates * dirs, True, src, (dirs, hidden * gates, num_output)
            ),
        ]
        if gates == 4 and num_output != hidden:
            specs.append(_buf("weight_hr", hidden * num_output * dirs, True, src, (dirs, num_output, hidden)))
        if p.int(rnn.INT8_SCALE_TERM, 0):
            specs += [
                _buf("weight_xc_scales", hidden * gates * dirs, False, src),
                _buf("weight_hc_scales", hidden * gates * dirs, False, src),
            ]
        return specs

    return layout


LAYOUTS: dict[str, LayoutFn] = {
    **_CONVOLUTION_LAYOUTS,
    "InnerProduct": _innerproduct,
    "BatchNorm": _batchnorm,
    "Bias": _single("bias", ids.Bias.BIAS_DATA_SIZE, "bias_data_size"),
    "Scale": _scale,
    "PReLU": _single("slope", ids.PReLU.NUM_SLOPE, "num_slope"),
    "Normalize": _single("scale", ids.Normalize.SCALE_DATA_SIZE, "scale_data_size"),
    "Padding": _optional(
        "per_channel_pad", ids.Padding.PER_CHANNEL_PAD_DATA_SIZE, "per_channel_pad_data_size"
    ),
    "InstanceNorm": _norm(ids.InstanceNorm.CHANNELS, ids.InstanceNorm.AFFINE, ("gamma", "beta"), "channels"),
    "GroupNorm": _norm(ids.GroupNorm.CHANNELS, ids.GroupNorm.AFFINE, ("gamma", "beta"), "channels"),
    "LayerNorm": _norm(ids.LayerNorm.AFFINE_SIZE, ids.LayerNorm.AFFINE, ("gamma", "beta"), "affine_size"),
    "RMSNorm": _norm(ids.LayerNorm.AFFINE_SIZE, ids.LayerNorm.AFFINE, ("gamma",), "affine_size"),
    "MemoryData": _memorydata,
    "Embed": _embed,
    "MultiHeadAttention": _mha,
    "Gemm": _gemm,
    "RNN": _recurrent(1, 1),
    "LSTM": _recurrent(4, 4),
    "GRU": _recurrent(3, 4),
    "Quantize": _single("scale", ids.Quantize.SCALE_DATA_SIZE, "scale_data_size"),
    "Dequantize": _chain(
        _single("scale", ids.Dequantize.SCALE_DATA_SIZE, "scale_data_size", default=1),
        _optional("bias", ids.Dequantize.BIAS_DATA_SIZE, "bias_data_size"),
    ),
    "Requantize": _chain(
        _single("scale_in", ids.Requantize.SCALE_IN_DATA_SIZE, "scale_in_data_size", default=1),
        _single("scale_out", ids.Requantize.SCALE_OUT_DATA_SIZE, "scale_out_data_size", default=1),
        _optional("bias", ids.Requantize.BIAS_DATA_SIZE, "bias_data_size"),
    ),
}

WEIGHTLESS_TYPES: frozenset[str] = frozenset(
    """
    AbsVal ArgMax BinaryOp BNLL Cast CELU Clip Concat CopyTo Crop CumulativeSum DeepCopy
    DetectionOutput Diag Dropout Eltwise ELU Einsum Erf Exp ExpandDims Flatten Flip Fold GELU GLU
    GridSample HardSigmoid HardSwish Input Interp Log LRN MatMul Mish MVN Noop Packing Permute
    PixelShuffle Pooling Pooling1D Pooling3D Power PriorBox Proposal PSROIPooling Reduction ReLU
    Reorg Reshape ROIAlign ROIPooling RotaryEmbed SDPA SELU ShuffleChannel Shrink Sigmoid Slice
    Softmax Softplus Split SPP Squeeze StatisticsPooling Swish TanH Threshold Tile UnaryOp Unfold
    Yolov3DetectionOutput YoloDetectionOutput
    """.split()  # noqa: SIM905 (a word list reads better than quoted strings)
)

SUPPORTED_WEIGHTED_TYPES: tuple[str, ...] = tuple(sorted(LAYOUTS))


def weight_layout(layer_type: str, params: Params, where: str = "") -> list[BufferSpec]:
    """The buffers ncnn's ``load_model`` of ``layer_type`` reads, in order (empty if weightless).

    Raises :class:`ModelFormatError` for a type whose layout is unknown, for params that are not
    integers where a size is expected, and for non-positive or oversized buffer sizes.
    """
    where = where or layer_type
    if layer_type in WEIGHTLESS_TYPES:
        return []
    layout = LAYOUTS.get(layer_type)
    if layout is None:
        raise ModelFormatError(
            f"{where}: unknown layer type {layer_type!r}; its weight layout is not known, refusing to guess"
        )
    specs = layout(ParamReader(layer_type, params, where))
    for spec in specs:
        if spec.count <= 0:
            detail = f" from {spec.source}" if spec.source else ""
            raise ModelFormatError(
                f"{where}: {spec.role} would hold {spec.count} values{detail}; ncnn needs > 0"
            )
        if spec.count >= MAX_ELEMENTS:
            raise ModelFormatError(
                f"{where}: {spec.role} would hold {spec.count} values, more than ncnn can index"
            )
    return specs


def buffer_nbytes(spec: BufferSpec, storage: str) -> int:
    """Bytes a buffer takes in the .bin with a given storage (tag included)."""
    if not spec.tagged:
        return spec.count * 4
    body = {
        "fp32": spec.count * 4,
        "raw_fp32": spec.count * 4,
        "fp16": align4(spec.count * 2),
        "int8": align4(spec.count),
        "quantized_table": 1024 + align4(spec.count),
    }[storage]
    return 4 + body
