"""Data passed between layout parsers and decode functions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DenseHead:
    """A NanoDet head's outputs flattened over every level (first stride first, rows outer).

    ``distances`` holds ``4 * (reg_max + 1)`` bin logits per location (sides l, t, r, b), or 4
    distances already integrated: in bins (``integrated_in_bins``, times the stride gives
    pixels) or in input pixels.
    """

    scores: np.ndarray  # (N, C) class probabilities, or logits when scores_are_logits
    scores_are_logits: bool
    distances: np.ndarray  # (N, 4 * (reg_max + 1)) or (N, 4)
    levels: tuple[tuple[int, int, int], ...]  # (stride, rows, cols) per level
    integrated_in_bins: bool = False  # only for 4 distances per location


@dataclass
class SsdHead:
    """SSD raw outputs, one row per default box (level, box kind, row, column order)."""

    loc: np.ndarray  # (N, 4) offsets dx, dy, dw, dh
    conf: np.ndarray  # (N, C + 1) logits, class 0 = background


@dataclass
class Detections:
    """Final detections: xyxy boxes, scores and contiguous class ids (0-based)."""

    boxes: np.ndarray  # (K, 4) float32
    scores: np.ndarray  # (K,) float32
    class_ids: np.ndarray  # (K,) int64

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
