"""How long a bench run will take, said before it starts: emulated inferences take seconds each.

The estimate counts the inferences the plan asks for and the multiply-adds of each model's
convolutions and inner products (from ncnn's own shape rules), at the emulated speed of each
precision measured on a busy 2-core x86-64 host under ``qemu-aarch64-static -cpu max``
(NanoDet-Plus-m 416, 0.76 G multiply-adds, 1 thread: fp32 12 s, fp16 38 s, int8 8 s per
inference; ``edgekit bench BUILD -t qemu-aarch64 --json``), given as a range around that.
"""

from __future__ import annotations

from benchmarks.harness import BenchConfig, timing_plan
from benchmarks.runners import BenchModel
from benchmarks.targets.base import Target
from edge.ncnn import param_ids as ids
from edge.ncnn.model import NcnnModel
from edge.ncnn.shapes import infer_shapes

#: emulated multiply-adds per second at one thread, per precision (see module doc)
EMULATED_MACS_PER_S = {"fp32": 65e6, "fp16": 20e6, "int8": 95e6}
#: the estimate is given as this range around the measured speed (other hosts, other CPU models)
EMULATED_RANGE = (0.5, 1.5)
#: seconds per model and thread count under QEMU besides inference: interpreter, imports, load
EMULATED_OVERHEAD_S = 8.0

_CONV = {"Convolution", "ConvolutionDepthWise", "Deconvolution", "DeconvolutionDepthWise"}


def multiply_adds(model: BenchModel) -> int:
    """Multiply-adds of one inference: convolution weights x output pixels, plus inner products."""
    graph = NcnnModel.read(model.param)
    shapes = infer_shapes(graph, {model.input_name: model.input_shape})
    total = 0
    for layer in graph.layers:
        if layer.type in _CONV:
            weights = layer.get(ids.Convolution.WEIGHT_DATA_SIZE, 0)
            out = shapes.get(layer.outputs[0]) if layer.outputs else None
            if isinstance(weights, int) and out and len(out) >= 2:
                total += weights * out[0] * out[1]
        elif layer.type == "InnerProduct":
            weights = layer.get(ids.InnerProduct.WEIGHT_DATA_SIZE, 0)
            total += weights if isinstance(weights, int) else 0
    return total


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def estimate_line(target: Target, models: list[BenchModel], config: BenchConfig) -> str | None:
    """``qemu-aarch64: 12 emulated inferences ..., about 3-9 min`` for an emulated target, else None."""
    if not target.emulated or not models:
        return None
    plan = timing_plan(config, target.timing_defaults, None)
    runs = plan.loops + plan.warmup
    count = len(models) * len(plan.threads) * runs
    macs = [multiply_adds(m) for m in models]
    seconds = len(plan.threads) * sum(
        runs * n / EMULATED_MACS_PER_S.get(m.precision, min(EMULATED_MACS_PER_S.values()))
        + EMULATED_OVERHEAD_S
        for m, n in zip(models, macs, strict=True)
    )
    low, high = (seconds * f for f in EMULATED_RANGE)
    threads = ",".join(map(str, plan.threads))
    return (
        f"{target.name}: {count} emulated inferences ({len(models)} models x threads {threads} x"
        f" {plan.warmup} warm-up + {plan.loops} timed) of {max(macs) / 1e9:.2f} G multiply-adds at most;"
        f" about {_minutes(seconds)} ({_minutes(low)} to {_minutes(high)})"
    )
