"""The machine edgekit runs on, as a benchmark target."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.targets.base import RunResult, Target, TargetError


class LocalTarget(Target):
    """Runs the runner in a private temporary directory with this Python interpreter."""

    def __init__(self, name: str = "local") -> None:
        self.name = name
        self._workdir: Path | None = None

    @property
    def workdir(self) -> str:
        if self._workdir is None:
            raise TargetError("target is not open")
        return str(self._workdir)

    def open(self) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="edgekit-bench-local-"))

    def close(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def push(self, local: Path, remote_name: str) -> str:
        dest = Path(self.workdir) / remote_name
        try:
            shutil.copyfile(local, dest)
        except OSError as exc:
            raise TargetError(f"cannot copy {local} to {dest}: {exc}") from None
        return str(dest)

    def run(self, argv: list[str], timeout: float) -> RunResult:
        # "python3" means the interpreter edgekit runs under (the one that has ncnn installed)
        argv = [sys.executable, *argv[1:]] if argv and argv[0] == "python3" else list(argv)
        try:
            proc = subprocess.run(
                argv,
                cwd=self.workdir,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                check=False,
            )
        except FileNotFoundError:
            return RunResult(127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            raise TargetError(f"{argv[0]} did not finish within {timeout:.0f} s") from None
        return RunResult(proc.returncode, proc.stdout, proc.stderr)

    def pull(self, remote: str, local: Path) -> Path:
        try:
            shutil.copyfile(remote, local)
        except OSError as exc:
            raise TargetError(f"cannot copy {remote} back: {exc}") from None
        return Path(local)
