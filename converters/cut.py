"""Cut an ONNX graph's post-processing tail off before conversion: ncnn runs the network only.

Detectors are often exported with their decode and NMS inside the graph (NonMaxSuppression,
TopK, NonZero and the data-dependent Gathers that follow). ncnn cannot run those, and a
decoder family does that work in Python anyway. :func:`plan_cut` finds the tail (those ops and
everything computed from their outputs) and picks where to cut:

- ``--outputs NAME,...``: at the named tensors, any graph;
- otherwise, for a known preset (``auto`` or named), at the earliest tensors, upstream of the
  tail, whose shapes the preset's family recognises as its raw head outputs (for SSD-ResNet34:
  ``loc`` 1x4x15130 and ``conf`` 1x81x15130, the MLPerf file's ``Concat_470`` / ``Concat_471``);
- a graph with such a tail and no known preset is one error naming the ops and ``--outputs``.

The cut graph comes from :func:`onnx.utils.Extractor`; the manifest records the cut.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import onnx
from onnx.utils import Extractor

from converters.onnx_check import TensorInfo
from edge.decoders.registry import recognise
from edge.errors import EdgekitError

# ops ncnn has no layer for and whose outputs have data-dependent shapes
TAIL_OPS = frozenset({"NonMaxSuppression", "TopK", "NonZero", "Unique", "Loop", "If", "Scan"})
MAX_CANDIDATES = 400


@dataclass
class Cut:
    """Where a graph was cut and what went: the manifest's ``conversion.cut``."""

    at: list[str]  # tensors that became the graph outputs
    how: str  # "preset": found from the preset's raw outputs; "outputs": named with --outputs
    original_outputs: list[str]
    removed_nodes: int
    removed_ops: dict[str, int] = field(default_factory=dict)
    replaced_by: str | None = None  # decoder family that does the removed work, if any

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": list(self.at),
            "how": self.how,
            "original_outputs": list(self.original_outputs),
            "removed_nodes": self.removed_nodes,
            "removed_ops": dict(self.removed_ops),
            "replaced_by": self.replaced_by,
        }

    def describe(self) -> str:
        ops = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in sorted(self.removed_ops.items()))
        return f"cut at {', '.join(self.at)}: removed {self.removed_nodes} nodes ({ops})"

    def note(self) -> str:
        """The manifest note: the cut and what replaces the removed tail."""
        by = f"the {self.replaced_by} decoder does its work" if self.replaced_by else "no decoder replaces it"
        return f"graph {self.describe()}, which ncnn cannot run; {by}"


def tail_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Nodes ncnn cannot run: :data:`TAIL_OPS` and every node computed from their outputs."""
    tainted: set[str] = set()
    tail = []
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        if node.op_type in TAIL_OPS or tainted.intersection(node.input):
            tail.append(node)
            tainted.update(node.output)
    return tail


def _inferred(model: onnx.ModelProto, input_name: str, shape: list[int]) -> onnx.ModelProto:
    """A copy of ``model`` with its input pinned to ``shape`` and every shape ONNX can infer."""
    pinned = onnx.ModelProto()
    pinned.CopyFrom(model)
    for value in pinned.graph.input:
        if value.name == input_name:
            dims = value.type.tensor_type.shape.dim
            for d, size in zip(dims, shape, strict=True):
                d.ClearField("dim_param")
                d.dim_value = size
    return onnx.shape_inference.infer_shapes(pinned)


def _static_shapes(inferred: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for value in [*inferred.graph.value_info, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
            shapes[value.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def _upstream(model: onnx.ModelProto, tail: list[onnx.NodeProto]) -> list[str]:
    """Tensors outside the tail that it (transitively) consumes, in graph order, non-constant."""
    producers = {out: node for node in model.graph.node for out in node.output}
    constants = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" or (node.input and all(i in constants for i in node.input if i)):
            constants.update(node.output)
    tail_ids = {id(n) for n in tail}
    needed: set[str] = set()
    stack = [i for n in tail for i in n.input if i]
    while stack:
        name = stack.pop()
        node = producers.get(name)
        if name in needed or node is None or id(node) in tail_ids:
            continue
        needed.add(name)
        stack.extend(i for i in node.input if i)
    order = [out for node in model.graph.node for out in node.output]
    return [t for t in order if t in needed and t not in constants]


def find_head_outputs(
    model: onnx.ModelProto, input_name: str, shape: list[int], preset: str, tail: list[onnx.NodeProto]
) -> tuple[list[str], str] | None:
    """The earliest tensors upstream of ``tail`` that a family recognises as its raw outputs
    (``preset`` ``auto`` or a name), and the preset recognised; None when no set fits."""
    shapes = _static_shapes(_inferred(model, input_name, shape))
    height, width = int(shape[2]), int(shape[3])
    upstream = [t for t in _upstream(model, tail) if t in shapes and len(shapes[t]) <= 4]
    candidates = upstream[-MAX_CANDIDATES:]
    position = {name: i for i, name in enumerate(candidates)}
    only = None if preset == "auto" else preset
    best: tuple[int, list[str], str] | None = None
    for size in (1, 2):
        for combo in itertools.combinations(candidates, size):
            infos = [TensorInfo(name, onnx.TensorProto.FLOAT, shapes[name]) for name in combo]
            found = recognise(infos, width, height, only=only)
            if found is None:
                continue
            last = max(position[name] for name in combo)
            if best is None or last < best[0]:
                best = (last, list(combo), found.preset)
    return None if best is None else (best[1], best[2])


def extract(model: onnx.ModelProto, input_name: str, shape: list[int], outputs: list[str]) -> onnx.ModelProto:
    """The subgraph from the image input to ``outputs`` (names of tensors in the graph)."""
    known = {out for node in model.graph.node for out in node.output}
    missing = [name for name in outputs if name not in known]
    if missing:
        raise EdgekitError(f"--outputs: no tensor named {missing[0]!r} in the graph")
    inferred = _inferred(model, input_name, shape)
    typed = {v.name for v in inferred.graph.value_info}
    inferred.graph.value_info.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        for name in outputs
        if name not in typed
    )
    cut = Extractor(inferred).extract_model([input_name], outputs)
    cut.graph.ClearField("value_info")  # the simplifier re-infers them
    return cut


def plan_cut(
    model: onnx.ModelProto, input_name: str, shape: list[int], preset: str, outputs: list[str] | None
) -> tuple[onnx.ModelProto, Cut | None]:
    """``model`` cut for ncnn (or unchanged when it needs no cut) and the record of the cut."""
    original = [o.name for o in model.graph.output]
    tail = tail_nodes(model)
    if outputs:
        how = "outputs"
    elif not tail:
        return model, None
    else:
        ops = ", ".join(sorted({n.op_type for n in tail if n.op_type in TAIL_OPS}))
        hint = f"the graph ends in ops ncnn cannot run ({ops}); cut it with --outputs NAME,... at the raw head outputs"
        if preset == "none":
            raise EdgekitError(hint)
        found = find_head_outputs(model, input_name, shape, preset, tail)
        if found is None:
            raise EdgekitError(
                f"{hint} (no {'known preset' if preset == 'auto' else preset} outputs found upstream of it)"
            )
        outputs, how = found[0], "preset"
    cut = extract(model, input_name, shape, outputs)
    removed = Counter(n.op_type for n in model.graph.node) - Counter(n.op_type for n in cut.graph.node)
    record = Cut(
        at=list(outputs),
        how=how,
        original_outputs=original,
        removed_nodes=len(model.graph.node) - len(cut.graph.node),
        removed_ops=dict(sorted(removed.items())),
    )
    return cut, record
