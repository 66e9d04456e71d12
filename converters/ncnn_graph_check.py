"""Checks on a freshly converted ncnn graph: every layer type must be one ncnn can run."""

from __future__ import annotations

from pathlib import Path

import ncnn
import onnx

from converters.rank5 import explain_high_rank
from edge.errors import EdgekitError
from edge.ncnn.model import NcnnModel


def last_layer(param: Path) -> str:
    """``"Type name"`` of the graph's last layer (what produced a cut graph's output)."""
    layer = NcnnModel.read(param).layers[-1]
    return f"{layer.type} {layer.name}"


def check_supported(param: Path, model: onnx.ModelProto) -> None:
    """Raise when pnnx left a layer that ncnn cannot run (an op pnnx could not convert), naming the
    ONNX node(s) behind it where they can be told (tensors of more than 4 dimensions)."""
    layers = NcnnModel.read(param).layers
    unknown = [layer for layer in layers if ncnn.layer_to_index(layer.type) < 0]
    if not unknown:
        return
    kind, name = unknown[0].type, unknown[0].name
    more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
    high_rank = explain_high_rank(model) if kind.startswith(("Tensor.", "torch.")) else None
    if high_rank:
        raise EdgekitError(
            f"cannot convert {high_rank}: ncnn has no tensors of more than 4 dimensions (no 5-D reshape)"
            " and edgekit knows no 4-D rewrite of this pattern"
        )
    onnx_ops = {n.op_type for n in model.graph.node}
    origin = f"ONNX op {kind}" if kind in onnx_ops else f"pnnx op {kind}"
    raise EdgekitError(f"pnnx cannot convert {origin} (layer {name}){more}: ncnn has no such layer")
