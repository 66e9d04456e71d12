"""The input and decoder specs a family preset implies (bare models, ``--preset`` overrides, convert)."""

from __future__ import annotations

from edge.decoders.registry import find_preset
from edge.decoders.spec import DecoderSpec
from edge.manifest.model import InputSpec


def input_spec_from_preset(preset: str, ncnn_name: str, width: int, height: int) -> InputSpec:
    """The :class:`InputSpec` preset ``preset`` implies for an input blob of the given size."""
    _, found = find_preset(preset)
    return InputSpec(
        name=ncnn_name,
        ncnn_name=ncnn_name,
        shape=[1, 3, height, width],
        color=found.color,
        mean=list(found.mean),
        norm=list(found.norm),
        resize=found.resize,
        pad_multiple=found.pad_multiple,
        pad_value=found.pad_value,
    )


def decoder_spec_from_preset(preset: str, num_classes: int | None = None) -> DecoderSpec:
    """The :class:`DecoderSpec` preset ``preset`` implies (layout ``auto``).

    ``num_classes`` other than the preset's replaces its classes with ``class0``, ``class1``, ...
    """
    family, found = find_preset(preset)
    names, ids = list(found.class_names), list(found.category_ids)
    if num_classes is not None and num_classes != len(names):
        names, ids = [f"class{i}" for i in range(num_classes)], []
    return DecoderSpec(
        family=family.name,
        preset=found.name,
        config=found.config,
        class_names=names,
        category_ids=ids,
        score_threshold=found.score_threshold,
        nms_threshold=found.nms_threshold,
        max_detections=found.max_detections,
    )
