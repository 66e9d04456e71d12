"""An emulated Android device: the device side of adb's TCP transport (adbd in TCP mode).

The real ``adb`` client and server talk to it as they talk to a phone with ``adb tcpip``:

* transport: ``CNXN`` handshake (with an optional ``AUTH`` exchange that either accepts the
  host's public key, like a user tapping "Allow", or never answers, like an unanswered
  prompt), streams opened with ``OPEN`` and carried by ``OKAY``/``WRTE``/``CLSE``;
* ``shell:`` (v1, output only) and ``shell,v2,...:`` (stdout, stderr, stdin and the exit
  status as shell-protocol packets; the device advertises the ``shell_v2`` feature);
* ``sync:``: ``STAT``/``STA2``/``LST2``/``LIST``/``LIS2``/``SEND``/``RECV``/``QUIT`` (``stat_v2``,
  ``ls_v2`` and ``fixed_push_mkdir`` advertised).

Commands run on this host with ``/bin/sh`` inside a sandbox directory that stands for the
device's ``/data/local/tmp``: device paths under ``/data/local/tmp`` are mapped into the
sandbox (in shell commands and sync paths) and back (in shell output); sync refuses any
other path. ``getprop`` answers with the emulated device's properties.

Device kinds: by default the device is this host (its CPU, and its ``python3`` on PATH, like a
phone with Termux). ``python=False`` gives a stock phone without Python: PATH holds only a
toolbox of shell tools. ``arch="aarch64"`` makes it an arm64 phone: ``uname -m`` and
``ro.product.cpu.abi`` say so, and an aarch64 ELF file pushed to it runs under
``qemu-aarch64-static`` (``QEMU_CPU``, default ``max``), as binfmt_misc would run it: the device
keeps the binary aside and puts a two-line launcher at the pushed path.
``app=DIR`` (``--app``) installs the edgekit demo app from an ``android-demo`` directory: ``pm path``
knows its package and ``am start -n <package>/.BenchActivity ...`` runs its benchmark mode
(``tests/support/android_app.py``), writing under ``/sdcard`` (mapped to a device-private directory).

Fault injection for tests: ``offline`` (never answers the handshake), ``auth="never"``
(unauthorized), ``legacy`` (an old adbd that advertises no features: v1 shell without exit
statuses, v1 ``STAT``/``LIST``), ``die_on`` (the device disappears — commands killed,
connections dropped, port closed, the script's process exits — ``die_delay`` seconds after
the ``die_after``-th event matching a regex; events are ``open SERVICE`` and
``sync ID PATH``, logged on stderr with ``trace``) and ``hang_on`` (the device stops
answering but keeps its connections open).

Run as a script it prints ``listening 127.0.0.1:PORT`` and serves until killed::

    python tests/support/adbd.py --sandbox DIR [--port 0] [--auth none|accept|never] \
        [--arch aarch64] [--no-python] ...
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import queue
import re
import secrets
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

DEVICE_TMP = "/data/local/tmp"
#: shared storage, where an app's external files directory lives (mapped to a device-private dir)
SDCARD = "/sdcard"
#: the emulated stand-in for the installed edgekit demo app (``--app``)
ANDROID_APP = Path(__file__).resolve().with_name("android_app.py")
#: the shell tools a device without Python has on PATH (Android's toybox has these and more)
TOOLBOX = (
    "sh", "cat", "chmod", "cp", "mkdir", "mv", "rm", "ls", "ln", "wc", "head", "tail", "grep", "sed",
    "tr", "env", "id", "sleep", "touch", "stat", "dd", "mktemp", "date", "basename", "dirname",
)  # fmt: skip
ELF_AARCH64 = 183  # e_machine of an aarch64 ELF file

A_CNXN = 0x4E584E43
A_AUTH = 0x48545541
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_VERSION_MIN = 0x01000000
A_VERSION_SKIP_CHECKSUM = 0x01000001
AUTH_TOKEN = 1
AUTH_SIGNATURE = 2
AUTH_RSAPUBLICKEY = 3
HEADER = struct.Struct("<6I")
MAX_PAYLOAD = 256 * 1024

SHELL_STDIN = 0
SHELL_STDOUT = 1
SHELL_STDERR = 2
SHELL_EXIT = 3
SHELL_CLOSE_STDIN = 4
SHELL_HEADER = struct.Struct("<BI")

SYNC_HEADER = struct.Struct("<4sI")
SYNC_DATA_MAX = 64 * 1024
STAT_V1 = struct.Struct("<4sIII")
STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")
DENT = struct.Struct("<4sIIII")
DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")

FEATURES = ("cmd", "stat_v2", "ls_v2", "fixed_push_mkdir", "fixed_push_symlink_timestamp")
PROPERTIES = {
    "ro.product.name": "edgekit_emulated",
    "ro.product.model": "edgekit emulated device",
    "ro.product.device": "edgekit",
    "ro.product.manufacturer": "edgekit",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.product.cpu.abi": {"aarch64": "arm64-v8a", "x86_64": "x86_64"}.get(os.uname().machine, "unknown"),
}


class StreamClosed(Exception):
    """The host closed the stream, or the connection under it went away."""


def checksum(data: bytes) -> int:
    """adb's payload checksum (sum of bytes), required by protocol version 0x01000000."""
    return sum(data) & 0xFFFFFFFF


