"""Decoders: one plug-in per model family (see ``family.py``) behind one registry (``registry.py``).

:func:`decode` parses raw outputs with the decoder spec's family (its resolved layout, or the
first of its layouts that accepts them) and runs the family's decode function;
:func:`settle_decoder` is what convert runs once to record the layout and its roles.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from edge.decoders.base import Detections, LayoutMismatch, describe_outputs
from edge.decoders.family import Family, LayoutContext, Parsed
from edge.decoders.registry import get_family
from edge.decoders.spec import DecoderSpec, Thresholds
from edge.errors import EdgekitError

__all__ = ["DecoderSpec", "Detections", "Thresholds", "decode", "parse_outputs", "settle_decoder"]


def parse_outputs(
    outputs: Mapping[str, np.ndarray],
    decoder: DecoderSpec,
    input_width: int,
    input_height: int,
    layout: str = "auto",
) -> tuple[str, Parsed]:
    """Parse ``outputs`` with the named layout, or the first of the family's that accepts them."""
    family = get_family(decoder.family)
    names = [x.name for x in family.layouts]
    if layout != "auto" and layout not in names:
        raise EdgekitError(f"unknown layout {layout!r} for {family.name} (known: {', '.join(names)})")
    candidates = family.layouts if layout == "auto" else (family.layout(layout),)
    ctx = LayoutContext(decoder, int(input_width), int(input_height))
    reasons = []
    for candidate in candidates:
        try:
            return candidate.name, candidate.parse(outputs, ctx)
        except LayoutMismatch as why:
            reasons.append(f"{candidate.name}: {why}")
    raise EdgekitError(
        f"model outputs do not match preset {decoder.preset!r} at input {input_width}x{input_height}: "
        f"found {describe_outputs(outputs)}; " + "; ".join(reasons)
    )


def decode(
    outputs: Mapping[str, np.ndarray],
    decoder: DecoderSpec,
    input_width: int,
    input_height: int,
    *,
    layout: str = "auto",
    score_threshold: float | None = None,
    nms_threshold: float | None = None,
    max_detections: int | None = None,
) -> tuple[str, Detections]:
    """Parse raw ``outputs`` (``layout="auto"``: the spec's, else detected) and decode them.

    Boxes are in network-input pixels; thresholds default to the decoder spec's. Returns the
    layout used and the detections.
    """
    name, parsed = parse_outputs(
        outputs, decoder, input_width, input_height, decoder.layout if layout == "auto" else layout
    )
    limits = Thresholds(
        decoder.score_threshold if score_threshold is None else score_threshold,
        decoder.nms_threshold if nms_threshold is None else nms_threshold,
        decoder.max_detections if max_detections is None else max_detections,
    )
    family: Family = get_family(decoder.family)
    return name, family.decode(parsed.head, decoder, int(input_width), int(input_height), limits)


def settle_decoder(
    outputs: Mapping[str, np.ndarray],
    decoder: DecoderSpec,
    input_width: int,
    input_height: int,
    blobs: Mapping[str, str],
) -> DecoderSpec:
    """``decoder`` with the layout that parses ``outputs``, its roles (as ncnn blobs, through
    ``blobs``: output name -> blob) and every choice the parser made written into the config."""
    name, parsed = parse_outputs(outputs, decoder, input_width, input_height, decoder.layout)
    return dataclasses.replace(
        decoder,
        layout=name,
        roles={role: blobs.get(output, output) for role, output in parsed.roles.items()},
        config=dataclasses.replace(decoder.config, **parsed.settled),
    )
