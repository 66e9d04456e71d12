"""Reference NanoDet decoder: an independent oracle for the golden vectors and the production decoder.

Written from the decoding rules in ``docs/nanodet-notes.md`` (shared assets) and ``tests/golden/README.md``,
not from ``edge.decoders``. Deliberately plain: Python loops over locations, classes and bins, explicit
softmax, hand-written greedy NMS, float64 arithmetic. It imports nothing from edgekit, and is slow on
purpose; use it only in tests.

Layouts (the names edgekit uses; arrays in ncnn's shape, batch dimension dropped; C classes, B = reg_max + 1
bins per side, sides ordered l, t, r, b):

- ``nanodet-single``: one ``N x (C + 4B)`` array, scores already sigmoid.
- ``nanodet-single-chw``: one ``(C + 4B) x N`` array, raw score logits.
- ``nanodet-strides``: one ``(C + 4B) x H x W`` array per stride, raw score logits.
- ``nanodet-cls-dis``: ``cls{s}`` ``C x H x W`` (sigmoid) and ``dis{s}`` ``H x W x 4B`` per stride.
- ``nanodet-legacy``: ``cls_pred_stride_{s}`` ``HW x C`` (sigmoid) and ``dis_pred_stride_{s}`` ``HW x 4B``,
  or ``HW x 4`` already integrated (in bins when every value is within ``[0, reg_max]``, else in pixels).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

LAYOUTS = ("nanodet-single", "nanodet-single-chw", "nanodet-strides", "nanodet-cls-dis", "nanodet-legacy")


@dataclass(frozen=True)
class Geometry:
    """What the decode rules need to know about the network and its input."""

    strides: list[int]
    reg_max: int
    num_classes: int
    center_offset: float
    input_width: int
    input_height: int

    @property
    def channels(self) -> int:
        """Values per location in the fused layouts: class scores then 4 sides x (reg_max + 1) bins."""
        return self.num_classes + 4 * (self.reg_max + 1)

    def level_size(self, stride: int) -> tuple[int, int]:
        """(rows, cols) of one level: ceil(input / stride) on each axis."""
        return math.ceil(self.input_height / stride), math.ceil(self.input_width / stride)


@dataclass(frozen=True)
class Detection:
    """One detection in network-input pixels."""

    class_id: int
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2


@dataclass(frozen=True)
class Location:
    """One prior: its centre, its stride, its per-class scores and its raw distance values."""

    cx: float
    cy: float
    stride: int
    scores: list[float]
    distances: list[float]  # 4 x (reg_max + 1) bin logits, or 4 integrated values


def sigmoid(x: float) -> float:
    """Logistic function, written out (stable for large |x|)."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def guess_layout(arrays: Mapping[str, Any], geometry: Geometry) -> str:
    """Which of :data:`LAYOUTS` the outputs are in, from their names and shapes."""
    names = list(arrays)
    shapes = [tuple(arrays[n].shape) for n in names]
    if any(n.startswith("cls_pred_stride_") for n in names):
        return "nanodet-legacy"
    if any(re.fullmatch(r"cls\d+", n) for n in names) and any(re.fullmatch(r"dis\d+", n) for n in names):
        return "nanodet-cls-dis"
    if len(shapes) == 1 and len(shapes[0]) == 2:
        if shapes[0][1] == geometry.channels:
            return "nanodet-single"
        if shapes[0][0] == geometry.channels:
            return "nanodet-single-chw"
    if all(len(s) == 3 and s[0] == geometry.channels for s in shapes):
        return "nanodet-strides"
    raise ValueError(f"no NanoDet layout has outputs {dict(zip(names, shapes, strict=True))}")


def _stride_of(shape: tuple[int, ...], geometry: Geometry) -> int:
    """The stride whose level has the (rows, cols) of a ``channels x H x W`` array."""
    for stride in geometry.strides:
        if geometry.level_size(stride) == tuple(shape[1:]):
            return stride
    raise ValueError(f"no stride gives a level of shape {shape[1:]}")


def _centres(geometry: Geometry) -> Iterator[tuple[int, int, int, int, float, float]]:
    """(stride, row, col, index within level, cx, cy) per prior: levels in stride order, rows outer."""
    for stride in geometry.strides:
        rows, cols = geometry.level_size(stride)
        for row in range(rows):
            for col in range(cols):
                cx = (col + geometry.center_offset) * stride
                cy = (row + geometry.center_offset) * stride
                yield stride, row, col, row * cols + col, cx, cy