class Stream:
    """One adb stream (the device end of an ``OPEN``): flow-controlled writes, queued reads."""

    def __init__(self, connection: Connection, local_id: int, remote_id: int) -> None:
        self.connection = connection
        self.local_id = local_id
        self.remote_id = remote_id
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self._pending = b""
        self._acked = threading.Event()
        self._write_lock = threading.Lock()
        self.closed = threading.Event()
        self.on_close: Callable[[], None] | None = None

    # -- called by the connection's reader ------------------------------------------------
    def deliver(self, data: bytes) -> None:
        self.inbox.put(data)

    def acknowledge(self) -> None:
        self._acked.set()

    def host_closed(self) -> None:
        self.closed.set()
        self._acked.set()
        self.inbox.put(None)
        if self.on_close is not None:
            self.on_close()

    # -- used by services -------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Send ``data`` as WRTE messages, waiting for the host's OKAY after each one."""
        with self._write_lock:
            step = self.connection.max_payload
            for start in range(0, len(data), step):
                if self.closed.is_set():
                    raise StreamClosed
                self._acked.clear()
                self.connection.send(A_WRTE, self.local_id, self.remote_id, data[start : start + step])
                while not self._acked.wait(1.0):
                    if self.connection.dead.is_set():
                        raise StreamClosed
                if self.closed.is_set():
                    raise StreamClosed

    def read_exact(self, size: int) -> bytes:
        """Exactly ``size`` bytes of what the host wrote (messages may span WRTEs)."""
        while len(self._pending) < size:
            chunk = self.inbox.get()
            if chunk is None:
                self.inbox.put(None)
                raise StreamClosed
            self._pending += chunk
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def close(self) -> None:
        """Close from the device side (CLSE), once."""
        if not self.closed.is_set():
            self.closed.set()
            with contextlib.suppress(OSError):
                self.connection.send(A_CLSE, self.local_id, self.remote_id)
        self.connection.forget(self)


