"""An Android device reached with the ``adb`` client, as a benchmark target.

``adb`` picks the only connected device; ``adb://SERIAL`` picks one (``adb devices`` lists
serials; ``adb://HOST:PORT`` connects to a device in TCP mode first). The client is
``$EDGEKIT_ADB`` or ``adb`` on PATH; it talks to the adb server on
``$ANDROID_ADB_SERVER_PORT`` (default 5037) and starts it when needed.

Files go to a private ``/data/local/tmp/edgekit-<random>`` directory, removed on close.
Python runs where the device has it (Termux puts ``python3``/``python`` on PATH); otherwise
the harness pushes a benchncnn-compatible binary. Every adb call has a timeout, and a
failing call is explained from the device's state (unauthorized, offline, gone), so a device
that disappears mid-run ends the run promptly with a one-line :class:`TargetError`.

Exit statuses: each command ends by printing a per-target marker with ``$?`` on stderr, so
the status is known with and without adb's shell protocol (``shell_v2``); a missing marker
means the command never finished (the device went away), where adb itself reports 0.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchmarks.targets.base import RunResult, Target, TargetError
from edge.env import env_str

DEVICE_TMP = "/data/local/tmp"
#: seconds allowed for host-side queries (devices, features, connect)
QUERY_TIMEOUT = 20.0
#: seconds allowed for small device-side housekeeping commands (mkdir, rm, command -v)
HOUSEKEEPING_TIMEOUT = 30.0
#: push/pull timeouts: a fixed allowance plus the time at this (slow) transfer rate
TRANSFER_ALLOWANCE_S = 30.0
SLOWEST_RATE_BYTES_S = 1_000_000
_TCP_SERIAL = re.compile(r"^[\w.\-\[\]:]+:\d+$")


@dataclass(frozen=True)
class AdbDevice:
    """One line of ``adb devices``."""

    serial: str
    state: str


def find_adb() -> str:
    """The adb client: ``$EDGEKIT_ADB`` or ``adb`` on PATH."""
    configured = env_str("EDGEKIT_ADB")
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise TargetError(f"EDGEKIT_ADB={configured} is not an executable adb client")
        return configured
    found = shutil.which("adb")
    if found is None:
        raise TargetError(
            "the adb client is not installed: install Android platform-tools (Debian: apt install adb) "
            "or set EDGEKIT_ADB"
        )
    return found


def parse_devices(text: str) -> list[AdbDevice]:
    """The devices listed by ``adb devices`` (daemon start-up chatter ignored)."""
    devices = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(("*", "List of devices")):
            continue
        serial, _, state = line.partition("\t")
        if state:
            devices.append(AdbDevice(serial.strip(), state.strip()))
    return devices


def state_problem(serial: str, state: str) -> str | None:
    """Why a device in ``state`` cannot run anything (None for a usable device)."""
    if state == "device":
        return None
    if state == "unauthorized":
        return (
            f"adb device {serial} is unauthorized: unlock it and allow USB debugging for this computer "
            "(the RSA key prompt on its screen)"
        )
    if state == "offline":
        return f"adb device {serial} is offline: reconnect it, or run `adb reconnect` / restart adbd on it"
    if state in ("authorizing", "connecting"):
        return f"adb device {serial} is still {state}: accept the prompt on the device and try again"
    if state.startswith("no permissions"):
        return f"adb has no permission to open device {serial}: set up udev rules for it (adb: {state})"
    if state == "gone":
        return f"adb device {serial} is not connected any more"
    return f"adb device {serial} is in {state} mode, not ready for commands"


def parse_target_spec(spec: str) -> str | None:
    """The serial in ``adb`` / ``adb://SERIAL`` (None: the only device)."""
    if spec == "adb" or spec == "adb://":
        return None
    if spec.startswith("adb://") and spec[len("adb://") :].strip():
        return spec[len("adb://") :].strip()
    raise TargetError(f"not an adb target: {spec!r} (use adb or adb://SERIAL)")


