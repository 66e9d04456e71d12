"""Decoders: output-layout parsers (``layouts``) feeding one decode function per model family."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge.decoders.base import DenseHead, Detections, SsdHead
from edge.decoders.layouts import ALL_LAYOUTS, LayoutContext, parse_outputs
from edge.decoders.nanodet import decode_nanodet
from edge.decoders.ssd import decode_ssd
from edge.manifest import DecoderSpec

__all__ = ["ALL_LAYOUTS", "DenseHead", "Detections", "SsdHead", "decode", "decode_head"]


def decode_head(
    head: DenseHead | SsdHead,
    decoder: DecoderSpec,
    input_width: int,
    input_height: int,
    *,
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
) -> Detections:
    """Decode a parsed head with its family's function; boxes in network-input pixels."""
    thresholds = dict(
        score_threshold=score_threshold, nms_threshold=nms_threshold, max_detections=max_detections
    )
    if isinstance(head, SsdHead):
        return decode_ssd(head, decoder, input_width=input_width, input_height=input_height, **thresholds)
    return decode_nanodet(
        head,
        reg_max=decoder.reg_max,
        center_offset=decoder.center_offset,
        input_width=input_width,
        input_height=input_height,
        **thresholds,
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
    """Parse raw ``outputs`` (layout auto-detected unless named) and decode them.

    Thresholds default to the decoder spec's. Returns the layout used and the detections.
    """
    ctx = LayoutContext(decoder, int(input_width), int(input_height))
    name, head = parse_outputs(outputs, ctx, layout)
    return name, decode_head(
        head,
        decoder,
        ctx.input_width,
        ctx.input_height,
        score_threshold=decoder.score_threshold if score_threshold is None else score_threshold,
        nms_threshold=decoder.nms_threshold if nms_threshold is None else nms_threshold,
        max_detections=decoder.max_detections if max_detections is None else max_detections,
    )
