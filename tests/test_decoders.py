"""Decoder tests: golden vectors per layout, NMS against OpenCV, layout checks, SSD, preprocessing."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.decoders import decode, parse_outputs
from edge.decoders.nanodet import FAMILY as NANODET
from edge.decoders.nms import batched_nms
from edge.decoders.ssd import default_boxes
from edge.errors import EdgekitError
from edge.manifest import InputSpec, decoder_spec_from_preset
from edge.preprocess import letterbox_geometry, preprocess

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_CASES = sorted(p.stem for p in GOLDEN.glob("*.npz"))
PLUS = decoder_spec_from_preset("nanodet-plus")
LEGACY = decoder_spec_from_preset("nanodet-m")


def _golden(case: str) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(GOLDEN / f"{case}.npz") as data:
        arrays = {k: data[k].astype(np.float32) for k in data.files}
    return arrays, json.loads((GOLDEN / f"{case}.json").read_text(encoding="utf-8"))


def test_golden_cases_cover_every_nanodet_layout():
    layouts = {_golden(case)[1]["layout"] for case in GOLDEN_CASES}
    assert layouts == {layout.name for layout in NANODET.layouts}
    assert sum(p.stat().st_size for p in GOLDEN.iterdir()) < 400_000


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_golden_vectors(case):
    arrays, expected = _golden(case)
    spec = PLUS if len(expected["decoder"]["strides"]) == 4 else LEGACY
    assert list(spec.config.strides) == expected["decoder"]["strides"]
    assert spec.config.center_offset == expected["decoder"]["center_offset"]
    layout, found = decode(
        arrays,
        spec,
        expected["input_width"],
        expected["input_height"],
        score_threshold=expected["score_threshold"],
        nms_threshold=expected["nms_threshold"],
        max_detections=expected["max_detections"],
    )
    assert layout == expected["layout"]
    dets = expected["detections"]
    assert len(dets) > 5
    assert found.class_ids.tolist() == [d["class_id"] for d in dets]
    np.testing.assert_allclose(found.scores, [d["score"] for d in dets], atol=1e-5)
    np.testing.assert_allclose(found.boxes, [d["box"] for d in dets], atol=1e-3)


def _match(a, b) -> float:
    """Largest |score difference| after pairing detections in order (same classes required)."""
    assert a.class_ids.tolist() == b.class_ids.tolist()
    np.testing.assert_allclose(a.boxes, b.boxes, atol=0.05)
    return float(np.abs(a.scores - b.scores).max())


def test_golden_plus_layouts_agree_with_each_other():
    """The four NanoDet-Plus layouts hold the same weights' outputs: same detections."""
    results = {}
    for case in ("nanodet-single", "nanodet-single-chw", "nanodet-strides", "nanodet-cls-dis"):
        arrays, meta = _golden(case)
        results[case] = decode(arrays, PLUS, meta["input_width"], meta["input_height"], score_threshold=0.3)[
            1
        ]
    reference = results.pop("nanodet-single-chw")
    assert len(reference) >= 3
    for found in results.values():
        assert _match(found, reference) < 2e-3


def test_forced_layout_and_mismatch_errors():
    arrays, meta = _golden("nanodet-cls-dis")
    with pytest.raises(EdgekitError, match=r"nanodet-single: needs one output, got 8"):
        decode(arrays, PLUS, meta["input_width"], meta["input_height"], layout="nanodet-single")
    with pytest.raises(EdgekitError, match=r"unknown layout 'bogus'"):
        decode(arrays, PLUS, 128, 96, layout="bogus")
    # Wrong input size: every parser refuses, and the message lists what was found.
    with pytest.raises(EdgekitError, match=r"found cls8 \(80x12x16\).*nanodet-cls-dis: cls8 needs 80x52x52"):
        decode(arrays, PLUS, 416, 416)
    legacy, _ = _golden("nanodet-legacy")
    with pytest.raises(EdgekitError, match=r"do not match preset 'nanodet-plus'"):
        decode(legacy, PLUS, 128, 96)


def test_class_score_override_reads_logits():
    arrays, _ = _golden("nanodet-single-chw")
    assert parse_outputs(arrays, PLUS, 128, 96)[1].head.scores_are_logits  # pnnx concat: raw logits
    spec = dataclasses.replace(PLUS, config=dataclasses.replace(PLUS.config, class_scores="sigmoid"))
    _, parsed = parse_outputs(arrays, spec, 128, 96)  # pretend the logits are probabilities
    assert not parsed.head.scores_are_logits and parsed.settled["class_scores"] == "sigmoid"


