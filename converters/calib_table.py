"""INT8 calibration tables in the text format of ncnn's ``ncnn2table`` / ``ncnn2int8``.

One entry a line, ``<key> v_0 v_1 ...`` separated by spaces. Keys holding ``_param_`` are weight
scales (``<layer>_param_0``: one per output channel, one per group for depthwise); any other
key is the scale of that layer's input blob. Weight lines come first. A line starting with
``#`` is a comment; ncnn2int8 never matches such a key, which is how a layer is kept in
floating point. ncnn2int8 stops reading at the first empty line, so tables written here never
contain one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.atomic import write_text
from edge.errors import EdgekitError

WEIGHT_SUFFIX = "_param_0"


@dataclass
class CalibrationTable:
    """Weight scales and input-blob scales of the layers to run in INT8."""

    weight_scales: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> per-channel scales
    input_scales: dict[str, float] = field(default_factory=dict)  # layer -> input blob scale
    kept_float: dict[str, str] = field(default_factory=dict)  # layer -> why it stays float
    comments: list[str] = field(default_factory=list)  # header comments (without '#')

    @property
    def quantized_layers(self) -> list[str]:
        """Layers that have an input scale, i.e. that ncnn2int8 would quantize."""
        return list(self.input_scales)

    def keep_float(self, layer: str, reason: str) -> None:
        """Drop ``layer`` from quantization, remembering why."""
        self.input_scales.pop(layer, None)
        self.weight_scales.pop(layer, None)
        self.kept_float[layer] = reason


def _format_scale(value: float) -> str:
    return f"{value:f}" if abs(value) >= 1e-3 else f"{value:.9g}"


def table_text(table: CalibrationTable) -> str:
    """The table in ncnn2table's format (weight lines first, kept-float layers commented)."""
    lines = [f"# {c}" if c else "#" for c in table.comments]
    for layer, scales in table.weight_scales.items():
        if layer in table.input_scales:
            lines.append(f"{layer}{WEIGHT_SUFFIX} " + " ".join(_format_scale(float(s)) for s in scales))
    for layer, scale in table.input_scales.items():
        lines.append(f"{layer} {_format_scale(float(scale))}")
    for layer, reason in table.kept_float.items():
        lines.append(f"#{layer} kept float: {' '.join(reason.split())}")
    return "\n".join(lines) + "\n"


def write_table(table: CalibrationTable, path: Path) -> None:
    """Write ``table`` atomically to ``path``."""
    if not table.input_scales:
        raise EdgekitError("refusing to write a calibration table without any quantized layer")
    write_text(Path(path), table_text(table))


def _parse_value(token: str, path: Path, lineno: int, allow_inf: bool) -> float:
    try:
        value = float(token)
    except ValueError:
        raise EdgekitError(f"{path}:{lineno}: {token!r} is not a number (not an ncnn INT8 table?)") from None
    if allow_inf and value == math.inf:
        return value  # ncnn2table writes 127/0 = inf for an all-zero weight channel
    if not math.isfinite(value) or value <= 0:
        raise EdgekitError(f"{path}:{lineno}: scale {token} must be a finite positive number")
    return value


def parse_table(text: str, path: Path | str = "<table>") -> CalibrationTable:
    """Parse ncnn2table text: ``#`` lines are comments, ``*_param_*`` keys are weight scales."""
    table = CalibrationTable()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            name, _, rest = body.partition(" ")
            if rest.startswith("kept float:"):
                table.kept_float[name] = rest[len("kept float:") :].strip()
            elif not table.input_scales and not table.weight_scales:
                table.comments.append(body)
            continue
        key, *tokens = line.split()
        if not tokens:
            raise EdgekitError(f"{path}:{lineno}: entry {key!r} has no scale values")
        is_weight = "_param_" in key
        values = np.array([_parse_value(t, path, lineno, is_weight) for t in tokens], dtype=np.float32)
        if is_weight:
            layer, _, index = key.rpartition("_param_")
            if index != "0":
                raise EdgekitError(
                    f"{path}:{lineno}: {key!r}: only <layer>_param_0 weight scales are supported"
                )
            table.weight_scales[layer] = values
        else:
            if values.size != 1:
                raise EdgekitError(
                    f"{path}:{lineno}: input scale of {key!r} must be one value, got {values.size}"
                )
            table.input_scales[key] = float(values[0])
    if not table.input_scales and not table.weight_scales:
        raise EdgekitError(f"{path}: calibration table has no entries")
    return table


def read_table(path: Path) -> CalibrationTable:
    """Read a table written by ``edgekit calibrate`` or by ncnn's ``ncnn2table``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EdgekitError(f"calibration table {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgekitError(f"cannot read calibration table {path}: {exc}") from None
    return parse_table(text, path)
