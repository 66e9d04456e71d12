"""A warm ``edgekit`` CLI: a server process that imported edgekit once and forks one child per run.

Killing a command at many points costs mostly Python's start-up (seconds on a loaded machine).
The server imports the CLI and the converters but runs no native code (forking after OpenMP has
started is unsafe), then for each request forks a child that runs :func:`edge.cli.main` with
the request's arguments: the CLI's own code path, signals and children, without the start-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.cli import REPO_ROOT

_SERVER = r"""
import json, os, sys
import edge.cli, converters.convert, converters.commands.convert  # warm: imports only
edge.cli._register_commands()
for line in sys.stdin:
    argv, stderr_path, cwd = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        sys.argv = ["edgekit", *argv]
        code = 70
        try:
            edge.cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stderr.flush()
            os._exit(code)
    print(pid, flush=True)
    signum = int(sys.stdin.readline())  # 0: just wait; the child is not reaped before, so its PID is ours
    if signum:
        os.kill(pid, signum)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


class WarmCli:
    """Run edgekit commands as forked children of one warm server; one command at a time."""

    def __init__(self) -> None:
        self.server = subprocess.Popen(
            [sys.executable, "-c", _SERVER],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.stderr_path: Path | None = None

    def start(self, args: tuple[object, ...], stderr_path: Path, cwd: Path = REPO_ROOT) -> int:
        """Start ``edgekit ARGS`` in ``cwd`` (its stderr goes to ``stderr_path``); returns its PID."""
        assert self.server.stdin is not None and self.server.stdout is not None
        self.stderr_path = stderr_path
        stderr_path.unlink(missing_ok=True)  # wait_for_output must not see an earlier run's lines
        request = [[str(a) for a in args], str(stderr_path), str(cwd)]
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        return int(self.server.stdout.readline())

    def wait_for_output(self, timeout: float = 120) -> None:
        """Wait until the running command has written its first stderr line (its work has begun)."""
        assert self.stderr_path is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stderr_path.exists() and b"\n" in self.stderr_path.read_bytes():
                return
            time.sleep(0.005)
        raise TimeoutError("the command wrote nothing")

    def finish(self, signum: int = 0) -> int:
        """Send ``signum`` to the running command (0: none), wait for it; its exit code (negative:
        killed by that signal). The server signals it, so a command that already ended gets
        nothing (its PID is not reused before the server reaps it).
        """
        assert self.server.stdin is not None and self.server.stdout is not None
        self.server.stdin.write(f"{int(signum)}\n")
        self.server.stdin.flush()
        return int(self.server.stdout.readline())

    def run(self, *args: object, cwd: Path = REPO_ROOT) -> tuple[int, str]:
        """Run ``edgekit ARGS`` to its end: exit code and stderr."""
        with tempfile.TemporaryDirectory(prefix="edgekit-warm-") as tmp:
            log = Path(tmp) / "stderr.txt"
            self.start(args, log, cwd)
            code = self.finish()
            return code, log.read_text(errors="replace")

    def close(self) -> None:
        assert self.server.stdin is not None
        self.server.stdin.close()
        self.server.wait(timeout=30)
