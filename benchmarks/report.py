"""Present a :class:`benchmarks.harness.BenchReport`: a rich table fitted to the width, JSON, CSV.

The PNG plot is in :mod:`benchmarks.plot`, the verdict and noise checks in :mod:`benchmarks.verdict`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchmarks.harness import BenchReport, BenchResult
from benchmarks.verdict import noise_warning, verdict_line, verdicts
from edge.atomic import write_text

CSV_COLUMNS = (
    "target", "build", "precision", "threads", "load_ms", "min_ms", "median_ms", "mean_ms", "p90_ms",
    "p99_ms", "fps", "peak_memory_mb", "size_bytes", "emulated",
)  # fmt: skip


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@dataclass(frozen=True)
class Column:
    """A table column: header, cell text, and its rank when the table must shrink."""

    header: str
    cell: Callable[[BenchResult], str]
    drop_rank: int  # columns with the lowest rank go first; 0 never goes
    left: bool = False


def _target_cell(r: BenchResult) -> str:
    return r.target + (" (emulated)" if r.emulated else "")


#: every column in display order; when the table is too wide, min, mean, p90, load, memory and
#: p99 are dropped in that order (--json and --csv always hold them all)
COLUMNS = (
    Column("target", _target_cell, 0, left=True),
    Column("build", lambda r: r.build, 0, left=True),
    Column("prec", lambda r: r.precision, 0, left=True),
    Column("thr", lambda r: str(r.threads), 0),
    Column("load ms", lambda r: _fmt(r.load_ms, 1), 4),
    Column("min", lambda r: _fmt(r.latency_ms.min), 1),
    Column("median", lambda r: _fmt(r.latency_ms.median), 0),
    Column("mean", lambda r: _fmt(r.latency_ms.mean), 2),
    Column("p90", lambda r: _fmt(r.latency_ms.p90), 3),
    Column("p99", lambda r: _fmt(r.latency_ms.p99), 6),
    Column("FPS", lambda r: _fmt(r.fps, 1), 0),
    Column("peak MB", lambda r: _fmt(r.peak_memory_mb, 1), 5),
    Column("size MB", lambda r: f"{r.size_bytes / 1e6:.2f}", 0),
)


def _table(results: list[BenchResult], columns: list[Column]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, show_edge=False)
    for col in columns:
        table.add_column(
            col.header,
            justify="left" if col.left else "right",
            no_wrap=col.header != "build",
            overflow="fold",
        )
    for r in results:
        table.add_row(*(col.cell(r) for col in columns))
    return table


def fitted_table(report: BenchReport, width: int) -> tuple[Table, list[str], list[str]]:
    """The results table at most ``width`` columns wide, if dropping columns can make it so.

    A target or build shared by every row leaves the table (the heading names it). Returns the
    table, the heading parts (the shared target/build) and the headers of the dropped columns.
    """
    results = report.results
    columns = list(COLUMNS)
    heading = []
    for name, key in (("build", lambda r: r.build), ("target", _target_cell)):
        values = {key(r) for r in results}
        if len(values) == 1:
            columns = [c for c in columns if c.header != name]
            heading.append(values.pop())
    dropped: list[str] = []
    console = Console(width=10_000)
    table = _table(results, columns)
    droppable = sorted((c for c in columns if c.drop_rank), key=lambda c: c.drop_rank)
    while console.measure(table).maximum > width and droppable:
        gone = droppable.pop(0)
        columns.remove(gone)
        dropped.append(gone.header)
        table = _table(results, columns)
    return table, heading, dropped


def results_table(report: BenchReport, width: int = 10_000) -> Table:
    """One row per (target, build, precision, threads), fitted to ``width`` columns."""
    return fitted_table(report, width)[0]


def describe_target(name: str, info: dict) -> str:
    """One line describing a target: CPU, cores, governor, OS, ncnn, ARM paths, what was run."""
    arm = ", ".join(flag for flag, key in (("fp16", "arm_fp16"), ("dotprod", "arm_dotprod")) if info.get(key))
    parts = [
        f"{info.get('cpu')}",
        f"{info.get('cores')} cores",
        f"governor {info.get('governor') or 'unknown'}",
        f"{info.get('os')}",
        f"ncnn {info.get('ncnn_version')}",
        f"ARM {arm} paths" if arm else "no ARM fp16/dotprod paths",
    ]
    if info.get("runner"):
        parts.append(f"{info['runner']} runner")
    if info.get("cores_used", "all") != "all":
        parts.append(f"{info['cores_used']} cores only (ncnn powersave)")
    plan = info.get("plan")
    if plan:
        parts.append(f"{plan['warmup']} warm-up + {plan['loops']} timed runs per configuration")
    if info.get("emulated"):
        parts.append("EMULATED: timings are not real speed")
    return f"{name}: " + "; ".join(parts)


def print_report(report: BenchReport, console: Console, errors: Console | None = None) -> None:
    """Heading, table (fitted to the console), targets, notes, warnings, errors, then the verdict.

    ``errors`` (the CLI's stderr console) receives the error lines instead of ``console``.
    """
    if report.results:
        table, heading, dropped = fitted_table(report, console.width)
        title = "edgekit bench" + (f": {' on '.join(heading)}" if heading else "")
        console.print(f"[bold]{escape(title)}[/]", highlight=False)
        console.print(table)
        if dropped:
            console.print(
                f"[dim]not shown at this width: {', '.join(dropped)} (--json and --csv have every column)[/]",
                highlight=False,
            )
    for name, info in report.targets.items():
        console.print(escape(describe_target(name, info)), highlight=False, soft_wrap=True)
    for note in report.notes:
        console.print(f"[dim]note: {escape(note)}[/]", highlight=False, soft_wrap=True)
    warning = noise_warning(report)
    if warning:
        console.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    for err in report.errors:
        (errors or console).print(
            f"[bold red]error:[/] {escape(err.message)}", highlight=False, soft_wrap=True
        )
    several_builds = len({r.build for r in report.results}) > 1
    for v in verdicts(report):
        line = escape(verdict_line(v, several_builds))
        console.print(f"[bold]verdict[/] {line}", highlight=False, soft_wrap=True)


def to_json(report: BenchReport) -> str:
    """The report, its verdicts and its noise warning as JSON."""
    data = report.to_dict()
    data["verdicts"] = [v.to_dict() for v in verdicts(report)]
    data["warnings"] = [w for w in (noise_warning(report),) if w]
    return json.dumps(data, indent=2)


def _csv_row(r: BenchResult) -> list[object]:
    lat = r.latency_ms
    return [r.target, r.build, r.precision, r.threads, r.load_ms, lat.min, lat.median, lat.mean, lat.p90,
            lat.p99, r.fps, r.peak_memory_mb, r.size_bytes, r.emulated]  # fmt: skip


def to_csv(report: BenchReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in report.results:
        writer.writerow(["" if v is None else v for v in _csv_row(r)])
    return buf.getvalue()


def write_json_file(report: BenchReport, path: Path) -> None:
    write_text(path, to_json(report) + "\n")


def write_csv_file(report: BenchReport, path: Path) -> None:
    write_text(path, to_csv(report))
