"""The YOLOv8 family: anchor-free, DFL box regression, sigmoid class scores (ultralytics exports).

Head: for every location of the stride 8, 16 and 32 grids (row-major, finest level first), 4 box
sides as a distribution over ``reg_max`` bins (distance = expected bin, in grid cells) and one
score per class. Three output layouts, each one output, either orientation (``K x N`` as
ultralytics exports it, or transposed ``N x K``):

- ``yolov8-dfl``: the raw head, ``K = 4 * reg_max + C``: DFL logits (side-major: left, top,
  right, bottom, ``reg_max`` bins each) then class logits;
- ``yolov8-decoded``: the box decode already in the graph (ultralytics' default export),
  ``K = 4 + C``: ``cx, cy, w, h`` in input pixels then sigmoid class scores.

Decoding follows ultralytics: anchor point ``(col + 0.5, row + 0.5)``, ``x1y1 = anchor - lt``,
``x2y2 = anchor + rb``, times the stride; scores are sigmoids; each location keeps its best
class (predict's single-label rule), scores above the threshold go through per-class NMS and the
best ``max_detections`` stay. Preprocessing: RGB, /255, letterbox to the full input with grey
114 padding (ultralytics' ``LetterBox`` for a fixed-size export).

Recognition (``convert --preset auto``): one 3-D output with one side equal to the location count
N at the input size; ``K`` is read as decoded when a Sigmoid feeds the output (ultralytics' decoded
export), as raw DFL when none does; when convert cannot tell, ``K <= 4 * reg_max`` reads as
decoded and larger ``K`` as raw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edge.decoders.base import Detections, expect, shape_text, squeeze
from edge.decoders.coco import COCO_CATEGORY_IDS, coco_class_names
from edge.decoders.family import Family, Layout, LayoutContext, OutputInfo, Parsed, Preset, Recognised
from edge.decoders.nms import batched_nms
from edge.decoders.registry import register_family
from edge.decoders.spec import DecoderSpec, Thresholds


@dataclass(frozen=True)
class Yolov8Config:
    """Grid strides (finest first) and DFL bins per box side."""

    strides: tuple[int, ...] = (8, 16, 32)
    reg_max: int = 16


@dataclass
class Yolov8Head:
    """One row per location: either DFL logits ``(N, 4 * reg_max)`` or decoded ``cx, cy, w, h``
    ``(N, 4)``, plus class scores ``(N, C)`` (logits when ``raw``, probabilities otherwise)."""

    boxes: np.ndarray
    scores: np.ndarray
    raw: bool


def location_count(width: int, height: int, strides: Sequence[int]) -> int:
    """Locations over every level: ``ceil(input / stride)`` cells each way per stride."""
    return sum(-(-width // s) * -(-height // s) for s in strides)


def anchor_points(ctx: LayoutContext) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 2)`` anchor centres in grid cells and ``(N, 1)`` strides, level by level, row-major."""
    points, strides = [], []
    for stride, rows, cols in ctx.level_sizes(ctx.config.strides):
        ys, xs = np.meshgrid(
            np.arange(rows, dtype=np.float32), np.arange(cols, dtype=np.float32), indexing="ij"
        )
        points.append(np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5)
        strides.append(np.full((rows * cols, 1), stride, np.float32))
    return np.concatenate(points), np.concatenate(strides)


def _rows(outputs: Mapping[str, np.ndarray], ctx: LayoutContext, k: int) -> tuple[str, np.ndarray]:
    """The single output as ``(N, k)`` rows, accepting ``k x N`` or ``N x k``."""
    expect(len(outputs) == 1, f"needs one output, got {len(outputs)}")
    name, array = next(iter(outputs.items()))
    array = squeeze(np.asarray(array), 2)
    n = location_count(ctx.input_width, ctx.input_height, ctx.config.strides)
    expect(array.shape in ((k, n), (n, k)), f"needs {k}x{n} or {n}x{k}, got {shape_text(array)}")
    return name, np.ascontiguousarray(array.T if array.shape == (k, n) and k != n else array)


