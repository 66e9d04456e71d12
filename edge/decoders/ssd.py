"""SSD-ResNet34 (MLPerf 1200x1200) decode from the raw ``loc`` / ``conf`` outputs.

Default boxes, box coding and post-processing follow the MLPerf reference (see the project's
ssd-resnet34 notes). Geometry defaults are MLPerf's; ``DecoderSpec.extra`` may override
``feature_sizes``, ``steps``, ``scales``, ``aspect_ratios``, ``image_size``, ``variances`` and
``candidates_per_class``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from edge.decoders.base import Detections, SsdHead
from edge.decoders.nms import batched_nms
from edge.manifest import DecoderSpec

IMAGE_SIZE = 1200
STEPS = (24, 48, 92, 171, 400, 400)
SCALES = (84, 180, 396, 612, 828, 1044, 1260)
ASPECT_RATIOS = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
VARIANCES = (0.1, 0.2)
CANDIDATES_PER_CLASS = 200


def ssd_geometry(decoder: DecoderSpec) -> tuple[tuple[int, ...], tuple[int, ...], tuple, tuple, int]:
    """``(feature_sizes, boxes_per_location, scales, aspect_ratios, image_size)`` for a decoder."""
    extra = decoder.extra
    image_size = int(extra.get("image_size", IMAGE_SIZE))
    steps = tuple(extra.get("steps", STEPS))
    sizes = tuple(extra.get("feature_sizes", [image_size // s for s in steps]))
    ratios = tuple(tuple(r) for r in extra.get("aspect_ratios", ASPECT_RATIOS))
    scales = tuple(extra.get("scales", SCALES))
    per_location = tuple(2 + 2 * len(r) for r in ratios)
    return sizes, per_location, scales, ratios, image_size


@lru_cache(maxsize=8)
def default_boxes(
    sizes: tuple[int, ...], scales: tuple[float, ...], ratios: tuple[tuple[float, ...], ...], image_size: int
) -> np.ndarray:
    """``(N, 4)`` default boxes ``cx, cy, w, h`` (normalised), ordered level, box kind, row, column."""
    parts = []
    for level, fk in enumerate(sizes):
        sk, sk_next = scales[level] / image_size, scales[level + 1] / image_size
        shapes = [(sk, sk), (math.sqrt(sk * sk_next),) * 2]
        for r in ratios[level]:
            shapes += [(sk * math.sqrt(r), sk / math.sqrt(r)), (sk / math.sqrt(r), sk * math.sqrt(r))]
        ys, xs = np.meshgrid(np.arange(fk), np.arange(fk), indexing="ij")
        cx, cy = (xs.ravel() + 0.5) / fk, (ys.ravel() + 0.5) / fk
        for w, h in shapes:
            parts.append(np.stack([cx, cy, np.full_like(cx, w), np.full_like(cx, h)], axis=1))
    boxes = np.clip(np.concatenate(parts), 0.0, 1.0).astype(np.float32)
    boxes.setflags(write=False)
    return boxes


def decode_ssd(
    head: SsdHead,
    decoder: DecoderSpec,
    *,
    input_width: int,
    input_height: int,
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
) -> Detections:
    """Boxes (input pixels, xyxy), scores and 0-based class ids from raw SSD outputs."""
    sizes, _, scales, ratios, image_size = ssd_geometry(decoder)
    priors = default_boxes(sizes, scales, ratios, image_size)
    var_xy, var_wh = decoder.extra.get("variances", VARIANCES)
    per_class = int(decoder.extra.get("candidates_per_class", CANDIDATES_PER_CLASS))

    conf = head.conf.astype(np.float32)
    e = np.exp(conf - conf.max(axis=1, keepdims=True))
    probs = e[:, 1:] / e.sum(axis=1, keepdims=True)  # drop background
    box_idx, class_ids = np.nonzero(probs > score_threshold)
    if box_idx.size == 0:
        return Detections.empty()
    scores = probs[box_idx, class_ids]
    # Best `per_class` candidates of each class: sort by class then score, rank inside the class.
    order = np.lexsort((-scores, class_ids))
    sorted_classes = class_ids[order]
    rank = np.arange(order.size) - np.searchsorted(sorted_classes, sorted_classes, side="left")
    order = order[rank < per_class]
    box_idx, class_ids, scores = box_idx[order], class_ids[order], scores[order]

    loc, prior = head.loc[box_idx].astype(np.float32), priors[box_idx]
    centre = var_xy * loc[:, :2] * prior[:, 2:] + prior[:, :2]
    size = np.exp(var_wh * loc[:, 2:]) * prior[:, 2:]
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    boxes *= np.array([input_width, input_height, input_width, input_height], dtype=np.float32)
    keep = batched_nms(boxes, scores, class_ids, nms_threshold, max_detections)
    return Detections(boxes[keep], scores[keep].astype(np.float32), class_ids[keep].astype(np.int64))
