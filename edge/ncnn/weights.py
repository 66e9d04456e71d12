"""The weight buffer encodings of ncnn's ``.bin``: one :class:`Weight` per buffer.

ncnn reads each weighted layer's buffers in order with ``ModelBin::load(count, type)``:
type 0 buffers start with a 4-byte tag choosing the storage (fp32, fp16, int8, raw fp32, or a
legacy 256-entry lookup table + uint8 indices), type 1 buffers are bare float32. fp16, int8 and
table indices are padded to 4 bytes. Which buffers a layer has is :mod:`edge.ncnn.layouts`.
"""

from __future__ import annotations

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


def align4(n: int) -> int:
    return (n + 3) & ~3


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
