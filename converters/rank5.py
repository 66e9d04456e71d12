"""5-D tensors, which ncnn does not have: rewrite the common attention pattern, explain the rest.

Attention blocks often split q, k, v as ``x (1,N,3C) -> Reshape (1,N,3,h,d) -> Transpose
(2,0,3,1,4) -> Gather 0/1/2`` (or ``Split`` + ``Squeeze``, or ``Slice [i:i+1]`` + ``Squeeze``). pnnx converts some spellings and
leaves a 5-D ``Tensor.reshape`` for others. Selecting index ``i`` along axis ``k`` of the 5-D
reshape is a slice of the input seen as ``(1, A, K, B)``, so each selected tensor is rewritten as
``Reshape (1,A,K,B) -> Slice [i:i+1] on axis 2 -> Reshape to the 4-D result -> Transpose`` with
the remaining four axes: the same values, never more than 4 dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from converters.report import Repair

WHAT = (
    "5-D Reshape/Transpose/select rewritten with 4-D Reshape, Slice and Transpose (ncnn has no 5-D tensors)"
)


def static_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Every tensor's shape where shape inference knows all of it."""
    inferred = onnx.shape_inference.infer_shapes(model)
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    shapes = {}
    for v in values:
        dims = v.type.tensor_type.shape.dim
        if v.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = [int(d.dim_value) for d in dims]
    return shapes


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


@dataclass
class _Selection:
    axis: int  # axis of the transposed 5-D tensor
    index: int
    output: str  # the 4-D tensor it gives


