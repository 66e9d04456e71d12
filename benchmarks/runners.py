"""What measures on a target: edgekit's Python board runner or a benchncnn-compatible binary.

Both implement :class:`Runner`: installed once per target, they describe the target and time one
model at each thread count, so the harness never asks which one it has. The Python runner
(:mod:`edge.board.runner`) runs the build's own weights with edgekit's runtime policy and reports
every latency, load time and peak memory; a benchncnn binary (for targets without Python, e.g.
Android) reports min/mean only and always runs ncnn's default options with generated weights.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from benchmarks.targets.base import RunResult, Target, TargetError
from edge.board import runner as board_runner
from edge.errors import EdgekitError

RUNNER_SOURCE = Path(board_runner.__file__)
FIX_PYTHON = "install Python 3 on it (e.g. `sudo apt install python3 python3-pip`)"
FIX_NCNN = "run `python3 -m pip install ncnn numpy` on it"

#: push(local file, suffix) -> its path on the target; pushes each file once per target
PushFn = Callable[[Path, str], str]


@dataclass
class LatencyStats:
    """Per-inference latency in milliseconds (None where a runner cannot tell)."""

    min: float | None
    median: float | None
    mean: float | None
    p90: float | None
    p99: float | None

    @classmethod
    def from_samples(cls, samples_ms: list[float]) -> LatencyStats:
        arr = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p99 = np.percentile(arr, [50, 90, 99])
        return cls(float(arr.min()), float(p50), float(arr.mean()), float(p90), float(p99))


@dataclass
class BenchModel:
    """One model file pair to measure: a build at one precision, resolved host-side."""

    build: str  # label used in reports
    precision: str
    param: Path
    bin: Path
    input_name: str
    input_shape: tuple[int, int, int]  # C, H, W
    size_bytes: int = 0


@dataclass(frozen=True)
class TimingPlan:
    """How to time each model: thread counts, timed and warm-up iterations, time allowed per call."""

    threads: tuple[int, ...]
    loops: int
    warmup: int
    timeout: float


@dataclass
class Measurement:
    """One model timed at one thread count."""

    threads: int
    latency_ms: LatencyStats
    load_ms: float | None = None
    peak_rss_mb: float | None = None


class RunnerFailed(Exception):
    """The runner ran but could not measure one model (the target itself is fine)."""


class Runner(Protocol):
    """Something that times ncnn models on a target."""

    #: what the report should say about this runner's numbers, if anything
    note: str | None

    def install(self, target: Target) -> str:
        """Put the runner on ``target``; returns how to call it there."""
        ...

    def probe(self, target: Target, installed: str, timeout: float) -> dict[str, Any]:
        """Describe the target: CPU, cores, governor, OS, ncnn version, ARM fp16/dotprod."""
        ...

    def measure(
        self, target: Target, installed: str, model: BenchModel, push: PushFn, plan: TimingPlan
    ) -> list[Measurement]:
        """Time ``model`` at every thread count of ``plan``; :class:`RunnerFailed` if it cannot."""
        ...


def runner_for(binary: Path | None) -> Runner:
    """The Python board runner, or the user's benchncnn-compatible ``binary``."""
    if binary is None:
        return PythonRunner()
    if not Path(binary).is_file():
        raise EdgekitError(f"runner binary {binary} does not exist")
    return BenchncnnRunner(Path(binary))


