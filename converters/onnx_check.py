"""Load and check an ONNX model, and pin its input to a static shape."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto

from converters.onnx_attrs import check_attributes
from edge.errors import EdgekitError
from edge.options import check_input_shape, parse_input_shape

FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE)


@dataclass(frozen=True)
class TensorInfo:
    """Name, element type and (possibly symbolic) shape of a graph input or output."""

    name: str
    elem_type: int
    shape: tuple[int | str, ...]
    upstream_ops: frozenset[str] | None = None  # op types within UPSTREAM_HOPS producers (outputs)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d > 0 for d in self.shape)


def _tensor_info(value: onnx.ValueInfoProto) -> TensorInfo:
    dims: list[int | str] = []
    for d in value.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return TensorInfo(value.name, value.type.tensor_type.elem_type, tuple(dims))


def graph_inputs(model: onnx.ModelProto) -> list[TensorInfo]:
    """Real graph inputs (initializers listed as inputs, as old exporters did, are excluded)."""
    initializers = {init.name for init in model.graph.initializer}
    return [_tensor_info(v) for v in model.graph.input if v.name not in initializers]


UPSTREAM_HOPS = 3


def _upstream_ops(model: onnx.ModelProto, name: str, hops: int = UPSTREAM_HOPS) -> frozenset[str]:
    """Op types of the nodes up to ``hops`` producers above tensor ``name`` (family recognition)."""
    producers = {out: node for node in model.graph.node for out in node.output}
    found: set[str] = set()
    frontier = [name]
    for _ in range(hops):
        nodes = [producers[t] for t in frontier if t in producers]
        found.update(n.op_type for n in nodes)
        frontier = [t for n in nodes for t in n.input]
    return frozenset(found)


def graph_outputs(model: onnx.ModelProto) -> list[TensorInfo]:
    """Graph outputs, each with the op types just above it (what families recognise)."""
    return [
        dataclasses.replace(_tensor_info(v), upstream_ops=_upstream_ops(model, v.name))
        for v in model.graph.output
    ]


def with_shapes(outputs: list[TensorInfo], shapes: list[tuple[int, ...]]) -> list[TensorInfo]:
    """``outputs`` with the shapes one run produced: every declared dimension form (value, symbolic
    name, -1, 0, missing) becomes the size the model really gives at the pinned input shape."""
    return [
        dataclasses.replace(o, shape=tuple(int(d) for d in s)) for o, s in zip(outputs, shapes, strict=True)
    ]


def load_onnx(path: Path) -> onnx.ModelProto:
    """Load and check an ONNX file; every failure is a one-line EdgekitError."""
    path = Path(path)
    if not path.exists():
        raise EdgekitError(f"ONNX file not found: {path}")
    if not path.is_file():
        raise EdgekitError(f"not a file: {path}")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise EdgekitError(f"{path} is not an ONNX model ({type(exc).__name__}: {exc})") from None
    if not model.graph.node:
        raise EdgekitError(f"{path} is not an ONNX model (it holds no graph nodes)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise EdgekitError(f"{path} fails the ONNX checker: {first}") from None
    check_attributes(model)
    return model


def resolve_input_shape(model: onnx.ModelProto, input_shape: list[int] | None) -> tuple[str, list[int]]:
    """The single image input's name and its static NCHW shape (from the graph or the user)."""
    inputs = graph_inputs(model)
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise EdgekitError(f"expected one image input, the model has {len(inputs)}: {names}")
    info = inputs[0]
    if info.elem_type not in FLOAT_TYPES:
        type_name = TensorProto.DataType.Name(info.elem_type)
        raise EdgekitError(f"input {info.name!r} is {type_name}; edgekit converts float image inputs")
    if input_shape is None:
        if not info.is_static:
            shown = "x".join(str(d) for d in info.shape) or "of unknown rank"
            raise EdgekitError(
                f"input {info.name!r} has a dynamic shape {shown}; pass --input-shape, e.g. 1,3,416,416"
            )
        shape = [int(d) for d in info.shape]
    else:
        shape = list(input_shape)
        if info.shape and len(shape) != len(info.shape):
            raise EdgekitError(
                f"--input-shape has {len(shape)} dims but input {info.name!r} has {len(info.shape)}"
            )
        for given, declared in zip(shape, info.shape or shape, strict=True):
            if isinstance(declared, int) and declared != given:
                raise EdgekitError(
                    f"--input-shape {shape} contradicts the model's fixed input shape {list(info.shape)}"
                )
    if len(shape) != 4 or shape[0] != 1 or any(d <= 0 for d in shape):
        raise EdgekitError(f"input shape must be 1,C,H,W with positive sizes, got {shape}")
    check_input_shape(shape, f"input {info.name!r} shape")  # a model may declare an absurd one too
    return info.name, shape


def parse_shape(text: str) -> list[int]:
    """Parse ``1,3,416,416`` (also ``1x3x416x416``): see :func:`edge.options.parse_input_shape`."""
    return parse_input_shape(text)
