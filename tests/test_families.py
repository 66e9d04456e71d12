"""Model families are plug-ins: a family defined only in the tests (finished detections, K x 6)
goes through convert (recognised from its ONNX outputs), detect and eval with no change outside
its module."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import require_asset

from edge.decoders.coco import COCO_CATEGORY_IDS
from edge.decoders.family import Family
from edge.decoders.registry import find_preset, guess_preset, preset_names, register_family
from edge.errors import EdgekitError
from tests.support.cli import run_edgekit
from tests.support.onnx_graphs import GraphBuilder, save

SIZE = 96
ROWS = 50
PLUGIN_ENV = {**os.environ, "EDGEKIT_FAMILY_MODULES": "tests.support.toy_family"}


def _ground_truth() -> tuple[Path, Path, dict, list[dict]]:
    root = require_asset("data/coco-val2017-subset")
    data = json.loads((root / "instances.json").read_text())
    image = data["images"][0]
    boxes = [a for a in data["annotations"] if a["image_id"] == image["id"] and not a["iscrowd"]]
    return root / "instances.json", root / "images", image, boxes


def _toy_onnx(path: Path, image: dict, boxes: list[dict]) -> Path:
    """An ONNX whose only output (bias of a zero-weight Gemm) lists each ground-truth box, in
    network pixels (stretched to SIZE x SIZE), as one row with score 0.9 and its class."""
    head = np.zeros((ROWS, 6), np.float32)
    sx, sy = SIZE / image["width"], SIZE / image["height"]
    for row, a in enumerate(boxes):
        x, y, w, h = a["bbox"]
        label = COCO_CATEGORY_IDS.index(a["category_id"])
        head[row] = [x * sx, y * sy, (x + w) * sx, (y + h) * sy, 0.9, label]
    g = GraphBuilder([1, 3, SIZE, SIZE])
    pooled = g.op("Flatten", [g.op("GlobalAveragePool", ["images"])[0]])[0]
    weights = g.const(np.zeros((3, head.size), np.float32))
    flat = g.op("Gemm", [pooled, weights, g.const(head.ravel())])[0]
    out = g.op("Reshape", [flat, g.const(np.array([1, ROWS, 6], np.int64))])[0]
    return save(g.finish([out]), path)


@pytest.fixture(scope="module")
def toy_build(tmp_path_factory) -> tuple[Path, dict, list[dict]]:
    _, _, image, boxes = _ground_truth()
    work = tmp_path_factory.mktemp("toy")
    onnx_path = _toy_onnx(work / "toy.onnx", image, boxes)
    run = run_edgekit("convert", onnx_path, "-o", work / "build", "--no-fp16", "--json", env=PLUGIN_ENV)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["preset"] == "toydets"
    return work / "build", image, boxes


def test_convert_recognises_the_plugin_and_records_its_layout(toy_build):
    build, _, _ = toy_build
    decoder = json.loads((build / "manifest.json").read_text())["decoder"]
    assert (decoder["family"], decoder["preset"], decoder["layout"]) == ("toy", "toydets", "toy-dets")
    assert decoder["roles"] == {"detections": "out0"} and decoder["config"] == {"box_format": "xyxy"}
    assert decoder["category_ids"] == list(COCO_CATEGORY_IDS)


def test_detect_decodes_with_the_plugin(toy_build):
    build, image, boxes = toy_build
    _, images, _, _ = _ground_truth()
    out = build.parent / "detections"
    run = run_edgekit("detect", build, images / image["file_name"], "-o", out, "--json", env=PLUGIN_ENV)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["layout"] == "toy-dets"
    found = sorted(summary["results"][0]["detections"], key=lambda d: d["box"])
    expected = sorted(
        ([x, y, x + w, y + h], COCO_CATEGORY_IDS.index(a["category_id"]))
        for a in boxes
        for x, y, w, h in [a["bbox"]]
    )
    assert [d["class_id"] for d in found] == [c for _, c in expected]
    np.testing.assert_allclose([d["box"] for d in found], [b for b, _ in expected], atol=0.02)
    assert {d["score"] for d in found} == {0.9}


def test_eval_scores_the_plugin_with_its_category_ids(toy_build):
    build, _, _ = toy_build
    ann, images, _, _ = _ground_truth()
    run = run_edgekit(
        "eval", build, "--coco", ann, "--images", images, "--limit", 1, "--json", env=PLUGIN_ENV
    )
    assert run.returncode == 0, run.stderr
    (result,) = json.loads(run.stdout)["results"]
    assert result["images"] == 1 and result["map"] > 0.97  # the ground truth itself, decoded


def test_cli_help_lists_plugin_presets_and_layouts():
    run = run_edgekit("detect", "--help", env={**PLUGIN_ENV, "COLUMNS": "300"})
    assert run.returncode == 0, run.stderr
    text = " ".join(run.stdout.split())
    for name in ("nanodet-plus", "nanodet-m", "ssd-resnet34", "yolov8", "yolov8-dfl", "toydets", "toy-dets"):
        assert name in text


def test_without_the_plugin_the_build_names_its_family(toy_build):
    build, image, _ = toy_build
    _, images, _, _ = _ground_truth()
    env = {k: v for k, v in os.environ.items() if k != "EDGEKIT_FAMILY_MODULES"}
    run = run_edgekit("detect", build, images / image["file_name"], "-o", build.parent / "x", env=env)
    assert run.returncode == 2 and "no decoder for model family 'toy'" in run.stderr
    bad = run_edgekit("detect", "--help", env={**env, "EDGEKIT_FAMILY_MODULES": "tests.support.nope"})
    assert bad.returncode != 0 and "cannot load model family module 'tests.support.nope'" in bad.stderr


def test_registry_lookups_and_clashes():
    assert preset_names()[:4] == ["nanodet-plus", "nanodet-m", "ssd-resnet34", "yolov8"]
    assert guess_preset(["cls_pred_stride_8", "dis_pred_stride_8"]) == "nanodet-m"
    assert guess_preset(["loc", "conf"]) == "ssd-resnet34"
    assert guess_preset(["output0"]) == "yolov8"
    assert guess_preset(["a", "b", "c"]) is None  # nobody claims them: no silent NanoDet-Plus
    family, preset = find_preset("nanodet-m")
    assert family.name == "nanodet" and preset.config.center_offset == 0.5
    with pytest.raises(EdgekitError, match="unknown preset 'yolo'; known presets: "):
        find_preset("yolo")
    impostor = Family(
        "impostor", family.config_type, (preset,), (), family.decode, family.recognise, family.guess
    )
    with pytest.raises(EdgekitError, match="preset 'nanodet-m' already belongs to 'nanodet'"):
        register_family(impostor)
