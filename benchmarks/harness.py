"""Benchmark ncnn builds on one or more targets and gather one report.

The harness resolves each BUILD (an edgekit build directory or a bare ``.param``) into the
models to measure, pushes those files and the board-side runner (:mod:`edge.board.runner`)
to every target, runs it and turns its raw per-iteration timings into statistics. Targets
run in parallel, one thread each (a fleet); a target that fails mid-run keeps the results it
already produced and adds an entry to ``errors``.

A user-supplied benchncnn-compatible binary (``BenchConfig.runner``) replaces the Python
runner on targets without Python (Android): it reports min/avg only and always runs ncnn's
default options with generated weights.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.targets.base import Target, TargetError
from edge.board import runner as runner_module
from edge.errors import EdgekitError
from edge.manifest import MANIFEST_NAME, PRECISIONS, load_manifest
from edge.ncnn.model import NcnnModel, synthesize_weights, validate_files

#: progress(target_name, message): called from the targets' worker threads
ProgressFn = Callable[[str, str], None]

RUNNER_SOURCE = Path(runner_module.__file__)
FIX_PYTHON = "install Python 3 on it (e.g. `sudo apt install python3 python3-pip`)"
FIX_NCNN = "run `python3 -m pip install ncnn numpy` on it"


@dataclass
class BenchConfig:
    """What to measure. Precisions a build lacks are skipped and noted in the report."""

    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    threads: tuple[int, ...] = (1, 2, 4)
    loops: int = 100
    warmup: int = 10
    runner: Path | None = None  # user-supplied benchncnn-compatible binary (adb --runner)
    shape: tuple[int, ...] | None = None  # CHW or NCHW, for a bare .param without input shape
    timeout: float = 1800.0  # seconds allowed for one runner invocation
    seed: int = 0  # seed of the weights generated for a bare .param


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


@dataclass
class BenchModel:
    """One model file pair to measure: a build at one precision, resolved host-side."""

    build: str  # label used in reports
    precision: str
    param: Path
    bin: Path | None  # None: weights are generated host-side before pushing
    input_name: str
    input_shape: tuple[int, int, int]  # C, H, W
    size_bytes: int = 0


# ---------------------------------------------------------------------------------------------
# Resolving BUILD arguments


def resolve_builds(
    builds: list[Path], config: BenchConfig, workdir: Path
) -> tuple[list[BenchModel], list[str]]:
    """Turn BUILD paths into models; generated weights go to ``workdir``. Returns (models, notes)."""
    for p in config.precisions:
        if p not in PRECISIONS:
            raise EdgekitError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
    models: list[BenchModel] = []
    notes: list[str] = []
    labels: set[str] = set()
    for build in builds:
        build = Path(build)
        found = (
            _resolve_build_dir(build, config) if build.is_dir() else _resolve_param(build, config, workdir)
        )
        if not found:
            continue
        label = _unique_label(found[0][0].build, labels)
        for model, _ in found:
            model.build = label
        wanted = [m for m, _ in found if m.precision in config.precisions]
        have = sorted({m.precision for m, _ in found})
        for p in config.precisions:
            if not any(m.precision == p for m in wanted):
                notes.append(f"{label}: no {p} model (has {', '.join(have)}); {p} skipped")
        models.extend(wanted)
    return models, notes


def _unique_label(label: str, seen: set[str]) -> str:
    candidate, n = label, 2
    while candidate in seen:
        candidate, n = f"{label}#{n}", n + 1
    seen.add(candidate)
    return candidate


def _resolve_build_dir(build: Path, config: BenchConfig) -> list[tuple[BenchModel, None]]:
    if not (build / MANIFEST_NAME).is_file():
        raise EdgekitError(
            f"{build} is a directory without {MANIFEST_NAME}: pass a build directory or a .param"
        )
    manifest = load_manifest(build)
    shape = _chw(tuple(manifest.input.shape), f"{build}/{MANIFEST_NAME} input.shape")
    out = []
    for precision, files in manifest.builds.items():
        param, weights = build / files.param, build / files.bin
        for f in (param, weights):
            if not f.is_file():
                raise EdgekitError(
                    f"{build}: manifest lists {f.name} for {precision} but the file is missing"
                )
        validate_files(param, weights)
        size = param.stat().st_size + weights.stat().st_size
        out.append(
            (BenchModel(build.name, precision, param, weights, manifest.input.ncnn_name, shape, size), None)
        )
    return out


def _resolve_param(param: Path, config: BenchConfig, workdir: Path) -> list[tuple[BenchModel, None]]:
    if param.suffix != ".param":
        raise EdgekitError(f"{param}: BUILD must be an edgekit build directory or a .param file")
    if not param.is_file():
        raise EdgekitError(f"{param} does not exist")
    weights: Path | None = param.with_suffix(".bin")
    if not weights.is_file():
        weights = None
    model = validate_files(param, weights)
    input_name, param_shape = _single_input(model)
    if config.shape is not None:
        shape = _chw(tuple(config.shape), "--shape")
    elif param_shape is not None:
        shape = param_shape
    else:
        raise EdgekitError(
            f"{param}: its Input layer does not give the input shape; pass --shape C,H,W (e.g. 3,416,416)"
        )
    if weights is None:  # graph only: generated weights, as benchncnn does
        weights = workdir / f"{len(list(workdir.iterdir()))}-{param.stem}.generated.bin"
        weights.write_bytes(synthesize_weights(model, config.seed).bin_bytes())
    label = param.parent.name if param.stem in ("model", "net") else param.stem
    size = param.stat().st_size + weights.stat().st_size
    # a float model runs at fp32 (fp16 paths off) and fp16 (ncnn's fp16 storage/arithmetic on);
    # an int8-quantized graph only at int8
    precisions = ("int8",) if _is_int8(model) else ("fp32", "fp16")
    return [(BenchModel(label, p, param, weights, input_name, shape, size), None) for p in precisions]


def _chw(shape: tuple[int, ...], where: str) -> tuple[int, int, int]:
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 3 or any(int(d) <= 0 for d in shape):
        raise EdgekitError(f"{where}: expected an input shape C,H,W or 1,C,H,W, got {list(shape)}")
    c, h, w = (int(d) for d in shape)
    return c, h, w


_INT8_LAYERS = ("Convolution", "ConvolutionDepthWise", "InnerProduct", "Convolution1D", "Deconvolution")


def _is_int8(model: NcnnModel) -> bool:
    """True when any conv / inner-product layer carries int8 scales (param 8)."""
    return any(layer.type in _INT8_LAYERS and layer.get(8, 0) for layer in model.layers)


def _single_input(model: NcnnModel) -> tuple[str, tuple[int, int, int] | None]:
    """The input blob and its C,H,W from ``0=w 1=h 2=c`` or the ``-23330`` shape hint, if given."""
    inputs = [layer for layer in model.layers if layer.type == "Input"]
    if len(inputs) != 1:
        names = ", ".join(layer.name for layer in inputs) or "none"
        raise EdgekitError(
            f"{model.param_source}: only single-input models can be benchmarked (inputs: {names})"
        )
    layer = inputs[0]
    w, h, c = (layer.get(k, 0) for k in (0, 1, 2))
    hint = layer.get(30)
    if not (isinstance(w, int) and w > 0 and h > 0 and c > 0) and isinstance(hint, list) and len(hint) == 4:
        _, w, h, c = hint
    ok = all(isinstance(v, int) and v > 0 for v in (w, h, c))
    return layer.outputs[0], ((c, h, w) if ok else None)


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
    if config.loops < 1 or config.warmup < 0 or not config.threads or min(config.threads) < 1:
        raise EdgekitError("loops must be >= 1, warmup >= 0 and thread counts >= 1")
    if config.runner is not None and not Path(config.runner).is_file():
        raise EdgekitError(f"runner binary {config.runner} does not exist")
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
        for target, (info, results, errors) in zip(targets, outcomes, strict=True):
            report.results.extend(results)
            report.errors.extend(errors)
            if info:
                report.targets[target.name] = info
        if config.runner is not None:
            report.notes.append(
                f"runner {Path(config.runner).name}: benchncnn-compatible binary; generated weights, "
                "ncnn default options, min/mean only"
            )
    return report


class _TargetRun:
    """The work of one target's thread."""

    def __init__(
        self, target: Target, models: list[BenchModel], config: BenchConfig, progress: ProgressFn | None
    ):
        self.target, self.models, self.config = target, models, config
        self.progress = progress or (lambda _t, _m: None)
        self.results: list[BenchResult] = []
        self.errors: list[BenchError] = []
        self.info: dict[str, Any] = {}

    def say(self, message: str) -> None:
        self.progress(self.target.name, message)

    def run(self) -> tuple[dict[str, Any], list[BenchResult], list[BenchError]]:
        t = self.target
        try:
            self.say("connecting")
            t.open()
        except TargetError as exc:
            self.errors.append(BenchError(t.name, f"cannot open target {t.name}: {exc}"))
            return self.info, self.results, self.errors
        current: BenchModel | None = None
        try:
            runner = self._push_runner()
            self.info = self._probe(runner)
            pushed: dict[Path, str] = {}
            for current in self.models:
                self._measure(runner, current, pushed)
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
        return self.info, self.results, self.errors

    # -- steps ---------------------------------------------------------------------------------

    def _push_runner(self) -> str:
        if self.config.runner is not None:
            remote = self.target.push(Path(self.config.runner), "benchncnn")
            self._check(self.target.run(["chmod", "+x", remote], timeout=60), "chmod +x on the runner")
            return remote
        return self.target.push(RUNNER_SOURCE, "edgekit_runner.py")

    def _python(self, runner: str, args: list[str]) -> dict[str, Any]:
        res = self.target.run(["python3", runner, *args], timeout=self.config.timeout)
        if res.returncode == 127:
            raise TargetError(f"python3 is not installed on {self.target.name}: {FIX_PYTHON}")
        try:
            data = json.loads(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else None
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and data.get("error") == "missing_module":
            raise TargetError(
                f"Python module {data.get('module')} is missing on {self.target.name}: {FIX_NCNN}"
            )
        if res.returncode != 0 or not isinstance(data, dict):
            reason = (data or {}).get("message") if isinstance(data, dict) else None
            tail = reason or _last_line(res.stderr) or _last_line(res.stdout) or f"exit code {res.returncode}"
            raise _RunnerFailed(tail)
        return data

    def _probe(self, runner: str) -> dict[str, Any]:
        self.say("probing")
        if self.config.runner is not None:
            info = self._shell_probe()
        else:
            try:
                info = self._python(runner, ["probe"])
            except _RunnerFailed as exc:
                raise TargetError(f"the runner failed to start on {self.target.name}: {exc}") from None
        info["emulated"] = bool(self.target.emulated)
        if self.target.emulated:
            info["cpu"] = f"emulated {info.get('machine', '')} (QEMU) on {info.get('cpu')}".replace("  ", " ")
        return info

    def _shell_probe(self) -> dict[str, Any]:
        """Target description without Python: /proc/cpuinfo, governor and uname via the shell."""
        cpuinfo = self.target.run(["cat", "/proc/cpuinfo"], timeout=60).stdout
        gov = self.target.run(["cat", runner_module.GOVERNOR_PATH], timeout=60)
        uname = self.target.run(["uname", "-srm"], timeout=60).stdout.strip()
        cpu = runner_module.parse_cpuinfo(cpuinfo)
        return {
            "cpu": cpu["model"],
            "cores": cpu["cores"],
            "governor": gov.stdout.strip() or None if gov.returncode == 0 else None,
            "os": uname or None,
            "machine": uname.split()[-1] if uname else None,
            "ncnn_version": "benchncnn (user-supplied)",
            "arm_fp16": "asimdhp" in cpu["features"],
            "arm_dotprod": "asimddp" in cpu["features"],
            "python": None,
        }

    def _push_model(self, model: BenchModel, pushed: dict[Path, str]) -> tuple[str, str | None]:
        def push(path: Path, suffix: str) -> str:
            if path not in pushed:
                pushed[path] = self.target.push(path, f"m{len(pushed)}{suffix}")
            return pushed[path]

        param = push(model.param, ".param")
        if self.config.runner is not None or model.bin is None:
            return param, None
        return param, push(model.bin, ".bin")

    def _measure(self, runner: str, model: BenchModel, pushed: dict[Path, str]) -> None:
        self.say(f"{model.build} {model.precision}: pushing")
        param, weights = self._push_model(model, pushed)
        self.say(
            f"{model.build} {model.precision}: measuring threads {','.join(map(str, self.config.threads))}"
        )
        try:
            if self.config.runner is not None:
                runs = [self._benchncnn(runner, param, model, n) for n in self.config.threads]
            else:
                runs = self._python(runner, self._runner_args(param, weights, model))["runs"]
        except _RunnerFailed as exc:
            self.errors.append(
                BenchError(
                    self.target.name,
                    f"{model.build} {model.precision} failed on {self.target.name}: {exc}",
                    model.build,
                    model.precision,
                )
            )
            return
        for run in runs:
            self.results.append(self._result(model, run))

    def _runner_args(self, param: str, weights: str | None, model: BenchModel) -> list[str]:
        c = self.config
        return [
            "bench",
            "--param", param,
            "--bin", weights or "",
            "--input", model.input_name,
            "--shape", ",".join(map(str, model.input_shape)),
            "--precision", model.precision,
            "--threads", ",".join(map(str, c.threads)),
            "--loops", str(c.loops),
            "--warmup", str(c.warmup),
        ]  # fmt: skip

    def _benchncnn(self, runner: str, param: str, model: BenchModel, threads: int) -> dict[str, Any]:
        c, h, w = model.input_shape
        argv = [
            runner,
            str(self.config.loops),
            str(threads),
            "0",
            "-1",
            "0",
            f"param={param}",
            f"shape=[{w},{h},{c}]",
        ]
        res = self.target.run(argv, timeout=self.config.timeout)
        parsed = parse_benchncnn(res.stdout + "\n" + res.stderr)
        if res.returncode != 0 or parsed is None:
            raise _RunnerFailed(
                _last_line(res.stderr) or _last_line(res.stdout) or f"exit code {res.returncode}"
            )
        return {"threads": threads, "load_ms": None, "peak_rss_mb": None, "stats": parsed}

    def _result(self, model: BenchModel, run: dict[str, Any]) -> BenchResult:
        if "latencies_ms" in run:
            stats = LatencyStats.from_samples(run["latencies_ms"])
        else:
            s = run["stats"]
            stats = LatencyStats(s["min"], None, s["mean"], None, None)
        return BenchResult(
            target=self.target.name,
            build=model.build,
            precision=model.precision,
            threads=int(run["threads"]),
            load_ms=run.get("load_ms"),
            latency_ms=stats,
            fps=1000.0 / stats.mean if stats.mean else None,
            peak_memory_mb=run.get("peak_rss_mb"),
            size_bytes=model.size_bytes,
            emulated=bool(self.target.emulated),
        )

    def _check(self, res: Any, what: str) -> None:
        if res.returncode != 0:
            raise TargetError(f"{what} failed: {_last_line(res.stderr) or res.returncode}")


class _RunnerFailed(Exception):
    """The runner ran but could not measure one model (the target itself is fine)."""


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


_BENCHNCNN_LINE = re.compile(r"min\s*=\s*([\d.]+)\s+max\s*=\s*([\d.]+)\s+avg\s*=\s*([\d.]+)")


def parse_benchncnn(text: str) -> dict[str, float] | None:
    """The first ``name  min = ..  max = ..  avg = ..`` line of benchncnn output, in ms."""
    m = _BENCHNCNN_LINE.search(text)
    if not m:
        return None
    lo, hi, avg = (float(v) for v in m.groups())
    return {"min": lo, "max": hi, "mean": avg}
