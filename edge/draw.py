"""Draw detections (boxes, class names, scores) on an image."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from functools import cache

import cv2
import numpy as np

from edge.decoders import Detections


@cache
def class_colour(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class id."""
    hue = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_detections(image_bgr: np.ndarray, found: Detections, class_names: Sequence[str]) -> np.ndarray:
    """A copy of ``image_bgr`` with each detection's box and ``name score`` label drawn on it."""
    canvas = image_bgr.copy()
    scale = max(0.4, min(canvas.shape[:2]) / 1000)
    thickness = max(1, round(2 * scale))
    for box, score, class_id in zip(found.boxes, found.scores, found.class_ids, strict=True):
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        colour = class_colour(int(class_id))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        name = class_names[class_id] if class_id < len(class_names) else str(int(class_id))
        label = f"{name} {score:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
        top = max(y1 - th - base, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + tw, top + th + base), colour, cv2.FILLED)
        cv2.putText(
            canvas, label, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (0, 0, 0), 1, cv2.LINE_AA
        )
    return canvas