def test_integrated_distance_units():
    """Integrated legacy distances in bins are scaled by the stride; the override is honoured."""
    bins, meta = _golden("nanodet-legacy-integrated")
    pixels, _ = _golden("nanodet-legacy-pixels")
    size = (meta["input_width"], meta["input_height"])
    from_bins, from_pixels = decode(bins, LEGACY, *size)[1], decode(pixels, LEGACY, *size)[1]
    assert len(from_bins) >= 3
    np.testing.assert_allclose(from_bins.boxes, from_pixels.boxes, atol=0.05)
    forced = dataclasses.replace(LEGACY, config=dataclasses.replace(LEGACY.config, distances="pixels"))
    small = decode(bins, forced, *size)[1]
    widths = small.boxes[:, 2] - small.boxes[:, 0]
    assert widths.max() <= 2 * LEGACY.config.reg_max  # read as pixels: boxes no wider than 2 x 7 px


def _one_hot_head(
    num_locations: int, location: int, class_id: int, score: float
) -> tuple[np.ndarray, np.ndarray]:
    cls = np.zeros((num_locations, 80), np.float32)
    cls[location, class_id] = score
    dis = np.zeros((num_locations, 32), np.float32)  # uniform bins: 3.5 bins per side
    return cls, dis


@pytest.mark.parametrize(("spec", "offset"), [(LEGACY, 0.5), (PLUS, 0.0)])
def test_centre_priors_and_distance_integral(spec, offset):
    """A lone score at row 2, column 3 of the stride-16 level gives the box the formulas say."""
    w, h = 128, 96
    levels = [(s, math.ceil(h / s), math.ceil(w / s)) for s in spec.config.strides]
    n = sum(r * c for _, r, c in levels)
    location = levels[0][1] * levels[0][2] + 2 * levels[1][2] + 3
    cls, dis = _one_hot_head(n, location, 7, 0.9)
    rows = np.concatenate([cls, dis], axis=1)
    _, found = decode({"output": rows}, spec, w, h, layout="nanodet-single", score_threshold=0.5)
    cx, cy, d = (3 + offset) * 16, (2 + offset) * 16, 3.5 * 16
    expected = np.clip([[cx - d, cy - d, cx + d, cy + d]], 0, [w, h, w, h])
    np.testing.assert_allclose(found.boxes, expected, atol=1e-4)
    assert found.class_ids.tolist() == [7]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 300),
    classes=st.integers(1, 6),
    iou=st.sampled_from([0.3, 0.5, 0.6, 0.8]),
    limit=st.sampled_from([0, 5, 100]),
    seed=st.integers(0, 2**31 - 1),
)
def test_batched_nms_matches_opencv(n, classes, iou, limit, seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(1, 80, (n, 2))
    scores = rng.permutation(n).astype(np.float32) / max(n, 1) + 0.001  # distinct scores
    class_ids = rng.integers(0, classes, n)
    kept = batched_nms(np.concatenate([xy, xy + wh], 1), scores, class_ids, iou, limit)
    if n == 0:
        assert kept.size == 0
        return
    ref = np.asarray(
        cv2.dnn.NMSBoxesBatched(np.concatenate([xy, wh], 1), scores, class_ids.astype(np.int32), 0.0, iou)
    )
    ref = ref.reshape(-1)[np.argsort(-scores[ref.reshape(-1)])]
    assert kept.tolist() == (ref[:limit] if limit else ref).tolist()


def test_ssd_default_boxes_follow_the_reference_geometry():
    config = decoder_spec_from_preset("ssd-resnet34").config
    assert config.feature_sizes == (50, 25, 13, 7, 3, 3) and config.boxes_per_location == (4, 6, 6, 6, 4, 4)
    boxes = default_boxes(config)
    assert boxes.shape == (15130, 4)
    np.testing.assert_allclose(boxes[0], [0.01, 0.01, 0.07, 0.07], atol=1e-6)
    second = math.sqrt(0.07 * 0.15)  # (sk, sk) then (sqrt(sk * sk+1), ...): index k*H*W
    np.testing.assert_allclose(boxes[2500], [0.01, 0.01, second, second], atol=1e-6)
    np.testing.assert_allclose(
        boxes[3 * 2500 + 51], [1.5 / 50, 1.5 / 50, 0.07 / math.sqrt(2), 0.07 * math.sqrt(2)], atol=1e-6
    )
    assert boxes.min() >= 0 and boxes.max() <= 1


def test_ssd_decode_of_raw_outputs():
    spec = decoder_spec_from_preset("ssd-resnet34")
    priors = default_boxes(spec.config)
    n = len(priors)
    loc = np.zeros((4, n), np.float32)
    conf = np.zeros((81, n), np.float32)
    conf[0] = 5.0  # background everywhere
    a, b, c = 10000 + 7, 10000 + 8, 10000 + 300  # level 1 (25 x 25), first box kind
    conf[18, a] = 12.0  # label 18 = contiguous class 17
    conf[18, b] = 11.0  # the next column, moved back onto box a: suppressed by NMS
    loc[0, b] = -(priors[b, 0] - priors[a, 0]) / (0.1 * priors[b, 2])
    conf[3, c] = 10.0  # another class, offsets applied
    loc[:, c] = [1.0, -1.0, math.log(2) / 0.2, 0.0]  # shift by 0.1 w / -0.1 h, double the width
    _, found = decode({"loc": loc, "conf": conf}, spec, 1200, 1200)
    assert found.class_ids.tolist() == [17, 2]

    def corners(cx, cy, w, h):
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) * 1200

    np.testing.assert_allclose(found.boxes[0], corners(*priors[a]), rtol=1e-5)
    cx, cy, w, h = priors[c]
    np.testing.assert_allclose(found.boxes[1], corners(cx + 0.1 * w, cy - 0.1 * h, 2 * w, h), rtol=1e-5)
    assert found.scores[0] == pytest.approx(math.exp(12) / (math.exp(12) + 79 + math.exp(5)), rel=1e-5)
    with pytest.raises(EdgekitError, match=r"ssd-loc-conf: needs 4x15130 and 81x15130"):
        decode({"loc": loc[:, :100], "conf": conf}, spec, 1200, 1200)