class Connection:
    """One TCP connection from an adb server: the transport, its streams and their services."""

    def __init__(self, device: EmulatedDevice, sock: socket.socket) -> None:
        self.device = device
        self.sock = sock
        self.max_payload = MAX_PAYLOAD
        self.version = A_VERSION_SKIP_CHECKSUM
        self.online = False
        self.dead = threading.Event()
        self._send_lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._streams_lock = threading.Lock()
        self._next_id = 1

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        if self.dead.is_set():
            raise OSError("connection closed")
        self.device.hang_gate()
        header = HEADER.pack(command, arg0, arg1, len(data), checksum(data), command ^ 0xFFFFFFFF)
        with self._send_lock:
            self.sock.sendall(header + data)

    def _recv_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("host closed the connection")
            data += chunk
        return data

    def serve(self) -> None:
        try:
            while True:
                command, arg0, arg1, length, _crc, magic = HEADER.unpack(self._recv_exact(HEADER.size))
                if magic != command ^ 0xFFFFFFFF:
                    raise ConnectionError("bad message magic")
                data = self._recv_exact(length) if length else b""
                self.device.hang_gate()
                self._dispatch(command, arg0, arg1, data)
        except (OSError, ConnectionError, struct.error):
            pass
        finally:
            self.drop()

    def drop(self) -> None:
        """Tear the connection down (as a vanished device does)."""
        self.dead.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        with self._streams_lock:
            streams = list(self._streams.values())
            self._streams.clear()
        for s in streams:
            s.host_closed()
        self.device.forget(self)

    def forget(self, s: Stream) -> None:
        with self._streams_lock:
            self._streams.pop(s.local_id, None)

    def _banner(self) -> bytes:
        features = list(FEATURES)
        if self.device.legacy:
            features = []
        else:
            features.insert(0, "shell_v2")
        props = ";".join(f"{k}={PROPERTIES[k]}" for k in ("ro.product.name", "ro.product.model"))
        return f"device::{props};ro.product.device=edgekit;features={','.join(features)}".encode()

    def _go_online(self) -> None:
        self.online = True
        self.send(A_CNXN, self.version, self.max_payload, self._banner())

    def _dispatch(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        if command == A_CNXN:
            self.version = min(arg0, A_VERSION_SKIP_CHECKSUM)
            self.max_payload = min(arg1, MAX_PAYLOAD)
            if self.device.offline:
                return
            if self.device.auth == "none":
                self._go_online()
            else:
                self.send(A_AUTH, AUTH_TOKEN, 0, secrets.token_bytes(20))
        elif command == A_AUTH:
            if arg0 == AUTH_SIGNATURE:  # no key is known yet: ask for the next one
                self.send(A_AUTH, AUTH_TOKEN, 0, secrets.token_bytes(20))
            elif arg0 == AUTH_RSAPUBLICKEY and self.device.auth == "accept":
                self._go_online()
            # auth == "never": the prompt on the screen is never answered
        elif not self.online:
            return
        elif command == A_OPEN:
            self._open(arg0, data.rstrip(b"\0").decode("utf-8", "replace"))
        elif command == A_WRTE:
            s = self._streams.get(arg1)
            if s is not None:
                s.deliver(data)
                self.send(A_OKAY, s.local_id, s.remote_id)
        elif command == A_OKAY:
            s = self._streams.get(arg1)
            if s is not None:
                s.acknowledge()
        elif command == A_CLSE:
            with self._streams_lock:
                s = self._streams.pop(arg1, None)
            if s is not None:
                s.host_closed()

    def _open(self, remote_id: int, service: str) -> None:
        self.device.event(f"open {service}")
        handler = self.device.service_for(service)
        if handler is None:
            self.send(A_CLSE, 0, remote_id)
            return
        with self._streams_lock:
            local_id = self._next_id
            self._next_id += 1
            s = Stream(self, local_id, remote_id)
            self._streams[local_id] = s
        self.send(A_OKAY, local_id, remote_id)
        threading.Thread(target=self._run_service, args=(handler, s), daemon=True).start()

    @staticmethod
    def _run_service(handler: Callable[[Stream], None], s: Stream) -> None:
        try:
            handler(s)
        except (StreamClosed, OSError):
            pass
        finally:
            s.close()


class EmulatedDevice:
    """The device: a listening socket, its connections, the sandbox and the fault switches."""

    def __init__(
        self,
        sandbox: Path,
        *,
        port: int = 0,
        auth: str = "none",
        offline: bool = False,
        legacy: bool = False,
        die_on: str | None = None,
        die_after: int = 1,
        die_delay: float = 0.5,
        hang_on: str | None = None,
        trace: bool = False,
        arch: str | None = None,
        python: bool = True,
        app: Path | None = None,
    ) -> None:
        if auth not in ("none", "accept", "never"):
            raise ValueError(f"auth must be none, accept or never, not {auth!r}")
        if arch not in (None, "aarch64"):
            raise ValueError(f"arch must be None (this host's) or aarch64, not {arch!r}")
        self.arch = arch
        self.python = python
        self.sandbox = Path(sandbox).resolve()
        self.sandbox.mkdir(parents=True, exist_ok=True)
        self.auth = auth
        self.offline = offline
        self.legacy = legacy
        self._die_on = re.compile(die_on) if die_on else None
        self._die_left = die_after
        self._die_delay = die_delay
        self._hang_on = re.compile(hang_on) if hang_on else None
        self._trace = trace
        self._running = threading.Event()
        self._running.set()
        #: called once the device has vanished (the script exits the process here)
        self.on_vanish: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._connections: set[Connection] = set()
        self._children: set[subprocess.Popen[bytes]] = set()
        self._system = Path(tempfile.mkdtemp(prefix="adbd-system-"))
        self._properties = dict(PROPERTIES)
        if arch == "aarch64":
            self._properties["ro.product.cpu.abi"] = "arm64-v8a"
            self._qemu = shutil.which("qemu-aarch64-static")
            if self._qemu is None:
                raise RuntimeError(
                    "an aarch64 device needs qemu-aarch64-static (apt-get install qemu-user-static)"
                )
        self._write_getprop()
        self._write_tools()
        self.sdcard = self._system / "sdcard"  # stands for /sdcard
        self.sdcard.mkdir()
        if app is not None:
            self._write_app(Path(app).resolve())
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port: int = self.listener.getsockname()[1]
        self.vanished = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------
    def serve_forever(self) -> None:
        while not self.vanished.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                break
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = Connection(self, sock)
            with self._lock:
                self._connections.add(connection)
            threading.Thread(target=connection.serve, daemon=True).start()

    def start(self) -> EmulatedDevice:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def forget(self, connection: Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def vanish(self) -> None:
        """Go away: kill running commands, drop every connection, stop listening."""
        self.vanished.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            children = list(self._children)
            connections = list(self._connections)
        for child in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
        for connection in connections:
            connection.drop()
        self._running.set()
        if self.on_vanish is not None:
            self.on_vanish()

    def remove_system(self) -> None:
        shutil.rmtree(self._system, ignore_errors=True)

    def stop(self) -> None:
        self.vanish()
        self.remove_system()

    def hang_gate(self) -> None:
        """Block while the device hangs; fail once it has vanished."""
        self._running.wait()
        if self.vanished.is_set():
            raise OSError("device vanished")

    def event(self, event: str) -> None:
        """A service opened (``open SERVICE``) or a sync request (``sync ID PATH``) arrived.

        Traced on stderr when tracing is on; the fault switches match their regex against it.
        """
        if self._trace:
            print(event, file=sys.stderr, flush=True)
        if self._hang_on is not None and self._hang_on.search(event):
            self._running.clear()
        if self._die_on is not None and self._die_on.search(event):
            with self._lock:
                self._die_left -= 1
                due = self._die_left == 0
            if due and self._die_delay <= 0:
                self.vanish()
            elif due:
                threading.Timer(self._die_delay, self.vanish).start()

    # -- paths ----------------------------------------------------------------------------
    def to_host(self, device_path: str) -> Path | None:
        """The sandbox path for a device path under /data/local/tmp (None elsewhere)."""
        normal = os.path.normpath("/" + device_path.lstrip("/"))
        for device_root, host_root in ((DEVICE_TMP, self.sandbox), (SDCARD, self.sdcard)):
            if normal == device_root:
                return host_root
            if normal.startswith(device_root + "/"):
                return host_root / normal[len(device_root) + 1 :]
        return None

    def map_command(self, command: str) -> str:
        return command.replace(DEVICE_TMP, str(self.sandbox)).replace(SDCARD + "/", f"{self.sdcard}/")

    def unmap_output(self, data: bytes) -> bytes:
        data = data.replace(str(self.sdcard).encode(), SDCARD.encode())
        return data.replace(str(self.sandbox).encode(), DEVICE_TMP.encode())

    def _write_getprop(self) -> None:
        props = self._properties
        lines = [f"[{k}]: [{v}]" for k, v in sorted(props.items())]
        cases = "\n".join(f"  {shlex.quote(k)}) echo {shlex.quote(v)} ;;" for k, v in props.items())
        script = (
            "#!/bin/sh\n"
            'if [ $# -eq 0 ]; then\n  cat <<"EOF"\n' + "\n".join(lines) + "\nEOF\n  exit 0\nfi\n"
            'case "$1" in\n' + cases + "\n  *) echo ;;\nesac\n"
        )
        getprop = self._system / "getprop"
        getprop.write_text(script)
        getprop.chmod(0o755)

    def _write_tools(self) -> None:
        """The device's own programs: a toolbox without Python, and ``uname`` on an arm64 device."""
        if not self.python:
            for tool in TOOLBOX:
                found = shutil.which(tool)
                if found and not (self._system / tool).exists():
                    (self._system / tool).symlink_to(found)
        if self.arch == "aarch64":
            uname = self._system / "uname"
            real = shutil.which("uname") or "/bin/uname"
            machine = os.uname().machine
            uname.write_text(f'#!/bin/sh\n{real} "$@" | sed "s/{machine}/aarch64/g"\n')
            uname.chmod(0o755)

    def _write_app(self, app: Path) -> None:
        """The installed demo app (``app``: the android-demo directory): ``pm`` knows it, ``am start``
        runs its BenchActivity (``tests/support/android_app.py``), files under /sdcard/Android/data."""
        package = json.loads((app / "edgekit-app.json").read_text())["package"]
        files = self.sdcard / "Android" / "data" / package / "files"
        files.mkdir(parents=True)
        for tool in ("am", "pm"):
            launcher = self._system / tool
            command = [sys.executable, str(ANDROID_APP), "--app", str(app), "--files", str(files)]
            if self.arch == "aarch64":  # the app's native core is then the aarch64 build, under QEMU
                command += ["--qemu", str(self._qemu)]
            command.append(tool)
            launcher.write_text(f'#!/bin/sh\nexec {shlex.join(command)} "$@"\n')
            launcher.chmod(0o755)

    def device_path_env(self) -> str:
        """PATH of the device's shell: the toolbox alone without Python, else also this host's."""
        if not self.python:
            return str(self._system)
        return f"{self._system}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"

    def _binfmt(self, host: Path) -> None:
        """An aarch64 ELF just pushed to ``host``: keep it aside, leave a QEMU launcher in its place."""
        with open(host, "rb") as fh:
            head = fh.read(20)
        if (
            self.arch != "aarch64"
            or head[:4] != b"\x7fELF"
            or struct.unpack_from("<H", head, 18)[0] != ELF_AARCH64
        ):
            return
        store = self._system / "binfmt"
        store.mkdir(exist_ok=True)
        fd, kept_name = tempfile.mkstemp(dir=store, prefix=host.name + "-")
        os.close(fd)
        kept = Path(kept_name)
        os.replace(host, kept)
        kept.chmod(0o755)
        launcher = f'#!/bin/sh\nexec {self._qemu} -cpu "${{QEMU_CPU:-max}}" {shlex.quote(str(kept))} "$@"\n'
        host.write_text(launcher)
        host.chmod(0o755)

    # -- services -------------------------------------------------------------------------
    def service_for(self, service: str) -> Callable[[Stream], None] | None:
        if service == "sync:":
            return self._sync
        name, sep, command = service.partition(":")
        if not sep:
            return None
        options = name.split(",")
        if options[0] == "exec":
            return lambda s: self._shell(s, command, v2=False, merge=False)
        if options[0] != "shell":
            return None
        v2 = "v2" in options[1:]
        if v2 and self.legacy:
            return None
        return lambda s: self._shell(s, command, v2=v2, merge=True)

    def _shell(self, s: Stream, command: str, *, v2: bool, merge: bool) -> None:
        """Run ``command`` with /bin/sh; v2 frames output and ends with the exit status."""
        env = dict(os.environ)
        env["PATH"] = self.device_path_env()
        env["ANDROID_DATA"] = "/data"
        argv = ["/bin/sh", "-c", self.map_command(command)] if command else ["/bin/sh"]
        child = subprocess.Popen(
            argv,
            cwd=self.sandbox,
            env=env,
            stdin=subprocess.PIPE if v2 else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if (v2 or not merge) else subprocess.STDOUT,
            start_new_session=True,
        )
        with self._lock:
            self._children.add(child)

        def kill_child() -> None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)

        s.on_close = kill_child
        if self.vanished.is_set():
            kill_child()

        def pump(pipe: object, packet_id: int) -> None:
            read = pipe.read1  # type: ignore[attr-defined]
            with contextlib.suppress(StreamClosed, OSError, ValueError):
                while chunk := read(SYNC_DATA_MAX):
                    chunk = self.unmap_output(chunk)
                    s.write(SHELL_HEADER.pack(packet_id, len(chunk)) + chunk if v2 else chunk)

        pumps = [threading.Thread(target=pump, args=(child.stdout, SHELL_STDOUT), daemon=True)]
        if child.stderr is not None:
            pumps.append(threading.Thread(target=pump, args=(child.stderr, SHELL_STDERR), daemon=True))
        if v2:
            threading.Thread(target=self._shell_stdin, args=(s, child), daemon=True).start()
        for p in pumps:
            p.start()
        for p in pumps:
            p.join()
        status = child.wait()
        with self._lock:
            self._children.discard(child)
        if self.vanished.is_set():
            return
        if v2:
            code = status if status >= 0 else 128 - status
            s.write(SHELL_HEADER.pack(SHELL_EXIT, 1) + bytes([code & 0xFF]))

    @staticmethod
    def _shell_stdin(s: Stream, child: subprocess.Popen[bytes]) -> None:
        assert child.stdin is not None
        try:
            while True:
                packet_id, length = SHELL_HEADER.unpack(s.read_exact(SHELL_HEADER.size))
                data = s.read_exact(length) if length else b""
                if packet_id == SHELL_STDIN:
                    child.stdin.write(data)
                    child.stdin.flush()
                elif packet_id == SHELL_CLOSE_STDIN:
                    break
        except (StreamClosed, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                child.stdin.close()

    def _sync(self, s: Stream) -> None:
        """The file sync service: one request after another until QUIT or close."""
        while True:
            request, length = SYNC_HEADER.unpack(s.read_exact(SYNC_HEADER.size))
            if request == b"QUIT":
                return
            if length > 4096:
                self._sync_fail(s, "path too long")
                return
            path = s.read_exact(length).decode("utf-8", "replace")
            self.event(f"sync {request.decode('ascii', 'replace')} {path}")
            if request == b"STAT":
                self._sync_stat_v1(s, path)
            elif request in (b"STA2", b"LST2"):
                self._sync_stat_v2(s, request, path)
            elif request in (b"LIST", b"LIS2"):
                self._sync_list(s, path, v2=request == b"LIS2")
            elif request == b"SEND":
                self._sync_send(s, path)
            elif request == b"RECV":
                self._sync_recv(s, path)
            else:
                self._sync_fail(s, f"unknown sync request {request!r}")
                return

    @staticmethod
    def _sync_fail(s: Stream, message: str) -> None:
        data = message.encode()
        s.write(SYNC_HEADER.pack(b"FAIL", len(data)) + data)

    def _lstat(self, path: str) -> os.stat_result:
        host = self.to_host(path)
        if host is None:
            raise PermissionError(errno.EACCES, "Permission denied")
        return os.lstat(host)

    def _sync_stat_v1(self, s: Stream, path: str) -> None:
        try:
            st = self._lstat(path)
            reply = STAT_V1.pack(b"STAT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
        except OSError:
            reply = STAT_V1.pack(b"STAT", 0, 0, 0)
        s.write(reply)

    def _sync_stat_v2(self, s: Stream, request: bytes, path: str) -> None:
        try:
            host = self.to_host(path)
            if host is None:
                raise PermissionError(errno.EACCES, "Permission denied")
            st = os.stat(host) if request == b"STA2" else os.lstat(host)
            reply = STAT_V2.pack(
                request, 0, st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid,
                st.st_size, int(st.st_atime), int(st.st_mtime), int(st.st_ctime),
            )  # fmt: skip
        except OSError as exc:
            reply = STAT_V2.pack(request, exc.errno or errno.EIO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        s.write(reply)

    def _sync_list(self, s: Stream, path: str, *, v2: bool) -> None:
        host = self.to_host(path)
        entries: list[tuple[str, os.stat_result]] = []
        if host is not None and host.is_dir():
            for name in [".", "..", *sorted(os.listdir(host))]:
                with contextlib.suppress(OSError):
                    entries.append((name, os.lstat(host / name)))
        out = b""
        for name, st in entries:
            raw = name.encode()
            if v2:
                out += DENT_V2.pack(
                    b"DNT2", 0, st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid,
                    st.st_size, int(st.st_atime), int(st.st_mtime), int(st.st_ctime), len(raw),
                ) + raw  # fmt: skip
            else:
                out += (
                    DENT.pack(b"DENT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(raw)) + raw
                )
        done = DENT_V2.pack(b"DONE", *[0] * 12) if v2 else DENT.pack(b"DONE", 0, 0, 0, 0)
        s.write(out + done)

    def _sync_send(self, s: Stream, spec: str) -> None:
        path, _, mode_text = spec.rpartition(",")
        if not path:
            path, mode_text = spec, "420"
        mode = int(mode_text) if mode_text.isdigit() else 0o644
        host = self.to_host(path)
        error = None if host is not None else f"remote couldn't create file: {path}: Permission denied"
        handle = None
        if host is not None:
            try:
                host.parent.mkdir(parents=True, exist_ok=True)
                fd, temporary = tempfile.mkstemp(dir=host.parent, prefix=".adbd-")
                handle = os.fdopen(fd, "wb")
            except OSError as exc:
                error = f"remote couldn't create file: {path}: {exc.strerror}"
        while True:
            request, length = SYNC_HEADER.unpack(s.read_exact(SYNC_HEADER.size))
            if request == b"DATA":
                data = s.read_exact(length)
                if handle is not None:
                    handle.write(data)
            elif request == b"DONE":
                mtime = length
                break
            else:
                error = f"unexpected {request!r} while receiving a file"
                break
        if handle is not None:
            handle.close()
            if error is None:
                os.chmod(temporary, stat.S_IMODE(mode) or 0o644)
                os.utime(temporary, (mtime, mtime))
                os.replace(temporary, host)  # type: ignore[arg-type]
                self._binfmt(host)  # type: ignore[arg-type]
            else:
                os.unlink(temporary)
        if error is None:
            s.write(SYNC_HEADER.pack(b"OKAY", 0))
        else:
            self._sync_fail(s, error)

    def _sync_recv(self, s: Stream, path: str) -> None:
        host = self.to_host(path)
        try:
            if host is None:
                raise PermissionError(errno.EACCES, "Permission denied")
            with open(host, "rb") as handle:
                while chunk := handle.read(SYNC_DATA_MAX):
                    s.write(SYNC_HEADER.pack(b"DATA", len(chunk)) + chunk)
        except OSError as exc:
            self._sync_fail(s, exc.strerror or str(exc))
            return
        s.write(SYNC_HEADER.pack(b"DONE", 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", type=Path, required=True, help="directory standing for /data/local/tmp")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--auth", choices=("none", "accept", "never"), default="none")
    parser.add_argument("--offline", action="store_true", help="never answer the CNXN handshake")
    parser.add_argument("--legacy", action="store_true", help="an old adbd: advertise no features")
    parser.add_argument(
        "--die-on", help="vanish on an event (open SERVICE / sync ID PATH) matching this regex"
    )
    parser.add_argument("--die-after", type=int, default=1, help="...on its Nth occurrence")
    parser.add_argument("--die-delay", type=float, default=0.5, help="...this long after it (s); 0: at once")
    parser.add_argument("--hang-on", help="stop answering on an event matching this regex")
    parser.add_argument("--trace", action="store_true", help="log services and sync requests on stderr")
    parser.add_argument(
        "--arch", choices=("aarch64",), help="an arm64 device: aarch64 ELF files run under QEMU"
    )
    parser.add_argument("--no-python", action="store_true", help="a stock phone: no python3 on PATH")
    parser.add_argument(
        "--app", type=Path, help="android-demo directory: the edgekit demo app is installed (am/pm)"
    )
    args = parser.parse_args(argv)
    device = EmulatedDevice(
        args.sandbox,
        port=args.port,
        auth=args.auth,
        offline=args.offline,
        legacy=args.legacy,
        die_on=args.die_on,
        die_after=args.die_after,
        die_delay=args.die_delay,
        hang_on=args.hang_on,
        trace=args.trace,
        arch=args.arch,
        python=not args.no_python,
        app=args.app,
    )
    device.on_vanish = lambda: (device.remove_system(), os._exit(137))

    def terminate(*_: object) -> None:
        device.on_vanish = None
        device.stop()
        os._exit(0)

    signal.signal(signal.SIGTERM, terminate)
    print(f"listening 127.0.0.1:{device.port}", flush=True)
    device.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
