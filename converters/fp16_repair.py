"""Keep fp16 builds correct when weights fall outside fp16's range.

fp16's smallest normal number is 2^-14 (6.1e-5); pnnx stores smaller weights as 0 (ncnn flushes
fp16 subnormals), and weights above 65504 become inf. Two repairs, in order:

1. Rescale (ONNX graph of the fp16 build, before pnnx): a Conv/Gemm/MatMul whose weights underflow
   is multiplied by 2^k (weights and bias) and the factor is taken back out in its consumer, found
   through positively homogeneous ops (ReLU, max pooling, reshapes): a Mul/Div by a constant or the
   next Conv/Gemm/MatMul's weights. Exact in real arithmetic, and the activations in between leave
   fp16's subnormal range too, so it holds under ncnn's fp16 arithmetic on ARMv8.2 as well.
2. fp32 storage (ncnn ``.bin`` of the fp16 build): a layer whose stored fp16 weights still lost
   values keeps them as fp32 (ncnn's per-buffer storage tag). Correct wherever ncnn computes that
   layer in fp32 (x86, ARM without fp16 arithmetic); ncnn's ARMv8.2 fp16 kernels cast it again.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from converters.report import KeptPrecision, Repair
from edge.ncnn.model import NcnnModel

FP16_MIN_NORMAL = 2.0**-14
FP16_MAX = 65504.0
#: a layer whose weights that fp16 loses hold more than this share of its weight energy
#: (sum of squares) is repaired: the weight vector's cosine would drop below ~0.99995. A count
#: would be wrong: trained nets hold many near-zero (dead) weights that matter nothing.
LOSS_LIMIT = 1e-4
#: both repairs, and converters.fp16_sensitive's, on (off only to show what they prevent)
ENABLED = True
#: ops the rescale passes through: f(s * x) = s * f(x) for s > 0, one data input
_HOMOGENEOUS = frozenset(
    {"Relu", "LeakyRelu", "PRelu", "MaxPool", "GlobalMaxPool", "AveragePool", "GlobalAveragePool",
     "Identity", "Dropout", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze"}
)  # fmt: skip
_WEIGHTED = frozenset({"Conv", "Gemm", "MatMul", "ConvTranspose"})


def lost_energy(reference: np.ndarray, lost: np.ndarray) -> float:
    """Share of ``reference``'s energy (sum of squares) in the entries marked ``lost``."""
    ref = np.asarray(reference, np.float64).ravel()
    total = float(np.sum(ref * ref))
    return float(np.sum(ref[lost.ravel()] ** 2)) / total if total > 0 else 0.0


def loss_fraction(values: np.ndarray) -> tuple[float, float]:
    """(underflowing, overflowing) fractions of the non-zero ``values`` in fp16."""
    mags = np.abs(np.asarray(values, np.float64)).ravel()
    nonzero = mags[mags > 0]
    if nonzero.size == 0:
        return 0.0, 0.0
    return float(np.mean(nonzero < FP16_MIN_NORMAL)), float(np.mean(nonzero > FP16_MAX))


def needs_repair(values: np.ndarray) -> bool:
    """True when fp16 storage would change ``values`` materially (see :data:`LOSS_LIMIT`)."""
    mags = np.abs(np.asarray(values, np.float64))
    return (
        bool(np.any(mags > FP16_MAX)) or lost_energy(mags, (mags > 0) & (mags < FP16_MIN_NORMAL)) > LOSS_LIMIT
    )


def describe_loss(name: str, values: np.ndarray) -> str | None:
    """``"94.8 % of conv_1's weights underflow fp16 (< 6.1e-05)"`` when fp16 loses them materially."""
    if not needs_repair(values):
        return None
    under, over = loss_fraction(values)
    if over > 0:
        return f"{over * 100:.1f} % of {name}'s weights overflow fp16 (> {FP16_MAX:g})"
    return f"{under * 100:.1f} % of {name}'s weights underflow fp16 (< {FP16_MIN_NORMAL:.2g})"


def constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers and ``Constant`` node outputs (exporters and onnxsim leave both) by tensor name."""
    found = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            found[node.output[0]] = node.attribute[0].t
    return found


def node_weight_loss(model: onnx.ModelProto, node: onnx.NodeProto) -> str | None:
    """Why ``node``'s constant inputs do not survive fp16, or None."""
    consts = constants(model)
    arrays = [numpy_helper.to_array(consts[i]) for i in node.input[1:] if i in consts]
    floats = [a for a in arrays if a.dtype.kind == "f"]
    if not floats:
        return None
    return describe_loss(node.name or node.op_type, np.concatenate([a.ravel() for a in floats]))


