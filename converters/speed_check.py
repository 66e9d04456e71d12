"""How fast the builds of one conversion run on the machine that made them (speed honesty)."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path

import ncnn
import numpy as np

from edge.board.runner import time_net
from edge.runtime.policy import open_build_net


def median_latency_ms(
    param: Path, binf: Path, precision: str, input_name: str, shape: list[int], outputs: list[str],
    *, threads: int, loops: int = 15, warmup: int = 3,
) -> float:  # fmt: skip
    """Median latency of one build here, with the runtime policy and the board-side runner's timing loop."""
    net = open_build_net(param, binf, precision, threads=threads)
    data = np.random.default_rng(0).standard_normal(shape[1:]).astype(np.float32)
    mat = ncnn.Mat(data)
    try:
        return statistics.median(time_net(net, input_name, mat, outputs, loops, warmup))
    finally:
        del mat
        net.clear()


def int8_speed_note(baseline: str, base_ms: float, int8_ms: float, threads: int) -> str:
    """One plain sentence comparing INT8 with the float build here, saying when INT8 is slower."""
    machine = platform.machine()
    ratio = base_ms / int8_ms
    here = f"on this {machine} machine ({threads} threads, median)"
    if int8_ms > base_ms:
        arm = (
            ""
            if machine.startswith(("arm", "aarch"))
            else "; INT8's speed-up is on ARM (NEON dot product), not x86"
        )
        return (
            f"INT8 is SLOWER than {baseline} {here}: {int8_ms:.1f} ms vs {base_ms:.1f} ms ({ratio:.2f}x){arm}"
        )
    return f"INT8 runs {ratio:.2f}x the speed of {baseline} {here}: {int8_ms:.1f} ms vs {base_ms:.1f} ms"


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))
