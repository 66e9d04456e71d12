"""Bad values of every ``EDGEKIT_*`` variable the code reads (found by scanning the source)."""

from __future__ import annotations

import random
import re
from pathlib import Path

from tests.attack.case import QUICK_BENCH, Case

SOURCE = Path(__file__).resolve().parents[2]
#: variables that are not settings of the product: EDGEKIT_DEBUG asks for tracebacks on purpose;
#: EDGEKIT_SHARED only locates test assets; a qemu root or mirror would build an emulated board
SKIP = {"EDGEKIT_DEBUG", "EDGEKIT_SHARED", "EDGEKIT_QEMU_ROOT", "EDGEKIT_DEBIAN_MIRROR"}
VALUES = [
    "",
    " ",
    "0",
    "-1",
    "abc",
    "99999999999999999999",
    "nan",
    "inf",
    "/nonexistent",
    "/dev/null",
    "/",
    "\x01",
    "\udcff",
    "x" * 100_000,
    "{img}",
    "{build}",
    ".",
    "yes",
    "no",
    "1e309",
    "-oProxyCommand=touch PWNED",
    "$(touch PWNED)",
    ",",
    "a,,b",
    "os",
    "edge.cli",
    "nonexistent_module_x",
    "tests.attack:nope",
]
#: a cheap call that makes each kind of variable be read
CALLS = {
    "PNNX": ["convert", "{tiny_onnx}", "-o", "out", "--preset", "none", "--no-fp16", "--verify-num", "1"],
    "SSH": ["bench", "{build}", "-t", "ssh://attack@127.0.0.1:1", *QUICK_BENCH],
    "ADB": ["bench", "{build}", "-t", "adb", *QUICK_BENCH],
    "FAMILY": ["detect", "{build}", "{img}", "-o", "out"],
}
#: variables of no known kind go through detect (the cheapest call that opens a build and runs it)
GENERIC = [["detect", "{build}", "{img}", "-o", "out"]]


def variables() -> list[str]:
    """Every ``EDGEKIT_*`` name in edge/, converters/ and benchmarks/ (not published scripts)."""
    names = set()
    for package in ("edge", "converters", "benchmarks"):
        for path in (SOURCE / package).rglob("*.py"):
            if "published" in path.parts:
                continue
            names.update(re.findall(r"EDGEKIT_[A-Z0-9_]+", path.read_text(errors="replace")))
    return sorted(n for n in names if n not in SKIP and not n.endswith("_"))


def _calls(name: str) -> list[list[str]]:
    for key, argv in CALLS.items():
        if key in name:
            return [argv]
    return GENERIC


def generate(rng: random.Random, per_variable: int | None = None) -> list[Case]:
    """Each variable with each bad value (or ``per_variable`` of them), through calls that read it."""
    cases = []
    for name in variables():
        values = VALUES if per_variable is None else rng.sample(VALUES, min(per_variable, len(VALUES)))
        for value in values:
            for argv in _calls(name):
                cases.append(
                    Case(
                        "env",
                        f"{name}={value[:30]!r} {argv[0]}",
                        list(argv),
                        env={name: value},
                        timeout=60,
                        expensive=argv[0] == "convert",
                    )
                )
    return cases
