"""The YOLOv8 family: a YOLOv8-style ONNX head in each ultralytics layout goes through real
onnxsim + pnnx + ncnn, is recognised by ``convert --preset auto``, and ``edgekit detect`` finds
the detections an independent plain-loop decoder (``tests/support/yolov8_reference.py``,
written from ultralytics' published rules) finds on onnxruntime's outputs of the ORIGINAL file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edge.decoders import decode
from edge.manifest.presets import decoder_spec_from_preset, input_spec_from_preset
from edge.preprocess import preprocess
from tests.support import yolov8_reference as reference
from tests.support.assets import require_asset, skip_or_fail
from tests.support.cli import run_edgekit
from tests.support.yolov8_graphs import LAYOUTS, yolov8_head

SIZE = 128
CLASSES = 3
IMAGES = ("bus.jpg", "zidane.jpg")
LAYOUT_NAMES = {"dfl": "yolov8-dfl", "decoded": "yolov8-decoded", "decoded-transposed": "yolov8-decoded"}


def _onnx_outputs(model: onnx.ModelProto, tensor: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": tensor[None]})[0]


def _assert_same(found: list[tuple], expected: list[tuple], margin: float = 0.01, conf: float = 0.25) -> None:
    """Every detection of one list clear of the threshold ``conf`` (by ``margin``) is in the
    other: same class, box within 1 px, score within 0.01."""
    assert expected, "the reference found nothing: the test would prove nothing"
    for ours, theirs in ((found, expected), (expected, found)):
        for x1, y1, x2, y2, score, cls in ours:
            if score < conf + margin:
                continue
            match = [
                t
                for t in theirs
                if t[5] == cls
                and abs(t[4] - score) <= 0.01
                and max(abs(a - b) for a, b in zip(t[:4], (x1, y1, x2, y2), strict=True)) <= 1.0
            ]
            assert match, f"no counterpart for {(x1, y1, x2, y2, score, cls)}"


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, tuple[Path, onnx.ModelProto]]:
    """Each layout converted by the CLI (fp32 + fp16, parity-checked)."""
    work = tmp_path_factory.mktemp("yolov8")
    made = {}
    for layout in LAYOUTS:
        model = yolov8_head(layout, SIZE, CLASSES)
        path = work / f"{layout}.onnx"
        onnx.save(model, str(path))
        run = run_edgekit("convert", path, "-o", work / layout, "--json")
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["preset"] == "yolov8"
        made[layout] = (work / layout, model)
    return made


@pytest.mark.parametrize("layout", LAYOUTS)
def test_convert_recognises_the_layout_and_records_letterbox_114(builds, layout):
    manifest = json.loads((builds[layout][0] / "manifest.json").read_text())
    decoder, spec = manifest["decoder"], manifest["input"]
    assert (decoder["family"], decoder["preset"], decoder["layout"]) == (
        "yolov8",
        "yolov8",
        LAYOUT_NAMES[layout],
    )
    assert len(decoder["class_names"]) == CLASSES and decoder["roles"] == {"head": "out0"}
    assert decoder["config"] == {"strides": [8, 16, 32], "reg_max": 16}
    assert (spec["color"], spec["resize"], spec["pad_multiple"], spec["pad_value"]) == (
        "RGB",
        "letterbox",
        0,
        114.0,
    )
    assert spec["mean"] == [0.0] * 3 and spec["norm"] == pytest.approx([1 / 255] * 3)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_detect_matches_the_independent_decoder(builds, layout, precision, tmp_path):
    build, model = builds[layout]
    images = require_asset("data/images")
    spec = input_spec_from_preset("yolov8", "in0", SIZE, SIZE)
    sources = [images / n for n in IMAGES]
    run = run_edgekit("detect", build, *sources, "-o", tmp_path, "--precision", precision, "--json")
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)["results"]
    for name, result in zip(IMAGES, results, strict=True):
        image = cv2.imread(str(images / name))
        tensor, _ = preprocess(image, spec)
        expected = reference.decode(_onnx_outputs(model, tensor).tolist(), layout == "dfl", SIZE, SIZE)
        expected = reference.to_image(expected, image.shape[1], image.shape[0], SIZE, SIZE)
        found = [(*d["box"], d["score"], d["class_id"]) for d in result["detections"]]
        _assert_same(found, expected)


def test_decoded_80_classes_and_raw_20_classes_share_k_84_and_are_told_apart(tmp_path):
    """K = 84 is 4 + 80 decoded or 64 + 20 raw: convert reads which from the graph (a Sigmoid
    feeding the output means decoded)."""
    for layout, classes in (("decoded", 80), ("dfl", 20)):
        path = tmp_path / f"{layout}.onnx"
        onnx.save(yolov8_head(layout, 64, classes), str(path))
        run = run_edgekit("convert", path, "-o", tmp_path / layout, "--no-fp16", "--json")
        assert run.returncode == 0, run.stderr
        decoder = json.loads((tmp_path / layout / "manifest.json").read_text())["decoder"]
        assert decoder["layout"] == LAYOUT_NAMES[layout] and len(decoder["class_names"]) == classes
        assert (decoder["class_names"][0] == "person") == (classes == 80)  # COCO names for 80 classes


@pytest.mark.parametrize("layout", LAYOUTS)
def test_family_decoder_matches_the_reference_on_onnxruntime_outputs(layout):
    """No ncnn: the vectorised decoder against the plain loops, on several images' outputs."""
    model = yolov8_head(layout, SIZE, CLASSES, seed=1)  # many boxes, no saturated ties
    spec = input_spec_from_preset("yolov8", "in0", SIZE, SIZE)
    decoder = decoder_spec_from_preset("yolov8", CLASSES)
    for name in ("dog.jpg", "person.jpg", "street.png"):
        tensor, _ = preprocess(cv2.imread(str(require_asset(f"data/images/{name}"))), spec)
        output = _onnx_outputs(model, tensor)
        _, found = decode({"output0": output}, decoder, SIZE, SIZE)
        ours = [
            (*b, s, c)
            for b, s, c in zip(
                found.boxes.tolist(), found.scores.tolist(), found.class_ids.tolist(), strict=True
            )
        ]
        _assert_same(ours, reference.decode(output.tolist(), layout == "dfl", SIZE, SIZE), margin=0.0)


