"""Build a zoo model to an ONNX file: network, weights (generated or loaded), optional original tail."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from converters.zoo import GENERATED, WEIGHTS_KEY, ZOO_KEY, ZooModel, zoo_model
from converters.zoo.ssd_postprocess import append_tail
from converters.zoo.ssd_resnet34 import build_network
from converters.zoo.stats import GraphSize, graph_size
from converters.zoo.weights import load_weights
from edge.atomic import write_bytes
from edge.decoders.ssd import config_for_input
from edge.errors import EdgekitError
from edge.manifest import decoder_spec_from_preset


@dataclass(frozen=True)
class ZooBuild:
    """What ``zoo build`` wrote and measured."""

    path: Path
    model: ZooModel
    input_size: int
    size: GraphSize  # of the network without the post-processing tail
    weights: str  # "generated (seed N)" or "loaded from FILE: ..."
    with_postprocess: bool

    def checks(self) -> list[tuple[str, float, float | None, bool]]:
        """``(figure, measured, expected, within tolerance)``; FLOPs only compare at full size."""
        full = self.input_size == self.model.input_size
        tol = self.model.tolerance
        flops_ok = not full or abs(self.size.gflops / self.model.gflops - 1) <= tol
        params_ok = abs(self.size.mparams / self.model.mparams - 1) <= tol
        return [
            ("GFLOPs (convolutions)", self.size.gflops, self.model.gflops if full else None, flops_ok),
            ("M parameters", self.size.mparams, self.model.mparams, params_ok),
        ]


def build_zoo_model(
    name: str,
    out: Path,
    *,
    weights: str = GENERATED,
    with_postprocess: bool = False,
    input_size: int | None = None,
    seed: int = 0,
) -> ZooBuild:
    """Write zoo model ``name`` to ``out`` and check its size against the notes.

    ``weights`` is ``"generated"`` (seeded) or the path of an ONNX file of the same architecture.
    """
    found = zoo_model(name)
    size = input_size or found.input_size
    model = build_network(size, seed).model
    if weights == GENERATED:
        described = f"generated (seed {seed})"
    else:
        path = Path(weights)
        described = f"loaded from {path.name}: {load_weights(model, path)}"
    measured = graph_size(model)
    if with_postprocess:
        spec = decoder_spec_from_preset(found.preset)
        append_tail(model, config_for_input(spec.config, size, size))
    onnx.helper.set_model_props(model, {ZOO_KEY: found.name, WEIGHTS_KEY: described})
    onnx.checker.check_model(model)
    result = ZooBuild(Path(out), found, size, measured, described, with_postprocess)
    bad = [c for c in result.checks() if not c[3]]
    if bad:
        figure, got, expected, _ = bad[0]
        raise EdgekitError(f"{name}: {figure} {got:.2f} is off the notes' {expected} by more than 1 %")
    out = Path(out)
    write_bytes(out, model.SerializeToString())  # atomic: no partial file, even into '..'
    return result
