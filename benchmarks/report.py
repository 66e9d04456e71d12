"""Present a :class:`benchmarks.harness.BenchReport`: rich table, JSON, CSV and a PNG plot."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.harness import BenchReport, BenchResult
from edge.atomic import write_bytes, write_text

CSV_COLUMNS = (
    "target", "build", "precision", "threads", "load_ms", "min_ms", "median_ms", "mean_ms", "p90_ms",
    "p99_ms", "fps", "peak_memory_mb", "size_bytes", "emulated",
)  # fmt: skip


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def results_table(report: BenchReport) -> Table:
    """One row per (target, build, precision, threads)."""
    table = Table(title="edgekit bench", header_style="bold", show_lines=False)
    for col in ("target", "build", "prec", "thr", "load ms", "min", "median", "mean", "p90", "p99", "FPS",
                "peak MB", "size MB"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("target", "build", "prec") else "right")
    for r in report.results:
        lat = r.latency_ms
        table.add_row(
            r.target + (" (emulated)" if r.emulated else ""),
            r.build,
            r.precision,
            str(r.threads),
            _fmt(r.load_ms, 1),
            _fmt(lat.min),
            _fmt(lat.median),
            _fmt(lat.mean),
            _fmt(lat.p90),
            _fmt(lat.p99),
            _fmt(r.fps, 1),
            _fmt(r.peak_memory_mb, 1),
            f"{r.size_bytes / 1e6:.2f}",
        )
    return table


def describe_target(name: str, info: dict) -> str:
    """One line describing a target: CPU, cores, governor, OS, ncnn, ARM paths."""
    arm = ", ".join(flag for flag, key in (("fp16", "arm_fp16"), ("dotprod", "arm_dotprod")) if info.get(key))
    parts = [
        f"{info.get('cpu')}",
        f"{info.get('cores')} cores",
        f"governor {info.get('governor') or 'unknown'}",
        f"{info.get('os')}",
        f"ncnn {info.get('ncnn_version')}",
        f"ARM {arm} paths" if arm else "no ARM fp16/dotprod paths",
    ]
    if info.get("emulated"):
        parts.append("EMULATED: timings are not real speed")
    return f"{name}: " + "; ".join(parts)


def print_report(report: BenchReport, console: Console) -> None:
    """The table, the targets, notes, and errors (in red) on ``console``."""
    if report.results:
        console.print(results_table(report))
    for name, info in report.targets.items():
        console.print(describe_target(name, info), highlight=False, soft_wrap=True)
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]", highlight=False, soft_wrap=True)
    for err in report.errors:
        console.print(f"[bold red]error:[/] {err.message}", highlight=False, soft_wrap=True)


def to_json(report: BenchReport) -> str:
    return json.dumps(report.to_dict(), indent=2)


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


def write_plot(report: BenchReport, path: Path) -> None:
    """PNG: latency (median, or mean) against model file size; one panel per thread count,
    one colour per target, one marker per precision, each point labelled with its build."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = sorted({r.threads for r in report.results}) or [1]
    targets = list(dict.fromkeys(r.target for r in report.results))
    markers = {"fp32": "o", "fp16": "s", "int8": "^"}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(threads), figsize=(5.5 * len(threads), 4.5), squeeze=False, sharey=True)
    for ax, n in zip(axes[0], threads, strict=True):
        for ti, target in enumerate(targets):
            for precision, marker in markers.items():
                pts = [
                    r
                    for r in report.results
                    if r.threads == n and r.target == target and r.precision == precision
                ]
                pts = [r for r in pts if (r.latency_ms.median or r.latency_ms.mean) is not None]
                if not pts:
                    continue
                xs = [r.size_bytes / 1e6 for r in pts]
                ys = [
                    r.latency_ms.median if r.latency_ms.median is not None else r.latency_ms.mean for r in pts
                ]
                label = f"{target} {precision}" + (" (emulated)" if pts[0].emulated else "")
                ax.scatter(xs, ys, marker=marker, color=colors[ti % len(colors)], label=label, s=45)
                for r, x, y in zip(pts, xs, ys, strict=True):
                    ax.annotate(r.build, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.set_title(f"{n} thread{'s' if n > 1 else ''}")
        ax.set_xlabel("model size, .param + .bin (MB)")
        ax.grid(True, alpha=0.3)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel("median latency (ms)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        h, lab = ax.get_legend_handles_labels()
        handles += [x for x, y in zip(h, lab, strict=True) if y not in labels]
        labels += [y for y in lab if y not in labels]
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.08 if handles else 0, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    write_bytes(path, buf.getvalue())
