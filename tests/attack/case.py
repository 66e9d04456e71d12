"""One attack case, what happened when it ran, and the verdict on it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: classes in the order the table prints them
CLASSES = ("options", "env", "paths", "onnx", "ncnn", "manifest", "coco", "disk", "signals", "concurrency")
#: verdicts, worst first
VERDICTS = ("crash", "internal", "timeout", "harness", "unclear", "accepted", "clean", "success")

PROGRESS_LINE = re.compile(r"^edgekit: \[\s*\d+\.\d s\] ")
TRACEBACK = "Traceback (most recent call last)"
INTERNAL = "internal error"
#: the cheapest timing options of `edgekit bench` (one loop, no warm-up, one thread)
QUICK_BENCH = ["--loops", "1", "--warmup", "0", "--threads", "1"]


@dataclass
class Case:
    """A hostile call of the CLI.

    ``argv`` may hold ``{name}`` placeholders for fixture paths (:mod:`tests.attack.fixtures`);
    ``prepare(workdir)`` runs in the child before the CLI (it writes generated inputs);
    ``expect`` is ``error`` when the input is nonsense that must be refused.
    ``runner`` names a special runner (signals, concurrency) with its ``params``.
    """

    cls: str
    name: str
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Path], None] | None = None
    expect: str = "any"
    timeout: float = 60.0
    tree: str = "basic"
    runner: str = "cli"
    params: dict[str, Any] = field(default_factory=dict)
    expensive: bool = False


@dataclass
class Result:
    """What one case did; :attr:`verdict` is one of :data:`VERDICTS`."""

    cls: str
    name: str
    verdict: str
    code: int | None = None
    signal: int | None = None
    seconds: float = 0.0
    one_line: bool = True
    lost: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    detail: str = ""
    argv: list[str] = field(default_factory=list)

    def failed(self) -> bool:
        """A verdict or side effect the issue forbids (crash, internal error, hang, loss, junk)."""
        return self.verdict in ("crash", "internal", "timeout", "harness") or bool(
            self.lost or self.leftovers
        )


def message_lines(stderr: str) -> list[str]:
    """stderr lines other than progress lines and warnings."""
    lines = []
    for line in stderr.strip().splitlines():
        stripped = line.strip()
        if not stripped or PROGRESS_LINE.match(stripped) or stripped.lower().startswith("warning"):
            continue
        lines.append(stripped)
    return lines


def usage_error(stderr: str) -> bool:
    """Click's own usage error (bad option syntax or type): a box naming the option."""
    return "Usage: edgekit" in stderr and ("Try 'edgekit" in stderr or "Error" in stderr)


def judge(
    case: Case,
    code: int | None,
    sig: int | None,
    timed_out: bool,
    stdout: str,
    stderr: str,
    sent: int | None = None,
) -> tuple[str, bool, str]:
    """(verdict, one clear line, detail) of one CLI run; ``sent`` is a signal the attack sent it."""
    from tests.attack.server import ESCAPED, HARNESS_ERROR

    text = stdout + stderr
    last = (message_lines(stderr) or [""])[-1][:300]
    if timed_out:
        return "timeout", False, f"no exit within {case.timeout:.0f} s; {last}"
    if sig is not None:
        if sent is not None and sig == sent:
            return "clean", True, f"killed by the signal sent ({sig})"
        return "crash", False, f"killed by signal {sig}; {last}"
    assert code is not None
    if code == HARNESS_ERROR:
        return "harness", False, stderr[-500:]
    if TRACEBACK in text or INTERNAL in text or code == ESCAPED:
        line = next((x for x in text.splitlines() if INTERNAL in x), "")
        if not line:  # a raw traceback: where it starts (e.g. "Exception ignored in ...") and how it ends
            lines = [x for x in text.strip().splitlines() if x.strip()]
            start = next((i for i, x in enumerate(lines) if TRACEBACK in x), 0)
            line = " | ".join([*lines[max(0, start - 1) : start + 1], "...", *lines[-4:]])
        return "internal", False, line[:600]
    if code >= 128 and not (sent is not None and code == 128 + sent):
        return "crash", False, f"exit {code}; {last}"
    if code == 0:
        if case.expect == "error":
            return "accepted", True, "exit 0 on nonsense"
        return "success", True, ""
    lines = message_lines(stderr)
    if usage_error(stderr):
        return "clean", True, "usage: " + (lines[-2] if len(lines) > 1 else last)
    if len(lines) == 1:
        return "clean", True, lines[0][:300]
    return "unclear", False, " | ".join(lines[-4:])[:400] or f"exit {code}, no message"
