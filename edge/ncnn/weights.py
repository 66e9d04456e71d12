"""Per-layer-type ``.bin`` layouts and the weight buffer encodings of ncnn.

ncnn reads each weighted layer's buffers in order with ``ModelBin::load(count, type)``:
type 0 buffers start with a 4-byte tag choosing the storage (fp32, fp16, int8, raw fp32, or a
legacy 256-entry lookup table + uint8 indices), type 1 buffers are bare float32. fp16, int8 and
table indices are padded to 4 bytes. :func:`weight_layout` lists, from a layer's params, the
buffers its ``load_model`` reads (checked against the real ncnn, see tests/test_ncnn_io.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from edge.errors import ModelFormatError

TAG_FP32 = 0x00000000
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_RAW_FP32 = 0x0002C056
TAG_TABLE_DEFAULT = 0x00000001  # any other non-zero tag selects the lookup-table form

STORAGES = ("fp32", "fp16", "int8", "raw_fp32", "quantized_table", "untagged")
_TAG_OF = {"fp32": TAG_FP32, "fp16": TAG_FP16, "int8": TAG_INT8, "raw_fp32": TAG_RAW_FP32}
_DTYPE_OF = {
    "fp32": np.float32,
    "fp16": np.float16,
    "int8": np.int8,
    "raw_fp32": np.float32,
    "quantized_table": np.float32,
    "untagged": np.float32,
}
MAX_ELEMENTS = 1 << 31  # ncnn counts elements in an int


def align4(n: int) -> int:
    return (n + 3) & ~3


@dataclass(frozen=True)
class BufferSpec:
    """One buffer a layer's load_model reads: role, element count, tagged (type 0) or not."""

    role: str
    count: int
    tagged: bool
    shape: tuple[int, ...] = ()
    source: str = ""  # which params the count comes from, for error messages


@dataclass
class Weight:
    """One decoded buffer of a layer.

    ``array`` keeps the stored dtype: float32 (fp32, raw_fp32, untagged, and quantized_table, whose
    lookup is applied), float16 or int8. ``storage`` says how it is written back.
    """

    role: str
    array: np.ndarray
    storage: str
    tag: int | None = None  # the original tag (quantized_table keeps its own)
    raw: bytes | None = field(default=None, repr=False)  # original bytes, for identical rewrites

    def replace(self, array: np.ndarray, storage: str | None = None) -> None:
        """Swap in a new array (and optionally a new storage); the buffer is re-encoded on write."""
        storage = storage or self.storage
        if storage not in STORAGES:
            raise ModelFormatError(f"unknown weight storage {storage!r}; expected one of {STORAGES}")
        if (storage == "untagged") != (self.storage == "untagged"):
            raise ModelFormatError(
                f"{self.role}: ncnn reads this buffer {'untagged' if self.storage == 'untagged' else 'tagged'}"
                f"; cannot store it as {storage}"
            )
        dtype = _DTYPE_OF[storage]
        new = np.asarray(array)
        if storage == "int8" and new.dtype != np.int8:
            raise ModelFormatError(f"{self.role}: int8 storage needs an int8 array, got {new.dtype}")
        self.array = new.astype(dtype, copy=True)
        self.storage = storage
        self.raw = None

    @property
    def count(self) -> int:
        return int(self.array.size)

    @property
    def nbytes(self) -> int:
        """Bytes this buffer takes in the .bin (tag and padding included)."""
        return len(self.encode())

    def as_float32(self) -> np.ndarray:
        """The values as float32 (int8 values as stored, not dequantized)."""
        return np.asarray(self.array, dtype=np.float32)

    def encode(self) -> bytes:
        """The buffer's bytes as ncnn reads them (original bytes when the data is unchanged)."""
        body = encode_buffer(self.array, self.storage, self.tag)
        if self.raw is None:
            return body
        if self.storage == "quantized_table":
            return self.raw if _table_matches(self.raw, self.array) else body
        n = _unpadded(self)
        return self.raw if len(self.raw) == len(body) and self.raw[:n] == body[:n] else body


