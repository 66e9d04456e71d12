"""Labels drawn by ``edgekit detect``: readable on small images, apart in crowded scenes."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.draw import FONT, MIN_TEXT_PX, draw_detections, label_layout, text_style
from edge.media import read_image
from edge.runtime.detector import Detector


@pytest.fixture(scope="module")
def street(nanodet_plus_build: Path, demo_images: Path):
    """The crowded demo scene and what the NanoDet-Plus build finds in it."""
    image = read_image(demo_images / "street.png")
    detector = Detector.open(nanodet_plus_build)
    try:
        found = detector.detect(image)
    finally:
        detector.close()
    return image, found, detector.class_names


def _ink_height(text: str, scale: float, thickness: int) -> int:
    """Rows holding ink when ``text`` is rendered: the text's real height in pixels."""
    canvas = np.zeros((400, 1600), np.uint8)
    cv2.putText(canvas, text, (10, 300), FONT, scale, 255, thickness, cv2.LINE_AA)
    rows = np.flatnonzero(canvas.max(axis=1) > 127)
    return int(rows[-1] - rows[0] + 1)


@pytest.mark.parametrize("size", [(120, 160), (240, 320), (731, 1441)])
def test_label_text_is_readable_at_any_image_size(size: tuple[int, int]) -> None:
    scale, thickness = text_style(*size)
    assert _ink_height("HEH", scale, thickness) >= MIN_TEXT_PX - 1


def test_crowded_scene_labels_do_not_overlap(street) -> None:
    image, found, names = street
    assert len(found.scores) >= 10  # a crowd: people and cars side by side
    _, texts, rects, _, _ = label_layout(image.shape, found, names)
    height, width = image.shape[:2]
    for x1, y1, x2, y2 in rects:
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    for a, b in combinations(rects, 2):
        overlap_w = min(a[2], b[2]) - max(a[0], b[0])
        overlap_h = min(a[3], b[3]) - max(a[1], b[1])
        assert overlap_w <= 0 or overlap_h <= 0, (a, b)
    assert len(texts) == len(found.scores)


def test_small_image_gets_drawn_labels_of_readable_size(street) -> None:
    image, found, names = street
    small = cv2.resize(image, (360, 183))
    factor = np.array([360 / image.shape[1], 183 / image.shape[0]] * 2, np.float32)
    found.boxes = found.boxes * factor
    drawn = draw_detections(small, found, names)
    assert drawn.shape == small.shape and not np.array_equal(drawn, small)
    _, _, rects, _, _ = label_layout(small.shape, found, names)
    assert min(y2 - y1 for _, y1, _, y2 in rects) >= MIN_TEXT_PX
