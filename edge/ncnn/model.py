"""An ncnn model in memory: layers, blobs, params and weights; reading, graph queries, writing.

``NcnnModel.read`` parses a text ``.param`` (and optionally its ``.bin``), turning syntax errors,
wrong counts and short or oversized weights into one clear :class:`ModelFormatError`.
Unmodified models write back byte-identical; edited layers and weights are re-serialised.
Graph checks are :mod:`edge.ncnn.validate`; loading into ncnn is :mod:`edge.ncnn.net`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import write_bytes, write_text
from edge.errors import ModelFormatError
from edge.ncnn.layouts import BufferSpec, weight_layout
from edge.ncnn.param import (
    MAX_PARAM_ID,
    PARAM_MAGIC,
    LayerRecord,
    ParamValue,
    format_layer_line,
    format_token,
    is_binary_param,
    parse_param_text,
)
from edge.ncnn.weights import Weight, decode_buffer


def _same_value(a: ParamValue, b: ParamValue) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return (
            isinstance(a, list)
            and isinstance(b, list)
            and len(a) == len(b)
            and all(type(x) is type(y) and x == y for x, y in zip(a, b, strict=True))
        )
    return type(a) is type(b) and a == b


@dataclass(eq=False)
class Layer:
    """One layer: ``params`` maps ncnn param ids to int / float / list / str values."""

    type: str
    name: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    params: dict[int, ParamValue] = field(default_factory=dict)
    weights: list[Weight] = field(default_factory=list)
    _record: LayerRecord | None = field(default=None, repr=False)

    def get(self, key: int, default: Any = None) -> Any:
        return self.params.get(key, default)

    def set(self, key: int, value: ParamValue | np.generic | tuple | np.ndarray) -> None:
        """Set param ``key`` (numpy scalars / arrays become plain ints, floats and lists)."""
        if not 0 <= key < MAX_PARAM_ID:
            raise ModelFormatError(
                f"layer {self.name!r}: param key {key} outside ncnn's 0..{MAX_PARAM_ID - 1}"
            )
        self.params[key] = _plain_value(value)

    def remove(self, key: int) -> None:
        self.params.pop(key, None)

    def weight(self, role: str) -> Weight:
        """The weight with this role (``weight``, ``bias``, ``weight_scales``, ...)."""
        for weight in self.weights:
            if weight.role == role:
                return weight
        raise KeyError(f"layer {self.name!r} ({self.type}) has no {role!r} buffer")

    def layout(self) -> list[BufferSpec]:
        """The buffers ncnn reads for this layer given its current params."""
        return weight_layout(self.type, self.params, f"layer {self.name!r} ({self.type})")

    @property
    def line_no(self) -> int | None:
        return self._record.line_no if self._record else None

    def _unchanged(self) -> bool:
        rec = self._record
        if rec is None:
            return False
        if (rec.type, rec.name, rec.inputs, rec.outputs) != (self.type, self.name, self.inputs, self.outputs):
            return False
        if len(rec.tokens) != len(self.params):
            return False
        return all(
            tok.key in self.params and _same_value(tok.value, self.params[tok.key]) for tok in rec.tokens
        )

    def param_line(self) -> str:
        """The layer's line without its line ending (original text where untouched)."""
        if self._unchanged():
            return self._record.text.rstrip("\r\n")  # type: ignore[union-attr]
        tokens: list[str] = []
        written: set[int] = set()
        if self._record is not None:
            for tok in self._record.tokens:
                if tok.key in self.params:
                    value = self.params[tok.key]
                    tokens.append(tok.text if _same_value(tok.value, value) else format_token(tok.key, value))
                    written.add(tok.key)
        tokens += [format_token(k, self.params[k]) for k in sorted(self.params) if k not in written]
        return format_layer_line(self.type, self.name, self.inputs, self.outputs, tokens)

    def line_ending(self) -> str:
        if self._record is not None and self._record.text.endswith("\r\n"):
            return "\r\n"
        return "\n"