def _unpadded(weight: Weight) -> int:
    header = 0 if weight.storage == "untagged" else 4
    return header + weight.array.size * weight.array.dtype.itemsize


def _table_matches(raw: bytes, array: np.ndarray) -> bool:
    decoded, _ = decode_buffer(raw, 0, array.size, True)
    return decoded.array.shape == array.reshape(-1).shape and np.array_equal(
        decoded.array.view(np.uint32),
        np.ascontiguousarray(array, dtype=np.float32).reshape(-1).view(np.uint32),
    )


def encode_buffer(array: np.ndarray, storage: str, tag: int | None = None) -> bytes:
    """Encode one buffer (tag + data + zero padding to 4 bytes)."""
    flat = np.ascontiguousarray(array).reshape(-1)
    if storage == "untagged":
        return flat.astype("<f4").tobytes()
    if storage == "quantized_table":
        values, indices = np.unique(flat.astype(np.float32), return_inverse=True)
        if values.size > 256:
            raise ModelFormatError(
                f"a lookup-table buffer holds at most 256 distinct values, got {values.size}"
            )
        table = np.zeros(256, dtype="<f4")
        table[: values.size] = values
        tag_value = tag if tag not in (None, *_TAG_OF.values()) else TAG_TABLE_DEFAULT
        index_bytes = indices.astype(np.uint8).tobytes()
        data = table.tobytes() + index_bytes
        return tag_value.to_bytes(4, "little") + data + b"\0" * (align4(len(index_bytes)) - len(index_bytes))
    if storage not in _TAG_OF:
        raise ModelFormatError(f"unknown weight storage {storage!r}")
    dtype = {"fp32": "<f4", "raw_fp32": "<f4", "fp16": "<f2", "int8": "i1"}[storage]
    data = flat.astype(dtype).tobytes()
    return _TAG_OF[storage].to_bytes(4, "little") + data + b"\0" * (align4(len(data)) - len(data))


def decode_buffer(data: bytes | memoryview, offset: int, count: int, tagged: bool) -> tuple[Weight, int]:
    """Decode one buffer at ``offset``; returns the weight (role unset) and the bytes consumed.

    Raises ``EOFError`` with the number of bytes needed when the data runs short.
    """
    available = len(data) - offset
    if not tagged:
        need = count * 4
        if need > available:
            raise EOFError(need)
        raw = bytes(data[offset : offset + need])
        return Weight("", np.frombuffer(raw, dtype="<f4").astype(np.float32), "untagged", None, raw), need
    if available < 4:
        raise EOFError(4)
    tag = int.from_bytes(data[offset : offset + 4], "little")
    body = offset + 4
    if tag == TAG_FP16:
        size, storage, dtype = align4(count * 2), "fp16", "<f2"
    elif tag == TAG_INT8:
        size, storage, dtype = align4(count), "int8", "i1"
    elif tag == TAG_RAW_FP32:
        size, storage, dtype = count * 4, "raw_fp32", "<f4"
    elif tag == TAG_FP32:
        size, storage, dtype = count * 4, "fp32", "<f4"
    else:
        need = 4 + 1024 + align4(count)
        if need > available:
            raise EOFError(need)
        table = np.frombuffer(bytes(data[body : body + 1024]), dtype="<f4")
        indices = np.frombuffer(bytes(data[body + 1024 : body + 1024 + count]), dtype=np.uint8)
        raw = bytes(data[offset : offset + need])
        return Weight("", table[indices].astype(np.float32), "quantized_table", tag, raw), need
    need = 4 + size
    if need > available:
        raise EOFError(need)
    raw = bytes(data[offset : offset + need])
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=4).astype(_DTYPE_OF[storage])
    return Weight("", array, storage, tag, raw), need


# ---------------------------------------------------------------------------------------------
# Layouts: params -> buffers, one function per layer family, mirroring each layer's load_model.

Params = Mapping[int, object]
LayoutFn = Callable[["ParamReader"], list[BufferSpec]]


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


