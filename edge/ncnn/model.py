"""An ncnn model in memory: layers, blobs, params, weights; validation; safe loading into ncnn.

``NcnnModel.read`` parses a text ``.param`` (and optionally its ``.bin``) and checks everything ncnn
would trip over (syntax, counts, wiring, weight sizes) so that a bad file becomes one clear
:class:`ModelFormatError` instead of a crash inside ncnn. Unmodified models write back
byte-identical; edited layers and weights are re-serialised. :func:`open_net` validates, then
loads with every ncnn return code checked.
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
from edge.ncnn.param import (
    PARAM_MAGIC,
    LayerRecord,
    ParamValue,
    format_layer_line,
    format_token,
    is_binary_param,
    parse_param_text,
)
from edge.ncnn.weights import (
    SUPPORTED_WEIGHTED_TYPES,
    WEIGHTLESS_TYPES,
    BufferSpec,
    Weight,
    decode_buffer,
    weight_layout,
)

__all__ = [
    "SUPPORTED_WEIGHTED_TYPES",
    "WEIGHTLESS_TYPES",
    "Layer",
    "NcnnModel",
    "Weight",
    "mat_to_array",
    "open_net",
    "run_net",
    "synthesize_weights",
    "validate_files",
]

_SOURCELESS_TYPES = frozenset({"Input", "MemoryData"})


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
        if not 0 <= key < 32:
            raise ModelFormatError(f"layer {self.name!r}: param key {key} outside ncnn's 0..31")
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

    # ------------------------------------------------------------------ validation
    def validate(self, input_shapes: dict[str, tuple[int, ...]] | None = None) -> NcnnModel:
        """Check wiring, Input layers, weight sizes and (where inputs have a known shape) blob shapes.

        ``input_shapes`` maps input blob names to numpy-order shapes (CxHxW); without it, the
        shapes declared by the Input layers (params 0=w 1=h 2=c) are used when present.
        Raises :class:`ModelFormatError` on the first problem.
        """
        src = self.param_source
        if not self.layers:
            raise ModelFormatError(f"{src}: the graph has no layers")
        names: set[str] = set()
        produced: dict[str, Layer] = {}
        inputs = 0
        for layer in self.layers:
            where = f"{src}:{layer.line_no or '?'}: layer {layer.name!r} ({layer.type})"
            for token in (layer.type, layer.name, *layer.inputs, *layer.outputs):
                _check_token(token, where)
            if layer.name in names:
                raise ModelFormatError(f"{where}: a layer with this name already exists")
            names.add(layer.name)
            if layer.type == "Input":
                inputs += 1
                if layer.inputs or len(layer.outputs) != 1:
                    raise ModelFormatError(f"{where}: an Input layer takes 0 inputs and gives 1 output")
            elif layer.type not in _SOURCELESS_TYPES and not layer.inputs:
                raise ModelFormatError(f"{where}: has no input blob")
            for blob in layer.inputs:
                if blob not in produced:
                    later = blob in {b for other in self.layers for b in other.outputs}
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
            _check_arity(layer, where)
            if self.has_weights:
                self._check_weights(layer, where)
        if inputs == 0:
            raise ModelFormatError(f"{src}: the graph has no Input layer")
        unknown = set(input_shapes or {}) - set(self.input_names())
        if unknown:
            raise ModelFormatError(f"{src}: no Input blob named {sorted(unknown)[0]!r}")
        from edge.ncnn.shapes import infer_shapes

        infer_shapes(self, input_shapes)
        return self

    def _check_weights(self, layer: Layer, where: str) -> None:
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

    def write(
        self, param_path: str | Path, bin_path: str | Path | None = None, *, validate: bool = True
    ) -> None:
        """Validate (unless told not to), then write .param (and .bin unless None) atomically."""
        if validate:
            self.validate()
        text = self.param_text()
        data = None if bin_path is None else self.bin_bytes()
        write_text(Path(param_path), text)
        if data is not None and bin_path is not None:
            write_bytes(Path(bin_path), data)


def _check_token(token: str, where: str) -> None:
    """Types and names are single whitespace-free tokens of at most 255 bytes (ncnn's %255s)."""
    if not token or any(c in " \t\n\r\v\f" for c in token) or len(token.encode("utf-8")) > 255:
        raise ModelFormatError(f"{where}: {token[:40]!r} is not a usable name (empty, spaces or > 255 bytes)")


_MIN_INPUTS = {"PriorBox": 2, "DetectionOutput": 3, "MatMul": 2, "Concat": 1, "Eltwise": 1}


def _check_arity(layer: Layer, where: str) -> None:
    """Blob counts ncnn indexes without checking (too few means reading past its blob list)."""
    n_in, n_out = len(layer.inputs), len(layer.outputs)
    need = _MIN_INPUTS.get(layer.type, 0)
    if layer.type == "BinaryOp":
        need = 1 if layer.get(1, 0) else 2
    elif layer.type == "Gemm":
        constants = sum(1 for key in (4, 5) if layer.get(key, 0))
        need = max(1, 2 - constants)
    if n_in < need:
        raise ModelFormatError(f"{where}: needs at least {need} input blobs, has {n_in}")
    if layer.type == "Split" and n_in != 1:
        raise ModelFormatError(f"{where}: a Split takes exactly 1 input, has {n_in}")
    if layer.type == "Slice":
        slices, indices = layer.get(0), layer.get(2)
        if isinstance(indices, list):
            if len(indices) + 1 < n_out:
                raise ModelFormatError(f"{where}: {len(indices)} slice indices for {n_out} outputs")
        elif not isinstance(slices, list) or len(slices) < n_out:
            given = len(slices) if isinstance(slices, list) else 0
            raise ModelFormatError(f"{where}: {given} slice sizes (param 0) for {n_out} outputs")


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


def validate_files(
    param_path: str | Path,
    bin_path: str | Path | None,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
) -> NcnnModel:
    """Parse and fully validate a .param/.bin pair (``bin_path`` None: graph only); returns the model."""
    return NcnnModel.read(param_path, bin_path).validate(input_shapes)


def open_net(
    param_path: str | Path,
    bin_path: str | Path,
    *,
    num_threads: int = 1,
    use_fp16_storage: bool | None = None,
    use_fp16_arithmetic: bool | None = None,
    use_int8_inference: bool | None = None,
    use_vulkan_compute: bool = False,
    lightmode: bool | None = None,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
) -> Any:
    """Validate ``param_path``/``bin_path``, then load them into an ``ncnn.Net``.

    ``input_shapes`` (numpy-order, e.g. ``{"in0": (3, 416, 416)}``) lets validation check every
    blob shape the net will compute at that size (mismatched branches crash ncnn at run time).
    Options left as None keep ncnn's defaults. Every ncnn return code is checked; a problem is a
    :class:`ModelFormatError`.
    """
    import ncnn

    if num_threads < 1:
        raise ModelFormatError(f"num_threads must be at least 1, got {num_threads}")
    validate_files(param_path, bin_path, input_shapes)
    net = ncnn.Net()
    opt = net.opt
    opt.num_threads = num_threads
    opt.use_vulkan_compute = use_vulkan_compute
    if use_fp16_storage is not None:
        opt.use_fp16_storage = use_fp16_storage
        opt.use_fp16_packed = use_fp16_storage
    if use_fp16_arithmetic is not None:
        opt.use_fp16_arithmetic = use_fp16_arithmetic
    if use_int8_inference is not None:
        opt.use_int8_inference = use_int8_inference
    if lightmode is not None:
        opt.lightmode = lightmode
    if net.load_param(str(param_path)) != 0:
        net.clear()
        raise ModelFormatError(f"{param_path}: ncnn could not load this .param (see its log above)")
    if net.load_model(str(bin_path)) != 0:
        net.clear()
        raise ModelFormatError(
            f"{bin_path}: ncnn could not load these weights (a layer refused its params or weights;"
            " see its log above)"
        )
    if not net.input_names() or not net.output_names():
        net.clear()
        raise ModelFormatError(f"{param_path}: ncnn loaded a net without inputs or outputs")
    return net


# ---------------------------------------------------------------------- synthetic weights
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
        total += sum(4 + spec.count * 4 if spec.tagged else spec.count * 4 for spec in specs)
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


# ---------------------------------------------------------------------- running
def mat_to_array(mat: Any) -> np.ndarray:
    """Copy an ``ncnn.Mat`` into numpy; an empty Mat gives an empty array.

    ``numpy.array(mat)`` on an empty Mat (what DetectionOutput returns when nothing is detected)
    segfaults in the ncnn bindings; always convert through this function.
    """
    if mat.empty():
        return np.zeros((0,), dtype=np.float32)
    sizes = {1: (mat.w,), 2: (mat.w, mat.h), 3: (mat.w, mat.h, mat.c), 4: (mat.w, mat.h, mat.d, mat.c)}
    if mat.dims not in sizes or min(sizes[mat.dims]) <= 0:
        raise ModelFormatError(
            f"ncnn produced a malformed blob (dims {mat.dims}, w {mat.w}, h {mat.h}, c {mat.c})"
        )
    return np.array(mat, copy=True)


def run_net(net: Any, inputs: dict[str, np.ndarray], outputs: Iterable[str]) -> dict[str, np.ndarray]:
    """Feed ``inputs`` (CxHxW / HxW / W float32 arrays), extract ``outputs``; return numpy copies.

    Input arrays are kept alive for the extractor's whole life (``ncnn.Mat`` wraps their memory).
    Feed the shapes the net was validated for (``open_net(..., input_shapes=...)``): ncnn does not
    check that branches agree, and a size that makes them disagree can crash it.
    """
    import ncnn

    arrays = {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in inputs.items()}
    mats = {name: ncnn.Mat(array) for name, array in arrays.items()}
    extractor = net.create_extractor()
    try:
        for name, mat in mats.items():
            if extractor.input(name, mat) != 0:
                raise ModelFormatError(f"ncnn has no input blob named {name!r}")
        results: dict[str, np.ndarray] = {}
        for name in outputs:
            ret, out = extractor.extract(name)
            if ret != 0:
                raise ModelFormatError(f"ncnn could not compute blob {name!r} (error {ret})")
            results[name] = mat_to_array(out)
        return results
    finally:
        del extractor, mats, arrays
