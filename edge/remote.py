"""Detection on a device: what ``edgekit detect --target`` and ``edgekit eval --target`` ask for.

The runtime layer knows no device: targets (adb, ssh, the emulated board) and their runners live
in a layer above it. That layer offers itself at run time under the ``edgekit.targets``
entry-point group (edgekit's own ``benchmarks`` package does, in pyproject.toml), as commands do
under ``edgekit.commands``; :func:`detect_on_target` calls the first provider it finds. The
provider runs the images on the device and hands back the same per-image records a local
``edgekit detect --json`` prints, with one line saying where each stage ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.atomic import write_json
from edge.coco_eval import (
    OFFICIAL_MAX_DETECTIONS,
    OFFICIAL_NMS_THRESHOLD,
    OFFICIAL_SCORE_THRESHOLD,
    CocoDataset,
    EvalResult,
    score_results,
    to_coco_results,
)
from edge.decoders import Detections
from edge.draw import draw_detections
from edge.errors import EdgekitError
from edge.media import read_image, write_image

GROUP = "edgekit.targets"
#: ``--runner`` of detect/eval: the device's runner (see ``edgekit bench --runner``)
RUNNER_HELP = (
    "on a --target: native (the static edgekit-runner: the whole pipeline on the device), python "
    "(edgekit's Python runner: preprocessing and decoding here, inference on the device) or auto "
    "(python where the device has python3 with ncnn, else native)"
)


@dataclass(frozen=True)
class RemoteRequest:
    """Images to detect on a device with one build, and the knobs of a local ``edgekit detect``."""

    target: str  # a --target string: adb, adb://SERIAL, ssh://user@host, qemu-aarch64[:CPU], local
    runner: str  # auto, python, native, or a path to an edgekit-runner binary
    build: Path
    images: list[Path]
    precision: str | None = None
    threads: int = 1
    score_threshold: float | None = None
    nms_threshold: float | None = None
    max_detections: int | None = None
    preset: str = "auto"
    layout: str = "auto"
    size: int | None = None


@dataclass
class RemoteDetections:
    """What came back: one record per image (``input`` is the local path), and how it was run."""

    target: str
    runner: str  # native or python
    where: str  # one line: which stages ran on the device and which here
    model: str
    precision: str
    layout: str | None
    class_names: tuple[str, ...]
    records: list[dict[str, Any]] = field(default_factory=list)


class TargetProvider(Protocol):
    """What an ``edgekit.targets`` entry point loads to."""

    def detect(self, request: RemoteRequest, progress: Callable[[str], None]) -> RemoteDetections:
        """Run ``request`` on its target; :class:`EdgekitError` with one line when it cannot."""
        ...


def provider() -> TargetProvider:
    """The installed target provider (edgekit's ``benchmarks`` layer registers one)."""
    found = sorted(entry_points(group=GROUP), key=lambda e: e.name)
    if not found:
        raise EdgekitError(
            "--target needs a target provider (edgekit's benchmarks package); reinstall edgekit"
        )
    return found[0].load()()


def detect_on_target(
    request: RemoteRequest, progress: Callable[[str], None] | None = None
) -> RemoteDetections:
    """Detect ``request.images`` on ``request.target``; records in the order of the images."""
    if not request.images:
        raise EdgekitError("no image to detect")
    result = provider().detect(request, progress or (lambda _m: None))
    if len(result.records) != len(request.images):
        raise EdgekitError(
            f"{request.target} returned {len(result.records)} results for {len(request.images)} images"
        )
    return result


def to_detections(records: list[dict[str, Any]]) -> Detections:
    """A record's ``detections`` list (class_id, score, box) as :class:`Detections`."""
    if not records:
        return Detections.empty()
    boxes = np.asarray([r["box"] for r in records], dtype=np.float32).reshape(-1, 4)
    scores = np.asarray([r["score"] for r in records], dtype=np.float32)
    class_ids = np.asarray([r["class_id"] for r in records], dtype=np.int64)
    return Detections(boxes, scores, class_ids)


def evaluate_on_target(
    dataset: CocoDataset, request: RemoteRequest, progress: Callable[[str], None] | None = None
) -> tuple[EvalResult, RemoteDetections]:
    """COCO mAP of the detections the device itself makes on every image of ``dataset``.

    ``request`` names the build, precision and target; its images and thresholds are replaced by the
    dataset's and the official protocol's.
    """
    from edge.runtime.resolve import resolve_model

    spec = resolve_model(request.build, precision=request.precision, preset=request.preset, size=request.size)
    if not spec.decoder.category_ids:
        raise EdgekitError(
            f"{spec.name} predicts {spec.decoder.num_classes} classes without COCO category ids; "
            "COCO evaluation needs them"
        )
    request = replace(
        request,
        images=[dataset.image_path(r) for r in dataset.images],
        precision=spec.precision,
        score_threshold=OFFICIAL_SCORE_THRESHOLD,
        nms_threshold=OFFICIAL_NMS_THRESHOLD,
        max_detections=OFFICIAL_MAX_DETECTIONS,
    )
    remote = detect_on_target(request, progress)
    results: list[dict[str, Any]] = []
    for image, record in zip(dataset.images, remote.records, strict=True):
        found = to_detections(record.get("detections", []))
        results.extend(to_coco_results(image["id"], found, spec.decoder.category_ids))
    return score_results(dataset, results, spec.name, spec.precision), remote


def write_outputs(result: RemoteDetections, images: list[Path], paths: list[tuple[Path, Path]]) -> None:
    """Draw the device's detections on the local images and write them with each record's JSON."""
    for image_path, record, (media_path, json_path) in zip(images, result.records, paths, strict=True):
        image = read_image(image_path)
        found = to_detections(record.get("detections", []))
        write_image(media_path, draw_detections(image, found, result.class_names))
        write_json(json_path, record)