def read_locations(arrays: Mapping[str, Any], layout: str, geometry: Geometry) -> list[Location]:
    """Every prior in decode order, with its class scores (sigmoid applied) and distance values."""
    c = geometry.num_classes
    data = {name: value.tolist() for name, value in arrays.items()}  # plain nested Python lists
    out: list[Location] = []
    if layout in ("nanodet-single", "nanodet-single-chw"):
        (table,) = data.values()
        if layout == "nanodet-single-chw":  # one column per location: make it one row per location
            table = [[table[k][n] for k in range(len(table))] for n in range(len(table[0]))]
        priors = sum(rows * cols for rows, cols in map(geometry.level_size, geometry.strides))
        if len(table) != priors:
            raise ValueError(f"{len(table)} locations, but the levels have {priors}")
        for n, (stride, _row, _col, _i, cx, cy) in enumerate(_centres(geometry)):
            values = table[n]
            scores = values[:c] if layout == "nanodet-single" else [sigmoid(v) for v in values[:c]]
            out.append(Location(cx, cy, stride, scores, values[c:]))
        return out
    if layout == "nanodet-strides":
        by_stride = {_stride_of(arrays[name].shape, geometry): data[name] for name in data}
        for stride, row, col, _i, cx, cy in _centres(geometry):
            cube = by_stride[stride]
            values = [cube[k][row][col] for k in range(geometry.channels)]
            scores = [sigmoid(v) for v in values[:c]]
            out.append(Location(cx, cy, stride, scores, values[c:]))
        return out
    if layout == "nanodet-cls-dis":
        for stride, row, col, _i, cx, cy in _centres(geometry):
            cls, dis = data[f"cls{stride}"], data[f"dis{stride}"]
            scores = [cls[k][row][col] for k in range(c)]
            out.append(Location(cx, cy, stride, scores, list(dis[row][col])))
        return out
    if layout == "nanodet-legacy":
        for stride, _row, _col, i, cx, cy in _centres(geometry):
            cls, dis = data[f"cls_pred_stride_{stride}"], data[f"dis_pred_stride_{stride}"]
            out.append(Location(cx, cy, stride, list(cls[i]), list(dis[i])))
        return out
    raise ValueError(f"unknown layout {layout!r}")


def side_distances(location: Location, geometry: Geometry, integrated_in_bins: bool) -> list[float]:
    """Distances l, t, r, b in pixels: softmax expectation over each side's bins, times the stride."""
    bins = geometry.reg_max + 1
    if len(location.distances) == 4:
        scale = location.stride if integrated_in_bins else 1
        return [v * scale for v in location.distances]
    sides = []
    for side in range(4):
        logits = location.distances[side * bins : (side + 1) * bins]
        top = max(logits)
        weights = [math.exp(v - top) for v in logits]
        total = sum(weights)
        expectation = 0.0
        for j, w in enumerate(weights):
            expectation += j * (w / total)
        sides.append(expectation * location.stride)
    return sides


def _clip(v: float, high: float) -> float:
    return min(max(v, 0.0), high)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes (no +1)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(iw, 0.0) * max(ih, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def greedy_nms(candidates: list[Detection], nms_threshold: float) -> list[Detection]:
    """Per-class greedy NMS: best first, drop any box with IoU > threshold to a kept box of its class."""
    kept: list[Detection] = []
    for class_id in sorted({d.class_id for d in candidates}):
        mine = sorted((d for d in candidates if d.class_id == class_id), key=lambda d: -d.score)
        survivors: list[Detection] = []
        for det in mine:
            if all(iou(det.box, k.box) <= nms_threshold for k in survivors):
                survivors.append(det)
        kept.extend(survivors)
    return kept


def decode_reference(
    arrays: Mapping[str, Any],
    geometry: Geometry,
    *,
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
    layout: str | None = None,
) -> tuple[str, list[Detection]]:
    """(layout, detections best score first) for the raw outputs of one image."""
    layout = layout or guess_layout(arrays, geometry)
    locations = read_locations(arrays, layout, geometry)
    integrated = [v for loc in locations if len(loc.distances) == 4 for v in loc.distances]
    in_bins = all(0.0 <= v <= geometry.reg_max for v in integrated)
    candidates: list[Detection] = []
    for loc in locations:
        box = None
        for class_id in range(geometry.num_classes):
            score = loc.scores[class_id]
            if score <= score_threshold:
                continue
            if box is None:
                left, top, right, bottom = side_distances(loc, geometry, in_bins)
                w, h = geometry.input_width, geometry.input_height
                box = (
                    _clip(loc.cx - left, w),
                    _clip(loc.cy - top, h),
                    _clip(loc.cx + right, w),
                    _clip(loc.cy + bottom, h),
                )
            candidates.append(Detection(class_id, score, box))
    kept = greedy_nms(candidates, nms_threshold)
    kept.sort(key=lambda d: -d.score)
    return layout, kept[:max_detections]