def _buf(role: str, count: int, tagged: bool, source: str, shape: tuple[int, ...] = ()) -> BufferSpec:
    keep = bool(shape) and all(dim > 0 for dim in shape) and _prod(shape) == count
    return BufferSpec(role, count, tagged, shape if keep else (), source)


def _prod(values: tuple[int, ...]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _conv_shape(p: ParamReader, num_output: int, wsize: int, kernel_keys: tuple[int, ...]) -> tuple[int, ...]:
    kernel_w = p.int(1, 0)
    kernel = [kernel_w]
    for key in kernel_keys:
        kernel.append(p.int(key, kernel_w))
    area = _prod(tuple(kernel))
    if num_output <= 0 or area <= 0 or wsize % (num_output * area):
        return ()
    return (num_output, wsize // (num_output * area), *reversed(kernel))


def _conv_like(
    p: ParamReader, *, dynamic_key: int | None, kernel_keys: tuple[int, ...], int8: str = ""
) -> list[BufferSpec]:
    if dynamic_key is not None and p.int(dynamic_key, 0):
        return []
    num_output = p.count(0)
    wsize = p.count(6)
    specs = [
        _buf(
            "weight",
            wsize,
            True,
            "weight_data_size (param 6)",
            _conv_shape(p, num_output, wsize, kernel_keys),
        )
    ]
    if p.int(5, 0):
        specs.append(_buf("bias", num_output, False, "num_output (param 0)"))
    term = p.int(8, 0) if int8 else 0
    if int8 == "conv" and term:
        specs += [
            _buf("weight_scales", num_output, False, "num_output (param 0)"),
            _buf("bottom_scales", 1, False, ""),
        ]
    if int8 == "dw":
        group = p.count(7, 1)
        if term in (1, 101):
            specs += [
                _buf("weight_scales", group, False, "group (param 7)"),
                _buf("bottom_scales", 1, False, ""),
            ]
        elif term in (2, 102):
            specs += [_buf("weight_scales", 1, False, ""), _buf("bottom_scales", 1, False, "")]
    if int8 and term > 100:
        specs.append(_buf("top_scales", 1, False, ""))
    return specs


def _innerproduct(p: ParamReader) -> list[BufferSpec]:
    num_output, wsize = p.count(0), p.count(2)
    shape = (num_output, wsize // num_output) if num_output and wsize % num_output == 0 else ()
    specs = [_buf("weight", wsize, True, "weight_data_size (param 2)", shape)]
    if p.int(1, 0):
        specs.append(_buf("bias", num_output, False, "num_output (param 0)"))
    if p.int(8, 0):
        specs += [
            _buf("weight_scales", num_output, False, "num_output (param 0)"),
            _buf("bottom_scales", 1, False, ""),
        ]
    return specs


def _batchnorm(p: ParamReader) -> list[BufferSpec]:
    c = p.count(0)
    return [_buf(role, c, False, "channels (param 0)") for role in ("slope", "mean", "variance", "bias")]


def _scale(p: ParamReader) -> list[BufferSpec]:
    size = p.int(0, 0)
    specs = [] if size == -233 else [_buf("scale", p.count(0), False, "scale_data_size (param 0)")]
    if p.int(1, 0):
        specs.append(_buf("bias", p.count(0), False, "scale_data_size (param 0)"))
    return specs


def _single(role: str, key: int, label: str) -> LayoutFn:
    def layout(p: ParamReader) -> list[BufferSpec]:
        return [_buf(role, p.count(key), False, f"{label} (param {key})")]

    return layout


def _optional(role: str, key: int, label: str) -> LayoutFn:
    def layout(p: ParamReader) -> list[BufferSpec]:
        n = p.count(key)
        return [_buf(role, n, False, f"{label} (param {key})")] if n else []

    return layout


def _norm(size_key: int, affine_key: int, roles: tuple[str, ...], label: str) -> LayoutFn:
    def layout(p: ParamReader) -> list[BufferSpec]:
        if not p.int(affine_key, 1):
            return []
        n = p.count(size_key)
        return [_buf(role, n, False, f"{label} (param {size_key})") for role in roles]

    return layout


def _memorydata(p: ParamReader) -> list[BufferSpec]:
    w, h, d, c = p.count(0), p.count(1), p.count(11), p.count(2)
    load_type = p.int(21, 1)
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
    return [_buf("data", _prod(shape), load_type == 0, "w*h*d*c (params 0,1,11,2)", shape)]


def _embed(p: ParamReader) -> list[BufferSpec]:
    num_output, wsize = p.count(0), p.count(3)
    input_dim = p.count(1)
    specs = [_buf("weight", wsize, True, "weight_data_size (param 3)", (input_dim, num_output))]
    if p.int(2, 0):
        specs.append(_buf("bias", num_output, False, "num_output (param 0)"))
    if p.int(18, 0):
        specs.append(_buf("weight_scales", 1, False, ""))
    return specs


def _mha(p: ParamReader) -> list[BufferSpec]:
    embed, wsize = p.count(0), p.count(2)
    if embed == 0:
        raise ModelFormatError(f"{p.where}: MultiHeadAttention embed_dim (param 0) must be positive")
    qdim = wsize // embed
    kdim, vdim = p.count(3, embed), p.count(4, embed)
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
    if p.int(18, 0):
        specs += [
            _buf("q_weight_scales", embed, False, src),
            _buf("k_weight_scales", embed, False, src),
            _buf("v_weight_scales", embed, False, src),
            _buf("out_weight_scale", 1, False, ""),
        ]
    return specs


def _gemm(p: ParamReader) -> list[BufferSpec]:
    trans_a, trans_b = p.int(2, 0), p.int(3, 0)
    const_a, const_b, const_c = p.int(4, 0), p.int(5, 0), p.int(6, 0)
    m, n, k = p.count(7), p.count(8), p.count(9)
    broadcast_c = p.int(10, 0)
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
        specs.append(_buf("C", _prod(shape), True, "constant_broadcast_type_C (param 10)", shape))
    if p.int(18, 0):
        if const_a == 1:
            specs.append(_buf("A_scales", m, False, src))
        if const_b == 1:
            specs.append(_buf("B_scale", 1, False, ""))
    return specs


def _recurrent(gates: int, bias_gates: int) -> LayoutFn:
    def layout(p: ParamReader) -> list[BufferSpec]:
        num_output, wsize, direction = p.count(0), p.count(1), p.int(2, 0)
        hidden = p.count(3, num_output) if gates == 4 else num_output
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
        if p.int(8, 0):
            specs += [
                _buf("weight_xc_scales", hidden * gates * dirs, False, src),
                _buf("weight_hc_scales", hidden * gates * dirs, False, src),
            ]
        return specs

    return layout


def _dequantize(p: ParamReader) -> list[BufferSpec]:
    specs = [_buf("scale", p.count(0, 1), False, "scale_data_size (param 0)")]
    if p.count(1):
        specs.append(_buf("bias", p.count(1), False, "bias_data_size (param 1)"))
    return specs


def _requantize(p: ParamReader) -> list[BufferSpec]:
    specs = [
        _buf("scale_in", p.count(0, 1), False, "scale_in_data_size (param 0)"),
        _buf("scale_out", p.count(1, 1), False, "scale_out_data_size (param 1)"),
    ]
    if p.count(2):
        specs.append(_buf("bias", p.count(2), False, "bias_data_size (param 2)"))
    return specs


LAYOUTS: dict[str, LayoutFn] = {
    "Convolution": lambda p: _conv_like(p, dynamic_key=19, kernel_keys=(11,), int8="conv"),
    "ConvolutionDepthWise": lambda p: _conv_like(p, dynamic_key=19, kernel_keys=(11,), int8="dw"),
    "Convolution1D": lambda p: _conv_like(p, dynamic_key=19, kernel_keys=()),
    "ConvolutionDepthWise1D": lambda p: _conv_like(p, dynamic_key=19, kernel_keys=()),
    "Convolution3D": lambda p: _conv_like(p, dynamic_key=None, kernel_keys=(11, 21)),
    "ConvolutionDepthWise3D": lambda p: _conv_like(p, dynamic_key=None, kernel_keys=(11, 21)),
    "Deconvolution": lambda p: _conv_like(p, dynamic_key=28, kernel_keys=(11,)),
    "DeconvolutionDepthWise": lambda p: _conv_like(p, dynamic_key=28, kernel_keys=(11,)),
    "Deconvolution1D": lambda p: _conv_like(p, dynamic_key=28, kernel_keys=()),
    "DeconvolutionDepthWise1D": lambda p: _conv_like(p, dynamic_key=28, kernel_keys=()),
    "Deconvolution3D": lambda p: _conv_like(p, dynamic_key=None, kernel_keys=(11, 21)),
    "DeconvolutionDepthWise3D": lambda p: _conv_like(p, dynamic_key=None, kernel_keys=(11, 21)),
    "DeformableConv2D": lambda p: _conv_like(p, dynamic_key=None, kernel_keys=(11,)),
    "InnerProduct": _innerproduct,
    "BatchNorm": _batchnorm,
    "Bias": _single("bias", 0, "bias_data_size"),
    "Scale": _scale,
    "PReLU": _single("slope", 0, "num_slope"),
    "Normalize": _single("scale", 3, "scale_data_size"),
    "Padding": _optional("per_channel_pad", 6, "per_channel_pad_data_size"),
    "InstanceNorm": _norm(0, 2, ("gamma", "beta"), "channels"),
    "GroupNorm": _norm(1, 3, ("gamma", "beta"), "channels"),
    "LayerNorm": _norm(0, 2, ("gamma", "beta"), "affine_size"),
    "RMSNorm": _norm(0, 2, ("gamma",), "affine_size"),
    "MemoryData": _memorydata,
    "Embed": _embed,
    "MultiHeadAttention": _mha,
    "Gemm": _gemm,
    "RNN": _recurrent(1, 1),
    "LSTM": _recurrent(4, 4),
    "GRU": _recurrent(3, 4),
    "Quantize": _single("scale", 0, "scale_data_size"),
    "Dequantize": _dequantize,
    "Requantize": _requantize,
}

WEIGHTLESS_TYPES: frozenset[str] = frozenset(
    [
        "AbsVal",
        "ArgMax",
        "BinaryOp",
        "BNLL",
        "Cast",
        "CELU",
        "Clip",
        "Concat",
        "CopyTo",
        "Crop",
        "CumulativeSum",
        "DeepCopy",
        "DetectionOutput",
        "Diag",
        "Dropout",
        "Eltwise",
        "ELU",
        "Einsum",
        "Erf",
        "Exp",
        "ExpandDims",
        "Flatten",
        "Flip",
        "Fold",
        "GELU",
        "GLU",
        "GridSample",
        "HardSigmoid",
        "HardSwish",
        "Input",
        "Interp",
        "Log",
        "LRN",
        "MatMul",
        "Mish",
        "MVN",
        "Noop",
        "Packing",
        "Permute",
        "PixelShuffle",
        "Pooling",
        "Pooling1D",
        "Pooling3D",
        "Power",
        "PriorBox",
        "Proposal",
        "PSROIPooling",
        "Reduction",
        "ReLU",
        "Reorg",
        "Reshape",
        "ROIAlign",
        "ROIPooling",
        "RotaryEmbed",
        "SDPA",
        "SELU",
        "ShuffleChannel",
        "Shrink",
        "Sigmoid",
        "Slice",
        "Softmax",
        "Softplus",
        "Split",
        "SPP",
        "Squeeze",
        "StatisticsPooling",
        "Swish",
        "TanH",
        "Threshold",
        "Tile",
        "UnaryOp",
        "Unfold",
        "Yolov3DetectionOutput",
        "YoloDetectionOutput",
    ]
)

SUPPORTED_WEIGHTED_TYPES: tuple[str, ...] = tuple(sorted(LAYOUTS))


def is_known_type(layer_type: str) -> bool:
    return layer_type in LAYOUTS or layer_type in WEIGHTLESS_TYPES


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
