"""How fast the builds of one conversion run on the machine that made them (speed honesty)."""

from __future__ import annotations

import platform
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.board.runner import time_net
from edge.ncnn.net import input_mat
from edge.runtime.policy import open_build_net


def median_latency_ms(
    param: Path, binf: Path, precision: str, input_name: str, shape: list[int], outputs: list[str],
    *, threads: int, loops: int = 15, warmup: int = 3,
) -> float:  # fmt: skip
    """Median latency of one build here, with the runtime policy and the board-side runner's timing loop."""
    net = open_build_net(param, binf, precision, threads=threads)
    data = np.random.default_rng(0).standard_normal(shape[1:]).astype(np.float32)
    mat = input_mat(data)
    try:
        return statistics.median(time_net(net, input_name, mat, outputs, loops, warmup))
    finally:
        del mat
        net.clear()


@dataclass
class SpeedComparison:
    """INT8 against a float build, timed interleaved: one speed ratio per round (float ms / INT8 ms)."""

    baseline: str
    base_ms: float  # median over every round's median
    int8_ms: float
    ratios: list[float]
    threads: int
    loops: int  # timed inferences per build and round

    @property
    def ratio(self) -> float:
        """INT8's speed relative to the baseline: baseline median / INT8 median."""
        return self.base_ms / self.int8_ms

    @property
    def verdict(self) -> str:
        """``faster``, ``slower`` or ``same`` (the rounds' ratios lie on both sides of 1)."""
        if min(self.ratios) > 1.0:
            return "faster"
        if max(self.ratios) < 1.0:
            return "slower"
        return "same"

    def to_dict(self) -> dict[str, object]:
        return {
            "baseline": self.baseline, "verdict": self.verdict, "ratio_median": round(self.ratio, 3),
            "ratio_min": round(min(self.ratios), 3), "ratio_max": round(max(self.ratios), 3),
            "rounds": len(self.ratios), "loops_per_round": self.loops, "threads": self.threads,
        }  # fmt: skip


def compare_int8_speed(
    files: dict[str, tuple[Path, Path]], baseline: str, input_name: str, shape: list[int], outputs: list[str],
    *, rounds: int = 6, loops: int = 4, warmup: int = 2, threads: int = 1,
) -> SpeedComparison:  # fmt: skip
    """Time ``baseline`` and ``int8`` (``files[p] = (param, bin)``) in alternating rounds here.

    Both nets stay open; each round times ``loops`` inferences of each, in ABBA order, so drift
    and other programs' load fall on both alike. One thread by default: the figure is about the
    kernels, not about how two busy cores are shared.
    """
    nets = {p: open_build_net(*files[p], p, threads=threads) for p in (baseline, "int8")}
    data = np.random.default_rng(0).standard_normal(shape[1:]).astype(np.float32)
    mat = input_mat(data)
    medians: dict[str, list[float]] = {p: [] for p in nets}
    try:
        for net in nets.values():
            time_net(net, input_name, mat, outputs, 0, warmup)
        for i in range(rounds):
            order = [baseline, "int8"] if i % 2 == 0 else ["int8", baseline]
            for p in order:
                medians[p].append(statistics.median(time_net(nets[p], input_name, mat, outputs, loops, 0)))
    finally:
        del mat
        for net in nets.values():
            net.clear()
    ratios = [b / q for b, q in zip(medians[baseline], medians["int8"], strict=True)]
    return SpeedComparison(
        baseline,
        statistics.median(medians[baseline]),
        statistics.median(medians["int8"]),
        ratios,
        threads,
        loops,
    )


def int8_speed_note(c: SpeedComparison) -> str:
    """One plain sentence comparing INT8 with the float build here; "no clear difference" when the
    rounds disagree, and SLOWER in capitals when every round says so."""
    machine = platform.machine()
    spread = f"{min(c.ratios):.2f}-{max(c.ratios):.2f}x over {len(c.ratios)} interleaved rounds"
    how = (
        f"on this {machine} machine ({c.threads} thread{'s' if c.threads > 1 else ''}; {spread};"
        f" median {c.int8_ms:.1f} ms vs {c.base_ms:.1f} ms)"
    )
    if c.verdict == "same":
        return f"INT8 and {c.baseline} show no clear difference in speed {how}"
    if c.verdict == "slower":
        arm = (
            ""
            if machine.startswith(("arm", "aarch"))
            else "; INT8's speed-up is on ARM (NEON dot product), not x86"
        )
        return f"INT8 is SLOWER than {c.baseline} {how}: {c.ratio:.2f}x its speed{arm}"
    return f"INT8 runs {c.ratio:.2f}x the speed of {c.baseline} {how}"
