"""Recognise a detector family from an ONNX graph's outputs and fill its decoder settings."""

from __future__ import annotations

import math

from converters.onnx_check import TensorInfo
from edge.errors import EdgekitError
from edge.manifest import DecoderSpec
from edge.presets import Preset, decoder_spec_from_preset, get_preset

PLUS_MEANING = "per location: {c} class scores (sigmoid applied) then 4x{b} distance-distribution logits"


def _locations(height: int, width: int, strides: tuple[int, ...]) -> int:
    return sum(math.ceil(height / s) * math.ceil(width / s) for s in strides)


def _match_nanodet_plus(outputs: list[TensorInfo], hw: tuple[int, int], preset: Preset) -> dict | None:
    if len(outputs) != 1 or len(outputs[0].shape) != 3:
        return None
    _, n, width = outputs[0].shape
    bins = 4 * (preset.reg_max + 1)
    if n != _locations(*hw, preset.strides) or not isinstance(width, int) or width <= bins:
        return None
    classes = width - bins
    return {"num_classes": classes, "meanings": [PLUS_MEANING.format(c=classes, b=preset.reg_max + 1)]}


def _match_nanodet_m(outputs: list[TensorInfo], hw: tuple[int, int], preset: Preset) -> dict | None:
    if len(outputs) != 2 * len(preset.strides):
        return None
    counts = {math.ceil(hw[0] / s) * math.ceil(hw[1] / s): s for s in preset.strides}
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
    return {"num_classes": classes.pop(), "meanings": meanings}


MATCHERS = {"nanodet-plus": _match_nanodet_plus, "nanodet-m": _match_nanodet_m}


def detect_preset(
    requested: str, outputs: list[TensorInfo], input_shape: list[int]
) -> tuple[Preset | None, DecoderSpec | None, list[str]]:
    """The preset for these outputs (``auto`` tries each), its decoder spec and output meanings.

    ``requested`` is ``auto``, ``none`` or a preset name; a named preset that does not fit the
    outputs is an error that says what the graph has.
    """
    if requested == "none":
        return None, None, ["" for _ in outputs]
    hw = (input_shape[2], input_shape[3])
    names = list(MATCHERS) if requested == "auto" else [requested]
    for name in names:
        preset = get_preset(name)
        matcher = MATCHERS.get(name)
        if matcher is None:
            raise EdgekitError(f"preset {name!r} cannot be matched to an ONNX graph by convert")
        found = matcher(outputs, hw, preset)
        if found:
            classes = found["num_classes"]
            spec = decoder_spec_from_preset(preset)
            if classes != spec.num_classes:
                spec.num_classes, spec.class_names = classes, [f"class{i}" for i in range(classes)]
            return preset, spec, found["meanings"]
    shown = ", ".join(f"{o.name} {list(o.shape)}" for o in outputs)
    if requested == "auto":
        return None, None, ["" for _ in outputs]
    raise EdgekitError(f"the model's outputs ({shown}) do not match preset {requested!r}")
