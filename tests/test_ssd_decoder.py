"""The SSD family decoder against the original ONNX post-processing tail (decode, softmax,
per-class TopK + NonMaxSuppression, final TopK) run by onnxruntime on the same raw outputs."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest

from converters.zoo.ssd_postprocess import tail_model
from converters.zoo.ssd_resnet34 import build_network
from edge.decoders import decode
from edge.decoders.ssd import config_for_input, default_boxes, resnet34_feature_sizes
from edge.manifest import decoder_spec_from_preset

SPEC = decoder_spec_from_preset("ssd-resnet34")


def _tail_session(size: int) -> ort.InferenceSession:
    config = config_for_input(SPEC.config, size, size)
    return ort.InferenceSession(tail_model(config).SerializeToString(), providers=["CPUExecutionProvider"])


def _check_same_detections(
    session: ort.InferenceSession, loc: np.ndarray, conf: np.ndarray, size: int
) -> int:
    """Our decoder and the ONNX tail agree: same labels and order, boxes within 1e-3, same scores."""
    boxes, labels, scores = session.run(None, {"loc": loc, "conf": conf})
    _, found = decode({"loc": loc, "conf": conf}, SPEC, size, size)
    assert len(found) == labels.shape[1]
    assert found.class_ids.tolist() == (labels[0] - 1).tolist()  # ONNX labels count background as 0
    np.testing.assert_allclose(found.boxes / size, boxes[0], atol=1e-3)
    np.testing.assert_allclose(found.scores, scores[0], atol=1e-5)
    category = [SPEC.category_ids[c] for c in found.class_ids]
    assert all(1 <= c <= 90 for c in category)
    return len(found)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_raw_outputs_give_the_tails_detections(seed):
    rng = np.random.default_rng(seed)
    n = SPEC.config.box_count
    loc = rng.normal(0, 1, (1, 4, n)).astype(np.float32)
    conf = rng.normal(0, 1.5, (1, 81, n)).astype(np.float32)
    assert _check_same_detections(_tail_session(1200), loc, conf, 1200) == 200


def test_few_classes_with_heavy_overlap():
    """Three classes dominate: per-class NMS suppresses most candidates, the 200 cap matters."""
    rng = np.random.default_rng(5)
    n = SPEC.config.box_count
    conf = rng.normal(0, 1, (1, 81, n)).astype(np.float32)
    conf[0, 0] += 4
    conf[0, [1, 3, 18]] += rng.normal(3, 1, (3, n)).astype(np.float32)
    loc = rng.normal(0, 0.5, (1, 4, n)).astype(np.float32)
    assert _check_same_detections(_tail_session(1200), loc, conf, 1200) == 200


def test_one_class_everywhere_keeps_only_its_best_candidates():
    """One class is likely on every box: only its best ``candidates_per_class`` go to NMS, so
    fewer than 200 survive (without that cap, NMS would keep 200 from the whole map)."""
    rng = np.random.default_rng(11)
    n = SPEC.config.box_count
    conf = rng.normal(0, 0.5, (1, 81, n)).astype(np.float32)
    conf[0, 5] += 6.0
    loc = rng.normal(0, 0.2, (1, 4, n)).astype(np.float32)
    assert _check_same_detections(_tail_session(1200), loc, conf, 1200) < 200


def test_sparse_detections_below_the_cap():
    """20 confident pairs of neighbouring default boxes (24 px apart, 84 px wide: IoU 0.56) of
    one class each on a background-only map: NMS keeps one box of each pair."""
    n = SPEC.config.box_count
    conf = np.zeros((1, 81, n), np.float32)
    conf[0, 0] = 8.0
    rng = np.random.default_rng(9)
    rows, cols = rng.choice(50, 20, replace=False), rng.integers(0, 48, 20)
    first = rows * 50 + cols  # level 0, first box kind: index y * 50 + x
    classes = rng.integers(1, 81, 20)
    conf[0, classes, first] = rng.uniform(10, 12, 20)
    conf[0, classes, first + 1] = rng.uniform(7, 9, 20)
    loc = np.zeros((1, 4, n), np.float32)
    assert _check_same_detections(_tail_session(1200), loc, conf, 1200) == 20


def test_background_only_gives_nothing():
    n = SPEC.config.box_count
    conf = np.zeros((1, 81, n), np.float32)
    conf[0, 0] = 10.0
    assert _check_same_detections(_tail_session(1200), np.zeros((1, 4, n), np.float32), conf, 1200) == 0


@pytest.fixture(scope="module")
def reduced_network() -> ort.InferenceSession:
    model = build_network(416).model
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("image", ["bus.jpg", "dog.jpg"])
def test_network_outputs_on_real_images(reduced_network, demo_images, image):
    """Raw outputs of the (reduced-input) generated network itself, on real images."""
    import cv2

    pixels = cv2.resize(cv2.imread(str(demo_images / image))[:, :, ::-1], (416, 416)).astype(np.float32)
    tensor = ((pixels - [123.675, 116.28, 103.53]) / [58.395, 57.12, 57.375]).transpose(2, 0, 1)[None]
    loc, conf = reduced_network.run(None, {"image": tensor.astype(np.float32)})
    assert _check_same_detections(_tail_session(416), loc, conf, 416) > 0


def test_reduced_input_geometry_is_settled_from_the_input_size():
    config = config_for_input(SPEC.config, 416, 416)
    assert config.feature_sizes == resnet34_feature_sizes(416) == (18, 9, 5, 3, 1, 1)
    assert config.box_count == 4 * 324 + 6 * 81 + 6 * 25 + 6 * 9 + 4 + 4
    # scales stay relative to 1200: the first box of a level keeps its normalised size
    assert default_boxes(config)[0, 2] == pytest.approx(84 / 1200)
    assert default_boxes(config)[0, 0] == pytest.approx(0.5 / 18)
    assert default_boxes(config)[4 * 324, 2] == pytest.approx(180 / 1200)
    assert default_boxes(config)[4 * 324 + 81, 2] == pytest.approx(math.sqrt(180 * 396) / 1200)
