"""What measures on a target: edgekit's Python board runner, its native runner, or a benchncnn binary.

All implement :class:`Runner`: installed once per target, they describe the target and time one
model at each thread count, so the harness never asks which one it has. The Python runner
(:mod:`edge.board.runner`) and the native ``edgekit-runner`` (``edge/native``, a static binary for
boards without Python) print the same JSON, run the build's own weights with edgekit's runtime
policy and report every latency, load time and peak memory; a benchncnn binary reports min/mean
only and always runs ncnn's default options with generated weights.

``--runner`` chooses: ``python``, ``native``, ``auto`` (Python where the target has python3 with
ncnn, else the native runner for the target's architecture, built on demand) or a file: an
``edgekit-runner`` binary (recognised by its usage text) or a benchncnn-compatible one.
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
FIX_PYTHON = (
    "install Python 3 on it (e.g. `sudo apt install python3 python3-pip`), or use --runner native "
    "(no Python needed)"
)
FIX_NCNN = "run `python3 -m pip install ncnn numpy` on it, or use --runner native (no Python needed)"
#: ``--runner`` names; anything else is a path to a binary
RUNNER_NAMES = ("auto", "python", "native", "app")
#: ``--cores`` -> ncnn's set_cpu_powersave value (0 all cores, 1 little cluster, 2 big cluster)
CORES = {"all": 0, "little": 1, "big": 2}
#: bytes every edgekit-runner binary holds (its usage text); a benchncnn build does not
NATIVE_MARKER = b"edgekit-runner"
#: seconds allowed to ask a target whether its python3 has ncnn (minutes under QEMU are possible)
PYTHON_CHECK_TIMEOUT = 300.0

#: push(local file, suffix) -> its path on the target; pushes each file once per target
PushFn = Callable[[Path, str], str]
#: progress(message) while a runner is prepared (e.g. the native runner being compiled)
SayFn = Callable[[str], None]


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
    """How to time each model: thread counts, timed and warm-up iterations, time allowed per call,
    and which cores (ncnn's powersave: 0 all, 1 little, 2 big)."""

    threads: tuple[int, ...]
    loops: int
    warmup: int
    timeout: float
    powersave: int = 0


@dataclass
class Measurement:
    """One model timed at one thread count."""

    threads: int
    latency_ms: LatencyStats
    load_ms: float | None = None
    peak_rss_mb: float | None = None


def measurements_from_runs(runs: list[dict[str, Any]]) -> list[Measurement]:
    """The measurements in a JSON runner's ``runs`` list (one entry per thread count)."""
    return [
        Measurement(
            threads=int(run["threads"]),
            latency_ms=LatencyStats.from_samples(run["latencies_ms"]),
            load_ms=run.get("load_ms"),
            peak_rss_mb=run.get("peak_rss_mb"),
        )
        for run in runs
    ]


class RunnerFailed(Exception):
    """The runner ran but could not measure one model (the target itself is fine)."""


class Runner(Protocol):
    """Something that times ncnn models on a target."""

    #: short name in reports: python, native or benchncnn
    kind: str
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


def check_runner_choice(choice: str | Path | None) -> str | Path:
    """``--runner`` checked on this host before any target is touched: a name or an existing file."""
    if choice is None:
        return "auto"
    if isinstance(choice, str) and choice in RUNNER_NAMES:
        return choice
    path = Path(choice)
    if not path.is_file():
        raise EdgekitError(
            f"--runner {choice}: not one of {', '.join(RUNNER_NAMES)} and no such file "
            "(give an edgekit-runner or benchncnn-compatible binary)"
        )
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise EdgekitError(f"--runner {choice}: cannot read it ({exc.strerror})") from None
    if head != b"\x7fELF" and not head.startswith(b"#!"):
        raise EdgekitError(
            f"--runner {choice}: not an executable runner (neither an ELF binary nor a #! script)"
        )
    return path


def is_native_binary(path: Path) -> bool:
    """True for an ``edgekit-runner`` build (its usage text is in the file), False for benchncnn."""
    try:
        return NATIVE_MARKER in Path(path).read_bytes()
    except OSError:
        return False


def python_has_ncnn(target: Target) -> bool:
    """Whether ``python3`` on the target imports ncnn and numpy (what the Python runner needs)."""
    res = target.run(["python3", "-c", "import ncnn, numpy"], timeout=PYTHON_CHECK_TIMEOUT)
    return res.returncode == 0


def choose_runner(choice: str | Path | None, target: Target, say: SayFn | None = None) -> Runner:
    """The runner for an open ``target``: ``choice`` resolved (auto asks the target)."""
    choice = check_runner_choice(choice)
    if choice == "app":  # the Android demo app's benchmark mode, over adb
        from benchmarks.app_runner import AppRunner

        return AppRunner()
    if isinstance(choice, Path):
        return NativeRunner(choice, say) if is_native_binary(choice) else BenchncnnRunner(choice)
    if choice == "python" or (choice == "auto" and python_has_ncnn(target)):
        return PythonRunner()
    runner = NativeRunner(None, say)
    if choice == "auto":
        runner.note = f"{target.name} has no python3 with ncnn: measured with the native edgekit-runner"
    return runner


def native_runner_for(machine: str, say: SayFn | None = None) -> Path:
    """The cached native runner for a target whose ``uname -m`` is ``machine``, built on first use."""
    try:
        from edge.native.locate import arch_for_machine, runner_path
    except ImportError as exc:
        raise TargetError(f"this edgekit has no native runner ({exc})") from None
    try:
        arch = arch_for_machine(machine)
    except EdgekitError as exc:
        raise TargetError(f"{exc}; use --runner python or a benchncnn binary there") from None
    try:
        return Path(runner_path(arch, build=True, progress=say or (lambda _m: None)))
    except EdgekitError as exc:
        raise TargetError(f"cannot build the native runner for {arch}: {exc}") from None


class JsonRunner:
    """A runner that answers ``probe`` / ``bench`` with edgekit's one-line JSON (Python or native)."""

    kind = "python"
    note: str | None = None

    def argv(self, installed: str) -> list[str]:
        """How to start the installed runner on the target."""
        raise NotImplementedError

    def probe(self, target: Target, installed: str, timeout: float) -> dict[str, Any]:
        try:
            info = self._call(target, installed, ["probe"], timeout=timeout)
        except RunnerFailed as exc:
            raise TargetError(f"the {self.kind} runner failed to start on {target.name}: {exc}") from None
        info.setdefault("runner", self.kind)
        return info

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
            "--powersave", str(plan.powersave),
        ]  # fmt: skip
        data = self._call(target, installed, args, timeout=plan.timeout)
        applied = data.get("powersave")  # what ncnn reports back (get_cpu_powersave)
        if applied is not None and int(applied) != plan.powersave:
            raise RunnerFailed(f"ncnn kept powersave {applied} instead of {plan.powersave} (--cores)")
        return measurements_from_runs(data["runs"])

    def _call(self, target: Target, installed: str, args: list[str], timeout: float) -> dict[str, Any]:
        return call_json(target, [*self.argv(installed), *args], timeout, self.kind)


