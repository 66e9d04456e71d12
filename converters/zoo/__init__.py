"""The model zoo: architecture-faithful ONNX builds of reference models whose weights we cannot ship.

``edgekit zoo build NAME -o FILE.onnx`` writes the network with seeded generated weights (or
the official ones, given as an ONNX file of the same architecture) for conversion, parity and
speed work; accuracy needs the official weights and is never claimed for generated ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge.errors import EdgekitError

if TYPE_CHECKING:  # onnx comes with the 'convert' extra; listing the zoo works without it
    import onnx

WEIGHTS_KEY = "edgekit.weights"  # ONNX metadata: "generated (seed N)" or "loaded from FILE"
ZOO_KEY = "edgekit.zoo"  # ONNX metadata: the zoo model's name
GENERATED = "generated"


@dataclass(frozen=True)
class ZooModel:
    """A model the zoo can build: its size figures from the notes and where the weights live."""

    name: str
    summary: str
    input_size: int
    gflops: float  # convolution GFLOPs at input_size
    mparams: float  # parameters, millions
    preset: str  # the decoder preset its raw outputs take
    weights_from: tuple[str, ...]  # where users get the official weights
    tolerance: float = 0.01


SSD_RESNET34 = ZooModel(
    name="ssd-resnet34-1200",
    summary="MLPerf SSD-ResNet34 1200x1200 COCO detector (433 GFLOPs, 20 M parameters)",
    input_size=1200,
    gflops=432.8,
    mparams=19.97,
    preset="ssd-resnet34",
    weights_from=(
        "MLCommons inference reference, vision/classification_and_detection: resnet34-ssd1200.onnx "
        "(https://github.com/mlcommons/inference)",
        "Open Model Zoo, model ssd-resnet34-1200-onnx "
        "(https://github.com/openvinotoolkit/open_model_zoo, models/public/ssd-resnet34-1200-onnx)",
    ),
)

MODELS = {m.name: m for m in (SSD_RESNET34,)}


def zoo_model(name: str) -> ZooModel:
    """The zoo model called ``name``, or a clear error listing the known ones."""
    if name not in MODELS:
        raise EdgekitError(f"unknown zoo model {name!r} (known: {', '.join(MODELS)})")
    return MODELS[name]


def source_weights(model: onnx.ModelProto) -> str | None:
    """What a zoo build's ONNX metadata says about its weights (None for any other ONNX)."""
    return next((p.value for p in model.metadata_props if p.key == WEIGHTS_KEY), None)
