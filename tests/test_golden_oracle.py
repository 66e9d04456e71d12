"""The golden decoder vectors and the production decoder, both checked against an independent oracle.

The oracle (``tests/support/reference_decoder.py``) is a plain-loop decoder written from the decoding rules
in the docs, not from ``edge.decoders``; here it must reproduce every golden vector's expected detections,
agree with the production decoder on the same raw outputs, and agree with it on real ncnn outputs.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from edge.media import read_image
from tests.support.assets import require_asset
from tests.support.reference_decoder import LAYOUTS, Detection, Geometry, decode_reference

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_CASES = sorted(p.stem for p in GOLDEN.glob("*.npz"))
BOX_TOL, SCORE_TOL = 1e-3, 1e-5  # px, score units (as tests/golden/README.md)
# Official NanoDet evaluation thresholds: many candidates, so NMS and the ranking are exercised.
EVAL_THRESHOLDS = {"score_threshold": 0.05, "nms_threshold": 0.6, "max_detections": 100}
REAL_IMAGES = ("bus.jpg", "street.png")
REAL_SIZES = (None, (416, 224))  # the model's own, and a non-square one (224 / 64 is not whole)
# The decode geometry per NanoDet generation, from the shared docs (nanodet-notes.md), not from edgekit.
PRESET_RULES = {
    "nanodet-plus": {"strides": [8, 16, 32, 64], "reg_max": 7, "num_classes": 80, "center_offset": 0.0},
    "nanodet-m": {"strides": [8, 16, 32], "reg_max": 7, "num_classes": 80, "center_offset": 0.5},
}


def _golden(case: str) -> tuple[dict[str, np.ndarray], dict]:
    """Raw outputs cast to float32 (as the README says) and the case's JSON record."""
    with np.load(GOLDEN / f"{case}.npz") as data:
        arrays = {k: data[k].astype(np.float32) for k in data.files}
    return arrays, json.loads((GOLDEN / f"{case}.json").read_text(encoding="utf-8"))


def _preset(meta: dict) -> str:
    """Which NanoDet generation a golden case is: NanoDet-m centres have the +0.5 offset."""
    return "nanodet-m" if meta["decoder"]["center_offset"] else "nanodet-plus"


def _geometry(meta: dict) -> Geometry:
    return Geometry(**meta["decoder"], input_width=meta["input_width"], input_height=meta["input_height"])


def _thresholds(meta: dict) -> dict[str, float]:
    return {k: meta[k] for k in ("score_threshold", "nms_threshold", "max_detections")}


def _expected(meta: dict) -> list[Detection]:
    return [Detection(d["class_id"], d["score"], tuple(d["box"])) for d in meta["detections"]]


def _production(
    arrays: dict[str, np.ndarray], preset: str, width: int, height: int, **thresholds
) -> tuple[str, list[Detection]]:
    """The production decoder (``edge.decoders.decode``, preset's spec) on raw outputs: (layout, detections).

    The only place this file calls production decoding code; adapt here if its interface changes.
    """
    from edge.decoders import decode
    from edge.manifest import decoder_spec_from_preset

    spec = decoder_spec_from_preset(preset)
    layout, found = decode(arrays, spec, width, height, **thresholds)
    dets = [
        Detection(int(c), float(s), tuple(float(v) for v in b))
        for b, s, c in zip(found.boxes, found.scores, found.class_ids, strict=True)
    ]
    return layout, dets