class PythonRunner:
    """edgekit's board runner: ``python3 edgekit_runner.py probe|bench`` on the target."""

    note = None

    def install(self, target: Target) -> str:
        return target.push(RUNNER_SOURCE, "edgekit_runner.py")

    def probe(self, target: Target, installed: str, timeout: float) -> dict[str, Any]:
        try:
            return self._call(target, installed, ["probe"], timeout=timeout)
        except RunnerFailed as exc:
            raise TargetError(f"the runner failed to start on {target.name}: {exc}") from None

    def measure(
        self, target: Target, installed: str, model: BenchModel, push: PushFn, plan: TimingPlan
    ) -> list[Measurement]:
        args = [
            "bench",
            "--param", push(model.param, ".param"),
            "--bin", push(model.bin, ".bin"),
            "--input", model.input_name,
            "--shape", ",".join(map(str, model.input_shape)),
            "--precision", model.precision,
            "--threads", ",".join(map(str, plan.threads)),
            "--loops", str(plan.loops),
            "--warmup", str(plan.warmup),
        ]  # fmt: skip
        runs = self._call(target, installed, args, timeout=plan.timeout)["runs"]
        return [
            Measurement(
                threads=int(run["threads"]),
                latency_ms=LatencyStats.from_samples(run["latencies_ms"]),
                load_ms=run.get("load_ms"),
                peak_rss_mb=run.get("peak_rss_mb"),
            )
            for run in runs
        ]

    def _call(self, target: Target, installed: str, args: list[str], timeout: float) -> dict[str, Any]:
        res = target.run(["python3", installed, *args], timeout=timeout)
        if res.returncode == 127:
            raise TargetError(f"python3 is not installed on {target.name}: {FIX_PYTHON}")
        data = _last_json(res.stdout)
        if data is not None and data.get("error") == "missing_module":
            raise TargetError(f"Python module {data.get('module')} is missing on {target.name}: {FIX_NCNN}")
        if res.returncode != 0 or data is None:
            reason = data.get("message") if data is not None else None
            raise RunnerFailed(
                reason or last_line(res.stderr) or last_line(res.stdout) or f"exit code {res.returncode}"
            )
        return data


class BenchncnnRunner:
    """A user-supplied benchncnn-compatible binary: generated weights, ncnn's default options."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.note = (
            f"runner {binary.name}: benchncnn-compatible binary; generated weights, "
            "ncnn default options, min/mean only"
        )

    def install(self, target: Target) -> str:
        remote = target.push(self.binary, "benchncnn")
        _check(target.run(["chmod", "+x", remote], timeout=60), "chmod +x on the runner")
        return remote

    def probe(self, target: Target, installed: str, timeout: float) -> dict[str, Any]:
        """Target description without Python: /proc/cpuinfo, governor and uname via the shell."""
        cpuinfo = target.run(["cat", "/proc/cpuinfo"], timeout=60).stdout
        gov = target.run(["cat", board_runner.GOVERNOR_PATH], timeout=60)
        uname = target.run(["uname", "-srm"], timeout=60).stdout.strip()
        cpu = board_runner.parse_cpuinfo(cpuinfo)
        return {
            "cpu": cpu["model"],
            "cores": cpu["cores"],
            "governor": (gov.stdout.strip() or None) if gov.returncode == 0 else None,
            "os": uname or None,
            "machine": uname.split()[-1] if uname else None,
            "ncnn_version": "benchncnn (user-supplied)",
            "arm_fp16": "asimdhp" in cpu["features"],
            "arm_dotprod": "asimddp" in cpu["features"],
            "python": None,
        }

    def measure(
        self, target: Target, installed: str, model: BenchModel, push: PushFn, plan: TimingPlan
    ) -> list[Measurement]:
        param = push(model.param, ".param")
        c, h, w = model.input_shape
        measured = []
        for threads in plan.threads:
            argv = [
                installed,
                str(plan.loops),
                str(threads),
                "0",
                "-1",
                "0",
                f"param={param}",
                f"shape=[{w},{h},{c}]",
            ]
            res = target.run(argv, timeout=plan.timeout)
            stats = parse_benchncnn(res.stdout + "\n" + res.stderr)
            if res.returncode != 0 or stats is None:
                raise RunnerFailed(
                    last_line(res.stderr) or last_line(res.stdout) or f"exit code {res.returncode}"
                )
            measured.append(Measurement(threads, LatencyStats(stats["min"], None, stats["mean"], None, None)))
        return measured


_BENCHNCNN_LINE = re.compile(r"min\s*=\s*([\d.]+)\s+max\s*=\s*([\d.]+)\s+avg\s*=\s*([\d.]+)")


def parse_benchncnn(text: str) -> dict[str, float] | None:
    """The first ``name  min = ..  max = ..  avg = ..`` line of benchncnn output, in ms."""
    m = _BENCHNCNN_LINE.search(text)
    if not m:
        return None
    lo, hi, avg = (float(v) for v in m.groups())
    return {"min": lo, "max": hi, "mean": avg}


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (stripped), or ""."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _last_json(stdout: str) -> dict[str, Any] | None:
    """The runner's one JSON line (its last line of output), if it printed one."""
    try:
        data = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else None
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _check(res: RunResult, what: str) -> None:
    if res.returncode != 0:
        raise TargetError(f"{what} failed: {last_line(res.stderr) or res.returncode}")
