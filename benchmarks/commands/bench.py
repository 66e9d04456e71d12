"""``edgekit bench``: thin CLI over :func:`benchmarks.harness.run_benchmarks`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from edge.atomic import refuse_overwrite
from edge.errors import EdgekitError
from edge.extras import require_extra

err_console = Console(stderr=True)


def _int_list(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise EdgekitError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise EdgekitError(f"{what} must be positive integers, got {text!r}")
    return values


def bench_command(
    builds: Annotated[list[Path], typer.Argument(help="build directories (manifest.json) or .param files")],
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            help="local, ssh://user@host[:port], adb[://serial], qemu-aarch64; repeat for a fleet",
        ),
    ] = None,
    precision: Annotated[
        str, typer.Option(help="precisions to measure, e.g. fp32,fp16,int8")
    ] = "fp32,fp16,int8",
    threads: Annotated[str, typer.Option(help="thread counts, e.g. 1,2,4")] = "1,2,4",
    loops: Annotated[int, typer.Option(help="timed inferences per configuration")] = 100,
    warmup: Annotated[int, typer.Option(help="untimed inferences first")] = 10,
    shape: Annotated[
        str | None, typer.Option(help="input shape C,H,W for a .param whose Input layer has none")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON on stdout")] = False,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="write the results as CSV")] = None,
    plot_path: Annotated[
        Path | None, typer.Option("--plot", help="write a PNG plot of latency vs size")
    ] = None,
    runner: Annotated[
        Path | None, typer.Option("--runner", help="benchncnn-compatible binary to run instead of Python")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite --csv/--plot files")] = False,
) -> None:
    """Measure load time, latency, FPS, peak memory and size of builds on one or more targets."""
    from benchmarks.harness import BenchConfig, run_benchmarks
    from benchmarks.report import print_report, to_json, write_csv_file, write_plot
    from benchmarks.targets.registry import parse_targets

    for out in (csv_path, plot_path):
        if out is not None:
            refuse_overwrite(out, force)
    if plot_path is not None and plot_path.suffix.lower() != ".png":
        raise EdgekitError(f"--plot writes a PNG: give a .png file name, not {plot_path.name}")
    if plot_path is not None:
        require_extra("plot", "edgekit bench --plot")
    config = BenchConfig(
        precisions=tuple(p.strip() for p in precision.split(",") if p.strip()),
        threads=_int_list(threads, "--threads"),
        loops=loops,
        warmup=warmup,
        runner=runner,
        shape=_int_list(shape, "--shape") if shape else None,
    )
    targets = parse_targets(target or [])
    with err_console.status("benchmarking", spinner="dots") as status:
        report = run_benchmarks(
            builds, targets, config, progress=lambda name, msg: status.update(f"{name}: {msg}")
        )
    if as_json:
        print(to_json(report))
    else:
        # a pipe gets the full table width, not rich's 80-column default
        print_report(report, Console() if sys.stdout.isatty() else Console(width=200))
    if csv_path is not None:
        write_csv_file(report, csv_path)
    if plot_path is not None and report.results:
        write_plot(report, plot_path)
    if report.errors:
        if as_json:  # the errors are in the JSON; repeat them where a person looks
            for err in report.errors:
                err_console.print(f"[bold red]error:[/] {err.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
