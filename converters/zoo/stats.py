"""Size figures of an ONNX graph: convolution FLOPs (from inferred shapes) and trainable parameters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

# running statistics are buffers, not parameters
BUFFER_SUFFIXES = (".running_mean", ".running_var", ".shape")


@dataclass(frozen=True)
class GraphSize:
    """Convolution FLOPs (2 x multiply-adds, biases excluded) and trainable parameters."""

    conv_flops: int
    params: int

    @property
    def gflops(self) -> float:
        return self.conv_flops / 1e9

    @property
    def mparams(self) -> float:
        return self.params / 1e6


def _dims(value: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value for d in value.type.tensor_type.shape.dim]


def graph_size(model: onnx.ModelProto) -> GraphSize:
    """FLOPs of every Conv (from shape inference) and the parameter count of the float initializers.

    BatchNorm running statistics and integer constants (reshape shapes) are not parameters.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: _dims(v) for v in [*inferred.graph.value_info, *inferred.graph.output]}
    weights = {t.name: tuple(t.dims) for t in model.graph.initializer}
    flops = 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        out = shapes[node.output[0]]
        _, cin_per_group, kh, kw = weights[node.input[1]]
        flops += 2 * int(np.prod(out)) * cin_per_group * kh * kw
    params = sum(
        int(np.prod(t.dims))
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT and not t.name.endswith(BUFFER_SUFFIXES)
    )
    return GraphSize(flops, params)


def initializer_arrays(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every initializer as a numpy array, by name."""
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
