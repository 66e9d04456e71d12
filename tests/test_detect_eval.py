"""End-to-end: real ncnn models through Detector, the detect and eval commands, and their errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.coco_eval import evaluate, load_coco
from edge.errors import EdgekitError
from edge.runtime.detector import Detector
from tests.support.assets import require_asset
from tests.support.cli import run_edgekit

EVAL_IMAGES = 25
CROSS_LAYOUT_IMAGES = ("bus.jpg", "zidane.jpg", "street.png")


@pytest.fixture(scope="session")
def legacy_build(tmp_path_factory) -> Path:
    """nanodet-m_416.onnx (integrated distances in bins) converted once per session."""
    from converters.convert import convert_onnx

    onnx = require_asset("models/onnx/nanodet-m_416.onnx")
    return convert_onnx(onnx, tmp_path_factory.mktemp("builds") / "m416").manifest_path.parent


@pytest.fixture(scope="session")
def coco_subset() -> tuple[Path, Path]:
    root = require_asset("data/coco-val2017-subset")
    return root / "instances.json", root / "images"


def _plus_variants(ncnn_models: Path, build: Path) -> dict[str, Detector]:
    pnnx = ncnn_models / "nanodet-plus-m_416-pnnx/model.param"
    return {
        "clsdis": Detector.open(ncnn_models / "nanodet-plus-m_416-clsdis/model.param"),
        "pnnx-concat": Detector.open(pnnx),
        "pnnx-strides": Detector.open(pnnx, outputs=["231", "228", "225", "222"]),
        "onnx-build": Detector.open(build),
    }


def test_every_layout_gives_the_same_detections(ncnn_models, demo_images, nanodet_plus_build):
    detectors = _plus_variants(ncnn_models, nanodet_plus_build)
    for name in CROSS_LAYOUT_IMAGES:
        image = cv2.imread(str(demo_images / name))
        found = {key: det.detect(image) for key, det in detectors.items()}
        reference = found["onnx-build"]
        assert len(reference) >= 2
        for key, other in found.items():
            assert other.class_ids.tolist() == reference.class_ids.tolist(), (name, key)
            np.testing.assert_allclose(other.boxes, reference.boxes, atol=1.0, err_msg=f"{name} {key}")
            np.testing.assert_allclose(other.scores, reference.scores, atol=2e-3, err_msg=f"{name} {key}")
    layouts = {key: det.detected_layout for key, det in detectors.items()}
    assert layouts == {
        "clsdis": "nanodet-cls-dis",
        "pnnx-concat": "nanodet-single-chw",
        "pnnx-strides": "nanodet-strides",
        "onnx-build": "nanodet-single",
    }


@pytest.mark.slow
def test_eval_same_map_across_layouts_and_precisions(ncnn_models, nanodet_plus_build, coco_subset):
    """edgekit eval --json: the build in fp32 and fp16, the clsdis and pnnx models agree."""
    ann, images = coco_subset
    run = run_edgekit(
        "eval", nanodet_plus_build, ncnn_models / "nanodet-plus-m_416-clsdis/model.param",
        ncnn_models / "nanodet-plus-m_416-pnnx/model.param",
        "--coco", ann, "--images", images, "--limit", EVAL_IMAGES, "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)["results"]
    assert [(r["build"], r["precision"]) for r in results] == [
        ("nanodet-plus-m_416-build", "fp32"),
        ("nanodet-plus-m_416-build", "fp16"),
        ("nanodet-plus-m_416-clsdis", "fp32"),
        ("nanodet-plus-m_416-pnnx", "fp32"),
    ]
    maps = [r["map"] for r in results]
    assert all(r["images"] == EVAL_IMAGES for r in results)
    assert min(maps) > 0.25 and max(maps) - min(maps) <= 0.002, maps
    assert all(0 < r["map50"] <= 1 and r["map50"] >= r["map"] for r in results)


def test_legacy_build_matches_legacy_ncnn_model(ncnn_models, demo_images, legacy_build):
    """The ONNX export (distances integrated, in bins) and the ncnn app model (raw bins) agree."""
    build = Detector.open(legacy_build)
    app_model = Detector.open(ncnn_models / "nanodet-m_416/model.param")
    for name in CROSS_LAYOUT_IMAGES[:2]:
        image = cv2.imread(str(demo_images / name))
        a, b = build.detect(image), app_model.detect(image)
        assert len(a) >= 2 and a.class_ids.tolist() == b.class_ids.tolist()
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1.0)
        np.testing.assert_allclose(a.scores, b.scores, atol=2e-3)
    assert build.detected_layout == app_model.detected_layout == "nanodet-legacy"


def test_eval_legacy_and_int8_models(ncnn_models, coco_subset):
    ann, images = coco_subset
    dataset = load_coco(ann, images, limit=10)
    legacy = evaluate(Detector.open(ncnn_models / "nanodet-m_416/model.param"), dataset)
    int8 = evaluate(Detector.open(ncnn_models / "nanodet-plus-m_416-int8/model.param"), dataset)
    assert (legacy.precision, int8.precision) == ("fp32", "int8")
    assert legacy.map > 0.15 and int8.map > 0.15


def test_letterbox_maps_boxes_back(ncnn_models, demo_images):
    """Letterboxed (416x320 for a landscape image) and stretched inputs find the same objects."""
    param = ncnn_models / "nanodet-plus-m_416-pnnx/model.param"
    image = cv2.imread(str(demo_images / "zidane.jpg"))
    stretched = Detector.open(param, score_threshold=0.5)
    boxed = Detector.open(param, score_threshold=0.5)
    boxed.spec.input.resize = "letterbox"
    a, b = stretched.detect(image), boxed.detect(image)
    assert len(a) >= 2 and sorted(a.class_ids.tolist()) == sorted(b.class_ids.tolist())
    for box in a.boxes:
        ious = [_iou(box, other) for other in b.boxes]
        assert max(ious) > 0.8


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _make_video(path: Path, frame: np.ndarray, count: int = 4) -> None:
    frame = cv2.resize(frame, (320, 240))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for _ in range(count):
        writer.write(frame)
    writer.release()


def test_detect_command_images_folder_video(tmp_path, ncnn_models, demo_images):
    video = tmp_path / "clip.mp4"
    _make_video(video, cv2.imread(str(demo_images / "bus.jpg")))
    out = tmp_path / "out"
    param = ncnn_models / "nanodet-plus-m_416-clsdis/model.param"
    run = run_edgekit("detect", param, demo_images, video, "-o", out, "--score", "0.4", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["layout"] == "nanodet-cls-dis"
    names = {Path(r["input"]).name: r for r in summary["results"]}
    bus = names["bus.jpg"]["detections"]
    assert {"person", "bus"} <= {d["class_name"] for d in bus}
    assert all(d["score"] >= 0.4 for d in bus)
    assert len(names["clip.mp4"]["frames"]) == 4 and names["clip.mp4"]["frames"][0]["detections"]
    assert json.loads((out / "bus.json").read_text())["detections"] == bus
    annotated = cv2.imread(str(out / "bus.jpg"))
    assert annotated.shape == cv2.imread(str(demo_images / "bus.jpg")).shape
    assert not np.array_equal(annotated, cv2.imread(str(demo_images / "bus.jpg")))
    capture = cv2.VideoCapture(str(out / "clip.mp4"))
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    capture.release()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left

    again = run_edgekit("detect", param, demo_images / "bus.jpg", "-o", out)
    assert again.returncode == 2 and "already exists; pass --force" in again.stderr
    forced = run_edgekit("detect", param, demo_images / "bus.jpg", "-o", out, "--force", "--score", "0.7")
    assert forced.returncode == 0, forced.stderr
    assert len(json.loads((out / "bus.json").read_text())["detections"]) < len(bus)


def _one_line_error(run: subprocess.CompletedProcess, text: str) -> None:
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], run.stderr


def test_detect_errors(tmp_path, ncnn_models, demo_images):
    param = ncnn_models / "nanodet-plus-m_416-clsdis/model.param"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    _one_line_error(run_edgekit("detect", param, broken, "-o", tmp_path / "o1"), "cannot read image")
    _one_line_error(
        run_edgekit("detect", tmp_path / "missing.param", broken, "-o", tmp_path / "o2"), "model not found"
    )
    _one_line_error(
        run_edgekit("detect", param, tmp_path / "nope.jpg", "-o", tmp_path / "o3"), "input not found"
    )
    legacy = ncnn_models / "nanodet-m_416/model.param"
    mismatch = run_edgekit(
        "detect", legacy, demo_images / "bus.jpg", "--preset", "nanodet-plus", "-o", tmp_path / "o4"
    )
    _one_line_error(mismatch, "do not match preset 'nanodet-plus'")
    assert "cls_pred_stride_8 (2704x80)" in mismatch.stderr
    lone = tmp_path / "lone.param"
    lone.write_text(param.read_text())
    _one_line_error(
        run_edgekit("detect", lone, demo_images / "bus.jpg", "-o", tmp_path / "o5"), "weights missing"
    )


def test_eval_errors(tmp_path, ncnn_models, coco_subset, nanodet_plus_build):
    ann, images = coco_subset
    data = json.loads(ann.read_text())
    data["images"] = [*data["images"][:3], {**data["images"][3], "file_name": "000000999999.jpg"}]
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(data))
    param = ncnn_models / "nanodet-plus-m_416-clsdis/model.param"
    _one_line_error(
        run_edgekit("eval", param, "--coco", wrong, "--images", images),
        "annotations do not match the image folder: 1 of 4 images missing",
    )
    _one_line_error(
        run_edgekit("eval", param, "--coco", tmp_path / "none.json", "--images", images), "not found"
    )
    _one_line_error(
        run_edgekit("eval", nanodet_plus_build, "--precision", "int8", "--coco", ann, "--images", images),
        "holds fp32, fp16; none of int8",
    )
    with pytest.raises(EdgekitError, match=r"this build has no int8 model \(it has: fp32, fp16\)"):
        Detector.open(nanodet_plus_build, precision="int8")
    with pytest.raises(EdgekitError, match="model not found"):
        Detector.open(tmp_path / "missing")
