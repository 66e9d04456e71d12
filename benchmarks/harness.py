"""Benchmark ncnn builds on one or more targets and gather one report.

The harness resolves each BUILD (an edgekit build directory or a bare ``.param``) into the
models to measure and hands them to a :class:`benchmarks.runners.Runner` on every target,
chosen per target once it is open (``--runner auto``: edgekit's Python board runner where the
target has python3 with ncnn, else the native ``edgekit-runner``). Targets run in parallel, one
thread each (a fleet); a target that fails mid-run keeps the results it already produced and
adds an entry to ``errors``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.runners import (
    CORES,
    BenchModel,
    LatencyStats,
    Runner,
    RunnerFailed,
    TimingPlan,
    check_runner_choice,
    choose_runner,
)
from benchmarks.targets.base import Target, TargetError, TimingDefaults
from edge.errors import EdgekitError
from edge.manifest import PRECISIONS
from edge.ncnn.synth import synthesize_weights
from edge.ncnn.validate import validate_files
from edge.runtime.resolve import LocatedModel, locate_model

#: progress(target_name, message): called from the targets' worker threads
ProgressFn = Callable[[str, str], None]


@dataclass
class BenchConfig:
    """What to measure; None takes each target's :class:`TimingDefaults`.

    ``precisions`` None measures every precision a build holds; precisions asked for by name
    that a build lacks are skipped and noted in the report.
    """

    precisions: tuple[str, ...] | None = None
    threads: tuple[int, ...] | None = None
    loops: int | None = None
    warmup: int | None = None
    #: auto, python, native, or a binary (edgekit-runner or benchncnn-compatible); None = auto
    runner: str | Path | None = None
    cores: str = "all"  # all, little or big: ncnn's powersave 0, 1, 2
    shape: tuple[int, ...] | None = None  # CHW or NCHW, for a bare .param without input shape
    timeout: float = 1800.0  # seconds allowed for one runner invocation
    seed: int = 0  # seed of the weights generated for a bare .param


@dataclass
class BenchResult:
    """One (target, build, precision, thread count) measurement."""

    target: str
    build: str
    precision: str
    threads: int
    load_ms: float | None
    latency_ms: LatencyStats
    fps: float | None
    peak_memory_mb: float | None
    size_bytes: int
    emulated: bool


@dataclass
class BenchError:
    """A failure: a target that could not be reached or died, or a model that did not run."""

    target: str
    message: str
    build: str | None = None
    precision: str | None = None


@dataclass
class BenchReport:
    """Everything measured, the targets described, and what went wrong."""

    results: list[BenchResult] = field(default_factory=list)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[BenchError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": [asdict(r) for r in self.results],
            "targets": self.targets,
            "errors": [asdict(e) for e in self.errors],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchReport:
        results = [
            BenchResult(**{**r, "latency_ms": LatencyStats(**r["latency_ms"])}) for r in data["results"]
        ]
        errors = [BenchError(**e) for e in data.get("errors", [])]
        return cls(results, dict(data.get("targets", {})), errors, list(data.get("notes", [])))


# ---------------------------------------------------------------------------------------------
# Resolving BUILD arguments


def resolve_builds(
    builds: list[Path], config: BenchConfig, workdir: Path
) -> tuple[list[BenchModel], list[str]]:
    """Turn BUILD paths into models; generated weights go to ``workdir``. Returns (models, notes)."""
    for p in config.precisions or ():
        if p not in PRECISIONS:
            raise EdgekitError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
    models: list[BenchModel] = []
    notes: list[str] = []
    labels: set[str] = set()
    for build in builds:
        located = locate_model(Path(build))
        label = _unique_label(located.name, labels)
        shape = _input_shape(located, config)
        checked: dict[Path, Path] = {}  # .param -> its validated (or generated) weights
        for precision in config.precisions or PRECISIONS:
            if precision not in located.files:
                if config.precisions is None:
                    continue  # not asked for by name: nothing to say
                notes.append(
                    f"{label}: no {precision} model (has {', '.join(sorted(located.files))}); {precision} skipped"
                )
                continue
            param, weights = located.files[precision]
            if param not in checked:
                generated = workdir / f"{len(labels)}-{param.stem}.generated.bin"
                checked[param] = _checked_weights(param, weights, config.seed, generated)
            weights = checked[param]
            size = param.stat().st_size + weights.stat().st_size
            models.append(BenchModel(label, precision, param, weights, located.input_name, shape, size))
    return models, notes


def _unique_label(label: str, seen: set[str]) -> str:
    candidate, n = label, 2
    while candidate in seen:
        candidate, n = f"{label}#{n}", n + 1
    seen.add(candidate)
    return candidate


def _input_shape(located: LocatedModel, config: BenchConfig) -> tuple[int, int, int]:
    """C, H, W: a build's manifest, else ``--shape``, else the bare graph's ``Input`` layer.

    A ``--shape`` that disagrees with the shape the build or its Input layer declares is refused.
    """
    given = _chw(tuple(config.shape), "--shape") if config.shape is not None else None
    if given is not None and located.input_shape is not None and given != tuple(located.input_shape):
        declared = ",".join(map(str, located.input_shape))
        raise EdgekitError(
            f"--shape {','.join(map(str, given))} disagrees with {located.name}'s input shape {declared}"
        )
    if given is not None:
        return given
    if located.input_shape is None:
        param = next(iter(located.files.values()))[0]
        raise EdgekitError(
            f"{param}: its Input layer does not give the input shape; pass --shape C,H,W (e.g. 3,416,416)"
        )
    return located.input_shape


def _checked_weights(param: Path, weights: Path | None, seed: int, generated: Path) -> Path:
    """Validate a .param/.bin pair; a graph without weights gets ``generated`` ones, as benchncnn does."""
    for path in (param, weights):
        if path is not None and not path.is_file():
            raise EdgekitError(f"model file missing: {path}")
    model = validate_files(param, weights)
    if weights is not None:
        return weights
    generated.write_bytes(synthesize_weights(model, seed).bin_bytes())
    return generated


def _chw(shape: tuple[int, ...], where: str) -> tuple[int, int, int]:
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 3 or any(int(d) <= 0 for d in shape):
        raise EdgekitError(f"{where}: expected an input shape C,H,W or 1,C,H,W, got {list(shape)}")
    c, h, w = (int(d) for d in shape)
    return c, h, w


# ---------------------------------------------------------------------------------------------
# Running


def run_benchmarks(
    builds: list[Path], targets: list[Target], config: BenchConfig, progress: ProgressFn | None = None
) -> BenchReport:
    """Measure every build on every target (one thread per target) and return one report.

    Bad BUILD arguments raise :class:`EdgekitError` before any target is touched. Target
    failures never raise: they end up in ``report.errors`` next to the results measured so far.
    """
    if not builds:
        raise EdgekitError("no BUILD given")
    if not targets:
        raise EdgekitError("no target given")
    if (
        (config.loops is not None and config.loops < 1)
        or (config.warmup is not None and config.warmup < 0)
        or (config.threads is not None and (not config.threads or min(config.threads) < 1))
    ):
        raise EdgekitError("loops must be >= 1, warmup >= 0 and thread counts >= 1")
    if config.cores not in CORES:
        raise EdgekitError(f"--cores {config.cores!r}: choose one of {', '.join(CORES)}")
    check_runner_choice(config.runner)
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise EdgekitError(f"the same target is given twice: {', '.join(names)}")
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        models, notes = resolve_builds(builds, config, Path(tmp))
        if not models:
            raise EdgekitError("nothing to benchmark: no build has any of the requested precisions")
        report = BenchReport(notes=notes)
        with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="bench") as pool:
            futures = [pool.submit(_TargetRun(t, models, config, progress).run) for t in targets]
            outcomes = [f.result() for f in futures]
        for target, (info, results, errors, note) in zip(targets, outcomes, strict=True):
            report.results.extend(results)
            report.errors.extend(errors)
            if info:
                report.targets[target.name] = info
            if note and note not in report.notes:
                report.notes.append(note)
    return report


def default_threads(cores: int | None) -> tuple[int, ...]:
    """1, 2 and 4 threads, capped at ``cores`` (all three when the core count is unknown)."""
    return tuple(n for n in (1, 2, 4) if cores is None or n <= max(1, cores))


def timing_plan(config: BenchConfig, defaults: TimingDefaults, cores: int | None) -> TimingPlan:
    """What to run on one target: the user's choices, else the target's defaults."""
    threads = config.threads or defaults.threads or default_threads(cores)
    loops = defaults.loops if config.loops is None else config.loops
    warmup = defaults.warmup if config.warmup is None else config.warmup
    return TimingPlan(tuple(threads), loops, warmup, config.timeout, CORES.get(config.cores, 0))


class _TargetRun:
    """The work of one target's thread."""

    def __init__(
        self,
        target: Target,
        models: list[BenchModel],
        config: BenchConfig,
        progress: ProgressFn | None,
    ):
        self.target, self.models, self.config = target, models, config
        self.runner: Runner | None = None
        self.plan = timing_plan(config, target.timing_defaults, None)
        self.progress = progress or (lambda _t, _m: None)
        self.results: list[BenchResult] = []
        self.errors: list[BenchError] = []
        self.info: dict[str, Any] = {}
        self.pushed: dict[Path, str] = {}

    def say(self, message: str) -> None:
        self.progress(self.target.name, message)

    def run(self) -> tuple[dict[str, Any], list[BenchResult], list[BenchError], str | None]:
        t = self.target
        try:
            self.say("connecting")
            t.open()
        except TargetError as exc:
            self.errors.append(BenchError(t.name, f"cannot open target {t.name}: {exc}"))
            return self.info, self.results, self.errors, None
        current: BenchModel | None = None
        try:
            self.say("choosing the runner")
            self.runner = runner = choose_runner(self.config.runner, t, self.say)
            self.say(f"installing the {runner.kind} runner")
            installed = runner.install(t)
            self.say("probing")
            self.info = self._describe(runner.probe(t, installed, self.plan.timeout))
            self.info["runner"] = runner.kind
            self.info["cores_used"] = self.config.cores
            cores = self.info.get("cores")
            self.plan = timing_plan(self.config, t.timing_defaults, cores if isinstance(cores, int) else None)
            self.info["plan"] = {"threads": list(self.plan.threads), "loops": self.plan.loops,
                                 "warmup": self.plan.warmup}  # fmt: skip
            for current in self.models:
                self._measure(installed, current)
            current = None
        except TargetError as exc:
            where = f" while measuring {current.build} {current.precision}" if current else ""
            self.errors.append(
                BenchError(
                    t.name,
                    f"{t.name} failed{where}: {exc}",
                    current.build if current else None,
                    current.precision if current else None,
                )
            )
        except Exception as exc:  # a bug must not lose the other targets' results
            self.errors.append(BenchError(t.name, f"internal error on {t.name}: {type(exc).__name__}: {exc}"))
        finally:
            t.close()
        self.say("done")
        return self.info, self.results, self.errors, self.runner.note if self.runner else None

    def _describe(self, info: dict[str, Any]) -> dict[str, Any]:
        info["emulated"] = bool(self.target.emulated)
        if self.target.emulated:
            info["cpu"] = f"emulated {info.get('machine', '')} (QEMU) on {info.get('cpu')}".replace("  ", " ")
        return info

    def _push(self, path: Path, suffix: str) -> str:
        """Push ``path`` once per target (builds share files across precisions)."""
        if path not in self.pushed:
            self.pushed[path] = self.target.push(path, f"m{len(self.pushed)}{suffix}")
        return self.pushed[path]

    def _measure(self, installed: str, model: BenchModel) -> None:
        self.say(
            f"{model.build} {model.precision}: measuring threads {','.join(map(str, self.plan.threads))}"
        )
        assert self.runner is not None
        try:
            measured = self.runner.measure(self.target, installed, model, self._push, self.plan)
        except RunnerFailed as exc:
            reason = str(exc)
            for local, remote in self.pushed.items():  # name the user's files, not their copies
                reason = reason.replace(remote, str(local))
            self.errors.append(
                BenchError(
                    self.target.name,
                    f"{model.build} {model.precision} failed on {self.target.name}: {reason}",
                    model.build,
                    model.precision,
                )
            )
            return
        for m in measured:
            self.results.append(
                BenchResult(
                    target=self.target.name,
                    build=model.build,
                    precision=model.precision,
                    threads=m.threads,
                    load_ms=m.load_ms,
                    latency_ms=m.latency_ms,
                    fps=1000.0 / m.latency_ms.mean if m.latency_ms.mean else None,
                    peak_memory_mb=m.peak_rss_mb,
                    size_bytes=model.size_bytes,
                    emulated=bool(self.target.emulated),
                )
            )
