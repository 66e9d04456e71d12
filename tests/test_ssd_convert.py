"""SSD-ResNet34 end to end: zoo build with the original post-processing tail -> convert (the tail is
cut, the manifest records it) -> parity on the raw heads -> detect / eval, at a reduced input for
speed, plus one slow full-size (1200) run. Also the generic ``--outputs`` cut."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from converters.cut import plan_cut, tail_nodes
from converters.zoo.build import build_zoo_model
from edge.manifest import GENERATED_WEIGHTS_NOTE, load_manifest
from edge.manifest.codec import validate
from edge.preprocess import preprocess
from tests.support.assets import require_asset
from tests.support.cli import run_edgekit

SIZE = 416
NAME = "ssd-resnet34-1200"


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """The reduced-input network with the downloadable file's NMS/TopK tail."""
    out = tmp_path_factory.mktemp("ssd") / "ssd-resnet34-416.onnx"
    build_zoo_model(NAME, out, input_size=SIZE, with_postprocess=True)
    return out


@pytest.fixture(scope="module")
def build(original) -> Path:
    out = original.parent / "build"
    run = run_edgekit("convert", original, "-o", out, "--json")
    assert run.returncode == 0, run.stderr
    return out


def test_convert_cuts_the_tail_and_records_it(build):
    data = json.loads((build / "manifest.json").read_text())
    validate(data)
    cut = data["conversion"]["cut"]
    assert cut["at"] == ["loc", "conf"] and cut["how"] == "preset" and cut["replaced_by"] == "ssd"
    assert cut["original_outputs"] == ["bboxes", "labels", "scores"]
    assert cut["removed_ops"]["NonMaxSuppression"] == 1 and cut["removed_ops"]["TopK"] == 2
    assert [o["shape"] for o in data["outputs"]] == [[1, 4, 1994], [1, 81, 1994]]
    decoder = data["decoder"]
    assert (decoder["family"], decoder["preset"], decoder["layout"]) == (
        "ssd",
        "ssd-resnet34",
        "ssd-loc-conf",
    )
    assert decoder["config"]["feature_sizes"] == [18, 9, 5, 3, 1, 1]  # settled for the 416 input
    assert data["input"]["color"] == "RGB" and data["input"]["resize"] == "stretch"
    assert data["input"]["mean"] == [123.675, 116.28, 103.53]
    assert data["source"]["weights"] == "generated (seed 0)"
    assert GENERATED_WEIGHTS_NOTE in data["notes"] and any("NonMaxSuppression" in n for n in data["notes"])
    assert load_manifest(build).conversion["cut"] == cut


def test_parity_on_the_raw_heads(build):
    builds = load_manifest(build).builds
    assert builds["fp32"].parity.cosine >= 0.9999
    assert builds["fp16"].parity.cosine >= 0.999
    assert set(builds["fp32"].parity.per_output) == {"loc", "conf"}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def test_detect_matches_the_original_file_in_image_pixels(build, original, demo_images, tmp_path):
    """``edgekit detect`` (ncnn + SSD decoder, boxes mapped to the image) finds the original ONNX
    file's own detections (onnxruntime, NMS tail included, normalised boxes x image size)."""
    image_path = demo_images / "bus.jpg"
    image = cv2.imread(str(image_path))
    height, width = image.shape[:2]
    session = ort.InferenceSession(str(original), providers=["CPUExecutionProvider"])
    tensor, _ = preprocess(image, load_manifest(build).input)  # RGB, mean/std, stretched to 416
    boxes, labels, scores = session.run(None, {"image": tensor[None]})
    expected = np.clip(boxes[0] * [width, height, width, height], 0, [width, height, width, height])
    run = run_edgekit("detect", build, image_path, "-o", tmp_path / "out", "--json", "--precision", "fp32")
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)["results"][0]["detections"]
    assert len(found) == labels.shape[1] == 200
    for box, label, score in list(zip(expected, labels[0], scores[0], strict=True))[:20]:
        match = max(found, key=lambda d: _iou(np.array(d["box"]), box) if d["class_id"] == label - 1 else 0)
        assert match["class_id"] == label - 1 and _iou(np.array(match["box"]), box) > 0.99
        assert match["score"] == pytest.approx(score, abs=1e-3)


