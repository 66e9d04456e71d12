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

from converters.ncnn_graph_check import last_layer
from converters.ncnn_run import run_outputs
from converters.parity import THRESHOLDS, ParityInputs, compare, onnxruntime_session
from converters.pnnx_runner import run_pnnx
from edge.errors import EdgekitError
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

    def describe(self) -> str:
        return (
            f"first divergence at ONNX node {self.onnx_node!r} ({self.op_type}, output {self.tensor!r}) "
            f"= ncnn layer {self.ncnn_layer}: cosine {self.cosine:.6f}, max abs error {self.max_abs:.4g}"
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


def _agreement(sub: onnx.ModelProto, input_name: str, shape: list[int], inputs: ParityInputs, work: Path):
    """(cosine, max_abs, ncnn layer label) of the cut graph's single output."""
    produced = run_pnnx(sub, shape, work, fp16=False)
    ref_session = onnxruntime_session(sub)
    net = open_build_net(produced.param, produced.bin, "fp32")
    worst_cos, worst_abs = 1.0, 0.0
    try:
        for tensor in inputs.tensors[:2]:
            ref = ref_session.run(None, {input_name: tensor})[0]
            got = run_outputs(net, "in0", tensor, ["out0"])[0]
            cos, err = compare(ref, got)
            worst_cos, worst_abs = min(worst_cos, cos), max(worst_abs, err)
    finally:
        net.clear()
    return worst_cos, worst_abs, last_layer(produced.param)


def locate_divergence(
    model: onnx.ModelProto, input_name: str, shape: list[int], inputs: ParityInputs, work: Path
) -> Divergence | None:
    """Bisect to the first node whose fp32 ncnn output misses the fp32 parity threshold."""
    candidates = _candidate_tensors(model)
    threshold = THRESHOLDS["fp32"]
    cache: dict[int, tuple[float, float, str]] = {}

    def probe(index: int) -> tuple[float, float, str]:
        if index not in cache:
            _node, tensor = candidates[index]
            try:
                sub = _cut(model, input_name, tensor)
                cache[index] = _agreement(sub, input_name, shape, inputs, work / f"cut{index}")
            except (EdgekitError, ValueError, onnx.checker.ValidationError) as exc:
                cache[index] = (0.0, float("inf"), f"(cut does not convert: {exc})")
        return cache[index]

    lo, hi = 0, len(candidates) - 1
    if hi < 0 or probe(hi)[0] >= threshold:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if probe(mid)[0] >= threshold:
            lo = mid + 1
        else:
            hi = mid
    node, tensor = candidates[lo]
    cos, err, layer = probe(lo)
    with contextlib.suppress(Exception):
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return Divergence(node.name or f"#{lo}", node.op_type, tensor, layer, cos, err)
