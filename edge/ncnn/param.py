"""The text ``.param`` format of ncnn: tokenise, parse and format, keeping the original text.

A parsed file remembers every line exactly as written so that an unmodified model writes back
byte-identical; only layers whose fields changed are re-formatted (ncnn's own column layout).
Checks here are the syntactic ones ncnn's scanf-based reader relies on (a malformed token makes
ncnn misread the rest of the file, or index past its blob table); graph wiring is checked by
:mod:`edge.ncnn.model`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from edge.errors import ModelFormatError

PARAM_MAGIC = 7767517
BINARY_PARAM_MAGIC = PARAM_MAGIC  # .param.bin starts with the magic as a little-endian int32
MAX_PARAM_ID = 32  # NCNN_MAX_PARAM_COUNT: ncnn rejects ids >= 32 (negative plain ids corrupt memory)
ARRAY_KEY_BASE = -23300
MAX_NAME_CHARS = 255  # ncnn scans names with %255s
MAX_VALUE_CHARS = 15  # ncnn scans scalar values / array elements with %15[^,\n ]
MAX_STRING_CHARS = 255
MAX_BLOBS_PER_LAYER = 1 << 16
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

ParamScalar = int | float
ParamValue = int | float | str | list[int | float]

_WHITESPACE = " \t\n\r\v\f"  # C isspace(): what ncnn's scanf skips
_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_TOKEN_RE = re.compile(r'(?:"[^"]*"?|[^ \t\n\r\v\f"])+')
_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass
class ParamToken:
    """One ``key=value`` item as written: ``old_array`` marks the ``-233xx=count,...`` form."""

    key: int
    value: ParamValue
    text: str
    old_array: bool = False


@dataclass
class LayerRecord:
    """One layer line: fields, params in file order, and the original line (with its ending)."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    tokens: list[ParamToken]
    line_no: int
    text: str = ""


@dataclass
class ParamDocument:
    """A whole .param file: header, layers, and the verbatim text around them."""

    layer_count: int
    blob_count: int
    layers: list[LayerRecord]
    header_text: str = ""  # the magic line and the counts line, verbatim
    between: list[str] = field(default_factory=list)  # text before each layer line (blank lines)
    trailer: str = ""  # everything after the last counted layer line
    ignored_lines: list[int] = field(default_factory=list)  # layer-looking lines past layer_count


def is_binary_param(data: bytes) -> bool:
    """True for ncnn2mem's binary ``.param.bin`` (int32 magic, not text)."""
    return len(data) >= 4 and int.from_bytes(data[:4], "little") == BINARY_PARAM_MAGIC


def _fail(source: str, line_no: int, message: str) -> ModelFormatError:
    return ModelFormatError(f"{source}:{line_no}: {message}")


def _is_letter(char: str) -> bool:
    """C ``isalpha`` in the C locale (ASCII letters only)."""
    return char.isascii() and char.isalpha()


def parse_scalar(text: str) -> ParamScalar | str | None:
    """ncnn's reading of one value token: string (starts with a letter or quote), float, int."""
    if not text:
        return None
    if _is_letter(text[0]) or text[0] == '"':
        return text.strip('"')
    if "." in text or "e" in text.lower():
        if not _FLOAT_RE.fullmatch(text):
            return None
        return float(text)
    if not _INT_RE.fullmatch(text):
        return None
    value = int(text)
    return value if INT32_MIN <= value <= INT32_MAX else None


def _parse_number(text: str, source: str, line_no: int, what: str) -> ParamScalar:
    if len(text) > MAX_VALUE_CHARS:
        raise _fail(source, line_no, f"{what}: value {text[:20]!r} is longer than ncnn's 15 characters")
    value = parse_scalar(text)
    if value is None or isinstance(value, str):
        raise _fail(source, line_no, f"{what}: {text!r} is not a number (or out of int32 range)")
    return value


