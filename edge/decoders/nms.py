"""Per-class greedy non-maximum suppression, vectorised with numpy.

Greedy NMS visits boxes best score first and keeps a box unless a kept box of its class overlaps
it more than the threshold; so the first ``max_detections`` kept boxes depend only on the
best-scored candidates. Candidates are therefore taken in score-ordered chunks: a chunk is first
checked against everything kept so far (one IoU matrix), then resolved within itself (one IoU
matrix, a pass over the boxes it keeps), and the walk stops once ``max_detections`` are kept.
Python loops run over chunks and kept boxes, never over all candidates.
"""

from __future__ import annotations

import numpy as np

CHUNK = 256


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` IoU of two sets of xyxy boxes (0 where the union is empty)."""
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    iw = np.clip(np.minimum.outer(a[:, 2], b[:, 2]) - np.maximum.outer(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum.outer(a[:, 3], b[:, 3]) - np.maximum.outer(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = np.add.outer(area_a, area_b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _resolve_chunk(boxes: np.ndarray, classes: np.ndarray, iou_threshold: float, limit: int) -> list[int]:
    """Greedy NMS inside one score-sorted chunk; kept positions, at most ``limit``."""
    suppresses = (iou_matrix(boxes, boxes) > iou_threshold) & (classes[:, None] == classes[None, :])
    alive = np.ones(len(boxes), dtype=bool)
    kept: list[int] = []
    i, n = 0, len(boxes)
    while len(kept) < limit:
        kept.append(i)
        alive &= ~suppresses[i]
        if i + 1 >= n:
            break
        step = int(alive[i + 1 :].argmax())  # first box still alive after i (argmax: first True)
        if not alive[i + 1 + step]:
            break
        i += 1 + step
    return kept


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float, max_detections: int
) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS run separately per class, best score first.

    ``boxes`` are xyxy; a box is suppressed by a kept box of the same class whose IoU with it
    exceeds ``iou_threshold``. At most ``max_detections`` indices (``<= 0``: no limit).
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    limit = max_detections if max_detections > 0 else n
    order = np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")
    ranked_boxes = np.asarray(boxes, dtype=np.float32)[order]
    ranked_classes = np.asarray(class_ids, dtype=np.int64)[order]
    kept: list[np.ndarray] = []
    kept_boxes = np.zeros((0, 4), np.float32)
    kept_classes = np.zeros(0, np.int64)
    total = 0
    for start in range(0, n, CHUNK):
        chunk_boxes = ranked_boxes[start : start + CHUNK]
        chunk_classes = ranked_classes[start : start + CHUNK]
        candidates = np.arange(len(chunk_boxes))
        if total:
            hit = (iou_matrix(chunk_boxes, kept_boxes) > iou_threshold) & (
                chunk_classes[:, None] == kept_classes[None, :]
            )
            candidates = np.flatnonzero(~hit.any(axis=1))
            if candidates.size == 0:
                continue
        local = candidates[
            _resolve_chunk(chunk_boxes[candidates], chunk_classes[candidates], iou_threshold, limit - total)
        ]
        kept.append(start + local)
        kept_boxes = np.concatenate([kept_boxes, chunk_boxes[local]])
        kept_classes = np.concatenate([kept_classes, chunk_classes[local]])
        total += local.size
        if total >= limit:
            break
    return order[np.concatenate(kept)] if kept else np.zeros(0, dtype=np.int64)
