"""Rewrite ONNX ``Slice`` with steps > 1 (YOLOX's Focus, ``x[..., ::2, ::2]``) for pnnx.

pnnx turns a strided Slice into ``Tensor.slice``, which has no ncnn layer. The same elements are
a unit-step slice of a reshaped view: along axis ``a`` of length ``d`` (``d % k == 0``), element
``i * k + j`` sits at ``(i, j * Q + q)`` of the tensor reshaped to ``(1, P, d / k, k * Q)``
(``P`` the product of the axes between the batch and ``a``, ``Q`` of those after it). So each
strided axis becomes Reshape (4-D) -> Slice (step 1 on the last two axes) -> Reshape back,
which pnnx converts to Reshape and Crop. Pure data movement: exact in every precision.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper

INT_MAX = 2**63 - 1


def _normalise(value: int, dim: int) -> int:
    value = value + dim if value < 0 else value
    return max(0, min(value, dim))


def rewrite_strided_slice(ctx: Any, node: onnx.NodeProto) -> tuple[list, list] | None:
    """The rewrite of one strided ``Slice`` (``ctx``: graph_repair's context), or None."""
    if node.op_type != "Slice" or len(node.input) < 5 or not node.input[4]:
        return None
    consts = [ctx.consts.get(name) for name in node.input[1:5]]
    shape = ctx.static_shape(node.input[0])
    if shape is None or shape[0] != 1 or any(c is None for c in consts):
        return None
    starts, ends, axes, steps = (np.asarray(c, np.int64).ravel().tolist() for c in consts)
    axes = [a % len(shape) for a in axes]
    if all(s == 1 for s in steps) or any(s < 1 for s in steps):
        return None
    plan = []
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        dim = shape[axis]
        if step == 1:
            continue
        if axis == 0 or dim % step:
            return None
        begin, stop = _normalise(start, dim), _normalise(min(end, INT_MAX), dim)
        column, first = begin % step, begin // step
        last = max(first, -(-(stop - column) // step))  # rows i with i * step + column < stop
        plan.append((axis, step, first, last, column))
    nodes, inits = [], []
    current, current_shape = node.input[0], list(shape)
    unit = [(s, e, a) for a, s, e, k in zip(axes, starts, ends, steps, strict=True) if k == 1]
    if unit:  # the unit-step axes stay one ordinary Slice
        out = ctx.fresh(node.output[0])
        parts = [
            ctx.const(n, np.asarray(v, np.int64))
            for n, v in zip(("starts", "ends", "axes"), zip(*unit, strict=True), strict=True)
        ]
        nodes.append(
            helper.make_node("Slice", [current, *(p.name for p in parts)], [out], name=ctx.fresh(node.name))
        )
        inits.extend(parts)
        for s, e, a in unit:
            current_shape[a] = len(range(*slice(s, e).indices(current_shape[a])))
        current = out
    for index, (axis, step, first, last, column) in enumerate(plan):
        dim = current_shape[axis]
        p, q = int(np.prod(current_shape[1:axis])), int(np.prod(current_shape[axis + 1 :]))
        view = ctx.const("shape", np.asarray([1, p, dim // step, step * q], np.int64))
        starts_c = ctx.const("starts", np.asarray([first, column * q], np.int64))
        ends_c = ctx.const("ends", np.asarray([last, (column + 1) * q], np.int64))
        axes_c = ctx.const("axes", np.asarray([2, 3], np.int64))
        current_shape[axis] = last - first
        back = ctx.const("shape", np.asarray(current_shape, np.int64))
        viewed, sliced = ctx.fresh(node.output[0]), ctx.fresh(node.output[0])
        out = node.output[0] if index == len(plan) - 1 else ctx.fresh(node.output[0])
        nodes += [
            helper.make_node("Reshape", [current, view.name], [viewed], name=ctx.fresh(node.name)),
            helper.make_node(
                "Slice",
                [viewed, starts_c.name, ends_c.name, axes_c.name],
                [sliced],
                name=node.name if index == 0 else ctx.fresh(node.name),
            ),
            helper.make_node("Reshape", [sliced, back.name], [out], name=ctx.fresh(node.name)),
        ]
        inits += [view, starts_c, ends_c, axes_c, back]
        current = out
    return nodes, inits