def parse_token(token: str, source: str, line_no: int) -> ParamToken:
    """Parse one ``key=value`` token (scalar, old or new array, string)."""
    key_text, sep, value_text = token.partition("=")
    if not sep or not _INT_RE.fullmatch(key_text):
        raise _fail(source, line_no, f"param {token[:40]!r} is not key=value")
    raw_key = int(key_text)
    old_array = raw_key <= ARRAY_KEY_BASE
    key = ARRAY_KEY_BASE - raw_key if old_array else raw_key
    if not 0 <= key < MAX_PARAM_ID:
        raise _fail(
            source, line_no, f"param key {key_text} is outside ncnn's range 0..31 (or -23300..-23331)"
        )
    what = f"param {key_text}"
    if old_array:
        parts = value_text.split(",")
        count_text, items = parts[0], parts[1:]
        count = _parse_number(count_text, source, line_no, what)
        if not isinstance(count, int) or count < 0:
            raise _fail(source, line_no, f"{what}: array length {count_text!r} is not a count")
        if count != len(items):
            raise _fail(source, line_no, f"{what}: array declares {count} values but has {len(items)}")
        values = [_parse_number(item, source, line_no, what) for item in items]
        return ParamToken(key, values, token, old_array=True)
    if _is_letter(value_text[:1]) or value_text[:1] == '"':
        text = value_text.strip('"') if value_text.startswith('"') else value_text
        if len(text) > MAX_STRING_CHARS:
            raise _fail(source, line_no, f"{what}: string longer than 255 characters")
        return ParamToken(key, text, token)
    if "," in value_text:
        items = value_text.split(",")
        values = [_parse_number(item, source, line_no, what) for item in items]
        return ParamToken(key, values, token)
    return ParamToken(key, _parse_number(value_text, source, line_no, what), token)


def split_tokens(line: str) -> list[str]:
    """Whitespace tokens, keeping a double-quoted string value (which may hold spaces) whole."""
    return _TOKEN_RE.findall(line)


def _parse_count(text: str | None, source: str, line_no: int, what: str) -> int:
    if text is None or not _INT_RE.fullmatch(text):
        raise _fail(source, line_no, f"{what} {text!r} is not an integer")
    return int(text)


def _check_name(name: str, source: str, line_no: int, what: str) -> None:
    if len(name.encode("utf-8")) > MAX_NAME_CHARS:
        raise _fail(source, line_no, f"{what} {name[:40]!r}... is longer than ncnn's 255 characters")


def parse_layer_line(line: str, line_no: int, source: str) -> LayerRecord:
    """Parse ``Type name n_in n_out in... out... k=v...``."""
    tokens = split_tokens(line)
    if len(tokens) < 4:
        raise _fail(
            source, line_no, f"layer line needs 'Type name n_in n_out', got {line.strip(_WHITESPACE)[:60]!r}"
        )
    layer_type, name = tokens[0], tokens[1]
    if not (_is_letter(layer_type[0]) or layer_type[0] == "_") or "=" in layer_type:
        raise _fail(source, line_no, f"{layer_type[:40]!r} is not a layer type")
    _check_name(layer_type, source, line_no, "layer type")
    _check_name(name, source, line_no, "layer name")
    n_in = _parse_count(tokens[2], source, line_no, f"layer {name!r}: input count")
    n_out = _parse_count(tokens[3], source, line_no, f"layer {name!r}: output count")
    if not 0 <= n_in <= MAX_BLOBS_PER_LAYER or not 0 <= n_out <= MAX_BLOBS_PER_LAYER:
        raise _fail(source, line_no, f"layer {name!r}: blob counts {n_in} {n_out} out of range")
    blobs = tokens[4 : 4 + n_in + n_out]
    if len(blobs) < n_in + n_out:
        raise _fail(
            source, line_no, f"layer {name!r} declares {n_in} inputs + {n_out} outputs but lists {len(blobs)}"
        )
    for blob in blobs:
        _check_name(blob, source, line_no, "blob name")
        if "=" in blob:
            raise _fail(
                source, line_no, f"layer {name!r}: blob name {blob!r} looks like a param (counts wrong?)"
            )
    params = [parse_token(tok, source, line_no) for tok in tokens[4 + n_in + n_out :]]
    seen: set[int] = set()
    for token in params:
        if token.key in seen:
            raise _fail(source, line_no, f"layer {name!r}: param {token.key} given twice")
        seen.add(token.key)
    return LayerRecord(layer_type, name, blobs[:n_in], blobs[n_in:], params, line_no, line)


