"""Find where an ncnn conversion first departs from onnxruntime, by bisecting the ONNX graph.

The graph is cut after a node (that node's output becomes the only graph output), the cut is
converted with pnnx and both runtimes are compared on it. Bisection over the topologically
ordered node outputs finds the first node whose output departs: about log2(nodes) conversions.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto

from converters.fp16_repair import ncnn_weight_losses, node_weight_loss
from converters.ncnn_graph_check import last_layer
from converters.ncnn_run import run_outputs
from converters.parity import (
    THRESHOLDS,
    OutputAgreement,
    ParityInputs,
    judge,
    onnxruntime_session,
    parity_miss,
    sample_labels,
)
from converters.pnnx_runner import run_pnnx
from edge.errors import EdgekitError
from edge.manifest import Parity
from edge.runtime.policy import open_build_net


@dataclass(frozen=True)
class Divergence:
    """The first ONNX node (and matching ncnn layer) whose output departs from onnxruntime."""

    onnx_node: str
    op_type: str
    tensor: str
    ncnn_layer: str
    cosine: float
    max_abs: float
    precision: str = "fp32"
    cause: str = ""  # e.g. "94.8 % of conv_1's weights underflow fp16"

    def describe(self) -> str:
        why = f"; cause: {self.cause}" if self.cause else ""
        return (
            f"first divergence at ONNX node {self.onnx_node!r} ({self.op_type}, output {self.tensor!r}) "
            f"= ncnn layer {self.ncnn_layer}: {self.precision} cosine {self.cosine:.6f}, max abs error "
            f"{self.max_abs:.4g}{why}"
        )


def _candidate_tensors(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, str]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    float_tensors = {
        v.name
        for v in list(inferred.graph.value_info) + list(inferred.graph.output)
        if v.type.tensor_type.elem_type == TensorProto.FLOAT
    }
    return [(n, out) for n in model.graph.node for out in n.output if out in float_tensors]


def _cut(model: onnx.ModelProto, input_name: str, tensor: str) -> onnx.ModelProto:
    inferred = onnx.shape_inference.infer_shapes(model)
    return onnx.utils.Extractor(inferred).extract_model([input_name], [tensor])


def _agreement(
    sub: onnx.ModelProto, input_name: str, shape: list[int], inputs: ParityInputs, work: Path, precision: str
):
    """(passed, cosine, max_abs, ncnn layer label) of the cut graph's single output, judged as
    convert judges a build (:func:`converters.parity.judge`)."""
    produced = run_pnnx(sub, shape, work, fp16=precision == "fp16")
    ref_session = onnxruntime_session(sub)
    net = open_build_net(produced.param, produced.bin, precision)
    agreement = OutputAgreement()
    try:
        for tensor in inputs.tensors[:2]:
            ref = ref_session.run(None, {input_name: tensor})[0]
            agreement.add(ref, run_outputs(net, "in0", tensor, ["out0"])[0])
    finally:
        net.clear()
    verdict = judge(agreement, THRESHOLDS[precision], sample_labels(inputs)[:2])
    return verdict.passed, verdict.cosine, verdict.max_abs, last_layer(produced.param)


def locate_divergence(
    model: onnx.ModelProto,
    input_name: str,
    shape: list[int],
    inputs: ParityInputs,
    work: Path,
    precision: str = "fp32",
    fp32_build: tuple[Path, Path] | None = None,
) -> Divergence | None:
    """Bisect to the first node whose ``precision`` ncnn output misses that precision's threshold.

    For fp16 the cause is named when weights do not survive fp16: the node's (in the ONNX graph, or
    its ncnn layer in ``fp32_build``, where pnnx has fused BatchNorm into them), else any layer's
    of ``fp32_build`` (errors upstream grow until a later node misses the threshold)."""
    candidates = _candidate_tensors(model)
    cache: dict[int, tuple[bool, float, float, str]] = {}

    def probe(index: int) -> tuple[bool, float, float, str]:
        if index not in cache:
            _node, tensor = candidates[index]
            try:
                sub = _cut(model, input_name, tensor)
                cache[index] = _agreement(sub, input_name, shape, inputs, work / f"cut{index}", precision)
            except (EdgekitError, ValueError, onnx.checker.ValidationError) as exc:
                cache[index] = (False, 0.0, float("inf"), f"(cut does not convert: {exc})")
        return cache[index]

    lo, hi = 0, len(candidates) - 1
    if hi < 0 or probe(hi)[0]:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if probe(mid)[0]:
            lo = mid + 1
        else:
            hi = mid
    node, tensor = candidates[lo]
    _passed, cos, err, layer = probe(lo)
    with contextlib.suppress(Exception):
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    cause = ""
    if precision == "fp16":
        cause = node_weight_loss(model, node) or ""
        if not cause and fp32_build is not None:
            losses = ncnn_weight_losses(fp32_build, layer.split(" ")[-1])
            more = f" and {len(losses) - 3} more layers" if len(losses) > 3 else ""
            cause = "; ".join(losses[:3]) + more
        if not cause and fp32_build is not None:
            cause = "no weight of the build underflows or overflows fp16: fp16 rounding, amplified here"
    return Divergence(node.name or f"#{lo}", node.op_type, tensor, layer, cos, err, precision, cause)


def refusal(failed: dict[str, Parity], divergence: Divergence | None) -> str:
    """The line a parity refusal prints: the first failed build's miss, then a divergence only with
    the headline of the build it was found in (never fp32's miss followed by fp16's layer)."""
    first = next(iter(failed))
    line = parity_miss(first, failed[first])
    if divergence is None:
        return line
    if divergence.precision == first:
        return f"{line}; {divergence.describe()}"
    other = parity_miss(divergence.precision, failed[divergence.precision])
    return (
        f"{line} (no divergent layer located on the first 2 samples); the "
        f"{other.replace(' build misses', ' build also misses', 1)}; {divergence.describe()}"
    )