def _mismatch(actual: list[Detection], expected: list[Detection]) -> str | None:
    """Why two best-first detection lists differ, or None when they agree within the tolerances.

    Same count; every expected detection pairs with its own actual one of the same class, score within
    SCORE_TOL and box within BOX_TOL. Both lists must be best first, so the pairing keeps the order except
    among (near-)equal scores, whose order no decode rule fixes.
    """
    for name, dets in (("actual", actual), ("expected", expected)):
        scores = [d.score for d in dets]
        if any(a < b for a, b in itertools.pairwise(scores)):
            return f"{name} detections are not best first: {scores}"
    if len(actual) != len(expected):
        return f"{len(actual)} detections, expected {len(expected)}"
    unused = list(range(len(actual)))
    for i, want in enumerate(expected):
        for j in unused:
            got = actual[j]
            if (
                got.class_id == want.class_id
                and abs(got.score - want.score) <= SCORE_TOL
                and max(abs(g - w) for g, w in zip(got.box, want.box, strict=True)) <= BOX_TOL
            ):
                unused.remove(j)
                break
        else:
            return f"expected #{i} {want} has no match; at that rank: {actual[i]}"
    return None


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_oracle_reproduces_golden_detections(case):
    arrays, meta = _golden(case)
    assert meta["decoder"] == PRESET_RULES[_preset(meta)]
    layout, found = decode_reference(arrays, _geometry(meta), **_thresholds(meta))
    assert layout == meta["layout"]
    assert len(found) > 5
    assert (why := _mismatch(found, _expected(meta))) is None, why


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_production_decoder_matches_oracle_on_golden_outputs(case):
    arrays, meta = _golden(case)
    geometry = _geometry(meta)
    for thresholds in (_thresholds(meta), EVAL_THRESHOLDS):
        want_layout, want = decode_reference(arrays, geometry, **thresholds)
        layout, found = _production(
            arrays, _preset(meta), geometry.input_width, geometry.input_height, **thresholds
        )
        assert layout == want_layout
        assert _mismatch(found, want) is None, (thresholds, _mismatch(found, want))


def test_golden_cases_cover_every_layout_the_oracle_knows():
    layouts = {_golden(case)[1]["layout"] for case in GOLDEN_CASES}
    assert layouts == set(LAYOUTS)
    integrated = {case for case in GOLDEN_CASES if "integrated" in case or "pixels" in case}
    assert integrated == {"nanodet-legacy-integrated", "nanodet-legacy-pixels"}


WRONG_RULES = [
    ("nanodet-legacy", {"center_offset": 0.0}),  # NanoDet-m centres are (col + 0.5) * stride
    ("nanodet-cls-dis", {"center_offset": 0.5}),  # NanoDet-Plus centres have no offset
    ("nanodet-single", {"strides": [64, 32, 16, 8]}),  # levels come in stride order
    ("nanodet-strides", {"reg_max": 6}),  # 8 bins per side, not 7
    ("nanodet-legacy-integrated", {"reg_max": 3}),  # values beyond reg_max: read as pixels, not bins
]


@pytest.mark.parametrize(
    ("case", "change"), WRONG_RULES, ids=[f"{c}-{next(iter(w))}" for c, w in WRONG_RULES]
)
def test_comparison_catches_a_wrong_decode_rule(case, change):
    """The oracle with one decode rule wrong no longer reproduces the golden detections."""
    arrays, meta = _golden(case)
    wrong = dataclasses.replace(_geometry(meta), **change)
    _, found = decode_reference(arrays, wrong, layout=meta["layout"], **_thresholds(meta))
    assert _mismatch(found, _expected(meta)) is not None


NCNN_MODELS = (
    "nanodet-m_320",
    "nanodet-m_416",
    "nanodet-plus-m_320-clsdis",
    "nanodet-plus-m_416-clsdis",
    "nanodet-plus-m_416-int8",
    "nanodet-plus-m-1.5x_416-int8",
    "nanodet-plus-m_416-pnnx",
)


@pytest.mark.parametrize("model", NCNN_MODELS)
def test_production_decoder_matches_oracle_on_real_ncnn_outputs(model, demo_images):
    """Every shared NanoDet ncnn model (each output layout ncnn produces) on real images, at two sizes."""
    from edge.runtime.detector import Detector  # imports the production decoder: only the tests using it

    preset = "nanodet-m" if model.startswith("nanodet-m_") else "nanodet-plus"
    param = require_asset(f"models/ncnn/{model}/model.param")
    for size in REAL_SIZES:
        detector = Detector.open(param, size=size)
        try:
            for image in REAL_IMAGES:
                outputs, transform = detector.raw(read_image(demo_images / image))
                width, height = transform.input_width, transform.input_height
                geometry = Geometry(**PRESET_RULES[preset], input_width=width, input_height=height)
                want_layout, want = decode_reference(outputs, geometry, **EVAL_THRESHOLDS)
                layout, found = _production(outputs, preset, width, height, **EVAL_THRESHOLDS)
                assert layout == want_layout
                assert len(want) > 10, (image, size)
                assert (why := _mismatch(found, want)) is None, (image, size, why)
        finally:
            detector.close()