def parse_param_text(text: str, source: str = "<param>") -> ParamDocument:
    """Parse a whole text .param file (raises :class:`ModelFormatError` on any syntax problem)."""
    control = _CONTROL_RE.search(text)
    if control:
        line_no = text.count("\n", 0, control.start()) + 1
        raise _fail(source, line_no, f"control character {control.group()!r} in a text .param")
    lines = [line for line in re.split(r"(?<=\n)", text) if line]
    index = 0

    def next_content_line() -> tuple[int, str] | None:
        nonlocal index
        while index < len(lines):
            line = lines[index]
            index += 1
            if line.strip(_WHITESPACE):
                return index, line
        return None

    first = next_content_line()
    if first is None:
        raise ModelFormatError(f"{source}: empty .param file")
    if first[1].strip(_WHITESPACE) != str(PARAM_MAGIC):
        raise _fail(
            source,
            first[0],
            f"first line must be the magic {PARAM_MAGIC}, got {first[1].strip(_WHITESPACE)[:30]!r}",
        )
    second = next_content_line()
    if second is None:
        raise _fail(source, first[0] + 1, "missing the 'layer_count blob_count' line")
    counts = split_tokens(second[1])
    if len(counts) != 2 or not all(_INT_RE.fullmatch(c) for c in counts):
        raise _fail(
            source, second[0], f"expected 'layer_count blob_count', got {second[1].strip(_WHITESPACE)[:40]!r}"
        )
    layer_count, blob_count = int(counts[0]), int(counts[1])
    if layer_count <= 0 or blob_count <= 0 or max(layer_count, blob_count) > INT32_MAX:
        raise _fail(
            source, second[0], f"layer_count {layer_count} / blob_count {blob_count} must be positive"
        )
    header_text = "".join(lines[:index])
    doc = ParamDocument(layer_count, blob_count, [], header_text)
    pending = ""
    while len(doc.layers) < layer_count:
        if index >= len(lines):
            raise ModelFormatError(f"{source}: declares {layer_count} layers but has only {len(doc.layers)}")
        line = lines[index]
        index += 1
        if not line.strip(_WHITESPACE):
            pending += line
            continue
        doc.layers.append(parse_layer_line(line, index, source))
        doc.between.append(pending)
        pending = ""
    doc.trailer = pending + "".join(lines[index:])
    doc.ignored_lines = [i + 1 for i in range(index, len(lines)) if lines[i].strip(_WHITESPACE)]
    return doc


def format_scalar(value: ParamScalar) -> str:
    """ncnn's way of writing a number: ints plainly, floats as ``%e``."""
    if isinstance(value, bool | int):
        return str(int(value))
    if not math.isfinite(value):
        raise ModelFormatError(f"cannot write the non-finite param value {value}")
    return f"{value:e}"


def format_token(key: int, value: ParamValue) -> str:
    """Format one param (arrays in the portable ``-233xx=count,...`` form)."""
    if isinstance(value, str):
        if not value or any(c in _WHITESPACE for c in value) or not _is_letter(value[0]):
            return f'{key}="{value}"'
        return f"{key}={value}"
    if isinstance(value, list | tuple):
        items = ",".join(format_scalar(v) for v in value)
        return f"{ARRAY_KEY_BASE - key}={len(value)}" + (f",{items}" if items else "")
    return f"{key}={format_scalar(value)}"


def format_layer_line(
    layer_type: str, name: str, inputs: list[str], outputs: list[str], tokens: list[str]
) -> str:
    """A layer line in ncnn's column layout (``%-24s %-24s %d %d``), no line ending."""
    parts = [f"{layer_type:<24} {name:<24} {len(inputs)} {len(outputs)}", *inputs, *outputs, *tokens]
    return " ".join(parts)
