"""A real OpenSSH server on 127.0.0.1 for tests: temporary host and user keys, a free port.

``start_sshd(directory)`` runs ``sshd -D -e -f <config>`` in the foreground (as root, which the
server needs for its privilege separation), accepting only the generated user key for the
current user. ``SshServer.kill()`` kills the listener and every session process it forked, as a
crashed or powered-off board would.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
INSTALL_HINT = "apt-get install -y openssh-server openssh-client"


@dataclass
class SshServer:
    """A running test sshd and what a client needs to reach it."""

    process: subprocess.Popen
    port: int
    user: str
    identity: Path  # client private key
    known_hosts: Path  # the server's host key for [127.0.0.1]:port
    log: Path

    @property
    def spec(self) -> str:
        """The ``--target`` string for this server."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        """Environment variables that make edgekit's ssh target use this server's keys strictly."""
        return {
            "EDGEKIT_SSH_IDENTITY": str(self.identity),
            "EDGEKIT_SSH_KNOWN_HOSTS": str(self.known_hosts),
            "EDGEKIT_SSH_STRICT_HOST_KEY_CHECKING": "yes",
        }

    def kill(self) -> None:
        """SIGKILL the listener and all its descendants (the open sessions and what they run)."""
        for pid in [*_descendants(self.process.pid), self.process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()

    def session_processes(self) -> list[str]:
        """Command lines of the processes the server's sessions are running."""
        lines = []
        for pid in _descendants(self.process.pid):
            try:
                lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
        return lines


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc), children before their parents."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        child = stack.pop()
        out.append(child)
        stack.extend(children.get(child, []))
    return out[::-1]


def sshd_available() -> str | None:
    """None when a test sshd can run here, else the reason."""
    if not Path(SSHD).exists() or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return f"OpenSSH server/client not installed ({INSTALL_HINT})"
    if os.geteuid() != 0:
        return "sshd must run as root for these tests"
    return None


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, capture_output=True
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(proc: subprocess.Popen, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def start_sshd(directory: Path) -> SshServer:
    """Start a private sshd on a free port of 127.0.0.1; keys and config live in ``directory``."""
    reason = sshd_available()
    if reason:
        raise RuntimeError(reason)
    directory.mkdir(parents=True, exist_ok=True)
    host_key, user_key = directory / "host_ed25519", directory / "user_ed25519"
    _keygen(host_key)
    _keygen(user_key)
    (directory / "authorized_keys").write_text((directory / "user_ed25519.pub").read_text())
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    log = directory / "sshd.log"
    for _attempt in range(5):
        port = _free_port()
        config = directory / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {directory / 'sshd.pid'}",
                    f"AuthorizedKeysFile {directory / 'authorized_keys'}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "StrictModes no",
                    "UsePAM no",
                    "LogLevel INFO",
                    "",
                ]
            )
        )
        with open(log, "ab") as log_fh:
            proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log_fh, stderr=log_fh)
        if _wait_listening(proc, port, timeout=10):
            host_pub = (directory / "host_ed25519.pub").read_text().split()
            known = directory / "known_hosts"
            known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
            return SshServer(proc, port, getpass.getuser(), user_key, known, log)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    raise RuntimeError(f"sshd did not start; its log: {log.read_text()[-2000:]}")
