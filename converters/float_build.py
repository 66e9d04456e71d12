"""One float build (fp32 or fp16) written into the staging directory, with what convert repaired.

pnnx converts the graph; layers ncnn cannot run are refused naming the ONNX nodes; duplicate layer
names pnnx wrote are renamed; an fp16 build's weight buffers that lost their values to fp16 keep
fp32 storage. Errors name the user's file, never the staging directory (gone once convert fails).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx

from converters.fp16_repair import keep_fp32_storage
from converters.ncnn_graph_check import check_supported
from converters.ncnn_tidy import rename_duplicate_layers, user_terms
from converters.parity import THRESHOLDS, OutputAgreement, judge, reference_outputs
from converters.pnnx_runner import run_pnnx
from converters.report import ALL_BUILDS, ConversionReport, Repair

RENAMED = "duplicate ncnn layer names written by pnnx renamed"


def write_float_build(
    graph: onnx.ModelProto,
    shape: list[int],
    stage: Path,
    precision: str,
    source: Path,
    report: ConversionReport,
) -> tuple[Path, Path]:
    """Convert ``graph`` with pnnx into ``stage/model.<precision>.{param,bin}``; repairs go to ``report``."""
    with user_terms(stage, source):
        produced = run_pnnx(graph, shape, stage / ".work" / precision, fp16=precision == "fp16")
        check_supported(produced.param, graph)
        param, binf = stage / f"model.{precision}.param", stage / f"model.{precision}.bin"
        shutil.move(produced.param, param)
        shutil.move(produced.bin, binf)
        renamed = rename_duplicate_layers(param)
        if renamed:
            _add_renames(report, precision, tuple(f"{old} -> {new}" for old, new in renamed))
        fp32 = stage / "model.fp32.param", stage / "model.fp32.bin"
        if precision == "fp16" and fp32[0].is_file():
            report.kept_precision += keep_fp32_storage((param, binf), fp32)
    return param, binf


def _add_renames(report: ConversionReport, precision: str, where: tuple[str, ...]) -> None:
    """One repair entry per distinct rename set (both float builds usually need the same)."""
    for i, repair in enumerate(report.repairs):
        if repair.what == RENAMED and repair.where == where:
            report.repairs[i] = Repair(RENAMED, where, ALL_BUILDS)
            return
    report.repairs.append(Repair(RENAMED, where, precision))


def simplification_check(
    original: list[list[np.ndarray]], simplified: onnx.ModelProto, input_name: str, tensors: list[np.ndarray]
) -> str:
    """``""`` when onnxsim's graph computes what the user's file does, else where they part (said
    when a build misses parity, so a simplification bug is not blamed on ncnn)."""
    ours = reference_outputs(simplified, input_name, tensors[:2])
    agreement: dict[int, OutputAgreement] = {}
    for refs, sims in zip(original, ours, strict=False):
        for i, (r, s) in enumerate(zip(refs, sims, strict=True)):
            agreement.setdefault(i, OutputAgreement()).add(r, s)
    labels = [f"#{i}" for i in range(len(ours))]
    verdicts = [judge(a, THRESHOLDS["fp32"], labels) for a in agreement.values()]
    if all(v.passed for v in verdicts):
        return ""
    worst = min(v.cosine for v in verdicts)
    return f"; edgekit's simplified graph already differs from the original file (cosine {worst:.6f})"
