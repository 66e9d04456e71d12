"""NanoDet output layouts: each parser checks names and shapes and returns one :class:`DenseHead`.

Shapes are ncnn's (batch dimension dropped); leading size-1 axes are ignored so ONNX-shaped
arrays work too. With ``K = num_classes + 4 * (reg_max + 1)`` (112 for COCO):

- ``nanodet-single``: one ``N x K`` output, class scores already sigmoid (official ONNX export).
- ``nanodet-single-chw``: one ``K x N`` output of raw logits (pnnx's concat of the strides).
- ``nanodet-strides``: one ``K x H x W`` output per stride, raw logits (pnnx from TorchScript).
- ``nanodet-cls-dis``: ``cls{s}`` (``C x H x W``, sigmoid) and ``dis{s}`` (``H x W x 32``) pairs.
- ``nanodet-legacy``: ``cls_pred_stride_{s}`` (``HW x C``, sigmoid) and ``dis_pred_stride_{s}``
  (``HW x 32`` bin logits, or ``HW x 4`` distances already integrated: in bins, as NanoDet's
  official ONNX export gives them, or already multiplied by the stride).

The config's ``class_scores`` (``"sigmoid"`` or ``"logits"``) overrides what a parser assumes
about class scores. Integrated distances are taken as bins when every value is within
``[0, reg_max]`` (the range of the bin expectation; pixel distances at the coarsest stride
exceed it), as pixels otherwise; the config's ``distances`` (``"bins"`` or ``"pixels"``)
overrides that. Every parser reports what it settled, so convert can record it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edge.decoders.base import LayoutMismatch, expect, shape_text, squeeze
from edge.decoders.family import Layout, LayoutContext, Parsed


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

    @property
    def distance_units(self) -> str:
        """``"distribution"`` (bin logits), ``"bins"`` or ``"pixels"``."""
        if self.distances.shape[1] != 4:
            return "distribution"
        return "bins" if self.integrated_in_bins else "pixels"


def _sizes(ctx: LayoutContext) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(classes, channels per location, levels) for the context."""
    c = ctx.decoder.num_classes
    return c, c + 4 * (ctx.config.reg_max + 1), ctx.level_sizes(ctx.config.strides)


def _logits(ctx: LayoutContext, default: bool) -> bool:
    mode = ctx.config.class_scores
    return default if mode is None else mode == "logits"


def _parsed(head: DenseHead, roles: dict[str, str]) -> Parsed:
    settled = {
        "class_scores": "logits" if head.scores_are_logits else "sigmoid",
        "distances": head.distance_units,
    }
    return Parsed(head, roles, settled)


def _check_distribution(ctx: LayoutContext) -> None:
    expect(ctx.config.distances in (None, "distribution"), "distances are integrated in this model")


def _single_head(
    outputs: Mapping[str, np.ndarray], ctx: LayoutContext, channels_first: bool, logits: bool
) -> Parsed:
    """One output holding every location: ``N x K`` (rows) or ``K x N`` (channels first)."""
    expect(len(outputs) == 1, f"needs one output, got {len(outputs)}")
    _check_distribution(ctx)
    name, array = next(iter(outputs.items()))
    array = squeeze(array, 2)
    c, k, levels = _sizes(ctx)
    n = sum(h * w for _, h, w in levels)
    want = (k, n) if channels_first else (n, k)
    expect(array.shape == want, f"needs shape {want[0]}x{want[1]}, got {shape_text(array)}")
    rows = array.T if channels_first else array  # a view: the decoder reads class-major scores as they are
    head = DenseHead(rows[:, :c], _logits(ctx, logits), rows[:, c:], tuple(levels))
    return _parsed(head, {"head": name})


