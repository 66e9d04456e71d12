"""A board reached with the system OpenSSH client (batch mode: keys only, never a prompt).

Files travel over the SSH channel itself (``cat > file`` / ``cat file``), so the board needs
only a POSIX shell, not an SFTP server. Options come from the constructor or the environment:
``EDGEKIT_SSH_IDENTITY`` (private key), ``EDGEKIT_SSH_KNOWN_HOSTS`` (known_hosts file),
``EDGEKIT_SSH_STRICT_HOST_KEY_CHECKING`` (yes / accept-new / no; default: ssh's own config),
``EDGEKIT_SSH_CONNECT_TIMEOUT`` (seconds, default 10), ``EDGEKIT_SSH_PYTHON`` (the board's
Python that has ncnn, e.g. a venv's ``bin/python``; default ``python3`` on the board's PATH).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from benchmarks.targets.base import RunResult, Target, TargetError
from edge.env import env_float, env_path

SSH_FAILED = 255  # ssh's own exit status for connection/authentication failures


class SshTarget(Target):
    """``ssh://user@host[:port]``: runs in a ``mktemp -d`` directory removed on close."""

    def __init__(
        self,
        host: str,
        user: str | None = None,
        port: int | None = None,
        identity: Path | None = None,
        known_hosts: Path | None = None,
        strict_host_key_checking: str | None = None,
        connect_timeout: float | None = None,
        python: str | None = None,
    ) -> None:
        env = os.environ
        self.host, self.user, self.port = host, user, port
        self.identity = identity or _env_path("EDGEKIT_SSH_IDENTITY")
        self.known_hosts = known_hosts or _env_path("EDGEKIT_SSH_KNOWN_HOSTS")
        self.strict = strict_host_key_checking or env.get("EDGEKIT_SSH_STRICT_HOST_KEY_CHECKING") or None
        self.connect_timeout = connect_timeout or env_float(
            "EDGEKIT_SSH_CONNECT_TIMEOUT", 10.0, minimum=0.1, maximum=3600.0
        )
        login = f"{user}@{host}" if user else host
        shown = f"[{host}]" if ":" in host else host
        self.name = f"ssh://{user + '@' if user else ''}{shown}" + (f":{port}" if port else "")
        self._login = login
        self.python = python or env.get("EDGEKIT_SSH_PYTHON") or "python3"
        self._workdir: str | None = None

    # -- the ssh command line ------------------------------------------------------------------

    def ssh_argv(self, remote_command: str) -> list[str]:
        """The full local argv that runs ``remote_command`` (a shell string) on the board."""
        exe = shutil.which("ssh")
        if exe is None:
            raise TargetError(
                "the OpenSSH client 'ssh' is not installed here (apt-get install openssh-client)"
            )
        argv = [exe, "-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(self.connect_timeout)}"]
        argv += ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.identity:
            argv += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.strict:
            argv += ["-o", f"StrictHostKeyChecking={self.strict}"]
        return [*argv, "--", self._login, remote_command]

    def _ssh(self, remote_command: str, timeout: float, stdin: bytes | None = None) -> tuple[int, bytes, str]:
        try:
            proc = subprocess.run(
                self.ssh_argv(remote_command),
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise TargetError(f"{self.name}: no answer within {timeout:.0f} s") from None
        stderr = proc.stderr.decode("utf-8", "replace")
        if proc.returncode == SSH_FAILED:
            raise TargetError(self._explain(stderr))
        return proc.returncode, proc.stdout, stderr

    def _explain(self, stderr: str) -> str:
        lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else "ssh failed (exit 255)"
        if "Host key verification failed" in stderr:
            return (
                f"{self.name}: host key not known; connect once with ssh to accept it, or set "
                "EDGEKIT_SSH_STRICT_HOST_KEY_CHECKING=accept-new"
            )
        if "Permission denied" in stderr:
            return f"{self.name}: key authentication refused ({last}); set up a key (ssh-copy-id) or EDGEKIT_SSH_IDENTITY"
        return f"{self.name}: {last}"

    # -- Target --------------------------------------------------------------------------------

    def open(self) -> None:
        code, out, err = self._ssh(
            'mktemp -d "${TMPDIR:-/tmp}/edgekit-bench.XXXXXX"', timeout=self.connect_timeout + 30
        )
        path = out.decode("utf-8", "replace").strip()
        if code != 0 or not path.startswith("/"):
            raise TargetError(f"{self.name}: cannot create a temporary directory: {err.strip() or path}")
        self._workdir = path

    def close(self) -> None:
        if self._workdir is None:
            return
        with contextlib.suppress(TargetError):  # a board that is gone leaves nothing to clean
            self._ssh(f"rm -rf -- {shlex.quote(self._workdir)}", timeout=self.connect_timeout + 30)
        self._workdir = None

    def push(self, local: Path, remote_name: str) -> str:
        if "/" in remote_name:
            raise ValueError(f"remote_name must be a plain file name, got {remote_name!r}")
        remote = f"{self.workdir}/{remote_name}"
        data = Path(local).read_bytes()
        code, _, err = self._ssh(
            f"cat > {shlex.quote(remote)}", timeout=self.connect_timeout + 60 + len(data) / 1e6, stdin=data
        )
        if code != 0:
            raise TargetError(f"{self.name}: cannot write {remote}: {err.strip()}")
        return remote

    def run(self, argv: list[str], timeout: float) -> RunResult:
        if argv and argv[0] == "python3":
            argv = [self.python, *argv[1:]]
        command = f"cd {shlex.quote(self.workdir)} && exec {shlex.join(argv)}"
        code, out, err = self._ssh(command, timeout=timeout)
        return RunResult(code, out.decode("utf-8", "replace"), err)

    def pull(self, remote: str, local: Path) -> Path:
        code, out, err = self._ssh(f"cat -- {shlex.quote(remote)}", timeout=self.connect_timeout + 600)
        if code != 0:
            raise TargetError(f"{self.name}: cannot read {remote}: {err.strip()}")
        Path(local).write_bytes(out)
        return Path(local)


def _env_path(name: str) -> Path | None:
    return env_path(name)