class _Rewriter:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.shapes = static_shapes(model)
        self.consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.users: dict[str, list[onnx.NodeProto]] = {}
        for node in model.graph.node:
            for name in node.input:
                self.users.setdefault(name, []).append(node)
        self.outputs = {o.name for o in model.graph.output}
        self.added: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, value: list[int]) -> str:
        self.count += 1
        name = f"rank5__edgekit_{self.count}"
        self.added.append(numpy_helper.from_array(np.asarray(value, np.int64), name))
        return name

    def _axes(self, node: onnx.NodeProto) -> list[int] | None:
        if len(node.input) > 1 and node.input[1]:
            return [int(a) for a in self.consts[node.input[1]]] if node.input[1] in self.consts else None
        return list(_attr(node, "axes", []))

    def _slice_pick(self, node: onnx.NodeProto, shape: list[int]) -> _Selection | None:
        """A constant ``Slice [i:i+1]`` on one axis (step 1) whose only reader squeezes that axis."""
        ins = [self.consts.get(name) if name else None for name in node.input[1:]]
        if len(ins) < 2 or any(v is None for v in ins) or any(v.size != 1 for v in ins):
            return None  # opset < 10 attributes, computed bounds or several axes
        starts, ends = int(ins[0][0]), int(ins[1][0])
        axis = int(ins[2][0]) % 5 if len(ins) > 2 else 0
        if (len(ins) > 3 and int(ins[3][0]) != 1) or not shape[axis]:
            return None
        size = shape[axis]
        start = starts + size if starts < 0 else starts
        end = min(ends + size if ends < 0 else ends, size)
        readers = self.users.get(node.output[0], [])
        if end - start != 1 or node.output[0] in self.outputs or len(readers) != 1:
            return None
        squeeze = readers[0]
        if squeeze.op_type != "Squeeze" or [a % 5 for a in self._axes(squeeze) or []] != [axis]:
            return None
        return _Selection(axis, start, squeeze.output[0])

    def _selections(self, tensor: str) -> tuple[list[_Selection], list[onnx.NodeProto]] | None:
        """What the consumers of 5-D ``tensor`` select (Gather of a constant index, a Split into
        size-1 pieces each squeezed, or a width-1 Slice squeezed), and the nodes that go; None when anything else reads it."""
        picks: list[_Selection] = []
        gone: list[onnx.NodeProto] = []
        for user in self.users.get(tensor, []):
            if user.op_type == "Gather" and user.input[0] == tensor and user.input[1] in self.consts:
                index = self.consts[user.input[1]]
                if index.ndim != 0:
                    return None
                axis = _attr(user, "axis", 0) % 5
                size = self.shapes.get(tensor, [0] * 5)[axis]
                if not size:
                    return None
                picks.append(_Selection(axis, int(index) % size, user.output[0]))
                gone.append(user)
            elif user.op_type == "Slice" and user.input[0] == tensor:
                pick = self._slice_pick(user, self.shapes.get(tensor, [0] * 5))
                if pick is None:
                    return None
                picks.append(pick)
                gone += [user, self.users[user.output[0]][0]]
            elif user.op_type == "Split" and user.input[0] == tensor:
                axis = _attr(user, "axis", 0) % 5
                for i, piece in enumerate(user.output):
                    squeezes = self.users.get(piece, [])
                    if piece in self.outputs or len(squeezes) != 1 or squeezes[0].op_type != "Squeeze":
                        return None
                    if [a % 5 for a in self._axes(squeezes[0]) or []] != [axis]:
                        return None
                    picks.append(_Selection(axis, i, squeezes[0].output[0]))
                    gone.append(squeezes[0])
                if self.shapes.get(tensor, [0] * 5)[axis] != len(user.output):
                    return None  # pieces wider than 1
                gone.append(user)
            else:
                return None
        return (picks, gone) if picks else None

    def rewrite(self, reshape: onnx.NodeProto) -> tuple[list[onnx.NodeProto], list[onnx.NodeProto]] | None:
        """(new nodes, nodes removed) for one 5-D Reshape, or None when the pattern does not fit."""
        s5 = self.shapes.get(reshape.output[0])
        if reshape.op_type != "Reshape" or not s5 or len(s5) != 5 or s5[0] != 1:
            return None
        users = self.users.get(reshape.output[0], [])
        if reshape.output[0] in self.outputs or not users:
            return None
        perm, tensor, gone = [0, 1, 2, 3, 4], reshape.output[0], [reshape]
        if len(users) == 1 and users[0].op_type == "Transpose":
            perm, tensor = list(_attr(users[0], "perm", [4, 3, 2, 1, 0])), users[0].output[0]
            gone.append(users[0])
            if tensor in self.outputs:
                return None
        found = self._selections(tensor)
        if found is None:
            return None
        picks, selectors = found
        nodes: list[onnx.NodeProto] = []
        viewed: dict[int, str] = {}
        for pick in picks:
            k = perm[pick.axis]
            rest = [perm[j] - (perm[j] > k) for j in range(5) if j != pick.axis]
            if k == 0 or rest[0] != 0:
                return None  # the batch axis itself, or batch not first: leave it to pnnx
            if k not in viewed:
                viewed[k] = f"{reshape.output[0]}__view{k}"
                view = [1, int(np.prod(s5[1:k])), s5[k], int(np.prod(s5[k + 1 :]))]
                nodes.append(helper.make_node("Reshape", [reshape.input[0], self.const(view)], [viewed[k]]))
            sliced, squeezed = f"{pick.output}__slice", f"{pick.output}__4d"
            identity = rest == [0, 1, 2, 3]
            nodes += [
                helper.make_node(
                    "Slice",
                    [viewed[k], self.const([pick.index]), self.const([pick.index + 1]), self.const([2])],
                    [sliced],
                ),
                helper.make_node(
                    "Reshape",
                    [sliced, self.const([d for j, d in enumerate(s5) if j != k])],
                    [pick.output if identity else squeezed],
                ),
            ]
            if not identity:
                nodes.append(helper.make_node("Transpose", [squeezed], [pick.output], perm=rest))
        for i, node in enumerate(nodes):
            node.name = f"{reshape.name or 'reshape'}__rank5_{i}"
        return nodes, gone + selectors


def rewrite_rank5(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[Repair]]:
    """Rewrite every 5-D reshape/transpose/select pattern (module doc); others are left to pnnx."""
    rewriter = _Rewriter(model)
    removed: set[int] = set()
    placed: dict[int, list[onnx.NodeProto]] = {}
    names: list[str] = []
    for node in model.graph.node:
        done = rewriter.rewrite(node) if node.op_type == "Reshape" else None
        if done is None or any(id(n) in removed for n in done[1]):
            continue
        placed[id(node)] = done[0]
        removed.update(id(n) for n in done[1])
        names.append(node.name or node.output[0])
    if not names:
        return model, []
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    for node in model.graph.node:
        out.graph.node.extend(placed.get(id(node), []))
        if id(node) not in removed:
            out.graph.node.append(node)
    out.graph.initializer.extend(rewriter.added)
    return out, [Repair(WHAT, tuple(names))]


def explain_high_rank(model: onnx.ModelProto) -> str | None:
    """``ONNX node(s) 'a' (Reshape to 1x64x3x2x4), ...``: nodes that make tensors of more than 4-D."""
    shapes = static_shapes(model)
    found = []
    for node in model.graph.node:
        for out in node.output:
            shape = shapes.get(out)
            if shape is not None and len(shape) > 4:
                found.append(f"{node.name or out!r} ({node.op_type} to {'x'.join(map(str, shape))})")
                break
    if not found:
        return None
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    return f"ONNX node(s) {', '.join(found[:3])}{more}"