def parse_single(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> Parsed:
    """One ``N x K`` output, sigmoid scores then bin logits per row."""
    return _single_head(outputs, ctx, channels_first=False, logits=False)


def parse_single_chw(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> Parsed:
    """One ``K x N`` output (channels first), raw logits."""
    return _single_head(outputs, ctx, channels_first=True, logits=True)


def parse_strides(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> Parsed:
    """One ``K x H x W`` raw-logit output per stride, matched to strides by spatial size."""
    c, k, levels = _sizes(ctx)
    expect(len(outputs) == len(levels), f"needs {len(levels)} outputs, got {len(outputs)}")
    _check_distribution(ctx)
    by_size = {}
    for name, array in outputs.items():
        array = squeeze(array, 3)
        expect(array.ndim == 3 and array.shape[0] == k, f"needs {k}xHxW, got {shape_text(array)}")
        by_size[array.shape[1:]] = (name, array)
    missing = [f"{h}x{w}" for _, h, w in levels if (h, w) not in by_size]
    expect(not missing, f"no output of spatial size {', '.join(missing)}")
    rows = np.concatenate([by_size[(h, w)][1].reshape(k, -1) for _, h, w in levels], axis=1).T
    roles = {f"head{s}": by_size[(h, w)][0] for s, h, w in levels}
    return _parsed(DenseHead(rows[:, :c], _logits(ctx, True), rows[:, c:], tuple(levels)), roles)


def _pairs(
    outputs: Mapping[str, np.ndarray], ctx: LayoutContext, cls_name: str, dis_name: str
) -> list[tuple[np.ndarray, np.ndarray, tuple[int, int, int]]]:
    pairs = []
    for stride, h, w in ctx.level_sizes(ctx.config.strides):
        names = (cls_name.format(s=stride), dis_name.format(s=stride))
        missing = [n for n in names if n not in outputs]
        expect(not missing, f"no output named {', '.join(missing)}")
        pairs.append((outputs[names[0]], outputs[names[1]], (stride, h, w)))
    return pairs


def _pair_roles(ctx: LayoutContext, cls_name: str, dis_name: str) -> dict[str, str]:
    roles = {}
    for s in ctx.config.strides:
        roles[f"cls{s}"], roles[f"dis{s}"] = cls_name.format(s=s), dis_name.format(s=s)
    return roles


def parse_cls_dis(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> Parsed:
    """Per-stride ``cls{s}`` (C x H x W, sigmoid) and ``dis{s}`` (H x W x 32 or 32 x H x W)."""
    c, d = ctx.decoder.num_classes, 4 * (ctx.config.reg_max + 1)
    scores, dists, levels = [], [], []
    for cls, dis, (stride, h, w) in _pairs(outputs, ctx, "cls{s}", "dis{s}"):
        cls, dis = squeeze(cls, 3), squeeze(dis, 3)
        expect(cls.shape == (c, h, w), f"cls{stride} needs {c}x{h}x{w}, got {shape_text(cls)}")
        if dis.shape == (h, w, d):
            dis = dis.reshape(h * w, d)
        elif dis.shape == (d, h, w):
            dis = dis.reshape(d, h * w).T
        else:
            raise LayoutMismatch(f"dis{stride} needs {h}x{w}x{d}, got {shape_text(dis)}")
        scores.append(cls.reshape(c, h * w))
        dists.append(dis)
        levels.append((stride, h, w))
    _check_distribution(ctx)
    class_major = np.concatenate(scores, axis=1)
    head = DenseHead(class_major.T, _logits(ctx, False), np.concatenate(dists), tuple(levels))
    return _parsed(head, _pair_roles(ctx, "cls{s}", "dis{s}"))


def parse_legacy(outputs: Mapping[str, np.ndarray], ctx: LayoutContext) -> Parsed:
    """NanoDet-m ``cls_pred_stride_{s}`` (HW x C, sigmoid) / ``dis_pred_stride_{s}`` (HW x 32 or HW x 4)."""
    c, d = ctx.decoder.num_classes, 4 * (ctx.config.reg_max + 1)
    cls_name, dis_name = "cls_pred_stride_{s}", "dis_pred_stride_{s}"
    scores, dists, levels = [], [], []
    widths = set()
    for cls, dis, (stride, h, w) in _pairs(outputs, ctx, cls_name, dis_name):
        cls, dis = squeeze(cls, 2), squeeze(dis, 2)
        expect(cls.shape == (h * w, c), f"cls_pred_stride_{stride} needs {h * w}x{c}, got {shape_text(cls)}")
        expect(
            dis.ndim == 2 and dis.shape[0] == h * w and dis.shape[1] in (d, 4),
            f"dis_pred_stride_{stride} needs {h * w}x{d} or {h * w}x4, got {shape_text(dis)}",
        )
        widths.add(dis.shape[1])
        scores.append(cls)
        dists.append(dis)
        levels.append((stride, h, w))
    expect(len(widths) == 1, "dis_pred_stride_* outputs mix integrated and raw distances")
    distances = np.concatenate(dists)
    units = ctx.config.distances
    in_bins = False
    if distances.shape[1] == 4:
        expect(units != "distribution", "distances are integrated, the config says distribution")
        in_bins = units == "bins" if units else bool(distances.max(initial=0.0) <= ctx.config.reg_max + 1e-3)
    else:
        expect(units in (None, "distribution"), f"distances are bin logits, the config says {units}")
    head = DenseHead(np.concatenate(scores), _logits(ctx, False), distances, tuple(levels), in_bins)
    return _parsed(head, _pair_roles(ctx, cls_name, dis_name))


LAYOUTS = (
    Layout("nanodet-single", parse_single, "one N x K output, sigmoid class scores then bin logits"),
    Layout("nanodet-single-chw", parse_single_chw, "one K x N output of raw logits"),
    Layout("nanodet-strides", parse_strides, "one K x H x W raw-logit output per stride"),
    Layout("nanodet-cls-dis", parse_cls_dis, "cls{s} C x H x W (sigmoid) and dis{s} H x W x 4(reg_max+1)"),
    Layout("nanodet-legacy", parse_legacy, "cls_pred_stride_{s} HW x C and dis_pred_stride_{s} HW x 32 or 4"),
)
