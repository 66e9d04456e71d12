"""Running CMake builds for the native runtime: the error type, a file lock, a logged command with
ninja's progress, and the generator / build command lines (shared by ncnn's, libjpeg-turbo's and the
core's builds in :mod:`edge.native.build` and :mod:`edge.native.libjpeg`)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from edge.atomic import write_json
from edge.errors import EdgekitError

Progress = Callable[[str], None]


class NativeBuildError(EdgekitError):
    """The native runtime could not be built (missing compiler, failed compile, no ncnn source)."""


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_NINJA_STEP = re.compile(r"^\[(\d+)/(\d+)\]")


def run(cmd: list[str], cwd: Path, progress: Progress, label: str, log: Path) -> None:
    """Run ``cmd``, logging everything to ``log`` and reporting ninja's progress every ~10 %."""
    log.parent.mkdir(parents=True, exist_ok=True)
    shown = -10
    with open(log, "a") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except OSError as exc:
            raise NativeBuildError(f"cannot run {cmd[0]}: {exc.strerror}") from None
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            match = _NINJA_STEP.match(line)
            if match:
                done, total = int(match.group(1)), int(match.group(2))
                percent = 100 * done // max(total, 1)
                if percent >= shown + 10:
                    shown = percent - percent % 10
                    progress(f"{label}: {percent}% ({done}/{total})")
        code = proc.wait()
    if code != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
        error_lines = [ln for ln in tail.splitlines() if "error" in ln.lower()]
        hint = error_lines[-1].strip() if error_lines else f"exit code {code}"
        raise NativeBuildError(f"{label} failed ({hint}); full log: {log}")


def generator() -> list[str]:
    return ["-G", "Ninja"] if shutil.which("ninja") else []


def build_command(build_dir: Path, jobs: int, target: str | None = None) -> list[str]:
    cmd = ["cmake", "--build", str(build_dir), "--parallel", str(jobs)]
    return [*cmd, "--target", target] if target else cmd


def publish_stage(stage: Path, prefix: Path, work: Path, record_name: str, record: dict[str, Any]) -> None:
    """Write ``record`` as ``stage/record_name``, put ``stage`` in place of ``prefix``, drop ``work``."""
    write_json(stage / record_name, record)
    if prefix.exists():
        shutil.rmtree(prefix)
    os.replace(stage, prefix)
    shutil.rmtree(work, ignore_errors=True)
