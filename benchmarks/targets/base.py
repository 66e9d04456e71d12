"""The target interface every benchmark target implements.

A target is a place that can hold files and run commands: this machine, a board over SSH,
an Android device over adb, an emulated aarch64 board. The harness only ever pushes the
runner and the build files, runs the runner, and pulls its JSON back.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


class TargetError(Exception):
    """A target that cannot be reached or that failed mid-run (carries a one-line reason)."""


@dataclass
class RunResult:
    """What a command printed on the target and how it ended."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class TimingDefaults:
    """What ``bench`` measures on a target when the user does not say.

    ``threads`` None means 1, 2 and 4 threads, capped at the target's core count.
    """

    loops: int = 100
    warmup: int = 10
    threads: tuple[int, ...] | None = None

    def describe(self) -> str:
        threads = ",".join(map(str, self.threads)) if self.threads else "1,2,4 up to the cores"
        return f"threads {threads}, {self.warmup} warm-up + {self.loops} timed inferences"


class Target(abc.ABC):
    """A device that benchmarks run on."""

    #: short name used in reports, e.g. "local", "ssh://pi@10.0.0.2", "adb://emulator-5554"
    name: str
    #: True where timings are not real speed figures (QEMU)
    emulated: bool = False
    #: loops, warm-up and threads used when ``bench`` is not told
    timing_defaults: ClassVar[TimingDefaults] = TimingDefaults()

    def __enter__(self) -> Target:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:  # noqa: B027 - optional hook
        """Connect and create a private working directory on the target."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Remove the working directory and disconnect; never raises."""

    #: the target-side working directory once :meth:`open` has made it
    _workdir: str | Path | None = None

    @property
    def workdir(self) -> str:
        """The target-side directory that pushed files land in (an error before :meth:`open`)."""
        if self._workdir is None:
            raise TargetError(f"{self.name} is not open")
        return str(self._workdir)

    @abc.abstractmethod
    def push(self, local: Path, remote_name: str) -> str:
        """Copy a local file into the working directory; return its target-side path."""

    @abc.abstractmethod
    def run(self, argv: list[str], timeout: float) -> RunResult:
        """Run a command (argv[0] resolved on the target) inside the working directory."""

    @abc.abstractmethod
    def pull(self, remote: str, local: Path) -> Path:
        """Copy a target-side file back to ``local``."""

    def make_executable(self, remote: str) -> None:
        """``chmod +x`` a pushed file (a runner binary)."""
        res = self.run(["chmod", "+x", remote], timeout=60)
        if res.returncode != 0:
            reason = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
            raise TargetError(f"chmod +x {remote} failed on {self.name}: {reason}")

    def machine(self) -> str:
        """The target's CPU architecture as ``uname -m`` names it (e.g. aarch64, x86_64)."""
        res = self.run(["uname", "-m"], timeout=60)
        if res.returncode != 0 or not res.stdout.strip():
            raise TargetError(f"cannot tell the CPU architecture of {self.name} (uname -m failed)")
        return res.stdout.strip().splitlines()[-1].strip()
