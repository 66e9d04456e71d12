"""What a bench report means: the closing verdict per target, and figures too noisy to trust."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.harness import BenchReport, BenchResult

#: "within 10 %" of the fastest configuration
WITHIN = 0.10
#: a figure is noisy when its p99 is above this multiple of its median ...
NOISY_P99_RATIO = 3.0
#: ... or when p90 - min is above this fraction of its median
NOISY_SPREAD = 0.5
#: fewer timed runs than this give no p99 worth judging
MIN_LOOPS_TO_JUDGE = 10


def latency(r: BenchResult) -> float | None:
    """The figure a result is ranked by: its median, or its mean where the runner has no median."""
    return r.latency_ms.median if r.latency_ms.median is not None else r.latency_ms.mean


@dataclass
class Verdict:
    """One target's answer: the fastest configuration and the smallest build close to it."""

    target: str
    fastest: BenchResult
    smallest: BenchResult  # fewest bytes among the configurations within WITHIN of the fastest

    def to_dict(self) -> dict[str, Any]:
        def pick(r: BenchResult) -> dict[str, Any]:
            return {"build": r.build, "precision": r.precision, "threads": r.threads,
                    "latency_ms": latency(r), "fps": r.fps, "size_bytes": r.size_bytes}  # fmt: skip

        return {
            "target": self.target,
            "fastest": pick(self.fastest),
            "smallest_within_10pct": pick(self.smallest),
        }


def verdicts(report: BenchReport) -> list[Verdict]:
    """Per target (in report order): the fastest precision x threads and the smallest build within 10 %."""
    found = []
    for target in dict.fromkeys(r.target for r in report.results):
        timed = [r for r in report.results if r.target == target and latency(r)]
        if not timed:
            continue
        fastest = min(timed, key=lambda r: latency(r) or 0.0)
        limit = (latency(fastest) or 0.0) * (1 + WITHIN)
        close = [r for r in timed if (latency(r) or 0.0) <= limit]
        smallest = min(close, key=lambda r: (r.size_bytes, latency(r) or 0.0))
        found.append(Verdict(target, fastest, smallest))
    return found


def _config(r: BenchResult, with_build: bool) -> str:
    threads = f"{r.threads} thread{'s' if r.threads > 1 else ''}"
    return f"{r.build + ' ' if with_build else ''}{r.precision} x {threads}"


def verdict_line(v: Verdict, with_build: bool) -> str:
    """``local: fastest fp16 x 2 threads, 30.8 FPS (median 32.1 ms); smallest within 10%: ...``."""
    f, s = v.fastest, v.smallest
    fps = f"{f.fps:.1f} FPS" if f.fps else "FPS unknown"
    line = f"{v.target}: fastest {_config(f, with_build)}, {fps} (median {latency(f):.1f} ms)"
    if s is f:
        line += f"; it is also the smallest build within {WITHIN:.0%} ({s.size_bytes / 1e6:.2f} MB)"
    else:
        line += (
            f"; smallest within {WITHIN:.0%}: {_config(s, with_build)}, {s.size_bytes / 1e6:.2f} MB"
            f" (vs {f.size_bytes / 1e6:.2f} MB), {s.fps or 0:.1f} FPS"
        )
    if f.emulated:
        line += " (emulated: not real speed)"
    return line


def noise(r: BenchResult) -> str | None:
    """Why ``r``'s figures are unreliable (p99 far above the median, or a wide spread), or None."""
    lat = r.latency_ms
    if r.emulated or lat.median is None or lat.median <= 0:
        return None
    if lat.p99 is not None and lat.p99 > NOISY_P99_RATIO * lat.median:
        return f"p99 {lat.p99 / lat.median:.1f}x the median"
    if lat.p90 is not None and lat.min is not None and lat.p90 - lat.min > NOISY_SPREAD * lat.median:
        return f"p90 - min = {(lat.p90 - lat.min) / lat.median:.0%} of the median"
    return None


def noise_warning(report: BenchReport) -> str | None:
    """One line naming every noisy figure and what to do about it, or None when all are steady."""
    noisy = []
    for r in report.results:
        loops = report.targets.get(r.target, {}).get("plan", {}).get("loops", MIN_LOOPS_TO_JUDGE)
        why = noise(r) if loops >= MIN_LOOPS_TO_JUDGE else None
        if why:
            noisy.append(f"{r.target} {r.build} {r.precision} x{r.threads} ({why})")
    if not noisy:
        return None
    return (
        f"{len(noisy)} figure{'s are' if len(noisy) > 1 else ' is'} unreliable, the runs varied too much"
        f" (p99 > {NOISY_P99_RATIO:g}x median, or p90 - min > {NOISY_SPREAD:.0%} of median): "
        + "; ".join(noisy)
        + ". Close other programs, set the CPU governor to performance, or raise --loops."
    )
