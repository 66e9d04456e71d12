"""A model family defined only here, to prove families are plug-ins (YOLOv8 is built in now).

Loaded by the CLI through ``EDGEKIT_FAMILY_MODULES=tests.support.toy_family``; nothing outside
this module knows it. Head: one ``K x 6`` output of finished detections, as exports with the
NMS in the graph give them: ``x1, y1, x2, y2`` (input pixels), score, class id per row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edge.decoders.base import Detections, expect, shape_text, squeeze
from edge.decoders.coco import COCO_CATEGORY_IDS, coco_class_names
from edge.decoders.family import Family, Layout, LayoutContext, OutputInfo, Parsed, Preset, Recognised
from edge.decoders.registry import register_family
from edge.decoders.spec import DecoderSpec, Thresholds

COLUMNS = 6


@dataclass(frozen=True)
class ToyConfig:
    box_format: str = "xyxy"


def parse_rows(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> Parsed:
    expect(len(outputs) == 1, f"needs one output, got {len(outputs)}")
    name, array = next(iter(outputs.items()))
    array = squeeze(array, 2)
    expect(array.ndim == 2 and array.shape[1] == COLUMNS, f"needs K x {COLUMNS}, got {shape_text(array)}")
    return Parsed(np.ascontiguousarray(array, dtype=np.float32), {"detections": name})


def decode_rows(
    head: np.ndarray, decoder: DecoderSpec, input_width: int, input_height: int, limits: Thresholds
) -> Detections:
    rows = head[head[:, 4] > limits.score]
    rows = rows[np.argsort(-rows[:, 4], kind="stable")]
    if limits.max_detections > 0:
        rows = rows[: limits.max_detections]
    return Detections(rows[:, :4].copy(), rows[:, 4].copy(), rows[:, 5].astype(np.int64))


TOY = Preset(
    name="toydets",
    config=ToyConfig(),
    color="RGB",
    mean=(0.0, 0.0, 0.0),
    norm=(1 / 255, 1 / 255, 1 / 255),
    class_names=coco_class_names(),
    category_ids=COCO_CATEGORY_IDS,
    score_threshold=0.5,
)


def recognise(outputs: Sequence[OutputInfo], width: int, height: int) -> Recognised | None:
    if len(outputs) != 1 or len(outputs[0].shape) != 3 or outputs[0].shape[2] != COLUMNS:
        return None
    return Recognised(
        TOY.name, len(TOY.class_names), ["per row: x1, y1, x2, y2 (input pixels), score, class id"]
    )


FAMILY = register_family(
    Family(
        name="toy",
        config_type=ToyConfig,
        presets=(TOY,),
        layouts=(Layout("toy-dets", parse_rows, "one K x 6 output of finished detections"),),
        decode=decode_rows,
        recognise=recognise,
        guess=lambda names: None,
    )
)
