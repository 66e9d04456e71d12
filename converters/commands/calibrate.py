"""``edgekit calibrate``: write an INT8 calibration table (ncnn2table format) for a build."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edge.console import output_console
from edge.options import check_choice, output_file, positive, thread_count

console = output_console(stderr=True)


def calibrate_command(
    build: Annotated[
        Path, typer.Argument(help="build directory made by 'edgekit convert' (uses its fp32 model)")
    ],
    images: Annotated[Path, typer.Option("--images", help="folder of calibration images")],
    out: Annotated[Path, typer.Option("-o", "--out", callback=output_file, help="table file to write")],
    method: Annotated[str, typer.Option(help="kl | aciq | eq | search")] = "kl",
    num: Annotated[
        int | None,
        typer.Option("--calib-num", callback=positive, help="use the first N images by name (default: all)"),
    ] = None,
    old_num: Annotated[
        int | None, typer.Option("--num", hidden=True, callback=positive, help="old spelling of --calib-num")
    ] = None,
    threads: Annotated[int, typer.Option(callback=thread_count, help="ncnn threads")] = 1,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing table")] = False,
) -> None:
    """Run the fp32 build over calibration images and write a table ncnn2int8 also accepts."""
    from converters.calib_table import write_table
    from converters.calibration import list_images
    from converters.int8_build import METHODS, calibrate
    from edge.atomic import refuse_overwrite, refuse_overwriting_inputs
    from edge.errors import EdgekitError
    from edge.runtime.resolve import locate_model

    if old_num is not None and num is not None and old_num != num:
        raise EdgekitError("--num is the old spelling of --calib-num: give one of them")
    num = num if num is not None else old_num
    check_choice(method, "--method", METHODS)
    refuse_overwriting_inputs([out], folders=[build, images])  # even with --force
    refuse_overwrite(out, force)
    located = locate_model(build)
    if located.manifest is None:
        raise EdgekitError(f"{build}: calibrate needs a build directory made by 'edgekit convert'")
    param, weights = located.files_for("fp32")
    refuse_overwriting_inputs([out], files=[param, weights])
    list_images(images, num)  # a missing or empty folder fails here, before the progress bar
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            key = stage.split(" (")[0]
            if key not in tasks:
                tasks[key] = bar.add_task(stage, total=total)
            bar.update(tasks[key], completed=done, description=stage)

        cal = calibrate(
            param,
            weights,
            located.manifest.input,
            images,
            method=method,
            num_images=num,
            threads=threads,
            progress=progress,
        )
    cal.close()
    write_table(cal.table, out)
    seconds = sum(cal.timings.values())
    console.print(
        f"wrote {out}: {len(cal.table.input_scales)} layers, method {method}, {len(cal.images)} images, {seconds:.1f} s"
    )