def call_json(target: Target, argv: list[str], timeout: float, kind: str) -> dict[str, Any]:
    """Run a JSON runner command on ``target``; its one JSON line, or one clear line of why not.

    :class:`TargetError` when the runner cannot run there at all (no python3, no ncnn module, a
    binary the target cannot execute); :class:`RunnerFailed` with the runner's own message when it
    ran and refused (bad layer, truncated .bin, missing image, ...).
    """
    res = target.run(argv, timeout=timeout)
    data = _last_json(res.stdout)
    if kind == "python" and res.returncode == 127:
        raise TargetError(f"python3 is not installed on {target.name}: {FIX_PYTHON}")
    if data is not None and data.get("error") == "missing_module":
        raise TargetError(f"Python module {data.get('module')} is missing on {target.name}: {FIX_NCNN}")
    if data is None and res.returncode in (126, 127):
        reason = last_line(res.stderr) or f"exit code {res.returncode}"
        raise TargetError(f"the {kind} runner cannot start on {target.name}: {reason}")
    if res.returncode != 0 or data is None or "error" in data:
        if data is not None and data.get("message"):
            kind_of = data.get("error")
            reason = f"{kind_of} error: {data['message']}" if kind_of else str(data["message"])
        else:
            reason = last_line(res.stderr) or last_line(res.stdout) or f"exit code {res.returncode}"
        raise RunnerFailed(" ".join(reason.split()))
    return data


class PythonRunner(JsonRunner):
    """edgekit's board runner: ``python3 edgekit_runner.py probe|bench`` on the target."""

    kind = "python"

    def __init__(self) -> None:
        self.note = None

    def install(self, target: Target) -> str:
        return target.push(RUNNER_SOURCE, "edgekit_runner.py")

    def argv(self, installed: str) -> list[str]:
        return ["python3", installed]


class NativeRunner(JsonRunner):
    """The static ``edgekit-runner``: ``binary``, or the build for the target's architecture."""

    kind = "native"

    def __init__(self, binary: Path | None = None, say: SayFn | None = None) -> None:
        self.binary, self.say = binary, say
        self.note = None

    def install(self, target: Target) -> str:
        binary = self.binary or native_runner_for(target.machine(), self.say)
        remote = target.push(binary, "edgekit-runner")
        target.make_executable(remote)
        return remote

    def argv(self, installed: str) -> list[str]:
        return [installed]


class BenchncnnRunner:
    """A user-supplied benchncnn-compatible binary: generated weights, ncnn's default options."""

    kind = "benchncnn"

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
                str(plan.powersave),
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