class _Graph:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.consts = constants(model)
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in model.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.outputs = {o.name for o in model.graph.output}

    def array(self, name: str) -> np.ndarray | None:
        return numpy_helper.to_array(self.consts[name]) if name in self.consts else None

    def replace(self, node: onnx.NodeProto, index: int, value: np.ndarray) -> None:
        """Point ``node.input[index]`` at a new initializer holding ``value`` (others may share the old)."""
        name = f"{node.input[index]}__fp16_rescaled"
        self.model.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
        self.consts[name] = self.model.graph.initializer[-1]
        node.input[index] = name

    def compensator(self, tensor: str) -> tuple[onnx.NodeProto, int] | None:
        """The node (and input index) that can take the factor back, following one consumer."""
        while tensor not in self.outputs:
            users = self.consumers.get(tensor, [])
            if len(users) != 1:
                return None
            user = users[0]
            if user.op_type in _HOMOGENEOUS and user.input[0] == tensor:
                tensor = user.output[0]
                continue
            if user.op_type in ("Mul", "Div") and len(user.input) == 2:
                other = 1 if user.input[0] == tensor else 0
                if user.input[1 - other] == tensor and user.input[other] in self.consts:
                    return user, other
                return None
            if user.op_type in _WEIGHTED and user.input[0] == tensor and user.input[1] in self.consts:
                return user, 1
            return None
        return None


def _factor(weight: np.ndarray, other: np.ndarray | None, op_type: str) -> tuple[int, np.ndarray] | None:
    """The exponent k (two more than the least that brings ``weight`` into range, at most the one
    that brings its largest value to 1, falling back to the least) and the consumer's new constant."""
    if other is None:
        return None
    ceiling = max(math.floor(-math.log2(float(np.max(np.abs(weight))))), 1)
    least = next((k for k in range(1, ceiling + 1) if not needs_repair(weight * 2.0**k)), ceiling)
    for k in dict.fromkeys((min(least + 2, ceiling), least)):
        back = other * 2.0**k if op_type == "Div" else other / 2.0**k
        if op_type not in _WEIGHTED or not needs_repair(back):
            return k, back
    return None


def rescale_for_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[Repair]]:
    """A copy of ``model`` with underflowing layers rescaled by powers of two (see the module doc)."""
    if not ENABLED:
        return model, []
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = _Graph(copy)
    repairs: list[Repair] = []
    for node in copy.graph.node:
        weight = graph.array(node.input[1]) if node.op_type in _WEIGHTED and len(node.input) > 1 else None
        if weight is None or weight.dtype.kind != "f":
            continue
        if not needs_repair(weight) or loss_fraction(weight)[1] > 0:
            continue
        target = graph.compensator(node.output[0])
        if target is None:
            continue
        comp, index = target
        found = _factor(weight, graph.array(comp.input[index]), comp.op_type)
        if found is None:
            continue  # no factor keeps both this layer's and the consumer's weights in fp16's range
        k, back = found
        scale = 2.0**k
        reason = describe_loss(node.name or node.op_type, weight) or ""
        graph.replace(node, 1, weight * scale)
        for extra in range(2, len(node.input)):  # bias (Conv, Gemm C) scales with the output
            bias = graph.array(node.input[extra])
            if bias is not None and bias.dtype.kind == "f":
                graph.replace(node, extra, bias * scale)
        graph.replace(comp, index, back)
        what = f"weights rescaled by 2^{k} for fp16, {comp.op_type} {comp.name!r} takes the factor back"
        repairs.append(Repair(what, (node.name or node.op_type,), "fp16", reason))
    return (copy, repairs) if repairs else (model, [])


def ncnn_weight_losses(build: tuple[Path, Path], first: str | None = None) -> list[str]:
    """Why layers of an fp32 ncnn build do not survive fp16 (pnnx fuses BatchNorm into weights, so
    the ONNX graph may show nothing): layer ``first`` alone if it loses weights, else every layer."""
    described = []
    for layer in NcnnModel.read(*build).layers:
        tagged = [w.as_float32().ravel() for w in layer.weights if w.storage != "untagged"]
        why = describe_loss(layer.name, np.concatenate(tagged)) if tagged else None
        if why and layer.name == first:
            return [why]
        if why:
            described.append(why)
    return described


def keep_fp32_storage(fp16: tuple[Path, Path], fp32: tuple[Path, Path]) -> list[KeptPrecision]:
    """Store in fp32 the fp16 build's weight buffers whose lost values held more than :data:`LOSS_LIMIT`
    of their energy (against the same layer of the fp32 build); rewrites the fp16 ``.bin`` in place."""
    if not ENABLED:
        return []
    half, full = NcnnModel.read(*fp16), NcnnModel.read(*fp32)
    by_name = {layer.name: layer for layer in full.layers}
    kept: list[KeptPrecision] = []
    for layer in half.layers:
        twin = by_name.get(layer.name)
        if twin is None or len(twin.weights) != len(layer.weights):
            continue
        lost_in: list[str] = []
        for w16, w32 in zip(layer.weights, twin.weights, strict=True):
            if w16.storage != "fp16" or w16.count != w32.count:
                continue
            a16, a32 = w16.as_float32().ravel(), w32.as_float32().ravel()
            lost = ((np.abs(a16) < FP16_MIN_NORMAL) & (a32 != 0)) | ~np.isfinite(a16)
            same = np.allclose(a16[~lost], a32[~lost], rtol=2e-3, atol=0)  # not a rescaled layer
            if lost_energy(a32, lost) > LOSS_LIMIT and same:
                w16.replace(w32.as_float32(), "fp32")
                lost_in.append(describe_loss(layer.name, a32) or f"{layer.name} loses weights in fp16")
        if lost_in:
            kept.append(KeptPrecision("fp16", layer.name, "fp32 weight storage", "; ".join(lost_in)))
    if kept:
        half.write(*fp16)
    return kept
