"""Load and check an ONNX model, and pin its input to a static shape."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto

from edge.errors import EdgekitError

FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE)


@dataclass(frozen=True)
class TensorInfo:
    """Name, element type and (possibly symbolic) shape of a graph input or output."""

    name: str
    elem_type: int
    shape: tuple[int | str, ...]

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


def graph_outputs(model: onnx.ModelProto) -> list[TensorInfo]:
    return [_tensor_info(v) for v in model.graph.output]


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
            shown = "x".join(str(d) for d in info.shape)
            raise EdgekitError(
                f"input {info.name!r} has a dynamic shape {shown}; pass --input-shape, e.g. 1,3,416,416"
            )
        shape = [int(d) for d in info.shape]
    else:
        shape = list(input_shape)
        if len(shape) != len(info.shape):
            raise EdgekitError(
                f"--input-shape has {len(shape)} dims but input {info.name!r} has {len(info.shape)}"
            )
        for given, declared in zip(shape, info.shape, strict=True):
            if isinstance(declared, int) and declared != given:
                raise EdgekitError(
                    f"--input-shape {shape} contradicts the model's fixed input shape {list(info.shape)}"
                )
    if len(shape) != 4 or shape[0] != 1 or any(d <= 0 for d in shape):
        raise EdgekitError(f"input shape must be 1,C,H,W with positive sizes, got {shape}")
    return info.name, shape


def parse_shape(text: str) -> list[int]:
    """Parse ``1,3,416,416`` (also ``1x3x416x416``) into a list of ints."""
    parts = text.replace("x", ",").replace(" ", "").strip("[]()").split(",")
    try:
        shape = [int(p) for p in parts if p]
    except ValueError:
        raise EdgekitError(f"bad --input-shape {text!r}; expected e.g. 1,3,416,416") from None
    if not shape:
        raise EdgekitError(f"bad --input-shape {text!r}; expected e.g. 1,3,416,416")
    return shape
