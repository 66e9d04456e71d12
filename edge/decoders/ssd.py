"""The SSD family: SSD-ResNet34 (MLPerf 1200x1200) decoded from the raw ``loc`` / ``conf`` outputs.

Default boxes, box coding and post-processing follow the MLPerf reference (see the project's
ssd-resnet34 notes); the geometry is the config's (MLPerf's by default). Per class: softmax
probability above the score threshold, the best ``candidates_per_class``, greedy NMS (the shared
:func:`~edge.decoders.nms.batched_nms`, overlaps clamped properly), then the best
``max_detections`` overall. The original ONNX file's NonMaxSuppression/TopK tail computes the
same detections (``tests/test_ssd_decoder.py`` checks it with onnxruntime).

Layout ``ssd-loc-conf``: raw ``4 x N`` box offsets (role ``loc``) and ``(C+1) x N`` class
logits with class 0 = background (role ``conf``), either orientation, named or by shape.

The network runs at other square input sizes too (the zoo builds a reduced one for tests): its
head maps then follow :func:`resnet34_feature_sizes`, and the parser settles ``feature_sizes``
for the input it sees (scales stay relative to ``image_size``, so default boxes keep their
normalised sizes).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from edge.decoders.base import Detections, expect, squeeze
from edge.decoders.coco import COCO_CATEGORY_IDS, coco_class_names
from edge.decoders.family import Family, Layout, LayoutContext, OutputInfo, Parsed, Preset, Recognised
from edge.decoders.nms import batched_nms
from edge.decoders.registry import register_family
from edge.decoders.spec import DecoderSpec, Thresholds, bounded


@dataclass(frozen=True)
class SsdConfig:
    """SSD geometry and box coding (MLPerf SSD-ResNet34 1200 by default).

    ``scales`` are pixels of ``image_size`` (one more than levels); ``feature_sizes`` are the
    head maps of the input actually fed (1200: ``[50, 25, 13, 7, 3, 3]``).
    """

    image_size: int = bounded(minimum=1, default=1200)
    feature_sizes: tuple[int, ...] = bounded(minimum=1, min_items=1, default=(50, 25, 13, 7, 3, 3))
    scales: tuple[float, ...] = bounded(
        minimum=1e-6, min_items=2, default=(84, 180, 396, 612, 828, 1044, 1260)
    )
    aspect_ratios: tuple[tuple[int, ...], ...] = bounded(
        minimum=1, default=((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
    )
    variances: tuple[float, float] = bounded(minimum=1e-9, default=(0.1, 0.2))
    candidates_per_class: int = bounded(minimum=1, default=200)

    @property
    def boxes_per_location(self) -> tuple[int, ...]:
        return tuple(2 + 2 * len(r) for r in self.aspect_ratios)

    @property
    def box_count(self) -> int:
        """Default boxes (15130 for SSD-ResNet34 1200)."""
        return sum(k * f * f for f, k in zip(self.feature_sizes, self.boxes_per_location, strict=True))


@dataclass
class SsdHead:
    """SSD raw outputs, one row per default box (level, box kind, row, column order)."""

    loc: np.ndarray  # (N, 4) offsets dx, dy, dw, dh
    conf: np.ndarray  # (N, C + 1) logits, class 0 = background
    config: SsdConfig  # the geometry the rows follow


def resnet34_feature_sizes(size: int) -> tuple[int, ...] | None:
    """Head map sizes of SSD-ResNet34 at a square ``size`` input, or None if it is too small.

    Stem and layer2 divide by 8 (layer3 keeps stride 1), extras 1-3 halve (3x3 s2 p1), extra4
    is 3x3 s2 p0, extra5 3x3 s1 p0; every head is a 3x3 conv with stride 3 and pad 1.
    """
    src = -(-size // 2)  # 7x7 s2 p3
    src = -(-src // 2)  # 3x3 maxpool s2 p1
    src = -(-src // 2)  # layer2 (3x3 s2 p1); layer3 stride 1
    sources = [src]
    for _ in range(3):
        sources.append(-(-sources[-1] // 2))
    sources.append((sources[-1] - 3) // 2 + 1)
    sources.append(sources[-1] - 2)
    if sources[-1] < 1:
        return None
    return tuple(-(-s // 3) for s in sources)


def config_for_input(config: SsdConfig, width: int, height: int) -> SsdConfig:
    """``config`` with the head maps of a square input other than ``image_size`` (ResNet34 rule)."""
    if width != height or width == config.image_size:
        return config
    sizes = resnet34_feature_sizes(width)
    if sizes is None or len(sizes) != len(config.feature_sizes):
        return config
    return dataclasses.replace(config, feature_sizes=sizes)


@lru_cache(maxsize=8)
def default_boxes(config: SsdConfig) -> np.ndarray:
    """``(N, 4)`` default boxes ``cx, cy, w, h`` (normalised), ordered level, box kind, row, column."""
    parts = []
    size, scales = config.image_size, config.scales
    for level, fk in enumerate(config.feature_sizes):
        sk, sk_next = scales[level] / size, scales[level + 1] / size
        shapes = [(sk, sk), (math.sqrt(sk * sk_next),) * 2]
        for r in config.aspect_ratios[level]:
            shapes += [(sk * math.sqrt(r), sk / math.sqrt(r)), (sk / math.sqrt(r), sk * math.sqrt(r))]
        ys, xs = np.meshgrid(np.arange(fk), np.arange(fk), indexing="ij")
        cx, cy = (xs.ravel() + 0.5) / fk, (ys.ravel() + 0.5) / fk
        for w, h in shapes:
            parts.append(np.stack([cx, cy, np.full_like(cx, w), np.full_like(cx, h)], axis=1))
    boxes = np.clip(np.concatenate(parts), 0.0, 1.0).astype(np.float32)
    boxes.setflags(write=False)
    return boxes


def parse_loc_conf(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> Parsed:
    """Raw SSD ``loc`` (4 x N) and ``conf`` ((C+1) x N), either orientation, named or by shape."""
    expect(len(outputs) == 2, f"needs two outputs, got {len(outputs)}")
    config = ctx.config
    sizes = {squeeze(a, 2).shape for a in outputs.values()}
    if not any(config.box_count in s for s in sizes):
        config = config_for_input(config, ctx.input_width, ctx.input_height)
    n, k = config.box_count, ctx.decoder.num_classes + 1
    loc = conf = None
    roles = {}
    for name, array in outputs.items():
        array = squeeze(array, 2)
        if array.shape in ((4, n), (n, 4)):
            loc, roles["loc"] = (array if array.shape == (n, 4) else array.T), name
        elif array.shape in ((k, n), (n, k)):
            conf, roles["conf"] = (array if array.shape == (n, k) else array.T), name
    expect(loc is not None and conf is not None, f"needs 4x{n} and {k}x{n}")
    settled = {"feature_sizes": config.feature_sizes} if config != ctx.config else {}
    return Parsed(SsdHead(np.ascontiguousarray(loc), np.ascontiguousarray(conf), config), roles, settled)


def decode_ssd(
    head: SsdHead, decoder: DecoderSpec, input_width: int, input_height: int, limits: Thresholds
) -> Detections:
    """Boxes (input pixels, xyxy), scores and 0-based class ids from raw SSD outputs."""
    config = head.config
    priors = default_boxes(config)
    var_xy, var_wh = config.variances

    conf = head.conf.astype(np.float32)
    e = np.exp(conf - conf.max(axis=1, keepdims=True))
    probs = e[:, 1:] / e.sum(axis=1, keepdims=True)  # drop background
    box_idx, class_ids = np.nonzero(probs > limits.score)
    if box_idx.size == 0:
        return Detections.empty()
    scores = probs[box_idx, class_ids]
    # Best `per_class` candidates of each class: sort by class then score, rank inside the class.
    order = np.lexsort((-scores, class_ids))
    sorted_classes = class_ids[order]
    rank = np.arange(order.size) - np.searchsorted(sorted_classes, sorted_classes, side="left")
    order = order[rank < config.candidates_per_class]
    box_idx, class_ids, scores = box_idx[order], class_ids[order], scores[order]

    loc, prior = head.loc[box_idx].astype(np.float32), priors[box_idx]
    centre = var_xy * loc[:, :2] * prior[:, 2:] + prior[:, :2]
    size = np.exp(var_wh * loc[:, 2:]) * prior[:, 2:]
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    boxes *= np.array([input_width, input_height, input_width, input_height], dtype=np.float32)
    keep = batched_nms(boxes, scores, class_ids, limits.nms_iou, limits.max_detections)
    return Detections(boxes[keep], scores[keep].astype(np.float32), class_ids[keep].astype(np.int64))


RESNET34 = Preset(
    name="ssd-resnet34",
    config=SsdConfig(),
    color="RGB",
    mean=(123.675, 116.28, 103.53),
    norm=(1 / 58.395, 1 / 57.12, 1 / 57.375),
    class_names=coco_class_names(),
    category_ids=COCO_CATEGORY_IDS,
    score_threshold=0.05,
    nms_threshold=0.5,
    max_detections=200,
)


def recognise(outputs: Sequence[OutputInfo], width: int, height: int) -> Recognised | None:
    """Two outputs: ``1 x 4 x N`` box offsets and ``1 x (C+1) x N`` logits, N the preset's boxes
    at this (square) input size."""
    if len(outputs) != 2 or width != height:
        return None
    n = config_for_input(RESNET34.config, width, height).box_count
    shapes = [tuple(d for d in o.shape if d != 1) for o in outputs]
    locs = [s for s in shapes if s in ((4, n), (n, 4))]
    confs = [s for s in shapes if len(s) == 2 and n in s and s not in locs]
    if len(locs) != 1 or len(confs) != 1:
        return None
    classes = (confs[0][0] if confs[0][1] == n else confs[0][1]) - 1
    meanings = [
        "box offsets dx, dy, dw, dh per default box"
        if s in locs
        else "class logits per default box, 0 = background"
        for s in shapes
    ]
    return Recognised(RESNET34.name, classes, meanings)


def guess(output_names: Sequence[str]) -> str | None:
    """SSD-ResNet34 for outputs named ``loc`` and ``conf``."""
    return RESNET34.name if {"loc", "conf"} <= set(output_names) else None


FAMILY = register_family(
    Family(
        name="ssd",
        config_type=SsdConfig,
        presets=(RESNET34,),
        layouts=(Layout("ssd-loc-conf", parse_loc_conf, "loc 4 x N offsets and conf (C+1) x N logits"),),
        decode=decode_ssd,
        recognise=recognise,
        guess=guess,
    )
)
