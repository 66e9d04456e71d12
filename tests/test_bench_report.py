"""What ``edgekit bench`` tells a newcomer: a plot holding every point, a table that fits 80 columns,
a verdict per target, warnings on noisy figures, emulated defaults with a run-time estimate."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from benchmarks.estimate import estimate_line, multiply_adds
from benchmarks.harness import BenchConfig, BenchReport, BenchResult, resolve_builds, timing_plan
from benchmarks.plot import plot_figure
from benchmarks.report import COLUMNS, print_report
from benchmarks.runners import LatencyStats
from benchmarks.targets.local import LocalTarget
from benchmarks.targets.qemu import QemuTarget
from benchmarks.verdict import noise_warning, verdicts
from tests.support.assets import require_asset
from tests.support.cli import run_edgekit


def _result(build: str, precision: str, threads: int, median: float, size: int, *, p99: float | None = None,
            target: str = "local", emulated: bool = False) -> BenchResult:  # fmt: skip
    lat = LatencyStats(median * 0.95, median, median * 1.01, median * 1.05, p99 or median * 1.1)
    return BenchResult(target, build, precision, threads, 20.0, lat, 1000 / lat.mean, 50.0, size, emulated)


def _plotted_points(fig) -> list[tuple[float, float, tuple[float, float], tuple[float, float]]]:
    """(x, y, xlim, ylim) of every scatter point in the figure, read back from matplotlib."""
    points = []
    for ax in fig.axes:
        for collection in ax.collections:
            for x, y in collection.get_offsets():
                points.append((float(x), float(y), ax.get_xlim(), ax.get_ylim()))
    return points


def _assert_every_point_inside(report: BenchReport) -> None:
    import matplotlib.pyplot as plt

    fig = plot_figure(report)
    fig.canvas.draw()  # limits as they are when the PNG is written
    try:
        points = _plotted_points(fig)
        assert len(points) == len(report.results)  # every measured configuration is drawn once
        for x, y, (x0, x1), (y0, y1) in points:
            assert x0 <= x <= x1 and y0 <= y <= y1, (x, y, (x0, x1), (y0, y1))
        drawn = sorted((round(x, 6), round(y, 6)) for x, y, *_ in points)
        expected = sorted(
            (round(r.size_bytes / 1e6, 6), round(r.latency_ms.median, 6)) for r in report.results
        )
        assert drawn == expected
    finally:
        plt.close(fig)


def test_plot_keeps_every_panel_in_range() -> None:
    """The reported case: the 2-thread panel's 425-531 ms lay above the 1-thread panel's range."""
    report = BenchReport(
        results=[
            _result("m", "fp32", 1, 96.0, 4_770_000),
            _result("m", "fp16", 1, 64.3, 2_420_000),
            _result("m", "int8", 1, 120.0, 1_300_000),
            _result("m", "fp32", 2, 531.0, 4_770_000),
            _result("m", "fp16", 2, 425.0, 2_420_000),
            _result("m", "int8", 2, 480.0, 1_300_000),
        ]
    )
    _assert_every_point_inside(report)


@pytest.fixture(scope="module")
def real_report(tmp_path_factory: pytest.TempPathFactory, int8_param: Path) -> BenchReport:
    """A real local run: the shared float (pnnx) and INT8 models, two thread counts."""
    float_param = require_asset("models/ncnn/nanodet-plus-m_416-pnnx/model.param")
    out = run_edgekit("bench", float_param, int8_param, "--shape", "3,416,416", "--threads", "1,2",
                      "--loops", "3", "--warmup", "1", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["verdicts"] and data["verdicts"][0]["target"] == "local"
    return BenchReport.from_dict(data)


def test_plot_of_a_real_run_shows_every_point(real_report: BenchReport) -> None:
    assert {r.threads for r in real_report.results} == {1, 2}
    assert {r.precision for r in real_report.results} == {"fp32", "fp16", "int8"}
    _assert_every_point_inside(real_report)


def test_table_fits_80_columns_without_cutting_cells(real_report: BenchReport) -> None:
    buf = io.StringIO()
    print_report(real_report, Console(file=buf, width=80, soft_wrap=True))
    lines = buf.getvalue().splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("build"))
    table = lines[header : header + 2 + len(real_report.results)]
    assert all(len(line) <= 80 for line in table), table
    assert "…" not in "\n".join(table)
    for r in real_report.results:  # every build name whole, every median shown
        assert any(r.build in line and f"{r.latency_ms.median:.2f}" in line for line in table[2:])
    assert "not shown at this width:" in buf.getvalue()
    wide = io.StringIO()
    print_report(real_report, Console(file=wide, width=1000, soft_wrap=True))
    assert all(c.header in wide.getvalue() for c in COLUMNS if c.header != "target")
    assert "not shown at this width" not in wide.getvalue()


def test_cli_honours_columns_and_never_wraps_a_pipe(int8_param: Path) -> None:
    args = ("bench", int8_param, "--shape", "3,416,416", "--threads", "1", "--loops", "2", "--warmup", "0")
    narrow = run_edgekit(*args, env={**os.environ, "COLUMNS": "80"})
    assert narrow.returncode == 0, narrow.stderr
    table = [line for line in narrow.stdout.splitlines() if line.startswith(("prec", "int8", "─"))]
    assert len(table) == 3 and all(len(line) <= 80 for line in table) and "…" not in narrow.stdout
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    piped = run_edgekit(*args, env=env)
    assert piped.returncode == 0, piped.stderr
    described = [line for line in piped.stdout.splitlines() if line.startswith("local: ")]
    assert len(described) == 1 and "ncnn" in described[0] and len(described[0]) > 80  # one line, not wrapped
    assert "min" in piped.stdout and "peak MB" in piped.stdout  # no width limit: every column


def test_verdict_names_fastest_and_smallest_within_10_percent() -> None:
    report = BenchReport(
        results=[
            _result("m", "fp32", 1, 100.0, 4_000_000),
            _result("m", "fp32", 2, 60.0, 4_000_000),  # fastest
            _result("m", "fp16", 2, 65.0, 2_000_000),  # 8 % slower, half the size
            _result("m", "int8", 2, 70.0, 1_000_000),  # 17 % slower: not within 10 %
            _result("m", "int8", 1, 50.0, 1_000_000, target="qemu-aarch64", emulated=True),
        ]
    )
    found = {v.target: v for v in verdicts(report)}
    assert (found["local"].fastest.precision, found["local"].fastest.threads) == ("fp32", 2)
    assert (found["local"].smallest.precision, found["local"].smallest.threads) == ("fp16", 2)
    assert found["qemu-aarch64"].smallest is found["qemu-aarch64"].fastest
    buf = io.StringIO()
    print_report(report, Console(file=buf, width=200, soft_wrap=True))
    lines = [line for line in buf.getvalue().splitlines() if line.startswith("verdict")]
    assert lines[0].startswith("verdict local: fastest fp32 x 2 threads")
    assert "smallest within 10%: fp16 x 2 threads, 2.00 MB" in lines[0]
    assert "also the smallest" in lines[1] and "emulated" in lines[1]
    assert buf.getvalue().rstrip().splitlines()[-1] == lines[-1]  # the report ends with the verdict


def test_noisy_figures_are_flagged() -> None:
    steady = BenchReport(results=[_result("m", "fp16", 1, 60.0, 1)])
    assert noise_warning(steady) is None
    noisy = BenchReport(results=[_result("m", "fp16", 1, 60.0, 1, p99=60.0 * 28)])
    assert "p99 28.0x the median" in (noise_warning(noisy) or "")
    emulated = BenchReport(results=[_result("m", "fp16", 1, 60.0, 1, p99=600.0, emulated=True)])
    assert noise_warning(emulated) is None  # emulated timings are not speed anyway
    few = BenchReport(results=noisy.results, targets={"local": {"plan": {"loops": 3}}})
    assert noise_warning(few) is None  # the p99 of 3 runs is their maximum: nothing to judge


def test_emulated_targets_have_their_own_defaults() -> None:
    qemu = timing_plan(BenchConfig(), QemuTarget.timing_defaults, 2)
    assert (qemu.threads, qemu.loops, qemu.warmup) == ((1,), 3, 1)
    local = timing_plan(BenchConfig(), LocalTarget.timing_defaults, 2)
    assert (local.threads, local.loops, local.warmup) == ((1, 2), 100, 10)  # capped at 2 cores
    assert timing_plan(BenchConfig(), LocalTarget.timing_defaults, 8).threads == (1, 2, 4)
    mine = timing_plan(BenchConfig(threads=(2,), loops=5, warmup=0), QemuTarget.timing_defaults, 2)
    assert (mine.threads, mine.loops, mine.warmup) == ((2,), 5, 0)


def test_estimate_counts_inferences_and_multiply_adds(tmp_path: Path, int8_param: Path) -> None:
    float_param = require_asset("models/ncnn/nanodet-plus-m_416-pnnx/model.param")
    config = BenchConfig(shape=(3, 416, 416))
    models, _ = resolve_builds([float_param, int8_param], config, tmp_path)
    # NanoDet-Plus-m 416: 1.52 GFLOPs in the NanoDet model zoo table, i.e. 0.76 G multiply-adds
    for m in models:
        assert multiply_adds(m) == pytest.approx(0.76e9, rel=0.02)
    line = estimate_line(QemuTarget(), models, config)
    assert line is not None and line.startswith("qemu-aarch64: 12 emulated inferences (3 models")
    assert estimate_line(LocalTarget(), models, config) is None


def test_precision_notes_only_when_asked_for_by_name(int8_param: Path, tmp_path: Path) -> None:
    _, silent = resolve_builds([int8_param], BenchConfig(shape=(3, 416, 416)), tmp_path)
    assert silent == []  # INT8-only graph, precisions by default: nothing skipped worth saying
    _, asked = resolve_builds(
        [int8_param], BenchConfig(precisions=("fp32", "int8"), shape=(3, 416, 416)), tmp_path
    )
    assert len(asked) == 1 and "fp32 skipped" in asked[0]
