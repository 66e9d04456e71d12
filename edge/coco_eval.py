"""COCO mAP of a detector with pycocotools, under NanoDet's official protocol.

Protocol: score threshold 0.05, per-class NMS IoU 0.6, at most 100 detections per image;
contiguous class ids map to COCO category ids through the decoder's ``category_ids``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge.atomic import read_json
from edge.decoders import Detections
from edge.errors import EdgekitError
from edge.media import read_image
from edge.runtime.detector import Detector

OFFICIAL_SCORE_THRESHOLD = 0.05
OFFICIAL_NMS_THRESHOLD = 0.6
OFFICIAL_MAX_DETECTIONS = 100


@dataclass
class CocoDataset:
    """Ground truth (a pycocotools ``COCO``) and the images it describes, in file order."""

    coco: Any
    images_dir: Path
    images: list[dict[str, Any]]  # COCO image records to evaluate

    def image_path(self, record: dict[str, Any]) -> Path:
        return self.images_dir / record["file_name"]


@dataclass
class EvalResult:
    """COCO box metrics of one build in one precision."""

    build: str
    precision: str
    map: float
    map50: float
    map_small: float
    map_medium: float
    map_large: float
    images: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_coco(annotations: Path, images_dir: Path, limit: int | None = None) -> CocoDataset:
    """Load a COCO annotation file and check every image it lists is in ``images_dir``."""
    from pycocotools.coco import COCO

    annotations, images_dir = Path(annotations), Path(images_dir)
    if not annotations.is_file():
        raise EdgekitError(f"annotation file not found: {annotations}")
    if not images_dir.is_dir():
        raise EdgekitError(f"image folder not found: {images_dir}")
    data = read_json(annotations, "annotations")
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        raise EdgekitError(
            f"{annotations} is not a COCO instances file (needs images, annotations, categories)"
        )
    if limit is not None and limit < 1:
        raise EdgekitError(f"--limit must be at least 1, got {limit}")
    records = data["images"][:limit] if limit else data["images"]
    if not records:
        raise EdgekitError(f"{annotations} lists no images")
    missing = [
        r.get("file_name", "?") for r in records if not (images_dir / str(r.get("file_name", ""))).is_file()
    ]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise EdgekitError(
            f"annotations do not match the image folder: {len(missing)} of {len(records)} images "
            f"missing from {images_dir} ({shown})"
        )
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = data
        coco.createIndex()
    return CocoDataset(coco, images_dir, records)


def to_coco_results(image_id: int, found: Detections, category_ids: list[int]) -> list[dict[str, Any]]:
    """Detections in COCO result format (``bbox`` = x, y, w, h)."""
    results = []
    for box, score, class_id in zip(found.boxes, found.scores, found.class_ids, strict=True):
        x1, y1, x2, y2 = (float(v) for v in box)
        results.append(
            {
                "image_id": int(image_id),
                "category_id": category_ids[int(class_id)],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(score),
            }
        )
    return results


def coco_metrics(coco: Any, results: list[dict[str, Any]], image_ids: list[int]) -> list[float]:
    """pycocotools' 12 bbox stats for ``results`` over ``image_ids`` (zeros if nothing detected)."""
    from pycocotools.cocoeval import COCOeval

    if not results:
        return [0.0] * 12
    with contextlib.redirect_stdout(io.StringIO()):
        detections = coco.loadRes(results)
        evaluator = COCOeval(coco, detections, "bbox")
        evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats]


def evaluate(
    detector: Detector,
    dataset: CocoDataset,
    *,
    precision: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvalResult:
    """Run ``detector`` over the dataset with the official protocol and score it."""
    detector.score_threshold = OFFICIAL_SCORE_THRESHOLD
    detector.nms_threshold = OFFICIAL_NMS_THRESHOLD
    detector.max_detections = OFFICIAL_MAX_DETECTIONS
    category_ids = detector.spec.decoder.category_ids
    if not category_ids:
        raise EdgekitError(
            f"{detector.name} predicts {detector.spec.decoder.num_classes} classes without COCO category ids; "
            "COCO evaluation needs them"
        )
    results: list[dict[str, Any]] = []
    for done, record in enumerate(dataset.images, start=1):
        image = read_image(dataset.image_path(record))
        expected = (record.get("height"), record.get("width"))
        if None not in expected and image.shape[:2] != expected:
            raise EdgekitError(
                f"annotations do not match {dataset.image_path(record)}: image is "
                f"{image.shape[1]}x{image.shape[0]}, annotations say {expected[1]}x{expected[0]}"
            )
        results.extend(to_coco_results(record["id"], detector.detect(image), category_ids))
        if progress is not None:
            progress(done)
    stats = coco_metrics(dataset.coco, results, [r["id"] for r in dataset.images])
    return EvalResult(
        build=detector.name,
        precision=precision or detector.spec.precision,
        map=stats[0],
        map50=stats[1],
        map_small=stats[3],
        map_medium=stats[4],
        map_large=stats[5],
        images=len(dataset.images),
    )
