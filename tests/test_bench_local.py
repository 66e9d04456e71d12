"""``edgekit bench`` on the local target: CLI outputs, bare .param files, the runner protocol."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.harness import BenchConfig, BenchReport, LatencyStats, run_benchmarks
from benchmarks.report import to_csv
from benchmarks.runners import parse_benchncnn
from benchmarks.targets.local import LocalTarget
from benchmarks.targets.registry import parse_target
from edge.errors import EdgekitError
from tests.support.assets import require_asset
from tests.support.cli import run_edgekit

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNNER = REPO_ROOT / "edge" / "board" / "runner.py"
RESULT_KEYS = {
    "target", "build", "precision", "threads", "load_ms", "latency_ms", "fps", "peak_memory_mb", "size_bytes",
    "emulated",
}  # fmt: skip
TARGET_KEYS = {"cpu", "cores", "governor", "os", "ncnn_version", "arm_fp16", "arm_dotprod", "python"}


@pytest.fixture(scope="module")
def graph_only_param() -> Path:
    """A benchncnn model: graph only, no .bin, input shape in its Input layer."""
    return require_asset("models/ncnn-benchmark/blazeface.param")


@pytest.mark.slow
def test_cli_json_csv_plot(int8_param: Path, tmp_path: Path) -> None:
    csv_path, png = tmp_path / "r.csv", tmp_path / "r.png"
    proc = run_edgekit("bench", str(int8_param), "--shape", "3,416,416", "--threads", "1,2", "--loops", "3",
                   "--warmup", "1", "--precision", "fp32,int8", "--json", "--csv", str(csv_path),
                   "--plot", str(png))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["errors"] == []
    assert [(r["precision"], r["threads"]) for r in data["results"]] == [("int8", 1), ("int8", 2)]
    for r in data["results"]:
        assert set(r) == RESULT_KEYS
        assert set(r["latency_ms"]) == {"min", "median", "mean", "p90", "p99"}
        assert r["target"] == "local" and r["emulated"] is False
        bin_size = int8_param.with_suffix(".bin").stat().st_size
        assert r["size_bytes"] == int8_param.stat().st_size + bin_size
    assert set(data["targets"]["local"]) >= TARGET_KEYS
    assert any("fp32 skipped" in n for n in data["notes"])  # asked for fp32; a bare INT8 graph has none
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["threads"] for r in rows] == ["1", "2"]
    assert float(rows[0]["median_ms"]) == pytest.approx(data["results"][0]["latency_ms"]["median"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_cli_table_lists_target_description(int8_param: Path) -> None:
    proc = run_edgekit("bench", str(int8_param), "--shape", "3,416,416", "--threads", "1", "--loops", "2",
                   "--warmup", "0", "--precision", "int8")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "nanodet-plus-m_416-int8" in proc.stdout and "int8" in proc.stdout
    assert "local:" in proc.stdout and "ncnn " in proc.stdout and "cores" in proc.stdout


def test_graph_only_param_runs_with_generated_weights(graph_only_param: Path) -> None:
    config = BenchConfig(threads=(1,), loops=3, warmup=1)
    report = run_benchmarks([graph_only_param], [LocalTarget()], config)
    assert report.errors == []
    assert [(r.build, r.precision) for r in report.results] == [("blazeface", "fp32"), ("blazeface", "fp16")]
    # the generated .bin is counted: blazeface has ~0.1 M parameters of fp32 weights
    assert all(r.size_bytes > graph_only_param.stat().st_size + 200_000 for r in report.results)
    assert all(r.latency_ms.median > 0 for r in report.results)


def test_bad_inputs_are_one_line_errors(int8_param: Path, tmp_path: Path) -> None:
    proc = run_edgekit("bench", str(int8_param), "--loops", "2")
    assert proc.returncode == 2 and "pass --shape C,H,W" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_edgekit("bench", str(tmp_path / "missing.param"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = run_edgekit("bench", str(int8_param), "--shape", "3,416,416", "--target", "telnet://x")
    assert proc.returncode == 2 and "unknown target" in proc.stderr
    proc = run_edgekit("bench", str(int8_param), "--shape", "3,416,416", "--precision", "fp8")
    assert proc.returncode == 2 and "unknown 'fp8'" in proc.stderr
    broken = tmp_path / "broken.param"
    broken.write_text(
        "7767517\n2 2\nInput data 0 1 data 0=8 1=8 2=3\nConvolution c 1 1 data out 0=4 1=3 6=108\n"
    )
    broken.with_suffix(".bin").write_bytes(b"\0" * 10)  # far too short for 108 weights
    proc = run_edgekit("bench", str(broken))
    assert proc.returncode == 2 and "broken" in proc.stderr and "Traceback" not in proc.stderr
    existing = tmp_path / "exists.csv"
    existing.write_text("keep me")
    proc = run_edgekit("bench", str(int8_param), "--shape", "3,416,416", "--csv", str(existing))
    assert proc.returncode == 2 and "--force" in proc.stderr and existing.read_text() == "keep me"


def test_runner_probe_and_errors(tmp_path: Path, int8_param: Path) -> None:
    probe = subprocess.run([sys.executable, str(RUNNER), "probe"], capture_output=True, text=True, check=True)
    info = json.loads(probe.stdout)
    assert set(info) >= TARGET_KEYS and info["cores"] >= 1
    bad = subprocess.run(
        [sys.executable, str(RUNNER), "bench", "--param", str(int8_param), "--bin",
         str(int8_param.with_suffix(".bin")), "--input", "no_such_blob", "--shape", "3,416,416", "--loops", "1"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 4 and json.loads(bad.stdout)["error"] == "model"


def test_report_round_trip_and_csv() -> None:
    report = BenchReport()
    data = {
        "results": [
            {"target": "t", "build": "b", "precision": "fp16", "threads": 2, "load_ms": None,
             "latency_ms": {"min": 1.0, "median": None, "mean": 2.0, "p90": None, "p99": None}, "fps": 500.0,
             "peak_memory_mb": None, "size_bytes": 10, "emulated": False}
        ],
        "targets": {"t": {"cpu": "x"}},
        "errors": [{"target": "u", "message": "gone", "build": None, "precision": None}],
        "notes": [],
    }  # fmt: skip
    report = BenchReport.from_dict(data)
    assert report.to_dict() == data and not report.ok
    assert isinstance(report.results[0].latency_ms, LatencyStats)
    assert to_csv(report).splitlines()[1] == "t,b,fp16,2,,1.0,,2.0,,,500.0,,10,False"


def test_parse_benchncnn_line() -> None:
    out = "loop_count = 4\nnum_threads = 1\n      nanodet  min =   12.50  max =   14.00  avg =   13.25\n"
    assert parse_benchncnn(out) == {"min": 12.5, "max": 14.0, "mean": 13.25}
    assert parse_benchncnn("no results") is None


def test_registry_forms() -> None:
    assert parse_target("local").name == "local"
    assert parse_target("ssh://pi@10.0.0.2:2222").name == "ssh://pi@10.0.0.2:2222"
    assert parse_target("ssh://[::1]:22").name == "ssh://[::1]:22"
    assert parse_target("qemu-aarch64").emulated is True
    pi4 = parse_target("qemu-aarch64:cortex-a72")
    assert pi4.name == "qemu-aarch64:cortex-a72" and pi4.cpu == "cortex-a72"
    assert parse_target("adb://emulator-5554").name == "adb://emulator-5554"
    for bad in ("ssh://u:pw@h", "ssh://h:port", "board", "qemu-aarch64:", "qemu-aarch64:a b"):
        with pytest.raises(EdgekitError):
            parse_target(bad)
