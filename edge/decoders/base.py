"""What every family shares: the detections type and the helpers its layout parsers use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


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


class LayoutMismatch(Exception):
    """Raised by a layout parser that does not accept the outputs; the message says why."""


def expect(condition: bool, reason: str) -> None:
    """Refuse the outputs (:class:`LayoutMismatch`) unless ``condition`` holds."""
    if not condition:
        raise LayoutMismatch(reason)


def squeeze(array: np.ndarray, ndim: int) -> np.ndarray:
    """Drop leading size-1 axes down to ``ndim`` (ONNX-shaped arrays then look like ncnn's)."""
    while array.ndim > ndim and array.shape[0] == 1:
        array = array[0]
    return array


def shape_text(array: np.ndarray) -> str:
    """``AxBxC`` for messages."""
    return "x".join(str(d) for d in array.shape) or "scalar"


def describe_outputs(outputs: Mapping[str, np.ndarray]) -> str:
    """``name (AxBxC), ...`` for error messages."""
    return ", ".join(f"{name} ({shape_text(np.asarray(a))})" for name, a in outputs.items())
