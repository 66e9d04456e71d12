"""A YOLOv8-style model family defined only here, to prove families are plug-ins.

Loaded by the CLI through ``EDGEKIT_FAMILY_MODULES=tests.support.toy_family``; nothing outside
this module knows it. Head: one ``(4 + C) x N`` output, N locations over strides 8, 16, 32,
rows ``cx, cy, w, h`` in input pixels then ``C`` class scores (sigmoid applied).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edge.decoders.base import Detections, expect, shape_text, squeeze
from edge.decoders.coco import COCO_CATEGORY_IDS, coco_class_names
from edge.decoders.family import Family, Layout, LayoutContext, OutputInfo, Parsed, Preset, Recognised
from edge.decoders.nms import batched_nms
from edge.decoders.registry import register_family
from edge.decoders.spec import DecoderSpec, Thresholds


@dataclass(frozen=True)
class ToyConfig:
    strides: tuple[int, ...] = (8, 16, 32)


@dataclass
class ToyHead:
    boxes: np.ndarray  # (N, 4) cx, cy, w, h
    scores: np.ndarray  # (N, C)


def _locations(width: int, height: int, strides: Sequence[int]) -> int:
    return sum(math.ceil(width / s) * math.ceil(height / s) for s in strides)


def parse_single(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> Parsed:
    expect(len(outputs) == 1, f"needs one output, got {len(outputs)}")
    name, array = next(iter(outputs.items()))
    array = squeeze(array, 2)
    k = 4 + ctx.decoder.num_classes
    n = _locations(ctx.input_width, ctx.input_height, ctx.config.strides)
    expect(array.shape == (k, n), f"needs {k}x{n}, got {shape_text(array)}")
    return Parsed(ToyHead(array[:4].T, array[4:].T), {"head": name})


def decode_toy(
    head: ToyHead, decoder: DecoderSpec, input_width: int, input_height: int, limits: Thresholds
) -> Detections:
    locations, class_ids = np.nonzero(head.scores > limits.score)
    if locations.size == 0:
        return Detections.empty()
    cxcy, wh = head.boxes[locations, :2], head.boxes[locations, 2:]
    boxes = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1).astype(np.float32)
    np.clip(boxes, 0, [input_width, input_height, input_width, input_height], out=boxes)
    scores = head.scores[locations, class_ids].astype(np.float32)
    keep = batched_nms(boxes, scores, class_ids, limits.nms_iou, limits.max_detections)
    return Detections(boxes[keep], scores[keep], class_ids[keep].astype(np.int64))


TOY = Preset(
    name="toyolo",
    config=ToyConfig(),
    color="RGB",
    mean=(0.0, 0.0, 0.0),
    norm=(1 / 255, 1 / 255, 1 / 255),
    class_names=coco_class_names(),
    category_ids=COCO_CATEGORY_IDS,
    score_threshold=0.5,
)


def recognise(outputs: Sequence[OutputInfo], width: int, height: int) -> Recognised | None:
    if len(outputs) != 1 or len(outputs[0].shape) != 3:
        return None
    _, k, n = outputs[0].shape
    if n != _locations(width, height, TOY.config.strides) or not isinstance(k, int) or k <= 4:
        return None
    return Recognised(TOY.name, k - 4, [f"per location: cx, cy, w, h (input pixels), {k - 4} sigmoid scores"])


FAMILY = register_family(
    Family(
        name="toy",
        config_type=ToyConfig,
        presets=(TOY,),
        layouts=(Layout("toy-single", parse_single, "one (4 + C) x N output"),),
        decode=decode_toy,
        recognise=recognise,
        guess=lambda names: None,
    )
)
