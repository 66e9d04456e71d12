"""Draw detections (boxes, class names, scores) on an image, with labels readable and apart.

Labels are at least :data:`MIN_TEXT_PX` pixels tall (1/40 of the shorter side on large images)
and placed one by one, best score first, at the first spot around or inside their box that
neither overlaps a label already placed nor leaves the image.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from functools import cache

import cv2
import numpy as np

from edge.decoders import Detections

FONT = cv2.FONT_HERSHEY_SIMPLEX
#: smallest label text height in pixels (capital letters), whatever the image size
MIN_TEXT_PX = 12
#: on large images the text is this fraction of the shorter side
TEXT_FRACTION = 1 / 40

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive)


@cache
def class_colour(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class id."""
    hue = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


@cache
def _cap_height() -> int:
    """Pixel height of a capital letter at font scale 1, measured by rendering one."""
    canvas = np.zeros((100, 100), np.uint8)
    cv2.putText(canvas, "H", (10, 80), FONT, 1.0, 255, 1, cv2.LINE_AA)
    rows = np.flatnonzero(canvas.max(axis=1) > 127)
    return int(rows[-1] - rows[0] + 1)


def text_style(height: int, width: int) -> tuple[float, int]:
    """Font scale and stroke thickness that make label text readable on a ``height`` x ``width`` image."""
    target = max(MIN_TEXT_PX, min(height, width) * TEXT_FRACTION)
    scale = target / _cap_height()
    return scale, max(1, round(scale * 1.2))


def _overlap(a: Rect, b: Rect) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0)


def _candidates(
    box: Rect, size: tuple[int, int], width: int, height: int, placed: Sequence[Rect]
) -> list[Rect]:
    """Spots for a ``size`` label, nearest first: above the box, inside its top, stepping down inside
    it, below it, on its left then its right edge; then snug against labels already placed near the
    box. Each is moved inside the image."""
    x1, y1, x2, y2 = box
    lw, lh = size
    rows = [y1 - lh, y1, *range(y1 + lh, y2 - lh + 1, lh), y2]
    xy = [(x, y) for x in (x1, x2 - lw) for y in rows]
    near = [p for p in placed if p[0] < x2 + lw and p[2] > x1 - lw and p[1] < y2 + lh and p[3] > y1 - lh]
    snug = [
        (x, y) for p in near for x, y in ((x1, p[3]), (x1, p[1] - lh), (p[2], y1 - lh), (p[0] - lw, y1 - lh))
    ]
    xy += sorted(snug, key=lambda c: abs(c[0] - x1) + abs(c[1] - (y1 - lh)))
    spots: list[Rect] = []
    for x, y in xy:
        cx = min(max(x, 0), max(width - lw, 0))
        cy = min(max(y, 0), max(height - lh, 0))
        spot = (cx, cy, cx + lw, cy + lh)
        if spot not in spots:
            spots.append(spot)
    return spots


def place_labels(
    boxes: Sequence[Rect], sizes: Sequence[tuple[int, int]], width: int, height: int
) -> list[Rect]:
    """One rectangle per label, in order: the first free candidate spot, else the least covered one."""
    placed: list[Rect] = []
    for box, size in zip(boxes, sizes, strict=True):
        spots = _candidates(box, size, width, height, placed)
        free = [s for s in spots if not any(_overlap(s, p) for p in placed)]
        placed.append(free[0] if free else min(spots, key=lambda s: sum(_overlap(s, p) for p in placed)))
    return placed


def label_layout(
    image_shape: tuple[int, ...], found: Detections, class_names: Sequence[str]
) -> tuple[list[int], list[str], list[Rect], float, int]:
    """Drawing order (best score first), label texts, label rectangles, font scale and thickness."""
    height, width = image_shape[:2]
    scale, thick = text_style(height, width)
    order = sorted(range(len(found.scores)), key=lambda i: -float(found.scores[i]))
    texts, boxes, sizes = [], [], []
    pad = max(2, round(scale * 2))
    for i in order:
        class_id = int(found.class_ids[i])
        name = class_names[class_id] if class_id < len(class_names) else str(class_id)
        texts.append(f"{name} {float(found.scores[i]):.2f}")
        (tw, th), base = cv2.getTextSize(texts[-1], FONT, scale, thick)
        sizes.append((tw + 2 * pad, th + base + 2 * pad))
        boxes.append(tuple(round(float(v)) for v in found.boxes[i]))
    return order, texts, place_labels(boxes, sizes, width, height), scale, thick


def draw_detections(image_bgr: np.ndarray, found: Detections, class_names: Sequence[str]) -> np.ndarray:
    """A copy of ``image_bgr`` with each detection's box, then every ``name score`` label on top."""
    canvas = image_bgr.copy()
    height, width = canvas.shape[:2]
    box_thickness = max(1, round(min(height, width) / 400))
    order, texts, rects, scale, thick = label_layout(canvas.shape, found, class_names)
    for i in order:
        x1, y1, x2, y2 = (round(float(v)) for v in found.boxes[i])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), class_colour(int(found.class_ids[i])), box_thickness)
    pad = max(2, round(scale * 2))
    for i, text, (lx1, ly1, lx2, ly2) in zip(order, texts, rects, strict=True):
        cv2.rectangle(
            canvas, (lx1, ly1), (lx2 - 1, ly2 - 1), class_colour(int(found.class_ids[i])), cv2.FILLED
        )
        (_, th), _ = cv2.getTextSize(text, FONT, scale, thick)
        cv2.putText(canvas, text, (lx1 + pad, ly1 + pad + th), FONT, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return canvas