class NcnnModel:
    """An ncnn graph (and its weights, unless read graph-only)."""

    def __init__(self, layers: Iterable[Layer] = (), *, has_weights: bool = True) -> None:
        self.layers: list[Layer] = list(layers)
        self.has_weights = has_weights
        self.param_source = "<param>"
        self.bin_source = "<bin>"
        self.warnings: list[str] = []
        self._header_text: str | None = None
        self._header_counts: tuple[int, int] | None = None
        self._between: list[str] = []
        self._trailer = ""
        self._between_for: list[Layer] = []

    # ------------------------------------------------------------------ reading
    @classmethod
    def read(cls, param_path: str | Path, bin_path: str | Path | None = None) -> NcnnModel:
        """Read a text .param and (unless ``bin_path`` is None) its .bin."""
        param_path = Path(param_path)
        param_bytes = _read_file(param_path, ".param")
        bin_bytes = None if bin_path is None else _read_file(Path(bin_path), ".bin")
        if is_binary_param(param_bytes):
            raise ModelFormatError(
                f"{param_path}: binary .param.bin (ncnn2mem) is not supported; use the text .param"
            )
        try:
            text = param_bytes.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ModelFormatError(
                f"{param_path}: not a text .param (byte {err.start} is not UTF-8)"
            ) from None
        return cls.parse(text, bin_bytes, param_name=str(param_path), bin_name=str(bin_path))

    @classmethod
    def parse(
        cls,
        param_text: str,
        bin_bytes: bytes | None = None,
        *,
        param_name: str = "<param>",
        bin_name: str = "<bin>",
    ) -> NcnnModel:
        """Parse .param text and optional .bin bytes (None = graph only)."""
        doc = parse_param_text(param_text, param_name)
        layers = [
            Layer(
                rec.type,
                rec.name,
                list(rec.inputs),
                list(rec.outputs),
                {t.key: _copy_value(t.value) for t in rec.tokens},
                [],
                rec,
            )
            for rec in doc.layers
        ]
        model = cls(layers, has_weights=bin_bytes is not None)
        model.param_source, model.bin_source = param_name, bin_name
        model._header_text = doc.header_text
        model._header_counts = (doc.layer_count, doc.blob_count)
        model._between = list(doc.between)
        model._between_for = list(layers)
        model._trailer = doc.trailer
        if doc.ignored_lines:
            model.warnings.append(
                f"{param_name}: lines {doc.ignored_lines[0]}.. come after the {doc.layer_count} declared layers;"
                " ncnn ignores them"
            )
        blob_total = len(model.blob_names())
        if blob_total != doc.blob_count:
            raise ModelFormatError(
                f"{param_name}: header declares {doc.blob_count} blobs but the layers use {blob_total}"
            )
        if bin_bytes is not None:
            model._load_weights(memoryview(bin_bytes))
        return model

    def _load_weights(self, data: memoryview) -> None:
        offset = 0
        for index, layer in enumerate(self.layers):
            where = f"{self.param_source}:{layer.line_no}: layer {layer.name!r} ({layer.type})"
            specs = weight_layout(layer.type, layer.params, where)
            layer.weights = []
            for spec in specs:
                try:
                    weight, used = decode_buffer(data, offset, spec.count, spec.tagged)
                except EOFError as short:
                    need = short.args[0]
                    raise ModelFormatError(
                        f"{self.bin_source}: runs short at layer #{index} {layer.name!r} ({layer.type}): its"
                        f" {spec.role} ({spec.count} values) needs {need} bytes at offset {offset}, only"
                        f" {len(data) - offset} left"
                    ) from None
                weight.role = spec.role
                if spec.shape and weight.array.size == math.prod(spec.shape):
                    weight.array = weight.array.reshape(spec.shape)
                layer.weights.append(weight)
                offset += used
        if offset != len(data):
            raise ModelFormatError(
                f"{self.bin_source}: {len(data) - offset} bytes left over after the last weighted layer"
                f" (file has {len(data)}, the layers of {self.param_source} need {offset})"
            )

    # ------------------------------------------------------------------ graph queries
    def blob_names(self) -> list[str]:
        """Every blob name in order of first appearance."""
        seen: dict[str, None] = {}
        for layer in self.layers:
            for blob in (*layer.inputs, *layer.outputs):
                seen.setdefault(blob, None)
        return list(seen)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r}")

    def index_of(self, name: str) -> int:
        for i, layer in enumerate(self.layers):
            if layer.name == name:
                return i
        raise KeyError(f"no layer named {name!r}")

    def producer(self, blob: str) -> Layer | None:
        """The layer that outputs ``blob`` (None if nothing produces it)."""
        for layer in self.layers:
            if blob in layer.outputs:
                return layer
        return None

    def consumers(self, blob: str) -> list[Layer]:
        return [layer for layer in self.layers if blob in layer.inputs]

    def input_names(self) -> list[str]:
        """Output blobs of the ``Input`` layers."""
        return [blob for layer in self.layers if layer.type == "Input" for blob in layer.outputs]

    def output_names(self) -> list[str]:
        """Blobs produced and never consumed (the graph's outputs)."""
        consumed = {blob for layer in self.layers for blob in layer.inputs}
        return [blob for layer in self.layers for blob in layer.outputs if blob not in consumed]

    def weighted_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.weights]

    def weights_nbytes(self) -> int:
        """Size of the .bin these weights serialise to."""
        return sum(len(w.encode()) for layer in self.layers for w in layer.weights)

    # ------------------------------------------------------------------ editing
    def insert_layer(self, index: int, layer: Layer) -> None:
        self.layers.insert(index, layer)

    def remove_layer(self, name: str) -> Layer:
        return self.layers.pop(self.index_of(name))

    def rename_layer(self, old: str, new: str) -> None:
        self.layer(old).name = new

    def rename_blob(self, old: str, new: str) -> None:
        """Rename a blob everywhere it appears."""
        for layer in self.layers:
            layer.inputs = [new if b == old else b for b in layer.inputs]
            layer.outputs = [new if b == old else b for b in layer.outputs]

    def copy(self) -> NcnnModel:
        return copy.deepcopy(self)

    # ------------------------------------------------------------------ writing
    def param_text(self) -> str:
        """The .param text (the original text for untouched parts)."""
        counts = (len(self.layers), len(self.blob_names()))
        if self._header_text is not None and counts == self._header_counts:
            out = [self._header_text]
        else:
            out = [f"{PARAM_MAGIC}\n{counts[0]} {counts[1]}\n"]
        between = {id(layer): text for layer, text in zip(self._between_for, self._between, strict=True)}
        for layer in self.layers:
            out.append(between.get(id(layer), ""))
            out.append(layer.param_line() + layer.line_ending())
        out.append(self._trailer)
        return "".join(out)

    def bin_bytes(self) -> bytes:
        """The .bin bytes (raises for a graph-only model)."""
        if not self.has_weights:
            raise ModelFormatError(
                f"{self.param_source}: graph only, no weights to write (synthesize_weights first)"
            )
        return b"".join(w.encode() for layer in self.layers for w in layer.weights)

    def write(self, param_path: str | Path, bin_path: str | Path | None = None) -> None:
        """Write .param (and .bin unless None) atomically, as they are (validate_model checks first)."""
        text = self.param_text()
        data = None if bin_path is None else self.bin_bytes()
        write_text(Path(param_path), text)
        if data is not None and bin_path is not None:
            write_bytes(Path(bin_path), data)


def _plain_value(value: Any) -> ParamValue:
    if isinstance(value, np.ndarray | list | tuple):
        return [_plain_value(v) for v in value]  # type: ignore[misc]
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, str):
        return value
    raise ModelFormatError(f"unsupported param value {value!r} ({type(value).__name__})")


def _copy_value(value: ParamValue) -> ParamValue:
    return list(value) if isinstance(value, list) else value


def _read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelFormatError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise ModelFormatError(f"{path}: is a directory, expected a {what} file") from None
    except OSError as err:
        raise ModelFormatError(f"{path}: cannot read ({err.strerror})") from None
