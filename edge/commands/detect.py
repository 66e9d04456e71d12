"""``edgekit detect``: run a build on images, folders and videos; write annotated media + JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from edge.atomic import refuse_overwrite, refuse_overwriting_inputs, write_json
from edge.console import output_console
from edge.decoders.registry import layouts_help, preset_defaults_help, preset_help
from edge.draw import draw_detections
from edge.errors import EdgekitError
from edge.manifest import PRECISIONS
from edge.media import AtomicVideoWriter, MediaItem, collect_media, read_image, video_frames, write_image
from edge.options import (
    fraction,
    name_list,
    output_path,
    positive,
    side,
    target_option,
    thread_count,
    warn_unused_run_options,
)
from edge.remote import RUNNER_HELP, RemoteRequest, detect_on_target, write_outputs
from edge.runtime.detector import Detector
from edge.staging import sweep_stale

console = output_console(stderr=True)


def output_paths(item: MediaItem, out_dir: Path) -> tuple[Path, Path]:
    """Annotated media path and detections JSON path for one input."""
    media = out_dir / (f"{item.path.stem}.mp4" if item.kind == "video" else item.path.name)
    return media, out_dir / f"{item.path.stem}.json"


def plan_outputs(items: list[MediaItem], out_dir: Path, force: bool) -> list[tuple[Path, Path]]:
    """Every output path, checked up front: no two inputs share one, no input is ever overwritten
    (not even with ``--force``), nothing else is overwritten unasked.
    """
    plans = [output_paths(item, out_dir) for item in items]
    seen: dict[Path, Path] = {}
    for item, paths in zip(items, plans, strict=True):
        for path in paths:
            if path in seen:
                raise EdgekitError(
                    f"{item.path} and {seen[path]} would both write {path}; detect them separately"
                )
            seen[path] = item.path
    refuse_overwriting_inputs(seen, files=[item.path for item in items])
    for path in seen:
        refuse_overwrite(path, force)
    sweep_stale(out_dir)  # temporary files of an earlier run that was killed
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
    frames_iter, fps, expected = video_frames(item.path)
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
    if expected > len(frames):  # the container promised more frames than could be decoded
        console.print(
            f"[bold yellow]warning:[/] {escape(str(item.path))}: decoded {len(frames)} of the {expected} frames"
            " its header lists; the file looks truncated or damaged",
            highlight=False,
            soft_wrap=True,
        )
    record = {"input": str(item.path), "width": size[0], "height": size[1], "fps": fps, "frames": frames}
    write_json(json_path, record)
    return record


def remote_detect(
    target: str,
    runner: str,
    build: Path,
    items: list[MediaItem],
    plans: list[tuple[Path, Path]],
    as_json: bool,
    **options: Any,
) -> None:
    """``--target``: the device detects, this host draws its boxes and writes the same outputs."""
    videos = [str(item.path) for item in items if item.kind == "video"]
    if videos:
        raise EdgekitError(f"--target detects images, not videos: {', '.join(videos)}")
    images = [item.path for item in items]
    request = RemoteRequest(target, runner, build, images, **options)
    with console.status(f"detecting on {target}") as status:
        result = detect_on_target(request, progress=status.update)
    write_outputs(result, images, plans)
    console.print(result.where, highlight=False, soft_wrap=True)
    if as_json:
        summary = {"model": result.model, "precision": result.precision, "layout": result.layout,
                   "results": result.records, "target": result.target, "runner": result.runner}  # fmt: skip
        typer.echo(json.dumps(summary))
        return
    for record, (media_path, _) in zip(result.records, plans, strict=True):
        count = len(record.get("detections", []))
        console.print(f"{record['input']} -> {media_path} ({count} detections)", highlight=False)


def detect_command(
    build: Annotated[Path, typer.Argument(help="build directory, or a .param with its .bin beside it")],
    inputs: Annotated[list[Path], typer.Argument(help="images, folders of images, video files")],
    out: Annotated[
        Path, typer.Option("-o", "--out", callback=output_path, help="folder for annotated media and JSON")
    ] = Path("detections"),
    precision: Annotated[
        str | None, typer.Option(help=f"{' | '.join(PRECISIONS)} (default: fp32 if the build has it)")
    ] = None,
    preset: Annotated[str, typer.Option(help=preset_help())] = "auto",
    score: Annotated[
        float | None,
        typer.Option(
            callback=fraction,
            help=f"score threshold (default: the manifest's; {preset_defaults_help('score_threshold')})",
        ),
    ] = None,
    nms: Annotated[
        float | None,
        typer.Option(
            callback=fraction,
            help=f"NMS IoU threshold (default: the manifest's; {preset_defaults_help('nms_threshold')})",
        ),
    ] = None,
    max_det: Annotated[
        int | None,
        typer.Option(
            "--max-det",
            callback=positive,
            help=f"most detections per image (default: the manifest's; {preset_defaults_help('max_detections')})",
        ),
    ] = None,
    threads: Annotated[
        int,
        typer.Option(
            callback=thread_count, help="ncnn threads (1 gives steady timings; try your core count)"
        ),
    ] = 1,
    layout: Annotated[str, typer.Option(help=layouts_help())] = "auto",
    size: Annotated[
        int | None,
        typer.Option(callback=side, help="input size of a bare .param (default: from its name)"),
    ] = None,
    outputs: Annotated[
        str | None,
        typer.Option(
            callback=name_list, help="comma-separated ncnn blobs to decode instead of the graph outputs"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print all detections as JSON on stdout")] = False,
    force: Annotated[bool, typer.Option("--force", help="overwrite existing outputs")] = False,
    target: Annotated[
        str | None, target_option("detect on a device (as in `edgekit bench`): adb[://serial], ssh://...")
    ] = None,
    runner: Annotated[str, typer.Option(help=RUNNER_HELP)] = "auto",
) -> None:
    """Detect objects; write annotated images/videos and detections JSON into the output folder."""
    warn_unused_run_options([build], target, runner, size)
    items = collect_media(inputs)
    plans = plan_outputs(items, out, force)
    if target is not None:
        remote_detect(target, runner, build, items, plans, as_json, precision=precision, preset=preset,
                      size=size, threads=threads, layout=layout, score_threshold=score,
                      nms_threshold=nms, max_detections=max_det)  # fmt: skip
        return
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
