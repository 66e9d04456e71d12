"""A newcomer's first hour: honest INT8 speed sentences, parity that says what it checked,
output that is never wrapped in a pipe."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from converters.parity import DEFAULT_VERIFY_IMAGES, make_inputs
from converters.speed_check import SpeedComparison, int8_speed_note
from edge.manifest import load_manifest
from tests.support.assets import require_asset
from tests.support.cli import run_edgekit
from tests.support.onnx_graphs import GRAPHS, save


def _comparison(ratios: list[float], base_ms: float = 60.0) -> SpeedComparison:
    int8_ms = base_ms / sorted(ratios)[len(ratios) // 2]
    return SpeedComparison("fp16", base_ms, int8_ms, ratios, threads=1, loops=4)


def test_speed_sentence_says_no_clear_difference_when_rounds_disagree() -> None:
    same = int8_speed_note(_comparison([0.93, 1.02, 1.08, 0.97, 1.01, 0.99]))
    assert (
        "no clear difference" in same
        and "SLOWER" not in same
        and "0.93-1.08x over 6 interleaved rounds" in same
    )
    slower = int8_speed_note(_comparison([0.10, 0.11, 0.12, 0.10, 0.11, 0.10]))
    assert slower.startswith("INT8 is SLOWER than fp16") and "1 thread" in slower
    faster = _comparison([1.30, 1.35, 1.33, 1.40, 1.31, 1.36])
    assert int8_speed_note(faster).startswith(f"INT8 runs {faster.ratio:.2f}x the speed of fp16")


def test_parity_uses_the_folder_and_says_how_much(demo_images: Path, nanodet_plus_build: Path) -> None:
    spec = load_manifest(nanodet_plus_build).input
    count = len([p for p in demo_images.iterdir() if p.suffix.lower() in (".jpg", ".png")])
    every = make_inputs(spec, demo_images)
    assert len(every.tensors) == count <= DEFAULT_VERIFY_IMAGES
    assert every.describe() == f"all {count} images in {demo_images.name}/"
    two = make_inputs(spec, demo_images, 2)
    assert len(two.tensors) == 2 and two.describe().startswith(f"the first 2 of {count} images")
    assert "--verify-num" in two.describe()
    coco128 = require_asset("data/coco128")
    capped = make_inputs(spec, coco128)
    assert len(capped.tensors) == DEFAULT_VERIFY_IMAGES and "of 128 images" in capped.describe()
    assert len(make_inputs(spec, coco128, 0).files) == 128
    assert make_inputs(spec, None).describe() == "4 seeded random inputs"
    from converters.commands import convert as convert_command

    assert convert_command.DEFAULT_VERIFY_IMAGES == DEFAULT_VERIFY_IMAGES  # the CLI's copy, kept light


def test_convert_cli_states_parity_inputs_and_never_wraps(tmp_path: Path, demo_images: Path) -> None:
    onnx = require_asset("models/onnx/nanodet-plus-m_416.onnx")
    out = tmp_path / ("a-build-directory-with-a-long-name-" * 3) / "nanodet"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = run_edgekit("convert", onnx, "-o", out, "--verify-images", demo_images, "--verify-num", "2",
                       "--no-fp16", env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"manifest: {out / 'manifest.json'}" in "\n".join(lines)  # the long path on one line
    assert any(line.startswith(str(out)) for line in lines)
    assert any(line.startswith("parity checked on the first 2 of") for line in lines)
    manifest = load_manifest(out)
    assert manifest.builds["fp32"].parity.samples == 2
    bad = run_edgekit("convert", onnx, "-o", tmp_path / "x", "--verify-num", "-1")
    assert bad.returncode != 0 and "--verify-num" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_int8_convert_prints_its_speed_once_and_flags_random_pixels(
    tmp_path: Path, demo_images: Path
) -> None:
    onnx = save(GRAPHS["backbone_ops"](), tmp_path / "m.onnx")
    proc = run_edgekit(
        "convert", onnx, "-o", tmp_path / "b", "--int8", "--calib", demo_images, "--method", "kl"
    )
    assert proc.returncode == 0, proc.stderr
    speed = [line for line in proc.stdout.splitlines() if "interleaved rounds" in line]
    assert len(speed) == 1 and speed[0].startswith("int8 speed: ")
    assert "INT8 parity was checked on random pixels only" in proc.stdout
    details = json.loads((tmp_path / "b" / "manifest.json").read_text())["artifacts"]["ncnn"]["int8"][
        "details"
    ]
    here = details["speed_here"]
    assert here["threads"] == 1 and here["rounds"] >= 5 and here["ratio_min"] <= here["ratio_max"]
    assert ("no clear difference" in speed[0]) == (here["ratio_min"] <= 1 <= here["ratio_max"])
    assert ("SLOWER" in speed[0]) == (here["ratio_max"] < 1)


def test_detect_progress_lines_are_whole_in_a_pipe(
    nanodet_plus_build: Path, demo_images: Path, tmp_path: Path
) -> None:
    out = tmp_path / ("detections-in-a-folder-with-a-long-name-" * 3)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = run_edgekit("detect", nanodet_plus_build, demo_images / "bus.jpg", "-o", out, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"{demo_images / 'bus.jpg'} -> {out / 'bus.jpg'} (" in proc.stderr  # one line, however long
