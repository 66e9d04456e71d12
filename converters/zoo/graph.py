"""An ONNX graph writer for zoo builders, with a numpy shadow pass that calibrates BatchNorm.

Each op appends an ONNX node and, while a calibration batch is flowing (``values`` holds its
input), computes the same op in numpy. :meth:`Net.bn` then sets the running statistics to the
batch's per-channel mean and variance, so every BatchNorm really normalises its input: seeded
weights whose activations neither vanish nor explode, as trained networks' do.
"""

from __future__ import annotations

import numpy as np
import onnx
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
BN_EPSILON = 1e-5


def _pad(x: np.ndarray, pad: int, value: float = 0.0) -> np.ndarray:
    if pad == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=value)


def conv2d(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """NCHW convolution (no groups, no bias) in numpy."""
    k = w.shape[2]
    windows = sliding_window_view(_pad(x, pad), (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", windows, w, optimize=True).astype(np.float32)


def maxpool2d(x: np.ndarray, k: int, stride: int, pad: int) -> np.ndarray:
    windows = sliding_window_view(_pad(x, pad, -np.inf), (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return windows.max(axis=(4, 5))


class Net:
    """Nodes, initializers and (while calibrating) numpy values of a graph being written."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, np.ndarray] = {}
        self.values: dict[str, np.ndarray] = {}

    def const(self, name: str, array: np.ndarray) -> str:
        self.inits[name] = np.asarray(array)
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str, **attrs) -> list[str]:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))
        return outputs

    def _shadow(self, x: str) -> np.ndarray | None:
        return self.values.get(x)

    def conv(
        self,
        x: str,
        name: str,
        cin: int,
        cout: int,
        k: int,
        stride: int,
        pad: int,
        *,
        bias: bool,
        gain: float,
    ) -> str:
        """Conv with weights ~ N(0, gain / fan_in) (He for gain 2) and zero bias."""
        std = (gain / (cin * k * k)) ** 0.5
        w = self.rng.normal(0.0, std, (cout, cin, k, k)).astype(np.float32)
        inputs = [x, self.const(f"{name}.weight", w)]
        if bias:
            inputs.append(self.const(f"{name}.bias", np.zeros(cout, np.float32)))
        out = self.node(
            "Conv", inputs, [name], name, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4
        )[0]
        value = self._shadow(x)
        if value is not None and value.shape[2] + 2 * pad >= k:
            self.values[out] = conv2d(value, w, stride, pad)
        return out

    def bn(self, x: str, name: str, channels: int, gamma: float = 1.0) -> str:
        """BatchNorm whose running statistics are the calibration batch's (identity when none)."""
        mean, var = np.zeros(channels, np.float32), np.ones(channels, np.float32)
        value = self._shadow(x)
        if value is not None:
            mean, var = value.mean(axis=(0, 2, 3)), value.var(axis=(0, 2, 3))
        scale = np.full(channels, gamma, np.float32)
        shift = np.zeros(channels, np.float32)
        params = {"weight": scale, "bias": shift, "running_mean": mean, "running_var": var}
        inputs = [x] + [self.const(f"{name}.{k}", v.astype(np.float32)) for k, v in params.items()]
        out = self.node("BatchNormalization", inputs, [name], name, epsilon=BN_EPSILON)[0]
        if value is not None:
            norm = (value - mean[:, None, None]) / np.sqrt(var[:, None, None] + BN_EPSILON)
            self.values[out] = (norm * gamma).astype(np.float32)
        return out

    def relu(self, x: str, name: str) -> str:
        out = self.node("Relu", [x], [name], name)[0]
        if (value := self._shadow(x)) is not None:
            self.values[out] = np.maximum(value, 0)
        return out

    def add(self, a: str, b: str, name: str) -> str:
        out = self.node("Add", [a, b], [name], name)[0]
        va, vb = self._shadow(a), self._shadow(b)
        if va is not None and vb is not None:
            self.values[out] = va + vb
        return out

    def maxpool(self, x: str, name: str, k: int, stride: int, pad: int) -> str:
        out = self.node(
            "MaxPool", [x], [name], name, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4
        )[0]
        if (value := self._shadow(x)) is not None:
            self.values[out] = maxpool2d(value, k, stride, pad)
        return out

    def model(
        self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto], name: str
    ) -> onnx.ModelProto:
        """The ONNX model (opset 13, IR 8) of everything written so far."""
        graph = helper.make_graph(
            self.nodes,
            name,
            inputs,
            outputs,
            initializer=[numpy_helper.from_array(v, k) for k, v in self.inits.items()],
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgekit"
        )
        model.ir_version = 8
        return model


def float_info(name: str, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
