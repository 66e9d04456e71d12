"""Small ONNX graphs built in code, with seeded weights, for generic conversion tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 14


class GraphBuilder:
    """Append nodes with fresh names and seeded initializers; ``finish`` makes the model."""

    def __init__(self, shape: list[int], seed: int = 0, input_name: str = "images") -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.input = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, array: np.ndarray, prefix: str = "w") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs) -> list[str]:
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type), **attrs))
        return outs

    def conv(self, x: str, cin: int, cout: int, k: int = 3, stride: int = 1, group: int = 1) -> str:
        w = self.rng.normal(0, (2.0 / (cin // group * k * k)) ** 0.5, (cout, cin // group, k, k))
        b = self.rng.normal(0, 0.1, cout)
        pads = [k // 2] * 4
        return self.op(
            "Conv",
            [x, self.const(w.astype(np.float32)), self.const(b.astype(np.float32))],
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=pads,
            group=group,
        )[0]

    def bn(self, x: str, c: int) -> str:
        scale = self.rng.uniform(0.5, 1.5, c).astype(np.float32)
        bias = self.rng.normal(0, 0.1, c).astype(np.float32)
        mean = self.rng.normal(0, 0.1, c).astype(np.float32)
        var = self.rng.uniform(0.5, 1.5, c).astype(np.float32)
        ins = [x, self.const(scale), self.const(bias), self.const(mean), self.const(var)]
        return self.op("BatchNormalization", ins, epsilon=1e-5)[0]

    def finish(self, outputs: list[str], opset: int = OPSET, ir_version: int = 8) -> onnx.ModelProto:
        """The checked model; output shapes are taken from one onnxruntime run."""
        import onnxruntime as ort

        def build(shapes: list[list[int] | None]) -> onnx.ModelProto:
            outs = [
                helper.make_tensor_value_info(o, TensorProto.FLOAT, s)
                for o, s in zip(outputs, shapes, strict=False)
            ]
            graph = helper.make_graph(self.nodes, "edgekit_test", [self.input], outs, self.inits)
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
            model.ir_version = ir_version
            return model

        probe = build([None] * len(outputs))
        session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        dims = [d.dim_value for d in self.input.type.tensor_type.shape.dim]
        results = session.run(None, {self.input.name: np.zeros(dims, np.float32)})
        model = build([list(r.shape) for r in results])
        onnx.checker.check_model(model, full_check=True)
        return model


def backbone_ops() -> onnx.ModelProto:
    """Conv, BN, activations, depthwise, residual add, pooling, concat, split, slice, resize."""
    g = GraphBuilder([1, 3, 64, 64])
    x = g.op("Relu", [g.bn(g.conv("images", 3, 16, stride=2), 16)])[0]
    d = g.op("LeakyRelu", [g.conv(x, 16, 16, group=16)], alpha=0.1)[0]
    x = g.op("Add", [x, g.op("HardSwish", [g.conv(d, 16, 16, k=1)])[0]])[0]
    p = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])[0]
    a = g.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])[0]
    c = g.op("Concat", [p, a], axis=1)[0]
    s1, s2 = g.op("Split", [c, g.const(np.array([8, 24], np.int64))], n_out=2, axis=1)
    s1 = g.op("Sigmoid", [s1])[0]
    sl = g.op(
        "Slice",
        [
            s2,
            g.const(np.array([4], np.int64)),
            g.const(np.array([20], np.int64)),
            g.const(np.array([1], np.int64)),
        ],
    )[0]
    m = g.op("Concat", [s1, g.op("Clip", [sl, g.const(np.float32(0)), g.const(np.float32(6))])[0]], axis=1)[0]
    up = g.op(
        "Resize",
        [m, "", g.const(np.array([1, 1, 2, 2], np.float32))],
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )[0]
    bil = g.op(
        "Resize",
        [g.op("Tanh", [m])[0], "", g.const(np.array([1, 1, 2, 2], np.float32))],
        mode="linear",
        coordinate_transformation_mode="half_pixel",
    )[0]
    out = g.op("Mul", [up, g.op("Sigmoid", [bil])[0]])[0]
    return g.finish([out])


def detection_head() -> onnx.ModelProto:
    """Reshape/transpose/concat over two strides into a 1xNxK tensor, like detector heads."""
    g = GraphBuilder([1, 3, 64, 64], seed=1)
    f8 = g.op("Relu", [g.conv("images", 3, 12, stride=8)])[0]
    f16 = g.op("Relu", [g.conv(f8, 12, 12, stride=2)])[0]
    flat = []
    for f, n in ((f8, 64), (f16, 16)):
        h = g.conv(f, 12, 10, k=1)
        r = g.op("Reshape", [h, g.const(np.array([1, 10, n], np.int64))])[0]
        flat.append(g.op("Transpose", [r], perm=[0, 2, 1])[0])
    cat = g.op("Concat", flat, axis=1)[0]
    cls, box = g.op("Split", [cat, g.const(np.array([6, 4], np.int64))], n_out=2, axis=2)
    out = g.op("Concat", [g.op("Sigmoid", [cls])[0], box], axis=2)[0]
    return g.finish([out])


def classifier() -> onnx.ModelProto:
    """A small classifier: conv stages, global average pool, flatten, Gemm, softmax."""
    g = GraphBuilder([1, 3, 32, 32], seed=2)
    x = g.op("Relu", [g.bn(g.conv("images", 3, 8, stride=2), 8)])[0]
    x = g.op("Relu", [g.conv(x, 8, 16, stride=2)])[0]
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])[0]], axis=1)[0]
    w = g.rng.normal(0, 0.3, (10, 16)).astype(np.float32)
    logits = g.op("Gemm", [x, g.const(w), g.const(np.zeros(10, np.float32))], transB=1)[0]
    return g.finish([g.op("Softmax", [logits], axis=1)[0]])


def two_outputs() -> onnx.ModelProto:
    """Two outputs of different shapes, to check output naming and order."""
    g = GraphBuilder([1, 3, 32, 32], seed=3)
    x = g.op("Relu", [g.conv("images", 3, 8, stride=2)])[0]
    a = g.op("Sigmoid", [g.conv(x, 8, 5, k=1)])[0]
    b = g.op("GlobalAveragePool", [g.conv(x, 8, 7, stride=2)])[0]
    return g.finish([b, a])


GRAPHS: dict[str, Callable[[], onnx.ModelProto]] = {
    "backbone_ops": backbone_ops,
    "detection_head": detection_head,
    "classifier": classifier,
    "two_outputs": two_outputs,
}


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path
