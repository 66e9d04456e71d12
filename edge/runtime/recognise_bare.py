"""Which family a bare ``.param`` (no manifest) is, for ``--preset auto``; never a silent guess.

The output blob shapes are inferred from the graph at the input size, and every registered
preset's layout parsers (the ones ``detect`` runs) are offered zero arrays of those shapes, the
preset the output names suggest first. Where shapes cannot be inferred, the names decide. A model
nobody recognises is an error listing the families edgekit knows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.decoders import parse_outputs
from edge.decoders.registry import guess_preset, known_families, preset_names
from edge.errors import EdgekitError, ModelFormatError
from edge.manifest import decoder_spec_from_preset
from edge.ncnn.model import NcnnModel
from edge.ncnn.shapes import infer_shapes


def unrecognised(what: str) -> EdgekitError:
    """The one-line error for a model no family recognises."""
    return EdgekitError(
        f"{what} is not a detector edgekit recognises; known families (presets): {known_families()}; "
        "pass --preset NAME if it is one of them"
    )


def _output_shapes(
    param: Path, outputs: tuple[str, ...], input_name: str, chw: tuple[int, int, int]
) -> dict[str, tuple[int, ...]] | None:
    """Numpy-order shapes of the output blobs (as ncnn returns them), or None when not inferable."""
    try:
        shapes = infer_shapes(NcnnModel.read(param), {input_name: chw})
    except ModelFormatError:
        return None
    found = {name: shapes.get(name) for name in outputs}
    if any(s is None for s in found.values()):
        return None
    return {name: tuple(reversed(s)) for name, s in found.items()}  # type: ignore[arg-type]


def recognise_bare(param: Path, outputs: tuple[str, ...], input_name: str, chw: tuple[int, int, int]) -> str:
    """The preset of a bare model at input ``chw`` (channels, height, width), or an error."""
    named = guess_preset(outputs)
    shapes = _output_shapes(param, outputs, input_name, chw)
    if shapes is None:
        if named is None:
            raise unrecognised(f"{param.name} (outputs {', '.join(outputs)})")
        return named
    arrays = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    for preset in dict.fromkeys([*([named] if named else []), *preset_names()]):
        try:
            parse_outputs(arrays, decoder_spec_from_preset(preset), chw[2], chw[1])
        except EdgekitError:
            continue
        return preset
    shown = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in shapes.items())
    raise unrecognised(f"{param.name} (outputs {shown})")
