"""Recognise a detector family from an ONNX graph's outputs (through the family registry)."""

from __future__ import annotations

from converters.onnx_check import TensorInfo
from edge.decoders.registry import find_preset, recognise
from edge.decoders.spec import DecoderSpec
from edge.errors import EdgekitError
from edge.manifest import decoder_spec_from_preset


def detect_preset(
    requested: str, outputs: list[TensorInfo], input_shape: list[int]
) -> tuple[str | None, DecoderSpec | None, list[str]]:
    """The preset name for these outputs (``auto`` asks every family), its decoder spec (layout
    still ``auto``) and one meaning per output.

    ``requested`` is ``auto``, ``none`` or a preset name; a named preset that does not fit the
    outputs is an error that says what the graph has.
    """
    blank = ["" for _ in outputs]
    if requested == "none":
        return None, None, blank
    if requested != "auto":
        find_preset(requested)  # an unknown name is an error listing the known ones
    height, width = int(input_shape[2]), int(input_shape[3])
    found = recognise(outputs, width, height, only=None if requested == "auto" else requested)
    if found is not None:
        return found.preset, decoder_spec_from_preset(found.preset, found.num_classes), found.meanings
    if requested == "auto":
        return None, None, blank
    shown = ", ".join(f"{o.name} {list(o.shape)}" for o in outputs)
    raise EdgekitError(f"the model's outputs ({shown}) do not match preset {requested!r}")
