"""The machine edgekit runs on, as a benchmark target."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.targets.base import RunResult, Target, TargetError


class LocalTarget(Target):
    """Runs the runner in a private temporary directory with this Python interpreter.

    Subclasses whose files also live on this machine (the emulated board) override
    :meth:`command` to say how a target-side command line runs here.
    """

    workdir_prefix = "edgekit-bench-local-"

    def __init__(self, name: str = "local") -> None:
        self.name = name
        self._workdir: Path | None = None

    def open(self) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix=self.workdir_prefix))

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

    def machine(self) -> str:
        return platform.machine()

    def make_executable(self, remote: str) -> None:
        path = Path(remote)
        path.chmod(path.stat().st_mode | 0o111)

    def command(self, argv: list[str]) -> tuple[list[str], dict[str, str]]:
        """The host command line and environment that run ``argv`` on this target."""
        # "python3" means the interpreter edgekit runs under (the one that has ncnn installed)
        argv = [sys.executable, *argv[1:]] if argv and argv[0] == "python3" else list(argv)
        return argv, {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}

    def run(self, argv: list[str], timeout: float) -> RunResult:
        try:
            command, env = self.command(argv)
            proc = subprocess.run(
                command,
                cwd=self.workdir,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except FileNotFoundError:
            return RunResult(127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            raise TargetError(f"{self.name}: {argv[0]} did not finish within {timeout:.0f} s") from None
        return RunResult(proc.returncode, proc.stdout, proc.stderr)

    def pull(self, remote: str, local: Path) -> Path:
        try:
            shutil.copyfile(remote, local)
        except OSError as exc:
            raise TargetError(f"cannot copy {remote} back: {exc}") from None
        return Path(local)
