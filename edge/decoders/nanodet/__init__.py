"""The NanoDet family (NanoDet-Plus and the 2020 NanoDet-m): config, presets, recognition, guess.

Layouts are in ``layouts.py``, the decode function in ``decode.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from edge.decoders.coco import COCO_CATEGORY_IDS, coco_class_names
from edge.decoders.family import Family, OutputInfo, Preset, Recognised
from edge.decoders.nanodet.decode import decode_nanodet
from edge.decoders.nanodet.layouts import LAYOUTS, DenseHead
from edge.decoders.registry import register_family
from edge.decoders.spec import bounded

__all__ = ["FAMILY", "DenseHead", "NanodetConfig"]


@dataclass(frozen=True)
class NanodetConfig:
    """NanoDet decoder parameters.

    ``class_scores``: ``"sigmoid"`` (probabilities) or ``"logits"``; ``distances``:
    ``"distribution"`` (``4 x (reg_max + 1)`` bin logits per location), or already integrated,
    in ``"bins"`` (times the stride gives pixels) or ``"pixels"``. None: as the layout implies.
    """

    strides: tuple[int, ...] = bounded(minimum=1, min_items=1)
    reg_max: int = bounded(minimum=0, default=7)
    center_offset: float = 0.0
    class_scores: str | None = None
    distances: str | None = None


MEAN = (103.53, 116.28, 123.675)
NORM = (1 / 57.375, 1 / 57.12, 1 / 58.395)


def _preset(name: str, config: NanodetConfig) -> Preset:
    return Preset(
        name=name,
        config=config,
        color="BGR",
        mean=MEAN,
        norm=NORM,
        class_names=coco_class_names(),
        category_ids=COCO_CATEGORY_IDS,
    )


PLUS = _preset("nanodet-plus", NanodetConfig(strides=(8, 16, 32, 64), center_offset=0.0))
LEGACY = _preset("nanodet-m", NanodetConfig(strides=(8, 16, 32), center_offset=0.5))

PLUS_MEANING = "per location: {c} class scores (sigmoid applied) then 4x{b} distance-distribution logits"


def _locations(width: int, height: int, strides: Sequence[int]) -> int:
    return sum(math.ceil(height / s) * math.ceil(width / s) for s in strides)


def _recognise_plus(outputs: Sequence[OutputInfo], width: int, height: int) -> Recognised | None:
    if len(outputs) != 1 or len(outputs[0].shape) != 3:
        return None
    _, n, channels = outputs[0].shape
    bins = PLUS.config.reg_max + 1
    if n != _locations(width, height, PLUS.config.strides) or not isinstance(channels, int):
        return None
    if channels <= 4 * bins:
        return None
    classes = channels - 4 * bins
    return Recognised(PLUS.name, classes, [PLUS_MEANING.format(c=classes, b=bins)])


def _recognise_legacy(outputs: Sequence[OutputInfo], width: int, height: int) -> Recognised | None:
    strides = LEGACY.config.strides
    if len(outputs) != 2 * len(strides):
        return None
    counts = {math.ceil(height / s) * math.ceil(width / s): s for s in strides}
    classes, meanings = set(), []
    for out in outputs:
        if len(out.shape) != 3 or out.shape[1] not in counts:
            return None
        stride = counts[out.shape[1]]
        if "cls" in out.name:
            classes.add(out.shape[2])
            meanings.append(f"stride {stride}: class scores (sigmoid applied)")
        elif "dis" in out.name or "reg" in out.name:
            meanings.append(f"stride {stride}: box distances ({out.shape[2]} per location)")
        else:
            return None
    if len(classes) != 1:
        return None
    return Recognised(LEGACY.name, classes.pop(), meanings)


def recognise(outputs: Sequence[OutputInfo], width: int, height: int) -> Recognised | None:
    """NanoDet-Plus (one ``1 x N x K`` output) or NanoDet-m (``cls``/``dis`` pairs per stride)."""
    return _recognise_plus(outputs, width, height) or _recognise_legacy(outputs, width, height)


def guess(output_names: Sequence[str]) -> str | None:
    """NanoDet-m for ``cls_pred_stride_*`` outputs, NanoDet-Plus for a single or ``cls{s}`` head
    (but not ultralytics' ``output0``, which is YOLOv8's)."""
    if any(n.startswith("cls_pred_stride_") for n in output_names):
        return LEGACY.name
    if list(output_names) == ["output0"]:
        return None
    if len(output_names) == 1 or any(n in ("cls8", "dis8") for n in output_names):
        return PLUS.name
    return None


FAMILY = register_family(
    Family(
        name="nanodet",
        config_type=NanodetConfig,
        presets=(PLUS, LEGACY),
        layouts=LAYOUTS,
        decode=decode_nanodet,
        recognise=recognise,
        guess=guess,
    )
)
