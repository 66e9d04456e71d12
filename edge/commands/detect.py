"""``edgekit detect``: run a build on images, folders and videos; write annotated media + JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from edge.atomic import refuse_overwrite, write_json
from edge.console import output_console
from edge.decoders.registry import layouts_help, preset_defaults_help, preset_help
from edge.draw import draw_detections
from edge.errors import EdgekitError
from edge.manifest import PRECISIONS
from edge.media import AtomicVideoWriter, MediaItem, collect_media, read_image, video_frames, write_image
from edge.runtime.detector import Detector

console = output_console(stderr=True)


def output_paths(item: MediaItem, out_dir: Path) -> tuple[Path, Path]:
    """Annotated media path and detections JSON path for one input."""
    media = out_dir / (f"{item.path.stem}.mp4" if item.kind == "video" else item.path.name)
    return media, out_dir / f"{item.path.stem}.json"


def plan_outputs(items: list[MediaItem], out_dir: Path, force: bool) -> list[tuple[Path, Path]]:
    """Every output path, checked up front: no two inputs share one, nothing is overwritten unasked."""
    plans = [output_paths(item, out_dir) for item in items]
    seen: dict[Path, Path] = {}
    for item, paths in zip(items, plans, strict=True):
        for path in paths:
            if path in seen:
                raise EdgekitError(
                    f"{item.path} and {seen[path]} would both write {path}; detect them separately"
                )
            seen[path] = item.path
            refuse_overwrite(path, force)
    return plans


def detect_image(detector: Detector, item: MediaItem, media_path: Path, json_path: Path) -> dict[str, Any]:
    image = read_image(item.path)
    found = detector.detect(image)
    write_image(media_path, draw_detections(image, found, detector.class_names))
    record = {"input": str(item.path), "width": image.shape[1], "height": image.shape[0]}
    record["detections"] = detector.to_records(found)
    write_json(json_path, record)
    return record


def detect_video(detector: Detector, item: MediaItem, media_path: Path, json_path: Path) -> dict[str, Any]:
    frames_iter, fps, _ = video_frames(item.path)
    writer = None
    frames: list[dict[str, Any]] = []
    size = (0, 0)
    try:
        for index, frame in enumerate(frames_iter):
            found = detector.detect(frame)
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = AtomicVideoWriter(media_path, fps, size)
            writer.write(draw_detections(frame, found, detector.class_names))
            frames.append({"frame": index, "detections": detector.to_records(found)})
        if writer is None:
            raise EdgekitError(f"video {item.path} has no readable frames")
        writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    record = {"input": str(item.path), "width": size[0], "height": size[1], "fps": fps, "frames": frames}
    write_json(json_path, record)
    return record


def detect_command(
    build: Annotated[Path, typer.Argument(help="build directory, or a .param with its .bin beside it")],
    inputs: Annotated[list[Path], typer.Argument(help="images, folders of images, video files")],
    out: Annotated[Path, typer.Option("-o", "--out", help="folder for annotated media and JSON")] = Path(
        "detections"
    ),
    precision: Annotated[
        str | None, typer.Option(help=f"{' | '.join(PRECISIONS)} (default: fp32 if the build has it)")
    ] = None,
    preset: Annotated[str, typer.Option(help=preset_help())] = "auto",
    score: Annotated[
        float | None,
        typer.Option(
            help=f"score threshold (default: the manifest's; {preset_defaults_help('score_threshold')})"
        ),
    ] = None,
    nms: Annotated[
        float | None,
        typer.Option(
            help=f"NMS IoU threshold (default: the manifest's; {preset_defaults_help('nms_threshold')})"
        ),
    ] = None,
    max_det: Annotated[
        int | None,
        typer.Option(
            "--max-det",
            help=f"most detections per image (default: the manifest's; {preset_defaults_help('max_detections')})",
        ),
    ] = None,
    threads: Annotated[
        int, typer.Option(help="ncnn threads (1 gives steady timings; try your core count)")
    ] = 1,
    layout: Annotated[str, typer.Option(help=layouts_help())] = "auto",
    size: Annotated[
        int | None, typer.Option(help="input size of a bare .param (default: from its name)")
    ] = None,
    outputs: Annotated[
        str | None, typer.Option(help="comma-separated ncnn blobs to decode instead of the graph outputs")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print all detections as JSON on stdout")] = False,
    force: Annotated[bool, typer.Option("--force", help="overwrite existing outputs")] = False,
) -> None:
    """Detect objects; write annotated images/videos and detections JSON into the output folder."""
    items = collect_media(inputs)
    plans = plan_outputs(items, out, force)
    detector = Detector.open(
        build,
        precision=precision,
        preset=preset,
        size=size,
        outputs=[o.strip() for o in outputs.split(",") if o.strip()] if outputs else None,
        threads=threads,
        layout=layout,
        score_threshold=score,
        nms_threshold=nms,
        max_detections=max_det,
    )
    records = []
    try:
        for item, (media_path, json_path) in zip(items, plans, strict=True):
            run = detect_video if item.kind == "video" else detect_image
            records.append(run(detector, item, media_path, json_path))
            if not as_json:
                count = (
                    len(records[-1].get("detections", []))
                    if item.kind == "image"
                    else len(records[-1]["frames"])
                )
                unit = "detections" if item.kind == "image" else "frames"
                console.print(f"{item.path} -> {media_path} ({count} {unit})", highlight=False)
    finally:
        detector.close()
    if as_json:
        summary = {
            "model": detector.name,
            "precision": detector.spec.precision,
            "layout": detector.detected_layout,
            "results": records,
        }
        typer.echo(json.dumps(summary))
