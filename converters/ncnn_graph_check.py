"""Checks on a freshly converted ncnn graph: every layer type must be one ncnn can run."""

from __future__ import annotations

from pathlib import Path

import ncnn

from edge.errors import EdgekitError
from edge.ncnn.model import NcnnModel


def last_layer(param: Path) -> str:
    """``"Type name"`` of the graph's last layer (what produced a cut graph's output)."""
    layer = NcnnModel.read(param).layers[-1]
    return f"{layer.type} {layer.name}"


def check_supported(param: Path, onnx_ops: set[str]) -> None:
    """Raise when pnnx left a layer that ncnn cannot run (an op pnnx could not convert)."""
    layers = NcnnModel.read(param).layers
    unknown = [layer for layer in layers if ncnn.layer_to_index(layer.type) < 0]
    if unknown:
        kind, name = unknown[0].type, unknown[0].name
        origin = f"ONNX op {kind}" if kind in onnx_ops else f"pnnx op {kind}"
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise EdgekitError(f"pnnx cannot convert {origin} (layer {name}){more}: ncnn has no such layer")