def test_eval_says_accuracy_is_not_measurable(build):
    root = require_asset("data/coco-val2017-subset")
    run = run_edgekit(
        "eval", build, "--coco", root / "instances.json", "--images", root / "images",
        "--limit", "1", "--precision", "fp32", "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "accuracy is not measurable without the official weights" in json.loads(run.stdout)["notes"][0]
    assert "not measurable" in run.stderr


def _renamed_heads(original: Path, out: Path) -> Path:
    """The original file with its raw head tensors renamed to anonymous numbers, as in MLPerf's."""
    model = onnx.load(str(original))
    rename = {"loc": "1234", "conf": "1235"}
    for node in model.graph.node:
        node.input[:] = [rename.get(x, x) for x in node.input]
        node.output[:] = [rename.get(x, x) for x in node.output]
    onnx.save(model, str(out))
    return out


def test_cut_finds_the_raw_heads_by_shape(original, tmp_path):
    model = onnx.load(str(_renamed_heads(original, tmp_path / "anonymous.onnx")))
    assert {"NonMaxSuppression", "TopK", "GatherND"} <= {n.op_type for n in tail_nodes(model)}
    cut, record = plan_cut(model, "image", [1, 3, SIZE, SIZE], "auto", None)
    assert record.at == ["1234", "1235"]  # Concat_470 / Concat_471, not the softmax or decoded boxes
    assert [o.name for o in cut.graph.output] == ["1234", "1235"]
    assert not tail_nodes(cut) and len(cut.graph.node) == len(model.graph.node) - record.removed_nodes
    untouched, none = plan_cut(cut, "image", [1, 3, SIZE, SIZE], "auto", None)
    assert none is None and untouched is cut


def test_generic_cut_with_outputs(original, tmp_path):
    run = run_edgekit(
        "convert", original, "-o", tmp_path / "b", "--preset", "none", "--outputs", "loc,conf",
        "--no-fp16", "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert data["decoder"] is None
    assert data["conversion"]["cut"]["how"] == "outputs" and data["conversion"]["cut"]["replaced_by"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "none"], "ops ncnn cannot run (NonMaxSuppression, TopK); cut it with --outputs"),
        (["--outputs", "loc,nosuch"], "--outputs: no tensor named 'nosuch'"),
        (["--preset", "nanodet-plus"], "no nanodet-plus outputs found"),
    ],
)
def test_cut_errors_are_one_line(original, tmp_path, args, message):
    run = run_edgekit("convert", original, "-o", tmp_path / "b", *args)
    assert run.returncode != 0 and message in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_full_size_build_convert_detect(tmp_path, demo_images):
    """The real 1200x1200 model: build, convert (fp32 + fp16), parity, detect."""
    onnx_path = tmp_path / "ssd-resnet34-1200.onnx"
    run = run_edgekit("zoo", "build", NAME, "-o", onnx_path, "--with-postprocess")
    assert run.returncode == 0, run.stderr
    assert "GFLOPs (convolutions): 432.83 (notes: 432.8" in run.stdout
    out = tmp_path / "build"
    run = run_edgekit("convert", onnx_path, "-o", out, "--json", timeout=1800)
    assert run.returncode == 0, run.stderr
    manifest = load_manifest(out)
    assert [o.shape for o in manifest.outputs] == [[1, 4, 15130], [1, 81, 15130]]
    assert manifest.decoder.config.feature_sizes == (50, 25, 13, 7, 3, 3)
    assert manifest.builds["fp32"].parity.cosine >= 0.9999 and manifest.builds["fp16"].parity.cosine >= 0.999
    run = run_edgekit("detect", out, demo_images / "dog.jpg", "-o", tmp_path / "det", "--json")
    assert run.returncode == 0, run.stderr
    assert len(json.loads(run.stdout)["results"][0]["detections"]) == 200
