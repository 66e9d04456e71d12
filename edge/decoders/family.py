"""What a model family plug-in provides: presets, ordered layout parsers, decode, recognition.

A family is one module (or package) that builds a :class:`Family` and hands it to
:func:`edge.decoders.registry.register_family` (built-ins) or exposes it as an
``edgekit.families`` entry point. Everything family-specific lives there:

- ``config_type``: a frozen dataclass of the decoder parameters (strides, priors, ...);
- ``presets``: named configurations with preprocessing, classes and default thresholds;
- ``layouts``: output-layout parsers, tried in order by ``layout="auto"``; each returns a
  :class:`Parsed` (the family's head, the role each output plays, the choices it settled);
- ``decode``: the family's head -> :class:`~edge.decoders.base.Detections` (network-input pixels);
- ``recognise``: convert's rule to spot the family in ONNX outputs (``--preset auto``);
- ``guess``: the preset for a bare ncnn model from its output blob names, or None.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edge.decoders.base import Detections
from edge.decoders.spec import DecoderSpec, Thresholds


class OutputInfo(Protocol):
    """An ONNX output as convert sees it: name and (possibly symbolic) shape.

    convert's outputs also carry ``upstream_ops`` (the op types of the few nodes above the
    output, a frozenset); read it with ``getattr(output, "upstream_ops", None)``.
    """

    name: str
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class Preset:
    """A named configuration of a family: decoder config, preprocessing, classes, thresholds."""

    name: str
    config: Any
    color: str  # "BGR" or "RGB"
    mean: tuple[float, float, float]
    norm: tuple[float, float, float]
    class_names: tuple[str, ...]
    category_ids: tuple[int, ...] = ()
    resize: str = "stretch"
    pad_multiple: int = 32  # letterbox: pad to a multiple of this (0: to the full input size)
    pad_value: float = 0.0  # letterbox: grey level of the padding (0-255)
    score_threshold: float = 0.4
    nms_threshold: float = 0.5
    max_detections: int = 100


@dataclass(frozen=True)
class LayoutContext:
    """What a parser needs besides the outputs: the decoder spec and the actual input size."""

    decoder: DecoderSpec
    input_width: int
    input_height: int

    @property
    def config(self) -> Any:
        return self.decoder.config

    def level_sizes(self, strides: Sequence[int]) -> list[tuple[int, int, int]]:
        """``(stride, rows, cols)`` per stride: ``ceil(input / stride)`` cells each way."""
        return [(s, math.ceil(self.input_height / s), math.ceil(self.input_width / s)) for s in strides]


@dataclass
class Parsed:
    """A parser's result: the family's head, ``{role: output name}``, settled config fields."""

    head: Any
    roles: dict[str, str]
    settled: dict[str, Any] = field(default_factory=dict)


Parser = Callable[[Mapping[str, np.ndarray], LayoutContext], Parsed]


@dataclass(frozen=True)
class Layout:
    """One output layout of a family: its name, its parser and one line on what it looks like."""

    name: str
    parse: Parser
    description: str


@dataclass(frozen=True)
class Recognised:
    """What convert learns from a graph's outputs: the preset, class count, one meaning per output."""

    preset: str
    num_classes: int
    meanings: list[str]


Decode = Callable[[Any, DecoderSpec, int, int, Thresholds], Detections]
Recognise = Callable[[Sequence[OutputInfo], int, int], "Recognised | None"]
Guess = Callable[[Sequence[str]], "str | None"]


@dataclass(frozen=True)
class Family:
    """A model family plug-in (see the module doc)."""

    name: str
    config_type: type
    presets: tuple[Preset, ...]
    layouts: tuple[Layout, ...]
    decode: Decode
    recognise: Recognise
    guess: Guess

    def layout(self, name: str) -> Layout:
        for layout in self.layouts:
            if layout.name == name:
                return layout
        raise KeyError(name)
