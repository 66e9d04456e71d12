"""An independent, plain-loop YOLOv8 decoder written from ultralytics' published rules.

No numpy vectorisation and nothing from ``edge``: it is the reference the family is checked
against. The rules (ultralytics ``make_anchors``, ``DFL``, ``dist2bbox``, ``Detect`` export,
``non_max_suppression`` in predict mode, ``LetterBox`` and ``scale_boxes``):

- anchors: for each stride 8, 16, 32 (in order), a grid of ``ceil(H / s) x ceil(W / s)`` cells,
  row by row; anchor point ``(col + 0.5, row + 0.5)`` in cells;
- DFL: per side (left, top, right, bottom), softmax over the 16 bins, distance = sum(i * p_i);
- dist2bbox: ``x1y1 = anchor - lt``, ``x2y2 = anchor + rb``, then times the stride;
- scores: sigmoid of the class logits (already applied in a decoded export, whose boxes are
  ``cx, cy, w, h`` in input pixels);
- NMS: each box keeps its best class; boxes with score > conf go, by descending score, through
  greedy per-class NMS (dropped when IoU > iou with a kept box of its class); first max_det kept;
- letterbox: gain ``r = min(H / h, W / w)``, resized ``round(w r) x round(h r)``, padding
  ``round(d / 2 - 0.1)`` before (d = leftover pixels), grey 114; boxes go back as
  ``(x - pad) / r`` clipped to the image, the pad now from the unrounded ``d`` (scale_boxes).
"""

from __future__ import annotations

import math

REG_MAX = 16
STRIDES = (8, 16, 32)

Box = tuple[float, float, float, float, float, int]  # x1, y1, x2, y2, score, class


def _rows(output, locations: int) -> list[list[float]]:
    """One list of K values per location from a ``1 x K x N`` or ``1 x N x K`` nested array."""
    table = [list(map(float, row)) for row in output[0]]
    if len(table) == locations and len(table[0]) != locations:
        return table
    return [[table[k][i] for k in range(len(table))] for i in range(locations)]


def _anchors(width: int, height: int) -> list[tuple[float, float, int]]:
    points = []
    for stride in STRIDES:
        for row in range(math.ceil(height / stride)):
            for col in range(math.ceil(width / stride)):
                points.append((col + 0.5, row + 0.5, stride))
    return points


def _expected_bin(logits: list[float]) -> float:
    top = max(logits)
    weights = [math.exp(v - top) for v in logits]
    return sum(i * w for i, w in enumerate(weights)) / sum(weights)


def _iou(a: Box, b: Box) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def decode(
    output, raw: bool, width: int, height: int, conf: float = 0.25, iou: float = 0.7, max_det: int = 300
) -> list[Box]:
    """Detections in input pixels, best first."""
    anchors = _anchors(width, height)
    candidates: list[Box] = []
    for (ax, ay, stride), row in zip(anchors, _rows(output, len(anchors)), strict=True):
        if raw:
            sides = [_expected_bin(row[s * REG_MAX : (s + 1) * REG_MAX]) for s in range(4)]
            x1, y1 = (ax - sides[0]) * stride, (ay - sides[1]) * stride
            x2, y2 = (ax + sides[2]) * stride, (ay + sides[3]) * stride
            scores = [1.0 / (1.0 + math.exp(-v)) for v in row[4 * REG_MAX :]]
        else:
            cx, cy, w, h = row[:4]
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
            scores = row[4:]
        best = max(range(len(scores)), key=lambda c: scores[c])
        if scores[best] > conf:
            candidates.append((x1, y1, x2, y2, scores[best], best))
    candidates.sort(key=lambda b: -b[4])
    kept: list[Box] = []
    for box in candidates:
        if all(k[5] != box[5] or _iou(k, box) <= iou for k in kept):
            kept.append(box)
    return kept[:max_det]


def letterbox_geometry(
    image_w: int, image_h: int, size_w: int, size_h: int
) -> tuple[float, int, int, int, int]:
    """``(gain, resized_w, resized_h, pad_left, pad_top)`` of ultralytics' LetterBox (no auto)."""
    gain = min(size_h / image_h, size_w / image_w)
    new_w, new_h = round(image_w * gain), round(image_h * gain)
    left = round((size_w - new_w) / 2 - 0.1)
    top = round((size_h - new_h) / 2 - 0.1)
    return gain, new_w, new_h, left, top


def to_image(boxes: list[Box], image_w: int, image_h: int, size_w: int, size_h: int) -> list[Box]:
    """Input-pixel detections back to the original image (``scale_boxes``), clipped."""
    gain = min(size_h / image_h, size_w / image_w)
    left = round((size_w - image_w * gain) / 2 - 0.1)
    top = round((size_h - image_h * gain) / 2 - 0.1)

    def clip(v: float, hi: int) -> float:
        return min(max(v, 0.0), float(hi))

    return [
        (
            clip((x1 - left) / gain, image_w),
            clip((y1 - top) / gain, image_h),
            clip((x2 - left) / gain, image_w),
            clip((y2 - top) / gain, image_h),
            s,
            c,
        )
        for x1, y1, x2, y2, s, c in boxes
    ]
