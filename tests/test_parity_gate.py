"""The parity gate on outputs that carry no signal on some samples (issue 13): a text detector's
probability map on an image without text peaks near 1e-7, where cosine compares rounding noise.
Such a sample is judged by absolute error against the output's peak over all samples; every other
sample keeps the documented cosine thresholds. Real end to end: onnxsim, pnnx, ncnn, onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from converters.convert import convert_onnx
from converters.divergence import Divergence, refusal
from converters.parity import THRESHOLDS, OutputAgreement, ParityInputs, judge, parity_miss, summarise
from edge.manifest import load_manifest
from tests.support.cli import run_edgekit
from tests.support.onnx_graphs import GraphBuilder, save


def _agreement(pairs: list[tuple[np.ndarray, np.ndarray]]) -> OutputAgreement:
    a = OutputAgreement()
    for reference, candidate in pairs:
        a.add(reference, candidate)
    return a


def _signal(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, (1, 1, 16, 16)).astype(np.float32)


def _silent(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1e-7, (1, 1, 16, 16)).astype(np.float32)


def test_sample_without_signal_is_judged_by_absolute_error():
    noise = np.random.default_rng(2).uniform(-5e-8, 5e-8, (1, 1, 16, 16)).astype(np.float32)
    verdict = judge(_agreement([(_signal(), _signal()), (_silent(), _silent() + noise)]), 0.99999, ["a", "b"])
    assert verdict.passed and verdict.cosine == 1.0 and verdict.peak == pytest.approx(_signal().max())
    (judged,) = verdict.by_abs_error
    assert judged["sample"] == "b" and judged["cosine"] < 0.99  # the old gate refused this build
    assert judged["max_abs"] <= judged["tolerance"] == pytest.approx(1e-5 * verdict.peak)


def test_sample_without_signal_still_fails_on_a_real_absolute_error():
    verdict = judge(_agreement([(_signal(), _signal()), (_silent(), _silent() + 1e-3)]), 0.99999, ["a", "b"])
    assert not verdict.passed and verdict.by_abs_error[0]["sample"] == "b"
    inputs = ParityInputs([np.zeros(1)] * 2, "random:0")
    parity = summarise(
        {"prob": _agreement([(_signal(), _signal()), (_silent(), _silent() + 1e-3)])}, inputs, "fp32"
    )
    assert not parity.passed and parity.cosine >= 0.99999  # the miss is the absolute error, not cosine
    line = parity_miss("fp32", parity)
    assert (
        "output 'prob' on random #1, where it carries no signal" in line and "max abs error 0.001 >" in line
    )


def test_samples_with_signal_keep_the_cosine_threshold():
    ref = _signal()
    off = ref + np.random.default_rng(3).normal(0.0, 0.02, ref.shape).astype(np.float32)
    assert not judge(_agreement([(ref, off)]), THRESHOLDS["fp32"], ["a"]).passed
    # a sample at 2e-3 of the global peak carries signal: cosine, not absolute error, judges it
    weak = _signal(4) * 2e-3
    verdict = judge(_agreement([(ref, ref), (weak, weak[:, :, ::-1].copy())]), 0.99999, ["a", "b"])
    assert not verdict.passed and not verdict.by_abs_error and verdict.cosine < 0.99999
    # every sample silent: there is no signal to compare against, so cosine decides (and refuses)
    both = judge(_agreement([(_silent(1), _silent(5)), (_silent(6), _silent(7))]), 0.99999, ["a", "b"])
    assert not both.passed and not both.by_abs_error


def _saturated_sigmoid(tmp_path: Path) -> tuple[Path, Path]:
    """``Sigmoid(Conv(images) - 18)``: on a dark image the output peaks near 1e-7 everywhere, and
    ncnn's sigmoid differs from onnxruntime's by ~1e-7 there (cosine ~0.86); on a bright one it is 0..0.4."""
    g = GraphBuilder([1, 3, 64, 64])
    w = np.full((2, 3, 1, 1), 6.0, np.float32)
    w[1] *= -1
    x = g.op("Conv", ["images", g.const(w), g.const(np.zeros(2, np.float32))], kernel_shape=[1, 1])[0]
    y = g.op("Add", [x, g.const(np.float32(-18.0))])[0]
    src = save(g.finish([g.op("Sigmoid", [y])[0]]), tmp_path / "sat.onnx")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(images / "a_dark.png"), rng.integers(0, 30, (64, 64, 3)).astype(np.uint8))
    cv2.imwrite(str(images / "b_bright.png"), rng.integers(100, 256, (64, 64, 3)).astype(np.uint8))
    return src, images


def test_build_whose_output_is_silent_on_one_image_converts_and_says_so(tmp_path):
    src, images = _saturated_sigmoid(tmp_path)
    result = convert_onnx(src, tmp_path / "b", preset="none", verify_images=images)
    manifest = load_manifest(result.manifest_path)  # the manifest still validates against its schema
    for precision in ("fp32", "fp16"):
        parity = manifest.builds[precision].parity
        assert parity.passed and parity.cosine >= THRESHOLDS[precision]
        (record,) = parity.per_output.values()
        (judged,) = record["judged_by_abs_error"]
        assert judged["sample"] == "a_dark.png" and judged["reference_peak"] < 1e-3 * record["reference_peak"]
        assert judged["cosine"] < THRESHOLDS["fp32"] and judged["max_abs"] <= judged["tolerance"]
        assert any(n.startswith(f"{precision} parity: output ") and "a_dark.png" in n for n in manifest.notes)
    run = run_edgekit(
        "convert", src, "-o", tmp_path / "c", "--preset", "none", "--verify-images", images, "--json"
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    judged = summary["builds"]["fp32"]["parity"]["judged_by_abs_error"]
    assert [s["sample"] for s in next(iter(judged.values()))] == ["a_dark.png"]


def _miss(cosine: float, threshold: float):
    inputs = ParityInputs([np.zeros(1)], "random:0")
    ref = _signal()
    got = ref.copy()
    got.ravel()[: int(ref.size * (1 - cosine) * 40) + 1] = 0.0  # cosine below 1
    parity = summarise({"out": _agreement([(ref, got)])}, inputs, "fp32" if threshold == 0.99999 else "fp16")
    assert not parity.passed
    return parity


def test_refusal_never_heads_one_build_with_another_builds_divergence():
    fp32, fp16 = _miss(0.9999, 0.99999), _miss(0.99, 0.9995)
    at16 = Divergence("conv_0", "Conv", "t", "Convolution convrelu_0", 0.9, 0.1, "fp16", "underflow")
    line = refusal({"fp32": fp32, "fp16": fp16}, at16)
    assert line.startswith("fp32 build misses parity")
    head, tail = line.split("; the fp16 build also misses parity", 1)
    assert "fp16" not in head and "first divergence" in tail and "fp16 cosine 0.9" in tail
    at32 = Divergence("conv_0", "Conv", "t", "Convolution convrelu_0", 0.9, 0.1, "fp32")
    line = refusal({"fp32": fp32, "fp16": fp16}, at32)
    assert line.startswith("fp32 build misses parity") and "fp16" not in line and "fp32 cosine 0.9" in line
    line = refusal({"fp16": fp16}, at16)
    assert line.startswith("fp16 build misses parity") and "also" not in line and "fp16 cosine" in line


# --- fp16 rounding (not range) costing parity: the most sensitive layers keep fp32 storage -------


def _cancelling_convs(tmp_path: Path) -> Path:
    """``2049 * a - 2048 * (a + b / 2048)``: fp16 stores 2049 as 2050, so conv_2's fp16 weights
    alone turn ``a - b`` into ``2a - b``; no weight is outside fp16's range."""
    g = GraphBuilder([1, 3, 16, 16])
    w1 = np.random.default_rng(0).normal(size=(1, 3, 1, 1)).astype(np.float32)
    v = np.random.default_rng(1).normal(size=(1, 3, 1, 1)).astype(np.float32) / 2048
    x = g.op(
        "Conv",
        ["images", g.const(np.concatenate([w1, w1 + v])), g.const(np.full(2, 5, np.float32))],
        kernel_shape=[1, 1],
    )[0]
    w2 = np.array([2049.0, -2048.0], np.float32).reshape(1, 2, 1, 1)
    y = g.op(
        "Conv", [g.op("Relu", [x])[0], g.const(w2), g.const(np.zeros(1, np.float32))], kernel_shape=[1, 1]
    )
    return save(g.finish(y), tmp_path / "cancel.onnx")


def test_fp16_build_missing_parity_by_rounding_keeps_the_sensitive_layer_in_fp32(tmp_path):
    from edge.ncnn.model import NcnnModel

    result = convert_onnx(_cancelling_convs(tmp_path), tmp_path / "b", preset="none")
    fp16 = result.manifest.builds["fp16"]
    assert fp16.parity.passed and fp16.parity.cosine >= THRESHOLDS["fp16"]
    (kept,) = result.manifest.conversion["report"]["higher_precision"]
    assert kept["build"] == "fp16" and kept["kept"] == "fp32 weight storage"
    assert kept["reason"].startswith("rounding its weights to fp16 alone lowers cosine to ")
    layer = NcnnModel.read(tmp_path / "b" / fp16.param, tmp_path / "b" / fp16.bin).layer(kept["layer"])
    assert layer.weights[0].storage == "fp32" and list(layer.weights[0].as_float32().ravel()) == [
        2049.0,
        -2048.0,
    ]
