"""Regenerate the golden decoder vectors in this folder (see README.md).

Runs the shared NanoDet ncnn models on one demo image at a small non-square input (128x96) and
stores each output layout's raw outputs (float16) with the detections edgekit decodes from them.
Usage: ``python tests/golden/make_golden.py [SHARED_DIR]`` (default: ``$EDGEKIT_SHARED`` or
``../shared`` beside the checkout).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from edge.decoders import decode  # noqa: E402
from edge.decoders.spec import DecoderSpec  # noqa: E402
from edge.media import read_image  # noqa: E402
from edge.runtime.detector import Detector  # noqa: E402

WIDTH, HEIGHT = 128, 96
SCORE, NMS, MAX_DET = 0.2, 0.6, 100
IMAGE = "data/images/street.png"


def _raw(
    shared: Path, model: str, outputs: list[str] | None = None
) -> tuple[dict[str, np.ndarray], DecoderSpec]:
    detector = Detector.open(
        shared / "models/ncnn" / model / "model.param", size=(WIDTH, HEIGHT), outputs=outputs
    )
    raw, transform = detector.raw(read_image(shared / IMAGE))
    assert (transform.input_width, transform.input_height) == (WIDTH, HEIGHT)
    detector.close()
    return raw, detector.spec.decoder


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def cases(shared: Path) -> dict[str, tuple[dict[str, np.ndarray], DecoderSpec]]:
    """Layout name -> (raw outputs as ncnn returns them, decoder spec)."""
    chw, plus = _raw(shared, "nanodet-plus-m_416-pnnx")
    rows = chw["out0"].T.copy()
    rows[:, :80] = _sigmoid(rows[:, :80])
    strides, _ = _raw(shared, "nanodet-plus-m_416-pnnx", ["231", "228", "225", "222"])
    clsdis, _ = _raw(shared, "nanodet-plus-m_416-clsdis")
    legacy, legacy_spec = _raw(shared, "nanodet-m_320")
    integrated, in_pixels = {}, {}
    for name, value in legacy.items():
        integrated[name] = in_pixels[name] = value
        if name.startswith("dis_pred_stride_"):
            bins = value.reshape(-1, 4, 8)
            e = np.exp(bins - bins.max(axis=2, keepdims=True))
            integrated[name] = (e @ np.arange(8, dtype=np.float32)) / e.sum(axis=2)
            in_pixels[name] = integrated[name] * int(name.rsplit("_", 1)[1])
    return {
        "nanodet-single": ({"output": rows}, plus),
        "nanodet-single-chw": (chw, plus),
        "nanodet-strides": (strides, plus),
        "nanodet-cls-dis": (clsdis, plus),
        "nanodet-legacy": (legacy, legacy_spec),
        "nanodet-legacy-integrated": (integrated, legacy_spec),
        "nanodet-legacy-pixels": (in_pixels, legacy_spec),
    }


def _compact_json(record: dict) -> str:
    """JSON with one detection per line."""
    head = {k: v for k, v in record.items() if k != "detections"}
    lines = json.dumps(head, indent=1)[:-2] + ',\n "detections": [\n'
    lines += ",\n".join("  " + json.dumps(d) for d in record["detections"])
    return lines + "\n ]\n}\n"


def main() -> None:
    default = Path(os.environ.get("EDGEKIT_SHARED", HERE.parents[2] / "shared"))
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    for name, (raw, spec) in cases(shared).items():
        stored = {k: v.astype(np.float16) for k, v in raw.items()}
        np.savez_compressed(HERE / f"{name}.npz", **stored)
        as_decoded = {k: v.astype(np.float32) for k, v in stored.items()}
        layout, found = decode(
            as_decoded, spec, WIDTH, HEIGHT, score_threshold=SCORE, nms_threshold=NMS, max_detections=MAX_DET
        )
        record = {
            "layout": layout,
            "outputs": {k: list(v.shape) for k, v in stored.items()},
            "input_width": WIDTH,
            "input_height": HEIGHT,
            "decoder": {
                "strides": list(spec.config.strides),
                "reg_max": spec.config.reg_max,
                "num_classes": spec.num_classes,
                "center_offset": spec.config.center_offset,
            },
            "score_threshold": SCORE,
            "nms_threshold": NMS,
            "max_detections": MAX_DET,
            "detections": [
                {"class_id": int(c), "score": round(float(s), 6), "box": [round(float(v), 4) for v in b]}
                for b, s, c in zip(found.boxes, found.scores, found.class_ids, strict=True)
            ],
        }
        (HERE / f"{name}.json").write_text(_compact_json(record), encoding="utf-8")
        print(f"{name}: layout {layout}, {len(found)} detections")


if __name__ == "__main__":
    main()
