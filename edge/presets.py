"""Model-family presets: data only. Each names its preprocessing and decoder parameters.

A preset is the single place where a family's numbers live (mean, norm, strides, reg_max,
centre offset, thresholds); decoders read them from the manifest's ``decoder`` section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from edge.errors import EdgekitError
from edge.manifest import DecoderSpec, InputSpec


@cache
def coco_class_names() -> tuple[str, ...]:
    """The 80 COCO category names in contiguous-id order."""
    text = (Path(__file__).with_name("coco_names.txt")).read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


# COCO's 80 contiguous classes -> official category ids (1..90 with gaps).
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
)  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """A detector family's preprocessing and decoder parameters."""

    name: str
    family: str  # which decode function: "nanodet" or "ssd"
    color: str
    mean: tuple[float, float, float]
    norm: tuple[float, float, float]
    resize: str
    strides: tuple[int, ...] = ()
    reg_max: int = 7
    num_classes: int = 80
    center_offset: float = 0.0
    score_threshold: float = 0.4
    nms_threshold: float = 0.5
    max_detections: int = 100
    extra: dict = field(default_factory=dict)


NANODET_MEAN = (103.53, 116.28, 123.675)
NANODET_NORM = (1 / 57.375, 1 / 57.12, 1 / 58.395)

PRESETS: dict[str, Preset] = {
    "nanodet-plus": Preset(
        name="nanodet-plus",
        family="nanodet",
        color="BGR",
        mean=NANODET_MEAN,
        norm=NANODET_NORM,
        resize="stretch",
        strides=(8, 16, 32, 64),
        center_offset=0.0,
    ),
    "nanodet-m": Preset(
        name="nanodet-m",
        family="nanodet",
        color="BGR",
        mean=NANODET_MEAN,
        norm=NANODET_NORM,
        resize="stretch",
        strides=(8, 16, 32),
        center_offset=0.5,
    ),
    "ssd-resnet34": Preset(
        name="ssd-resnet34",
        family="ssd",
        color="RGB",
        mean=(123.675, 116.28, 103.53),
        norm=(1 / 58.395, 1 / 57.12, 1 / 57.375),
        resize="stretch",
        num_classes=80,
        score_threshold=0.05,
        nms_threshold=0.5,
        max_detections=200,
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``, or a clear error listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise EdgekitError(f"unknown preset {name!r}; known presets: {known}") from None


def input_spec_from_preset(preset: Preset, ncnn_name: str, width: int, height: int) -> InputSpec:
    """The :class:`InputSpec` a preset implies for an input blob of the given size."""
    return InputSpec(
        name=ncnn_name,
        ncnn_name=ncnn_name,
        shape=[1, 3, height, width],
        color=preset.color,
        mean=list(preset.mean),
        norm=list(preset.norm),
        resize=preset.resize,
    )


def decoder_spec_from_preset(preset: Preset) -> DecoderSpec:
    """The :class:`DecoderSpec` a preset implies."""
    names = list(coco_class_names()) if preset.num_classes == 80 else []
    return DecoderSpec(
        preset=preset.name,
        family=preset.family,
        strides=list(preset.strides),
        reg_max=preset.reg_max,
        num_classes=preset.num_classes,
        class_names=names,
        center_offset=preset.center_offset,
        score_threshold=preset.score_threshold,
        nms_threshold=preset.nms_threshold,
        max_detections=preset.max_detections,
        extra=dict(preset.extra),
    )
