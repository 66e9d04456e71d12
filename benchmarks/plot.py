"""``bench --plot``: latency against model size, one panel per thread count, every point visible."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.harness import BenchReport
from benchmarks.verdict import latency
from edge.atomic import write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}
#: room left above and right of the largest value, so points and their labels stay inside
MARGIN = 1.15


def plot_figure(report: BenchReport) -> Figure:
    """The figure: one panel per thread count sharing one y range that holds every measured point,
    one colour per target, one marker per precision, each point labelled with its build."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in report.results if latency(r) is not None]
    threads = sorted({r.threads for r in points}) or [1]
    targets = list(dict.fromkeys(r.target for r in points))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(threads), figsize=(5.5 * len(threads), 4.8), squeeze=False, sharey=True)
    for ax, n in zip(axes[0], threads, strict=True):
        for ti, target in enumerate(targets):
            for precision in dict.fromkeys(r.precision for r in points):
                pts = [
                    r for r in points if r.threads == n and r.target == target and r.precision == precision
                ]
                if not pts:
                    continue
                xs = [r.size_bytes / 1e6 for r in pts]
                ys = [latency(r) for r in pts]
                label = f"{target} {precision}" + (" (emulated)" if pts[0].emulated else "")
                ax.scatter(xs, ys, marker=MARKERS.get(precision, "D"), color=colors[ti % len(colors)],
                           label=label, s=45)  # fmt: skip
                for r, x, y in zip(pts, xs, ys, strict=True):
                    ax.annotate(r.build, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.set_title(f"{n} thread{'s' if n > 1 else ''}")
        ax.set_xlabel("model size, .param + .bin (MB)")
        ax.grid(True, alpha=0.3)
    # limits only once everything is drawn: with a shared y axis, a limit set on the first panel
    # before the others are filled would freeze the range and hide their points
    top = max((latency(r) or 0.0 for r in points), default=1.0)
    right = max((r.size_bytes / 1e6 for r in points), default=1.0)
    for ax in axes[0]:
        ax.set_ylim(0, top * MARGIN)
        ax.set_xlim(0, right * MARGIN)
    axes[0][0].set_ylabel("median latency (ms)")
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.1 if handles else 0, 1, 1))
    return fig


def write_plot(report: BenchReport, path: Path) -> None:
    """Write :func:`plot_figure` as a PNG, atomically."""
    import matplotlib.pyplot as plt

    fig = plot_figure(report)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    write_bytes(path, buf.getvalue())
