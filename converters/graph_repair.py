"""Repairs for known ONNX -> pnnx conversion gaps, applied to the simplified ONNX graph.

Each repair finds a pattern that pnnx converts without complaint but computes differently
(found by edgekit's parity bisection), and rewrites it into an equivalent form that pnnx
converts correctly. Every rewrite is checked by the parity step like the rest of the graph.

Known gaps (pnnx 20261020):
- Softmax / LogSoftmax before opset 13 coerce the input to 2-D at ``axis``; pnnx applies a
  per-axis softmax instead. Rewritten as Reshape to 2-D, softmax on the last axis, Reshape back.
- Gemm with alpha/beta other than 1 loses them (wrong output size). Folded into B and C.
- Resize linear with ``asymmetric`` coordinates becomes a half-pixel Interp. Rewritten as
  edge Pad, align-corners Resize to n*s+1, and a Slice back to n*s (identical sampling).
- Slice with steps > 1 (YOLOX's Focus) becomes ``Tensor.slice``, which has no ncnn layer.
  Rewritten as 4-D Reshape + unit-step Slice + Reshape (:mod:`converters.strided_slice`).

Not repairable here (parity catches them and names the node): SpaceToDepth (pnnx's Reorg
orders channels c*b*b + k, ONNX k*C + c, and ncnn has no 5-D reshape to rewrite it with);
DepthToSpace in DCR mode and nearest Resize with half-pixel rounding have no ncnn layer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from converters.report import Repair
from converters.strided_slice import rewrite_strided_slice

Rewrite = tuple[list[onnx.NodeProto], list[onnx.TensorProto]]


class _Context:
    """Shapes, constants and fresh names for the rewrites of one graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        inferred = onnx.shape_inference.infer_shapes(model)
        values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
        self.shapes = {
            v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
            for v in values
        }
        self.consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.counter = 0

    def static_shape(self, name: str) -> list[int] | None:
        shape = self.shapes.get(name)
        return shape if shape and all(isinstance(d, int) and d > 0 for d in shape) else None

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}__edgekit_{self.counter}"

    def const(self, base: str, value: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(value), self.fresh(base))


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _softmax_opset11(ctx: _Context, node: onnx.NodeProto) -> Rewrite | None:
    if node.op_type not in ("Softmax", "LogSoftmax") or ctx.opset >= 13:
        return None
    shape = ctx.static_shape(node.input[0])
    if shape is None:
        return None
    axis = _attr(node, "axis", 1) % len(shape)
    if axis == len(shape) - 1:
        return None
    rows, cols = int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))
    mid_in, mid_out = ctx.fresh(node.output[0]), ctx.fresh(node.output[0])
    flat = ctx.const("shape", np.asarray([rows, cols], np.int64))
    back = ctx.const("shape", np.asarray(shape, np.int64))
    nodes = [
        helper.make_node("Reshape", [node.input[0], flat.name], [mid_in], name=ctx.fresh(node.name)),
        helper.make_node(node.op_type, [mid_in], [mid_out], name=node.name, axis=1),
        helper.make_node("Reshape", [mid_out, back.name], [node.output[0]], name=ctx.fresh(node.name)),
    ]
    return nodes, [flat, back]


def _gemm_alpha_beta(ctx: _Context, node: onnx.NodeProto) -> Rewrite | None:
    if node.op_type != "Gemm":
        return None
    alpha, beta = _attr(node, "alpha", 1.0), _attr(node, "beta", 1.0)
    if (alpha == 1.0 and beta == 1.0) or node.input[1] not in ctx.consts:
        return None
    has_c = len(node.input) > 2 and node.input[2]
    if has_c and node.input[2] not in ctx.consts:
        return None
    weight = ctx.const("gemm_b", (ctx.consts[node.input[1]] * alpha).astype(np.float32))
    inputs, inits = [node.input[0], weight.name], [weight]
    if has_c:
        bias = ctx.const("gemm_c", (ctx.consts[node.input[2]] * beta).astype(np.float32))
        inputs.append(bias.name)
        inits.append(bias)
    kept = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name in ("transA", "transB")}
    return [helper.make_node("Gemm", inputs, list(node.output), name=node.name, **kept)], inits


def _resize_asymmetric_linear(ctx: _Context, node: onnx.NodeProto) -> Rewrite | None:
    if node.op_type != "Resize" or _attr(node, "mode", b"nearest") not in (b"linear", "linear"):
        return None
    if _attr(node, "coordinate_transformation_mode", b"half_pixel") not in (b"asymmetric", "asymmetric"):
        return None
    src, dst = ctx.static_shape(node.input[0]), ctx.static_shape(node.output[0])
    if src is None or dst is None or len(src) != 4 or src[:2] != dst[:2]:
        return None
    (h, w), (oh, ow) = src[2:], dst[2:]
    if oh % h or ow % w:  # only integer scales sample exactly like align-corners on the padded input
        return None
    padded, resized = ctx.fresh(node.output[0]), ctx.fresh(node.output[0])
    pads = ctx.const("pads", np.asarray([0, 0, 0, 0, 0, 0, 1, 1], np.int64))
    sizes = ctx.const("sizes", np.asarray([src[0], src[1], oh + 1, ow + 1], np.int64))  # n*s + 1
    starts = ctx.const("starts", np.asarray([0, 0], np.int64))
    ends = ctx.const("ends", np.asarray([oh, ow], np.int64))
    axes = ctx.const("axes", np.asarray([2, 3], np.int64))
    nodes = [
        helper.make_node("Pad", [node.input[0], pads.name], [padded], name=ctx.fresh(node.name), mode="edge"),
        helper.make_node(
            "Resize", [padded, "", "", sizes.name], [resized], name=node.name,
            mode="linear", coordinate_transformation_mode="align_corners",
        ),
        helper.make_node("Slice", [resized, starts.name, ends.name, axes.name], list(node.output),
                         name=ctx.fresh(node.name)),
    ]  # fmt: skip
    return nodes, [pads, sizes, starts, ends, axes]


REPAIRS: dict[str, Callable[[_Context, onnx.NodeProto], Rewrite | None]] = {
    "Softmax/LogSoftmax before opset 13 rewritten with explicit 2-D reshape": _softmax_opset11,
    "Gemm alpha/beta folded into its constants": _gemm_alpha_beta,
    "Resize linear/asymmetric rewritten as edge Pad + align-corners Resize + Slice": _resize_asymmetric_linear,
    "Slice with steps > 1 rewritten as 4-D Reshape + unit-step Slice + Reshape": rewrite_strided_slice,
}


def repair_known_gaps(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[Repair]]:
    """Apply every known repair; returns the (possibly new) model and what changed where."""
    ctx = _Context(model)
    new_nodes: list[onnx.NodeProto] = []
    counts: dict[str, list[str]] = {}
    added: list[onnx.TensorProto] = []
    for node in model.graph.node:
        for note, repair in REPAIRS.items():
            rewrite = repair(ctx, node)
            if rewrite is not None:
                new_nodes.extend(rewrite[0])
                added.extend(rewrite[1])
                counts.setdefault(note, []).append(node.name or node.op_type)
                break
        else:
            new_nodes.append(node)
    if not counts:
        return model, []
    repaired = onnx.ModelProto()
    repaired.CopyFrom(model)
    del repaired.graph.node[:]
    repaired.graph.node.extend(new_nodes)
    repaired.graph.initializer.extend(added)
    return repaired, [Repair(note, tuple(names)) for note, names in counts.items()]