def _spec(resize: str, width: int = 416, height: int = 416, color: str = "BGR") -> InputSpec:
    return InputSpec(name="x", ncnn_name="x", shape=[1, 3, height, width], color=color, resize=resize)


@pytest.mark.parametrize(
    ("image_wh", "expected"),
    [
        ((640, 427), (416, 278, 416, 288, 0, 5)),
        ((480, 640), (312, 416, 320, 416, 4, 0)),
        ((416, 416), (416, 416, 416, 416, 0, 0)),
    ],
)
def test_letterbox_geometry(image_wh, expected):
    assert letterbox_geometry(*image_wh, 416, 416, 32) == expected
    assert letterbox_geometry(*image_wh, 416, 416, 0)[2:4] == (416, 416)


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_preprocess_maps_a_box_to_the_tensor_and_back(resize):
    """A white rectangle lands where the transform says, and mapping back recovers it."""
    image = np.zeros((427, 640, 3), np.uint8)
    box = np.array([[100, 50, 300, 200]], np.float32)
    image[50:200, 100:300] = (255, 128, 0)
    tensor, transform = preprocess(image, _spec(resize))
    assert tensor.shape == (3, transform.input_height, transform.input_width) and tensor.flags.c_contiguous
    net_box = box.copy()
    net_box[:, 0::2] = box[:, 0::2] * transform.scale_x + transform.pad_x
    net_box[:, 1::2] = box[:, 1::2] * transform.scale_y + transform.pad_y
    x1, y1, x2, y2 = net_box[0]
    inside = tensor[0, int(y1) + 2 : int(y2) - 2, int(x1) + 2 : int(x2) - 2]
    assert np.allclose(inside, 255.0)  # blue channel, BGR order kept, mean 0 / norm 1
    assert tensor[0, int(y2) + 3 :, :].max() == 0 and tensor[0, :, int(x2) + 3 :].max() == 0
    np.testing.assert_allclose(transform.to_image(net_box), box, atol=1e-3)


def test_preprocess_colour_order_and_normalisation():
    image = np.zeros((10, 10, 3), np.uint8)
    image[..., 0], image[..., 2] = 10, 200  # B=10, R=200
    spec = _spec("stretch", 8, 8, color="RGB")
    spec.mean, spec.norm = [1.0, 2.0, 3.0], [0.5, 1.0, 2.0]
    tensor, _ = preprocess(image, spec)
    np.testing.assert_allclose(tensor[:, 4, 4], [(200 - 1) * 0.5, (0 - 2) * 1.0, (10 - 3) * 2.0])
    with pytest.raises(EdgekitError, match="expected a colour image"):
        preprocess(np.zeros((4, 4), np.uint8), spec)