def parse_dfl(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> Parsed:
    """Raw head: ``4 * reg_max`` DFL logits then class logits per location."""
    bins = 4 * ctx.config.reg_max
    name, rows = _rows(outputs, ctx, bins + ctx.decoder.num_classes)
    return Parsed(Yolov8Head(rows[:, :bins], rows[:, bins:], raw=True), {"head": name})


def parse_decoded(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> Parsed:
    """Decoded head: ``cx, cy, w, h`` (input pixels) then sigmoid scores per location."""
    name, rows = _rows(outputs, ctx, 4 + ctx.decoder.num_classes)
    return Parsed(Yolov8Head(rows[:, :4], rows[:, 4:], raw=False), {"head": name})


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _dfl_boxes(logits: np.ndarray, anchors: np.ndarray, strides: np.ndarray, reg_max: int) -> np.ndarray:
    """xyxy input-pixel boxes from ``(K, 4 * reg_max)`` DFL logits at their anchors."""
    bins = logits.reshape(-1, 4, reg_max).astype(np.float32)
    e = np.exp(bins - bins.max(axis=2, keepdims=True))
    distance = (e * np.arange(reg_max, dtype=np.float32)).sum(axis=2) / e.sum(axis=2)  # l, t, r, b
    return np.concatenate([anchors - distance[:, :2], anchors + distance[:, 2:]], axis=1) * strides


def decode_yolov8(
    head: Yolov8Head, decoder: DecoderSpec, input_width: int, input_height: int, limits: Thresholds
) -> Detections:
    """Boxes (input pixels, xyxy), scores and 0-based class ids: best class per location,
    threshold, per-class NMS, best ``max_detections``."""
    scores = head.scores.astype(np.float32)
    class_ids = scores.argmax(axis=1)
    best = scores[np.arange(len(scores)), class_ids]
    if head.raw:
        best = _sigmoid(best)
    keep = np.nonzero(best > limits.score)[0]
    if keep.size == 0:
        return Detections.empty()
    if head.raw:
        ctx = LayoutContext(decoder, input_width, input_height)
        anchors, strides = anchor_points(ctx)
        boxes = _dfl_boxes(head.boxes[keep], anchors[keep], strides[keep], decoder.config.reg_max)
    else:
        cxcy, wh = head.boxes[keep, :2].astype(np.float32), head.boxes[keep, 2:].astype(np.float32)
        boxes = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1)
    scores_kept, classes = best[keep].astype(np.float32), class_ids[keep]
    chosen = batched_nms(boxes, scores_kept, classes, limits.nms_iou, limits.max_detections)
    return Detections(boxes[chosen].astype(np.float32), scores_kept[chosen], classes[chosen].astype(np.int64))


YOLOV8 = Preset(
    name="yolov8",
    config=Yolov8Config(),
    color="RGB",
    mean=(0.0, 0.0, 0.0),
    norm=(1 / 255, 1 / 255, 1 / 255),
    class_names=coco_class_names(),
    category_ids=COCO_CATEGORY_IDS,
    resize="letterbox",
    pad_multiple=0,
    pad_value=114.0,
    score_threshold=0.25,
    nms_threshold=0.7,
    max_detections=300,
)


def recognise(outputs: Sequence[OutputInfo], width: int, height: int) -> Recognised | None:
    """One ``1 x K x N`` (or ``1 x N x K``) output, N the locations at this input size."""
    if len(outputs) != 1 or len(outputs[0].shape) != 3:
        return None
    batch = outputs[0].shape[0]
    if batch != 1 and not isinstance(batch, str):  # a symbolic batch is fine, a fixed 2+ is not
        return None
    config = YOLOV8.config
    n = location_count(width, height, config.strides)
    _, a, b = outputs[0].shape
    if a == n and isinstance(b, int) and b != n:
        k = b
    elif b == n and isinstance(a, int):
        k = a
    else:
        return None
    upstream = getattr(outputs[0], "upstream_ops", None)
    bins = 4 * config.reg_max
    decoded = ("Sigmoid" in upstream) if upstream is not None else k <= bins
    classes = k - 4 if decoded else k - bins
    if classes < 1:
        return None
    meaning = (
        f"per location: cx, cy, w, h (input pixels), {classes} sigmoid class scores"
        if decoded
        else f"per location: {bins} DFL logits (l, t, r, b x {config.reg_max} bins), {classes} class logits"
    )
    return Recognised(YOLOV8.name, classes, [meaning])


def guess(output_names: Sequence[str]) -> str | None:
    """YOLOv8 for a single output named ``output0`` (ultralytics' export name)."""
    return YOLOV8.name if list(output_names) == ["output0"] else None


FAMILY = register_family(
    Family(
        name="yolov8",
        config_type=Yolov8Config,
        presets=(YOLOV8,),
        layouts=(
            Layout(
                "yolov8-dfl",
                parse_dfl,
                "one (4*reg_max + C) x N output (or N x ...): raw DFL and class logits",
            ),
            Layout(
                "yolov8-decoded",
                parse_decoded,
                "one (4 + C) x N output (or N x ...): cx, cy, w, h and scores",
            ),
        ),
        decode=decode_yolov8,
        recognise=recognise,
        guess=guess,
    )
)
