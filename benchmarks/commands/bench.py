"""``edgekit bench``: thin CLI over :func:`benchmarks.harness.run_benchmarks`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from edge.atomic import refuse_overwrite, refuse_overwriting_inputs
from edge.console import output_console
from edge.errors import EdgekitError
from edge.extras import require_extra
from edge.manifest import PRECISIONS
from edge.options import (
    choice_list,
    chw_shape,
    non_negative,
    output_file,
    positive,
    precision_list,
    thread_list,
)

err_console = output_console(stderr=True)


def _int_list(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise EdgekitError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise EdgekitError(f"{what} must be positive integers, got {text!r}")
    return values


def _target_help() -> str:
    from benchmarks.targets.registry import TARGET_FORMS

    return f"where to measure: {TARGET_FORMS}; repeat for a fleet run in parallel (default: local)"


def bench_command(
    builds: Annotated[list[Path], typer.Argument(help="build directories (manifest.json) or .param files")],
    target: Annotated[
        list[str] | None, typer.Option("--target", "-t", metavar="<target>", help=_target_help())
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            callback=precision_list,
            help=f"precisions to measure, a subset of {','.join(PRECISIONS)} (default: all a build has)",
        ),
    ] = None,
    threads: Annotated[
        str | None,
        typer.Option(
            callback=thread_list,
            help="thread counts, e.g. 1,2 (default: 1,2,4 up to the target's cores; 1 on an emulated target)",
        ),
    ] = None,
    loops: Annotated[
        int | None,
        typer.Option(callback=positive, help="timed inferences per configuration (default: 100; 3 emulated)"),
    ] = None,
    warmup: Annotated[
        int | None,
        typer.Option(callback=non_negative, help="untimed inferences first (default: 10; 1 emulated)"),
    ] = None,
    shape: Annotated[
        str | None,
        typer.Option(callback=chw_shape, help="input shape C,H,W for a .param whose Input layer has none"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON on stdout")] = False,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", callback=output_file, help="write the results as CSV")
    ] = None,
    plot_path: Annotated[
        Path | None, typer.Option("--plot", callback=output_file, help="write a PNG plot of latency vs size")
    ] = None,
    runner: Annotated[
        str,
        typer.Option(
            "--runner",
            metavar="python|native|auto|app|PATH",
            help="what measures on the target: edgekit's Python runner, the native edgekit-runner "
            "(static binary built on demand for the target's CPU, no Python needed), auto (Python where "
            "the target has python3 with ncnn, else native), app (adb: the Android demo app's benchmark "
            "mode on builds bundled with edgekit bundle), or a path to an edgekit-runner or "
            "benchncnn-compatible binary",
        ),
    ] = "auto",
    cores: Annotated[
        str,
        typer.Option(
            "--cores",
            metavar="all|little|big",
            help="which cores ncnn runs on (its powersave setting, for big.LITTLE phones and boards)",
        ),
    ] = "all",
    force: Annotated[bool, typer.Option("--force", help="overwrite --csv/--plot files")] = False,
) -> None:
    """Measure load time, latency, FPS, peak memory and size of builds on one or more targets."""
    from benchmarks.estimate import estimate_line
    from benchmarks.harness import BenchConfig, resolve_builds, run_benchmarks
    from benchmarks.plot import write_plot
    from benchmarks.report import print_report, to_json, write_csv_file
    from benchmarks.targets.registry import parse_targets

    inputs = [b for b in builds if not b.is_dir()]  # a .param, and the .bin beside it
    inputs += [b.with_suffix(".bin") for b in inputs]
    refuse_overwriting_inputs([csv_path, plot_path], files=inputs, folders=[b for b in builds if b.is_dir()])
    for out in (csv_path, plot_path):
        if out is not None:
            refuse_overwrite(out, force)
    if plot_path is not None and plot_path.suffix.lower() != ".png":
        raise EdgekitError(f"--plot writes a PNG: give a .png file name, not {plot_path.name}")
    if plot_path is not None:
        require_extra("plot", "edgekit bench --plot")
    config = BenchConfig(
        precisions=tuple(choice_list(precision, "--precision", PRECISIONS) or ()) or None,
        threads=_int_list(threads, "--threads") if threads else None,
        loops=loops,
        warmup=warmup,
        runner=runner,
        cores=cores,
        shape=_int_list(shape, "--shape") if shape else None,
    )
    targets = parse_targets(target or [])
    if any(t.emulated for t in targets):  # minutes per run: say how many before starting
        with tempfile.TemporaryDirectory(prefix="edgekit-estimate-") as tmp:
            models = resolve_builds(builds, config, Path(tmp))[0]
            lines = [line for t in targets if (line := estimate_line(t, models, config))]
        for line in lines:
            err_console.print(f"estimate: {line}; --loops/--threads change it", highlight=False)
    with err_console.status("benchmarking", spinner="dots") as status:
        report = run_benchmarks(
            builds, targets, config, progress=lambda name, msg: status.update(f"{name}: {msg}")
        )
    if as_json:
        print(to_json(report))
    else:
        print_report(report, output_console(), errors=err_console)
    if csv_path is not None:
        write_csv_file(report, csv_path)
    if plot_path is not None and report.results:
        write_plot(report, plot_path)
    if report.errors:
        if as_json:  # the errors are in the JSON; repeat them where a person looks
            for err in report.errors:
                err_console.print(
                    f"[bold red]error:[/] {escape(err.message)}", highlight=False, soft_wrap=True
                )
        raise typer.Exit(1)
