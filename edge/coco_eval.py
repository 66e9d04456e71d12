"""COCO mAP of a detector with pycocotools, under NanoDet's official protocol.

Protocol: score threshold 0.05, per-class NMS IoU 0.6, at most 100 detections per image;
contiguous class ids map to COCO category ids through the decoder's ``category_ids``.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge.atomic import read_json
from edge.decoders import Detections
from edge.errors import EdgekitError
from edge.json_schema import check_against
from edge.media import read_image
from edge.runtime.detector import Detector

OFFICIAL_SCORE_THRESHOLD = 0.05
OFFICIAL_NMS_THRESHOLD = 0.6
OFFICIAL_MAX_DETECTIONS = 100
#: JSON Schema of the COCO instances files eval reads
COCO_SCHEMA = Path(__file__).with_name("coco.schema.json")


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
    check_coco(data, annotations)
    if limit is not None and limit < 1:
        raise EdgekitError(f"--limit must be at least 1, got {limit}")
    records = data["images"][:limit] if limit else data["images"]
    evaluated = {r["id"] for r in records}
    if not any(a["image_id"] in evaluated for a in data["annotations"]):
        which = f"the first {len(records)} images" if limit else "its images"
        raise EdgekitError(f"{annotations}: {which} have no annotations, so mAP is undefined")
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


def _first_duplicate(values: list[Any]) -> Any:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


def check_coco(data: Any, path: Path) -> None:
    """``data`` is a COCO instances file pycocotools can score: schema (:data:`COCO_SCHEMA`), ids
    unique, categories defined, boxes finite; fills ``area`` (w*h) and ``iscrowd`` (0) when absent.

    Annotations of images the file does not list are allowed (subsets cut from a larger file).
    """
    check_against(COCO_SCHEMA, data, f"{path}: COCO")
    for kind, key in (("images", "id"), ("images", "file_name"), ("annotations", "id"), ("categories", "id")):
        dup = _first_duplicate([item[key] for item in data[kind]])
        if dup is not None:
            raise EdgekitError(f"{path}: {kind} lists {key} {dup!r} twice")
    categories = {c["id"] for c in data["categories"]}
    for ann in data["annotations"]:
        if ann["category_id"] not in categories:
            raise EdgekitError(
                f"{path}: annotation {ann['id']} has category {ann['category_id']}, which is not listed"
            )
        if not all(math.isfinite(v) for v in ann["bbox"]):
            raise EdgekitError(f"{path}: annotation {ann['id']} has a box that is not finite: {ann['bbox']}")
        ann.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
        ann.setdefault("iscrowd", 0)


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
    return score_results(dataset, results, detector.name, precision or detector.spec.precision)


def score_results(
    dataset: CocoDataset, results: list[dict[str, Any]], build: str, precision: str
) -> EvalResult:
    """The :class:`EvalResult` of COCO-format ``results`` over every image of ``dataset``."""
    stats = coco_metrics(dataset.coco, results, [r["id"] for r in dataset.images])
    return EvalResult(
        build=build,
        precision=precision,
        map=stats[0],
        map50=stats[1],
        map_small=stats[3],
        map_medium=stats[4],
        map_large=stats[5],
        images=len(dataset.images),
    )
