"""Run the ``edgekit`` CLI in a subprocess, as a user would."""

from __future__ import annotations

import re
import subprocess
import sys
from os import PathLike
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_edgekit(
    *args: str | PathLike, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m edge ARGS`` from the repository root: exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "edge", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=timeout,
        env=env,
    )


PROGRESS_LINE = re.compile(r"^edgekit: \[\s*\d+\.\d s\] ")


def message_lines(stderr: str) -> list[str]:
    """The lines of ``stderr`` other than progress lines (``edgekit: [  1.2 s] step``).

    Off a terminal, long commands log one progress line per step on stderr; a failure must
    still end in exactly one message line.
    """
    return [line for line in stderr.strip().splitlines() if line and not PROGRESS_LINE.match(line)]
