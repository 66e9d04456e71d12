"""``edgekit eval``: COCO mAP of one or more builds, side by side, under the official protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edge.coco_eval import EvalResult, evaluate, load_coco
from edge.console import output_console
from edge.decoders.registry import layouts_help, preset_help
from edge.errors import EdgekitError
from edge.extras import require_extra
from edge.manifest import GENERATED_WEIGHTS_NOTE, PRECISIONS
from edge.options import (
    choice_list,
    positive,
    precision_list,
    side,
    target_option,
    thread_count,
    warn_unused_run_options,
)
from edge.remote import RUNNER_HELP, RemoteRequest, evaluate_on_target
from edge.runtime.detector import Detector
from edge.runtime.resolve import build_precisions, locate_model

err_console = output_console(stderr=True)


def parse_precisions(text: str | None) -> list[str] | None:
    """``"fp32,fp16"`` -> ``["fp32", "fp16"]``; None means every precision a build holds."""
    return choice_list(text, "--precision", PRECISIONS)


def runs_for(build: Path, wanted: list[str] | None) -> list[str]:
    """The precisions to evaluate ``build`` in."""
    held = build_precisions(build)
    is_build_dir = build.is_dir() and (build / "manifest.json").is_file()
    if wanted is None:
        return held
    if not is_build_dir:
        return wanted  # a bare model runs in whichever runtime precision is asked for
    chosen = [p for p in wanted if p in held]
    if not chosen:
        raise EdgekitError(f"{build} holds {', '.join(held)}; none of {', '.join(wanted)}")
    return chosen


def results_table(results: list[EvalResult]) -> Table:
    table = Table(title="COCO bbox mAP (score 0.05, per-class NMS 0.6, 100 per image)")
    table.add_column("build", overflow="fold")
    table.add_column("precision")
    for name in ("mAP", "mAP50", "small", "medium", "large", "images"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in results:
        table.add_row(
            r.build,
            r.precision,
            *(f"{v:.3f}" for v in (r.map, r.map50, r.map_small, r.map_medium, r.map_large)),
            str(r.images),
        )
    return table


def eval_command(
    builds: Annotated[list[Path], typer.Argument(help="build directories and/or .param files")],
    coco: Annotated[Path, typer.Option("--coco", help="COCO instances JSON")],
    images: Annotated[Path, typer.Option("--images", help="folder holding the annotated images")],
    precision: Annotated[
        str | None,
        typer.Option(
            callback=precision_list,
            help=f"a subset of {','.join(PRECISIONS)} (default: every precision a build holds)",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(callback=positive, help="evaluate only the first N images")
    ] = None,
    preset: Annotated[str, typer.Option(help=preset_help())] = "auto",
    size: Annotated[
        int | None,
        typer.Option(callback=side, help="input size of a bare .param (default: from its name)"),
    ] = None,
    layout: Annotated[str, typer.Option(help=layouts_help())] = "auto",
    threads: Annotated[
        int,
        typer.Option(
            callback=thread_count, help="ncnn threads (1 gives steady timings; try your core count)"
        ),
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print results as JSON on stdout")] = False,
    target: Annotated[
        str | None, target_option("evaluate the detections a device makes: adb[://serial], ssh://...")
    ] = None,
    runner: Annotated[str, typer.Option(help=RUNNER_HELP)] = "auto",
) -> None:
    """COCO mAP of each build in each precision, in one table."""
    require_extra("eval", "edgekit eval")
    warn_unused_run_options(builds, target, runner, size)
    dataset = load_coco(coco, images, limit)
    wanted = parse_precisions(precision)
    plan = [(build, p) for build in builds for p in runs_for(build, wanted)]
    results: list[EvalResult] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        for build, prec in plan:
            if target is not None:  # the device detects; its mAP, fp16 arithmetic and all
                request = RemoteRequest(target, runner, build, [], prec, threads, preset=preset, size=size,
                                        layout=layout)  # fmt: skip
                result, remote = evaluate_on_target(dataset, request)
                results.append(result)
                err_console.print(
                    f"{result.build} {result.precision}: {remote.where}", highlight=False, soft_wrap=True
                )
                continue
            detector = Detector.open(
                build, precision=prec, preset=preset, size=size, threads=threads, layout=layout
            )
            task = bar.add_task(f"{detector.name} {prec}", total=len(dataset.images))
            try:
                results.append(
                    evaluate(
                        detector,
                        dataset,
                        precision=prec,
                        progress=lambda n, t=task: bar.update(t, completed=n),
                    )
                )
            finally:
                detector.close()
            if not err_console.is_terminal:
                r = results[-1]
                err_console.print(
                    f"{r.build} {r.precision}: mAP {r.map:.3f} on {r.images} images", highlight=False
                )
    untrained = [
        str(b) for b in builds if (m := locate_model(b).manifest) is not None and m.generated_weights
    ]
    notes = [f"{b}: {GENERATED_WEIGHTS_NOTE}; its mAP says nothing about the model" for b in untrained]
    if as_json:
        typer.echo(
            json.dumps({"results": [r.to_dict() for r in results]} | ({"notes": notes} if notes else {}))
        )
    else:
        output_console().print(results_table(results))
    for note in notes:
        err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
