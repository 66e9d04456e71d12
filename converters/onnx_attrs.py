"""Attribute checks ``onnx.checker`` does not make, run before any native code sees the graph.

The checker accepts a ``Conv`` or ``MaxPool`` with ``strides=[0, 0]``; onnxsim then divides by
that stride in C++ and the process dies with SIGFPE. Every attribute that sizes a window or a
step must be positive, pads must not be negative, and per-axis lists must agree in length.
A problem is one :class:`EdgekitError` naming the node.
"""

from __future__ import annotations

import onnx
from onnx import helper

from edge.errors import EdgekitError

_WINDOW_OPS = frozenset(
    {"Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "MaxPool", "AveragePool", "LpPool",
     "MaxUnpool", "DeformConv", "Col2Im", "MaxRoiPool", "Im2Col"}
)  # fmt: skip
#: attributes that must hold positive integers (a list, or one value)
_POSITIVE = {
    "strides": _WINDOW_OPS,
    "dilations": _WINDOW_OPS,
    "kernel_shape": _WINDOW_OPS,
    "group": frozenset({"Conv", "ConvTranspose", "DeformConv", "QLinearConv", "ConvInteger"}),
    "blocksize": frozenset({"DepthToSpace", "SpaceToDepth"}),
    "pooled_shape": frozenset({"MaxRoiPool"}),
    "output_height": frozenset({"RoiAlign"}),
    "output_width": frozenset({"RoiAlign"}),
}
#: attributes that must hold integers >= 0
_NON_NEGATIVE = {"pads": _WINDOW_OPS, "output_padding": frozenset({"ConvTranspose"})}
#: pooling ops whose window must be given
_NEEDS_KERNEL = frozenset({"MaxPool", "AveragePool", "LpPool", "MaxUnpool"})


def _ints(attr: onnx.AttributeProto) -> list[int] | None:
    value = helper.get_attribute_value(attr)
    if isinstance(value, int):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(v, int) for v in value):
        return list(value)
    return None


def _node_name(node: onnx.NodeProto, index: int) -> str:
    return f"node {node.name!r} ({node.op_type})" if node.name else f"node #{index} ({node.op_type})"


def check_node(node: onnx.NodeProto, index: int = 0) -> None:
    """Raise when one node's window/step attributes would make native code divide by zero or overrun."""
    attrs = {a.name: a for a in node.attribute}
    where = _node_name(node, index)
    lengths: dict[str, int] = {}
    for name, attr in attrs.items():
        positive = node.op_type in _POSITIVE.get(name, ())
        non_negative = node.op_type in _NON_NEGATIVE.get(name, ())
        if not (positive or non_negative):
            continue
        values = _ints(attr)
        if values is None:
            raise EdgekitError(f"{where}: attribute {name} must hold integers")
        bad = [v for v in values if (v <= 0 if positive else v < 0)]
        if bad:
            rule = "positive" if positive else "0 or more"
            raise EdgekitError(f"{where}: attribute {name}={values} must be {rule}")
        if name in ("strides", "dilations", "kernel_shape", "output_padding"):
            lengths[name] = len(values)
        elif name == "pads":
            if len(values) % 2:
                raise EdgekitError(f"{where}: attribute pads={values} needs a begin and an end per axis")
            lengths[name] = len(values) // 2
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k} {v}" for k, v in lengths.items())
        raise EdgekitError(f"{where}: per-axis attributes disagree in length ({shown})")
    if node.op_type in _NEEDS_KERNEL and "kernel_shape" not in attrs:
        raise EdgekitError(f"{where}: attribute kernel_shape is required")


def check_attributes(model: onnx.ModelProto) -> None:
    """Check every node of the main graph and of its subgraphs (If / Loop bodies)."""
    pending = [model.graph]
    while pending:
        graph = pending.pop()
        for index, node in enumerate(graph.node):
            check_node(node, index)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    pending.append(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    pending.extend(attr.graphs)
