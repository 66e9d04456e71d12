"""Refuse, before pnnx runs, ONNX nodes that pnnx is known not to convert, naming each node.

- Operators outside the standard ONNX domain (onnxruntime's ``com.microsoft`` contrib ops, e.g.
  ``DynamicQuantizeLSTM`` written by onnxruntime's dynamic quantization): the onnxruntime inside
  pnnx does not know them and pnnx crashes.
- ``LSTM``, ``GRU``, ``RNN`` (pnnx 20261020): pnnx's ONNX import writes the ncnn layer without
  its weights and sizes (``num_output`` 0), which ncnn cannot run.
"""

from __future__ import annotations

import onnx

from edge.errors import EdgekitError

STANDARD_DOMAINS = ("", "ai.onnx")
NO_PNNX_OPS = {
    op: f"pnnx's ONNX import writes the ncnn {op} layer without its weights, so ncnn cannot run it"
    for op in ("LSTM", "GRU", "RNN")
}
SHOWN = 3


def _named(nodes: list[onnx.NodeProto], label) -> str:
    shown = ", ".join(f"'{n.name or n.output[0]}' ({label(n)})" for n in nodes[:SHOWN])
    return shown + (f" and {len(nodes) - SHOWN} more" if len(nodes) > SHOWN else "")


def refuse_unconvertible(model: onnx.ModelProto) -> None:
    """Raise one clear line if ``model`` holds a node pnnx cannot convert."""
    nodes = list(model.graph.node)
    custom = [n for n in nodes if n.domain not in STANDARD_DOMAINS]
    if custom:
        raise EdgekitError(
            f"cannot convert ONNX node(s) {_named(custom, lambda n: f'{n.domain}::{n.op_type}')}: operators"
            " outside the standard ONNX domain have no pnnx/ncnn equivalent; export the model with"
            " standard ONNX operators (e.g. the float model before onnxruntime's quantization)"
        )
    for op, reason in NO_PNNX_OPS.items():
        found = [n for n in nodes if n.op_type == op]
        if found:
            raise EdgekitError(f"cannot convert ONNX node(s) {_named(found, lambda n: n.op_type)}: {reason}")
