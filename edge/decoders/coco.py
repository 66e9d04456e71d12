"""COCO's 80 detection classes: names and official category ids, for families trained on COCO."""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def coco_class_names() -> tuple[str, ...]:
    """The 80 COCO category names in contiguous-id order."""
    text = (Path(__file__).parents[1] / "coco_names.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


# COCO's 80 contiguous classes -> official category ids (1..90 with gaps).
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
)  # fmt: skip