def test_letterbox_follows_ultralytics_with_grey_114():
    """edgekit's letterbox against ultralytics' LetterBox rule done independently with
    cv2.resize + copyMakeBorder: same geometry, padding 114 / 255, the same RGB content inside
    (correlated, not equal: warpAffine and resize sample half a source pixel apart)."""
    spec = input_spec_from_preset("yolov8", "in0", 320, 320)
    for name in ("bus.jpg", "zidane.jpg"):
        image = cv2.imread(str(require_asset(f"data/images/{name}")))
        ours, transform = preprocess(image, spec)
        _, new_w, new_h, left, top = reference.letterbox_geometry(image.shape[1], image.shape[0], 320, 320)
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        padded = cv2.copyMakeBorder(
            resized,
            top,
            320 - new_h - top,
            left,
            320 - new_w - left,
            cv2.BORDER_CONSTANT,
            value=(114, 114, 114),
        )
        theirs = padded[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255
        assert (transform.pad_x, transform.pad_y) == (left, top)
        pad = np.ones((320, 320), bool)
        pad[top : top + new_h, left : left + new_w] = False
        assert pad.any()
        np.testing.assert_allclose(ours[:, pad], theirs[:, pad], atol=1e-6)  # 114 / 255 everywhere
        inner = ~pad
        inner[top : top + 2, :] = inner[top + new_h - 2 :, :] = False  # edge rows blend with the border
        inner[:, left : left + 2] = inner[:, left + new_w - 2 :] = False
        for channel in range(3):  # RGB order, same content: each plane matches its own channel best
            corr = [np.corrcoef(ours[channel, inner], theirs[c, inner])[0, 1] for c in range(3)]
            assert corr[channel] > 0.85 and corr[channel] == max(corr)


@pytest.mark.slow
def test_real_yolov8n_from_a_package_matches_the_independent_decoder(tmp_path):
    """NudeNet's 320n.onnx (a real ultralytics YOLOv8n export, 18 classes, decoded layout) from
    the ``nudenet`` package (``pip install --no-deps nudenet==3.4.2``; .ci/run installs it)."""
    spec_found = importlib.util.find_spec("nudenet")
    if spec_found is None or not spec_found.submodule_search_locations:
        skip_or_fail("nudenet is not installed (pip install --no-deps nudenet==3.4.2)")
    onnx_path = Path(next(iter(spec_found.submodule_search_locations))) / "320n.onnx"
    run = run_edgekit("convert", onnx_path, "-o", tmp_path / "b", "--input-shape", "1,3,320,320", "--json")
    assert run.returncode == 0, run.stderr
    decoder = json.loads((tmp_path / "b" / "manifest.json").read_text())["decoder"]
    assert (decoder["preset"], decoder["layout"], len(decoder["class_names"])) == (
        "yolov8",
        "yolov8-decoded",
        18,
    )
    images = require_asset("data/images")
    names = ("bus.jpg", "person.jpg", "nanodet_test_img.jpg")
    run = run_edgekit(
        "detect", tmp_path / "b", *[images / n for n in names], "-o", tmp_path / "d", "--score", 0.1, "--json"
    )
    assert run.returncode == 0, run.stderr
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    spec = input_spec_from_preset("yolov8", "in0", 320, 320)
    for name, result in zip(names, json.loads(run.stdout)["results"], strict=True):
        image = cv2.imread(str(images / name))
        tensor, _ = preprocess(image, spec)
        output = session.run(None, {"images": tensor[None]})[0]
        expected = reference.decode(output.tolist(), False, 320, 320, conf=0.1)
        expected = reference.to_image(expected, image.shape[1], image.shape[0], 320, 320)
        found = [(*d["box"], d["score"], d["class_id"]) for d in result["detections"]]
        _assert_same(found, expected, conf=0.1)
