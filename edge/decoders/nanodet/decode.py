"""The one NanoDet decode function, for every output layout (see ``layouts.py``).

Per location: centre prior ``((col + offset) * stride, (row + offset) * stride)``; class scores
(sigmoid); distances = expectation of the softmax over each side's ``reg_max + 1`` bins, times
the stride; box = ``(cx - l, cy - t, cx + r, cy + b)`` clipped to the input. Every
(location, class) pair above the score threshold is a candidate (multi-label, as NanoDet's
own ``multiclass_nms``), then per-class NMS and the best ``max_detections``.
Everything is vectorised; the bin softmax runs only for candidate locations.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from edge.decoders.base import Detections
from edge.decoders.nanodet.layouts import DenseHead
from edge.decoders.nms import batched_nms
from edge.decoders.spec import DecoderSpec, Thresholds


@lru_cache(maxsize=32)
def centre_priors(levels: tuple[tuple[int, int, int], ...], offset: float) -> np.ndarray:
    """``(N, 3)`` float32 of ``cx, cy, stride`` for every location, levels in order, rows outer."""
    parts = []
    for stride, rows, cols in levels:
        ys, xs = np.meshgrid(
            np.arange(rows, dtype=np.float32), np.arange(cols, dtype=np.float32), indexing="ij"
        )
        strides = np.full(rows * cols, stride, dtype=np.float32)
        parts.append(
            np.stack([(xs.ravel() + offset) * stride, (ys.ravel() + offset) * stride, strides], axis=1)
        )
    priors = np.concatenate(parts) if parts else np.zeros((0, 3), np.float32)
    priors.setflags(write=False)
    return priors


def _logit(p: float) -> float:
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return math.log(p / (1.0 - p))


def integrate_distances(bin_logits: np.ndarray, reg_max: int) -> np.ndarray:
    """``(M, 4 * (reg_max + 1))`` bin logits -> ``(M, 4)`` expected distances in bins."""
    bins = bin_logits.reshape(-1, 4, reg_max + 1).astype(np.float32, copy=False)
    e = np.exp(bins - bins.max(axis=2, keepdims=True))
    return (e @ np.arange(reg_max + 1, dtype=np.float32)) / e.sum(axis=2)


def decode_nanodet(
    head: DenseHead, decoder: DecoderSpec, input_width: int, input_height: int, limits: Thresholds
) -> Detections:
    """Boxes (input pixels, xyxy), scores and class ids from a NanoDet head."""
    reg_max, center_offset = decoder.config.reg_max, decoder.config.center_offset
    score_threshold = limits.score
    scores = head.scores
    num_locations, num_classes = scores.shape
    threshold = _logit(score_threshold) if head.scores_are_logits else score_threshold
    class_major = scores.transpose()
    if class_major.flags.c_contiguous and not scores.flags.c_contiguous:  # stored class-major
        class_ids, pair_locations = np.divmod(np.flatnonzero(class_major > threshold), num_locations)
    else:
        pair_locations, class_ids = np.divmod(np.flatnonzero(scores > threshold), num_classes)
    if pair_locations.size == 0:
        return Detections.empty()
    candidate_scores = scores[pair_locations, class_ids].astype(np.float32)
    if head.scores_are_logits:
        candidate_scores = 1.0 / (1.0 + np.exp(-candidate_scores))
    locations, loc_idx = np.unique(pair_locations, return_inverse=True)
    priors = centre_priors(head.levels, float(center_offset))[locations]
    distances = head.distances[locations]
    if distances.shape[1] == 4:  # already integrated
        distances = distances.astype(np.float32)
        if head.integrated_in_bins:
            distances = distances * priors[:, 2:3]
    else:
        distances = integrate_distances(distances, reg_max) * priors[:, 2:3]
    boxes = np.empty((len(locations), 4), dtype=np.float32)
    boxes[:, :2] = priors[:, :2] - distances[:, :2]
    boxes[:, 2:] = priors[:, :2] + distances[:, 2:]
    np.clip(boxes[:, 0::2], 0, input_width, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, input_height, out=boxes[:, 1::2])
    boxes = boxes[loc_idx]
    keep = batched_nms(boxes, candidate_scores, class_ids, limits.nms_iou, limits.max_detections)
    return Detections(boxes[keep], candidate_scores[keep], class_ids[keep].astype(np.int64))
