"""Output-layout parsers: each checks output names and shapes and returns the family's canonical head.

Parsers are tried in turn (like OpenVINO Model API adapters); the first that accepts the outputs
wins, and ``layout=<name>`` forces one. Shapes are ncnn's (batch dimension dropped); leading
size-1 axes are ignored so ONNX-shaped arrays work too.

NanoDet layouts (``DenseHead``), with ``K = num_classes + 4 * (reg_max + 1)`` (112 for COCO):

- ``nanodet-single``: one ``N x K`` output, class scores already sigmoid (official ONNX export).
- ``nanodet-single-chw``: one ``K x N`` output of raw logits (pnnx's concat of the strides).
- ``nanodet-strides``: one ``K x H x W`` output per stride, raw logits (pnnx from TorchScript).
- ``nanodet-cls-dis``: ``cls{s}`` (``C x H x W``, sigmoid) and ``dis{s}`` (``H x W x 32``) pairs.
- ``nanodet-legacy``: ``cls_pred_stride_{s}`` (``HW x C``, sigmoid) and ``dis_pred_stride_{s}``
  (``HW x 32`` bin logits, or ``HW x 4`` distances already integrated: in bins, as NanoDet's
  official ONNX export gives them, or already multiplied by the stride).

SSD layout (``SsdHead``): ``ssd-loc-conf``, raw ``4 x N`` box offsets and ``(C+1) x N`` logits.

``DecoderSpec.extra["class_scores"]`` (``"sigmoid"`` or ``"logits"``) overrides what a parser
assumes about class scores. Integrated distances are taken as bins when every value is within
``[0, reg_max]`` (the range of the bin expectation; pixel distances at the coarsest stride
exceed it), as pixels otherwise; ``extra["integrated_distances"]`` (``"bins"`` or ``"pixels"``)
overrides that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from edge.decoders.base import DenseHead, SsdHead
from edge.decoders.ssd import ssd_geometry
from edge.errors import EdgekitError
from edge.manifest import DecoderSpec


class LayoutMismatch(Exception):
    """Raised by a parser that does not accept the outputs; the message says why."""


@dataclass(frozen=True)
class LayoutContext:
    """What a parser needs besides the outputs: the decoder spec and the actual input size."""

    decoder: DecoderSpec
    input_width: int
    input_height: int

    @property
    def bins(self) -> int:
        return self.decoder.reg_max + 1

    @property
    def channels(self) -> int:
        return self.decoder.num_classes + 4 * self.bins

    def level_sizes(self) -> list[tuple[int, int, int]]:
        return [
            (s, math.ceil(self.input_height / s), math.ceil(self.input_width / s))
            for s in self.decoder.strides
        ]

    def logits(self, default: bool) -> bool:
        mode = self.decoder.extra.get("class_scores")
        return default if mode is None else mode == "logits"


Parser = Callable[[Mapping[str, np.ndarray], LayoutContext], "DenseHead | SsdHead"]


def _squeeze(array: np.ndarray, ndim: int) -> np.ndarray:
    while array.ndim > ndim and array.shape[0] == 1:
        array = array[0]
    return array


def _expect(condition: bool, reason: str) -> None:
    if not condition:
        raise LayoutMismatch(reason)


def parse_single(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> DenseHead:
    """One ``N x K`` output, sigmoid scores then bin logits per row."""
    _expect(len(outputs) == 1, f"needs one output, got {len(outputs)}")
    array = _squeeze(next(iter(outputs.values())), 2)
    levels = ctx.level_sizes()
    n = sum(h * w for _, h, w in levels)
    _expect(array.shape == (n, ctx.channels), f"needs shape {n}x{ctx.channels}, got {_shape(array)}")
    c = ctx.decoder.num_classes
    return DenseHead(array[:, :c], ctx.logits(False), array[:, c:], tuple(levels))


def parse_single_chw(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> DenseHead:
    """One ``K x N`` output (channels first), raw logits."""
    _expect(len(outputs) == 1, f"needs one output, got {len(outputs)}")
    array = _squeeze(next(iter(outputs.values())), 2)
    levels = ctx.level_sizes()
    n = sum(h * w for _, h, w in levels)
    _expect(array.shape == (ctx.channels, n), f"needs shape {ctx.channels}x{n}, got {_shape(array)}")
    rows = array.T  # a view: the decoder reads class-major scores without a copy
    c = ctx.decoder.num_classes
    return DenseHead(rows[:, :c], ctx.logits(True), rows[:, c:], tuple(levels))


def parse_strides(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> DenseHead:
    """One ``K x H x W`` raw-logit output per stride, matched to strides by spatial size."""
    levels = ctx.level_sizes()
    _expect(len(outputs) == len(levels), f"needs {len(levels)} outputs, got {len(outputs)}")
    by_size = {}
    for array in outputs.values():
        array = _squeeze(array, 3)
        _expect(
            array.ndim == 3 and array.shape[0] == ctx.channels,
            f"needs {ctx.channels}xHxW, got {_shape(array)}",
        )
        by_size[array.shape[1:]] = array
    missing = [f"{h}x{w}" for _, h, w in levels if (h, w) not in by_size]
    _expect(not missing, f"no output of spatial size {', '.join(missing)}")
    rows = np.concatenate([by_size[(h, w)].reshape(ctx.channels, -1) for _, h, w in levels], axis=1).T
    c = ctx.decoder.num_classes
    return DenseHead(rows[:, :c], ctx.logits(True), rows[:, c:], tuple(levels))


def _pairs(
    outputs: Mapping[str, np.ndarray], ctx: LayoutContext, cls_name: str, dis_name: str
) -> list[tuple[np.ndarray, np.ndarray, tuple[int, int, int]]]:
    pairs = []
    for stride, h, w in ctx.level_sizes():
        names = (cls_name.format(s=stride), dis_name.format(s=stride))
        missing = [n for n in names if n not in outputs]
        _expect(not missing, f"no output named {', '.join(missing)}")
        pairs.append((outputs[names[0]], outputs[names[1]], (stride, h, w)))
    return pairs


def parse_cls_dis(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> DenseHead:
    """Per-stride ``cls{s}`` (C x H x W, sigmoid) and ``dis{s}`` (H x W x 32 or 32 x H x W)."""
    c, d = ctx.decoder.num_classes, 4 * ctx.bins
    scores, dists, levels = [], [], []
    for cls, dis, (stride, h, w) in _pairs(outputs, ctx, "cls{s}", "dis{s}"):
        cls, dis = _squeeze(cls, 3), _squeeze(dis, 3)
        _expect(cls.shape == (c, h, w), f"cls{stride} needs {c}x{h}x{w}, got {_shape(cls)}")
        if dis.shape == (h, w, d):
            dis = dis.reshape(h * w, d)
        elif dis.shape == (d, h, w):
            dis = dis.reshape(d, h * w).T
        else:
            raise LayoutMismatch(f"dis{stride} needs {h}x{w}x{d}, got {_shape(dis)}")
        scores.append(cls.reshape(c, h * w))
        dists.append(dis)
        levels.append((stride, h, w))
    class_major = np.concatenate(scores, axis=1)
    return DenseHead(class_major.T, ctx.logits(False), np.concatenate(dists), tuple(levels))


def parse_legacy(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> DenseHead:
    """NanoDet-m ``cls_pred_stride_{s}`` (HW x C, sigmoid) / ``dis_pred_stride_{s}`` (HW x 32 or HW x 4)."""
    c, d = ctx.decoder.num_classes, 4 * ctx.bins
    scores, dists, levels = [], [], []
    widths = set()
    for cls, dis, (stride, h, w) in _pairs(outputs, ctx, "cls_pred_stride_{s}", "dis_pred_stride_{s}"):
        cls, dis = _squeeze(cls, 2), _squeeze(dis, 2)
        _expect(cls.shape == (h * w, c), f"cls_pred_stride_{stride} needs {h * w}x{c}, got {_shape(cls)}")
        _expect(
            dis.ndim == 2 and dis.shape[0] == h * w and dis.shape[1] in (d, 4),
            f"dis_pred_stride_{stride} needs {h * w}x{d} or {h * w}x4, got {_shape(dis)}",
        )
        widths.add(dis.shape[1])
        scores.append(cls)
        dists.append(dis)
        levels.append((stride, h, w))
    _expect(len(widths) == 1, "dis_pred_stride_* outputs mix integrated and raw distances")
    distances = np.concatenate(dists)
    in_bins = False
    if distances.shape[1] == 4:
        units = ctx.decoder.extra.get("integrated_distances")
        in_bins = units == "bins" if units else bool(distances.max(initial=0.0) <= ctx.decoder.reg_max + 1e-3)
    return DenseHead(np.concatenate(scores), ctx.logits(False), distances, tuple(levels), in_bins)


def ssd_box_count(decoder: DecoderSpec) -> int:
    """Default boxes of an SSD decoder spec (15130 for SSD-ResNet34 1200)."""
    sizes, boxes_per_location = ssd_geometry(decoder)[:2]
    return sum(k * f * f for f, k in zip(sizes, boxes_per_location, strict=True))


def parse_ssd(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> SsdHead:
    """Raw SSD ``loc`` (4 x N) and ``conf`` ((C+1) x N), either orientation, named or by shape."""
    _expect(len(outputs) == 2, f"needs two outputs, got {len(outputs)}")
    n, k = ssd_box_count(ctx.decoder), ctx.decoder.num_classes + 1
    loc = conf = None
    for array in outputs.values():
        array = _squeeze(array, 2)
        if array.shape in ((4, n), (n, 4)):
            loc = array if array.shape == (n, 4) else array.T
        elif array.shape in ((k, n), (n, k)):
            conf = array if array.shape == (n, k) else array.T
    _expect(loc is not None and conf is not None, f"needs 4x{n} and {k}x{n}")
    return SsdHead(np.ascontiguousarray(loc), np.ascontiguousarray(conf))


NANODET_LAYOUTS: dict[str, Parser] = {
    "nanodet-single": parse_single,
    "nanodet-single-chw": parse_single_chw,
    "nanodet-strides": parse_strides,
    "nanodet-cls-dis": parse_cls_dis,
    "nanodet-legacy": parse_legacy,
}
SSD_LAYOUTS: dict[str, Parser] = {"ssd-loc-conf": parse_ssd}
LAYOUTS_BY_FAMILY: dict[str, dict[str, Parser]] = {"nanodet": NANODET_LAYOUTS, "ssd": SSD_LAYOUTS}
ALL_LAYOUTS = tuple(name for table in LAYOUTS_BY_FAMILY.values() for name in table)


def _shape(array: np.ndarray) -> str:
    return "x".join(str(d) for d in array.shape) or "scalar"


def describe_outputs(outputs: Mapping[str, np.ndarray]) -> str:
    """``name (AxBxC), ...`` for error messages."""
    return ", ".join(f"{name} ({_shape(np.asarray(a))})" for name, a in outputs.items())


def parse_outputs(
    outputs: Mapping[str, np.ndarray], ctx: LayoutContext, layout: str = "auto"
) -> tuple[str, DenseHead | SsdHead]:
    """Parse ``outputs`` with the named layout, or the first that accepts them (``"auto"``)."""
    family = ctx.decoder.family
    if family not in LAYOUTS_BY_FAMILY:
        raise EdgekitError(f"no decoder for model family {family!r} (known: {', '.join(LAYOUTS_BY_FAMILY)})")
    table = LAYOUTS_BY_FAMILY[family]
    if layout != "auto" and layout not in table:
        raise EdgekitError(f"unknown layout {layout!r} for {family} (known: {', '.join(table)})")
    candidates = table if layout == "auto" else {layout: table[layout]}
    reasons = []
    for name, parser in candidates.items():
        try:
            return name, parser(outputs, ctx)
        except LayoutMismatch as why:
            reasons.append(f"{name}: {why}")
    size = f"{ctx.input_width}x{ctx.input_height}"
    raise EdgekitError(
        f"model outputs do not match preset {ctx.decoder.preset!r} at input {size}: found "
        f"{describe_outputs(outputs)}; " + "; ".join(reasons)
    )
