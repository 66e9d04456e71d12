"""Signals at random points of a convert (and a video detect), concurrent writers and readers, full disks.

A full disk is a file-size limit (``RLIMIT_FSIZE``) with ``SIGXFSZ`` ignored: every write past
the limit fails with ``EFBIG``, in edgekit and in the pnnx it starts, as on a full disk.
"""

from __future__ import annotations

import random
import resource
import signal
from functools import partial
from pathlib import Path

from tests.attack.case import QUICK_BENCH, Case

CONVERT_REAL = ["convert", "{real_onnx}", "-o", "out"]
#: seconds a convert of the real fixture model takes here (random points are drawn in 0..this)
CONVERT_SECONDS = 3.0
SIGNALS = {
    "kill -9": signal.SIGKILL,
    "SIGTERM": signal.SIGTERM,
    "SIGHUP": signal.SIGHUP,
    "SIGINT": signal.SIGINT,
}


def signal_cases(rng: random.Random, per_signal: dict[str, int], span: float = CONVERT_SECONDS) -> list[Case]:
    """``per_signal[name]`` converts killed at uniform random points; half of them replace a build (--force)."""
    cases = []
    for label, count in per_signal.items():
        sig = SIGNALS[label]
        for i in range(count):
            delay = rng.uniform(0.05, span)
            force = i % 2 == 1
            argv = CONVERT_REAL + (["--force"] if force else [])
            cases.append(
                Case(
                    "signals",
                    f"{label} at {delay:.2f} s of convert{' --force over a build' if force else ''}",
                    argv,
                    runner="signal",
                    timeout=120,
                    expensive=True,
                    params={
                        "signal": int(sig),
                        "delay": delay,
                        "target": "out",
                        "existing": force,
                        "group": sig in (signal.SIGINT, signal.SIGHUP),
                        "again": [*CONVERT_REAL, "--force"],
                    },
                )
            )
    return cases


def video_signal_cases(rng: random.Random, count: int) -> list[Case]:
    """A video detect killed at random points: no hidden temp file may stay."""
    cases = []
    for _ in range(count):
        delay = rng.uniform(0.05, 0.6)
        sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
        cases.append(
            Case(
                "signals",
                f"{sig.name} at {delay:.2f} s of a video detect",
                ["detect", "{build}", "{video}", "-o", "vout"],
                runner="signal",
                timeout=60,
                expensive=True,
                params={
                    "signal": int(sig),
                    "delay": delay,
                    "target": "none",
                    "again": ["detect", "{build}", "{video}", "-o", "vout", "--force"],
                },
            )
        )
    return cases


def concurrency_cases(rounds: int) -> list[Case]:
    """Racing writers (exactly one may create a build), --force writers, readers during swaps."""
    cases = []
    for r in range(rounds):
        cases.append(
            Case(
                "concurrency",
                f"3 converts into one -o (round {r})",
                list(CONVERT_REAL),
                runner="concurrent",
                timeout=180,
                expensive=True,
                params={"copies": 3, "winners": 1, "target": "out"},
            )
        )
        cases.append(
            Case(
                "concurrency",
                f"2 converts --force into one -o (round {r})",
                [*CONVERT_REAL, "--force"],
                runner="concurrent",
                timeout=180,
                expensive=True,
                params={"copies": 2, "target": "out"},
            )
        )
        cases.append(
            Case(
                "concurrency",
                f"2 detects --force into one -o (round {r})",
                ["detect", "{build}", "images", "-o", "dout", "--force"],
                runner="concurrent",
                timeout=120,
                expensive=True,
                params={"copies": 2},
            )
        )
        cases.append(
            Case(
                "concurrency",
                f"2 calibrates --force into one table (round {r})",
                [
                    "calibrate",
                    "{build}",
                    "--images",
                    "{calib}",
                    "-o",
                    "t.table",
                    "--calib-num",
                    "1",
                    "--force",
                ],
                runner="concurrent",
                timeout=120,
                expensive=True,
                params={"copies": 2},
            )
        )
        # builds that differ (with and without fp16): a reader mixing two of them would notice
        writers = [[*CONVERT_REAL, "--force", *(["--no-fp16"] if i % 2 else [])] for i in range(4)]
        cases.append(
            Case(
                "concurrency",
                f"reader during 4 --force replacements (round {r})",
                [],
                runner="reader",
                timeout=120,
                expensive=True,
                params={
                    "target": "out",
                    "writers": writers,
                    "reader": ["detect", "out", "images/a.jpg", "-o", "rout", "--force", "--json"],
                },
            )
        )
    return cases


def _limit_files(size: int, ws: Path) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


DISK = [
    (
        "convert",
        ["convert", "model.onnx", "-o", "out", "--preset", "none", "--no-fp16", "--verify-num", "1"],
        [8 << 10, 40 << 10],
    ),
    ("convert real", ["convert", "{real_onnx}", "-o", "out"], [16 << 10, 300 << 10, 900 << 10]),
    ("detect", ["detect", "{build}", "images", "-o", "out"], [8 << 10, 20 << 10]),
    ("detect video", ["detect", "{build}", "{video}", "-o", "out"], [8 << 10, 60 << 10]),
    (
        "calibrate",
        ["calibrate", "{build}", "--images", "{calib}", "-o", "t.table", "--calib-num", "1"],
        [4 << 10],
    ),
    (
        "bench csv",
        ["bench", "{build}", *QUICK_BENCH, "--precision", "fp32", "--csv", "r.csv"],
        [4 << 10],
    ),
    (
        "bench plot",
        ["bench", "{build}", *QUICK_BENCH, "--precision", "fp32", "--plot", "p.png"],
        [6 << 10],
    ),
    ("zoo", ["zoo", "build", "ssd-resnet34-1200", "-o", "z.onnx"], [64 << 10]),
]


def disk_cases() -> list[Case]:
    """Every writing command on a disk that fills up after N bytes of any one file."""
    cases = []
    for label, argv, sizes in DISK:
        for size in sizes:
            cases.append(
                Case(
                    "disk",
                    f"{label}: disk full after {size >> 10} KB",
                    list(argv),
                    prepare=partial(_limit_files, size),
                    timeout=180,
                    expensive=argv[0] in ("convert", "zoo"),
                )
            )
    return cases