class AdbTarget(Target):
    """A device seen by adb; files live in a private directory under /data/local/tmp."""

    def __init__(self, serial: str | None = None) -> None:
        self.serial = serial
        self.name = f"adb://{serial}" if serial else "adb"
        self.python: str | None = None  # the device's python interpreter, if any
        self.shell_v2 = False
        self._adb: str | None = None
        self._workdir: str | None = None
        self._unresponsive = False
        self._marker = f"edgekit-exit-{secrets.token_hex(4)}:"

    @classmethod
    def from_spec(cls, spec: str) -> AdbTarget:
        return cls(parse_target_spec(spec))

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        self._adb = find_adb()
        self._unresponsive = False
        self.serial = self._choose_device()
        self.name = f"adb://{self.serial}"
        features = self._host(["-s", self.serial, "features"], "reading the device's features")
        self.shell_v2 = "shell_v2" in features.split()
        workdir = f"{DEVICE_TMP}/edgekit-{secrets.token_hex(6)}"
        made = self._shell(
            f"mkdir -p {shlex.quote(workdir)}", HOUSEKEEPING_TIMEOUT, "creating the work directory"
        )
        if made.returncode != 0:
            reason = _last_line(made.stderr) or f"exit code {made.returncode}"
            raise TargetError(f"cannot create {workdir} on {self.name}: {reason}")
        self._workdir = workdir
        try:
            found = self._shell(
                "command -v python3 || command -v python", HOUSEKEEPING_TIMEOUT, "looking for python"
            )
        except TargetError:
            self.close()
            raise
        self.python = _last_line(found.stdout) if found.returncode == 0 else None

    def close(self) -> None:
        workdir, self._workdir = self._workdir, None
        if workdir is None or self._adb is None or self._unresponsive:
            return  # a device that stopped answering would only make close() wait too
        with contextlib.suppress(TargetError, OSError):
            if self._state() == "device":
                self._shell(
                    f"rm -rf {shlex.quote(workdir)}", HOUSEKEEPING_TIMEOUT, "removing the work directory"
                )

    # -- Target ---------------------------------------------------------------------------
    def push(self, local: Path, remote_name: str) -> str:
        local = Path(local)
        if not local.is_file():
            raise TargetError(f"cannot push {local}: no such file")
        if remote_name.startswith("/") or ".." in Path(remote_name).parts:
            raise TargetError(
                f"push destination must be a name inside the work directory, not {remote_name!r}"
            )
        remote = f"{self.workdir}/{remote_name}"
        self._transfer(["push", str(local), remote], local.stat().st_size, f"pushing {local.name}")
        return remote

    def pull(self, remote: str, local: Path) -> Path:
        local = Path(local)
        remote = remote if remote.startswith("/") else f"{self.workdir}/{remote}"
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(local.name + ".partial")
        size = self._remote_size(remote)
        try:
            self._transfer(["pull", remote, str(partial)], size, f"pulling {remote}")
            os.replace(partial, local)
        finally:
            partial.unlink(missing_ok=True)
        return local

    def run(self, argv: list[str], timeout: float) -> RunResult:
        if not argv:
            raise TargetError("nothing to run")
        if argv[0] == "python3" and self.python is not None:
            argv = [self.python, *argv[1:]]
        elif argv[0] == "python3":
            return RunResult(127, "", f"python3: not found on {self.name} (Termux: pkg install python)")
        command = f"cd {shlex.quote(self.workdir)} && {shlex.join(argv)}"
        return self._shell(command, timeout, f"running {Path(argv[0]).name}")

    # -- helpers --------------------------------------------------------------------------
    def describe(self) -> dict[str, str | None]:
        """The device's model, ABI and Android version (from getprop) and its python."""
        keys = ("ro.product.model", "ro.product.cpu.abi", "ro.build.version.release")
        out = self._shell("; ".join(f"getprop {k}" for k in keys), HOUSEKEEPING_TIMEOUT, "reading properties")
        values = (out.stdout.splitlines() + [""] * len(keys))[: len(keys)]
        info: dict[str, str | None] = {k: (v.strip() or None) for k, v in zip(keys, values, strict=True)}
        info["python"] = self.python
        return info

    def _choose_device(self) -> str:
        devices = self._devices()
        if self.serial is not None:
            serial = self.serial
            if serial not in {d.serial for d in devices} and _TCP_SERIAL.match(serial):
                self._host(["connect", serial], f"connecting to {serial}")
                devices = self._devices()
            match = [d for d in devices if d.serial == serial]
            if not match:
                listed = ", ".join(d.serial for d in devices) or "none"
                raise TargetError(f"adb device {serial} not found (adb devices lists: {listed})")
            device = match[0]
        elif not devices:
            raise TargetError(
                "no Android device found: adb devices lists none (connect one with USB debugging on, "
                "or use adb://HOST:PORT for a device in TCP mode)"
            )
        elif len(devices) > 1:
            listed = ", ".join(d.serial for d in devices)
            raise TargetError(f"more than one adb device ({listed}): choose one with adb://SERIAL")
        else:
            device = devices[0]
        problem = state_problem(device.serial, device.state)
        if problem:
            raise TargetError(problem)
        return device.serial

    def _devices(self) -> list[AdbDevice]:
        return parse_devices(self._host(["devices"], "listing devices"))

    def _state(self) -> str:
        """The device's state now: ``device``, ``offline``, ``unauthorized``, ... or ``gone``."""
        for device in self._devices():
            if device.serial == self.serial:
                return device.state
        return "gone"

    def _host(self, args: list[str], what: str) -> str:
        """Run an adb command that the server answers; its stdout."""
        assert self._adb is not None
        try:
            proc = subprocess.run(
                [self._adb, *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=QUERY_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise TargetError(f"adb did not answer within {QUERY_TIMEOUT:.0f} s while {what}") from None
        except OSError as exc:
            raise TargetError(f"cannot run the adb client {self._adb}: {exc.strerror}") from None
        if proc.returncode != 0:
            reason = _last_line(proc.stderr) or _last_line(proc.stdout) or f"exit code {proc.returncode}"
            raise TargetError(f"adb failed while {what}: {reason}")
        return proc.stdout

    def _device_call(self, args: list[str], timeout: float, what: str) -> subprocess.CompletedProcess[str]:
        """Run ``adb -s SERIAL ARGS``; a timeout or a lost device becomes a TargetError."""
        assert self._adb is not None and self.serial is not None
        try:
            return subprocess.run(
                [self._adb, "-s", self.serial, *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            self._unresponsive = True
            raise TargetError(self._explain(what, f"timed out after {timeout:.0f} s")) from None
        except OSError as exc:
            raise TargetError(f"cannot run the adb client {self._adb}: {exc.strerror}") from None

    def _explain(self, what: str, failure: str) -> str:
        """One line on why ``what`` failed: the device's state when it is gone or unusable."""
        try:
            state = self._state()
        except TargetError:
            return f"{what} {failure} (and the adb server does not answer)"
        if state == "device":
            return f"{what} {failure}"
        if state == "gone":
            return f"adb device {self.serial} went away while {what} (adb no longer lists it)"
        if state == "offline":
            return f"adb device {self.serial} went away while {what} (adb now reports it offline)"
        return f"{what} {failure}: {state_problem(self.serial or '?', state)}"

    def _shell(self, command: str, timeout: float, what: str) -> RunResult:
        """Run a shell command line; the exit status comes from the marker it prints last."""
        proc = self._device_call(["shell", f"{command}; echo {self._marker}$? >&2"], timeout, what)
        status, stdout, stderr = _split_marker(self._marker, proc.stdout, proc.stderr)
        if status is None:
            detail = _last_line(proc.stderr) or _last_line(proc.stdout)
            failure = "ended without an exit status" + (f" ({detail})" if detail else "")
            raise TargetError(self._explain(what, failure))
        return RunResult(status, stdout, stderr)

    def _transfer(self, args: list[str], size: int, what: str) -> None:
        timeout = TRANSFER_ALLOWANCE_S + size / SLOWEST_RATE_BYTES_S
        proc = self._device_call(args, timeout, what)
        if proc.returncode != 0:
            reason = _last_line(proc.stderr) or _last_line(proc.stdout) or f"exit code {proc.returncode}"
            raise TargetError(self._explain(what, f"failed: {reason.removeprefix('adb: error: ')}"))

    def _remote_size(self, remote: str) -> int:
        """Size of a device file (0 when unknown: the transfer timeout is then the allowance)."""
        out = self._shell(f"wc -c < {shlex.quote(remote)}", HOUSEKEEPING_TIMEOUT, f"sizing {remote}")
        text = out.stdout.strip()
        return int(text) if out.returncode == 0 and text.isdigit() else 0


def _split_marker(marker: str, stdout: str, stderr: str) -> tuple[int | None, str, str]:
    """(exit status, stdout, stderr) with the status marker removed; None if it is missing.

    With shell_v2 the marker is on stderr; without it adb merges both streams into stdout.
    """
    pattern = re.compile(re.escape(marker) + r"(\d+)\r?\n?\Z")
    for name in ("stderr", "stdout"):
        text = stderr if name == "stderr" else stdout
        found = pattern.search(text)
        if found:
            text = text[: found.start()]
            status = int(found.group(1))
            return (status, stdout, text) if name == "stderr" else (status, text, stderr)
    return None, stdout, stderr


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
