"""The decoder spec: which family decodes a model's outputs, and every parameter it needs.

Each family's parameters are a typed, frozen dataclass (its *config*); :func:`config_from_dict`
rebuilds one from JSON, checking every field against the dataclass' type hints.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from edge.errors import EdgekitError


@dataclass
class DecoderSpec:
    """How to turn a model's raw outputs into boxes (the manifest's ``decoder`` section).

    ``layout`` is the output layout convert resolved (``"auto"``: parse by trying the family's
    layouts); ``roles`` maps each role of that layout to the ncnn blob that plays it.
    """

    family: str
    preset: str
    config: Any  # the family's config dataclass
    class_names: list[str]
    category_ids: list[int] = field(default_factory=list)  # dataset category id per class, if any
    layout: str = "auto"
    roles: dict[str, str] = field(default_factory=dict)
    score_threshold: float = 0.4
    nms_threshold: float = 0.5
    max_detections: int = 100

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class Thresholds:
    """Post-processing limits: score threshold, per-class NMS IoU, most detections (<= 0: all)."""

    score: float
    nms_iou: float
    max_detections: int


def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a family config (tuples become lists)."""
    return json_ready(dataclasses.asdict(config))


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def config_from_dict(config_type: type, data: Any, where: str) -> Any:
    """Rebuild ``config_type`` from JSON ``data``; a bad field is one error line naming it."""
    if not isinstance(data, dict):
        raise EdgekitError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(config_type)
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise EdgekitError(f"{where}.{unknown[0]}: unknown field (known: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _coerce(data[name], hints[name], f"{where}.{name}")
            _check_bounds(values[name], f.metadata, f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise EdgekitError(f"{where}.{name}: missing")
    return config_type(**values)


def bounded(minimum: float | None = None, min_items: int | None = None, **kwargs: Any) -> Any:
    """A config field whose values (every item, for a tuple) are at least ``minimum`` and whose
    tuple holds at least ``min_items`` items; checked when a manifest's config is read."""
    return dataclasses.field(metadata={"minimum": minimum, "min_items": min_items}, **kwargs)


def _check_bounds(value: Any, metadata: Any, where: str) -> None:
    minimum, min_items = metadata.get("minimum"), metadata.get("min_items")
    if min_items is not None and isinstance(value, tuple) and len(value) < min_items:
        raise EdgekitError(f"{where}: needs at least {min_items} values, got {len(value)}")
    if minimum is None:
        return
    items = list(value) if isinstance(value, tuple) else [value]
    while any(isinstance(v, tuple) for v in items):
        items = [x for v in items for x in (v if isinstance(v, tuple) else (v,))]
    for v in items:
        if isinstance(v, int | float) and not isinstance(v, bool) and v < minimum:
            raise EdgekitError(f"{where}: values must be at least {minimum}, got {v}")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the type ``hint`` says (int, float, str, bool, X | None, tuple[...])."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _coerce(value, options[0], where)
        raise EdgekitError(f"{where}: unsupported config type {hint}")
    if origin is typing.Literal:
        if value not in args:
            raise EdgekitError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise EdgekitError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise EdgekitError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if hint is bool:
        if not isinstance(value, bool):
            raise EdgekitError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise EdgekitError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise EdgekitError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise EdgekitError(f"{where}: expected a string, got {value!r}")
        return value
    raise EdgekitError(f"{where}: unsupported config type {hint}")
