"""A fork server: import edgekit and its native libraries once, run each CLI call in a forked child.

Starting ``edgekit`` costs about a second (onnx, onnxruntime, ncnn, OpenCV); a forked child of a
process that already imported them starts in milliseconds. The parent must stay single-threaded
and must never run native code (an OpenMP or onnxruntime thread pool does not survive ``fork``),
so fixtures are made in children too (:func:`call`).

Each child gets its own process group, working directory, environment, ``TMPDIR`` and stdout /
stderr files; the server is a child subreaper, so a grandchild the CLI leaves behind (a pnnx
still running) comes back to it and is reported by :func:`orphans`.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import io
import os
import pickle
import resource
import select
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: modules every command may need; imported once in the server
PRELOAD = (
    "numpy",
    "cv2",
    "ncnn",
    "onnx",
    "onnxruntime",
    "onnxsim",
    "jsonschema",
    "pycocotools.coco",
    "pycocotools.cocoeval",
    "matplotlib",
    "matplotlib.pyplot",
    "edge.cli",
    "edge.commands.detect",
    "edge.commands.evaluate",
    "edge.runtime.detector",
    "edge.coco_eval",
    "converters.convert",
    "converters.parity",
    "converters.commands.convert",
    "converters.commands.calibrate",
    "converters.commands.zoo",
    "benchmarks.commands.bench",
    "benchmarks.harness",
    "rich.status",
    "rich._emoji_codes",
    "pydantic",
    "zoneinfo",
    "sysconfig",
    "annotated_types",
    "typer._adapters",
    "typer._click.decorators",
)
#: calls that fail on a missing file before any native code runs: they warm up typer's parsing
WARMUP = (
    ["convert", "/nonexistent/m.onnx", "-o", "/nonexistent/b", "--input-shape", "1,3,8,8", "--score"],
    ["convert", "/nonexistent/m.onnx", "-o", "/nonexistent/b", "--verify-num", "2"],
    ["detect", "/nonexistent/b", "/nonexistent/i.jpg", "--score", "0.5", "--threads", "1"],
    ["eval", "/nonexistent/b", "--coco", "/nonexistent/c.json", "--images", "/nonexistent", "--limit", "1"],
    ["calibrate", "/nonexistent/b", "--images", "/nonexistent", "-o", "/nonexistent/t", "--calib-num", "1"],
    ["bench", "/nonexistent/b", "--loops", "1", "--threads", "1"],
    ["zoo", "build", "nonexistent", "--input-size", "8"],
)
#: packages whose every module is imported too (commands import their libraries lazily)
PACKAGES = ("edge", "converters", "benchmarks")
#: never imported in the server: scripts and the standalone board runner
SKIP_PREFIXES = ("benchmarks.published", "edge.__main__")
#: exit code of a child whose harness code (not edgekit) failed
HARNESS_ERROR = 201
#: exit code of a child where an exception escaped ``edge.cli.main``
ESCAPED = 202
#: address space a child may use: a runaway allocation fails instead of starving the machine
MEMORY_LIMIT = 8 << 30
PR_SET_CHILD_SUBREAPER = 36


def preload() -> list[str]:
    """Import the CLI and every heavy library it uses; return the names that failed to import.

    Consoles created at import time must not bind to the server's terminal, so stdout/stderr are
    non-terminal streams while importing.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")
    failed = []
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
    try:
        for name in PRELOAD:
            try:
                importlib.import_module(name)
            except Exception:
                failed.append(name)
        for name in _package_modules():
            try:
                importlib.import_module(name)
            except Exception:
                failed.append(name)
        cli = importlib.import_module("edge.cli")
        cli._register_commands()
        _cache_click_command(cli.app)
        for argv in WARMUP:
            sys.argv = ["edgekit", *argv]
            with contextlib.suppress(BaseException):
                cli.main()
    finally:
        sys.stdout, sys.stderr = saved
    return failed


def _cache_click_command(app: Any) -> None:
    """Typer rebuilds the click command tree on every call (~60 ms); build it once in the server."""
    import typer.main

    built = typer.main.get_command(app)
    original = typer.main.get_command

    def get_command(typer_instance: Any) -> Any:
        return built if typer_instance is app else original(typer_instance)

    typer.main.get_command = get_command


def _package_modules() -> list[str]:
    import pkgutil

    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if not info.name.startswith(SKIP_PREFIXES):
                names.append(info.name)
    return names


def become_subreaper() -> None:
    """Orphaned descendants of our children are re-parented to this process (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def thread_count() -> int:
    """Threads of this process (must be 1 before forking)."""
    return len(os.listdir("/proc/self/task"))


@dataclass
class Outcome:
    """How one child ended."""

    code: int | None  # exit code, None when killed by a signal or timed out
    signal: int | None  # the signal that killed it
    timed_out: bool
    seconds: float
    stdout: str
    stderr: str


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _child_setup(cwd: Path, env: dict[str, str], out: Path, err: Path) -> None:
    os.setpgid(0, 0)
    for fd, path in ((1, out), (2, err)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(handle, fd)
        os.close(handle)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _run_main(argv: list[str]) -> int:
    cli = sys.modules["edge.cli"]
    sys.argv = ["edgekit", *argv]
    try:
        cli.main()
        return 0
    except SystemExit as exc:
        return _exit_code(exc)
    except BaseException:
        traceback.print_exc()
        return ESCAPED


def spawn(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    out: Path,
    err: Path,
    prepare: Callable[[], None] | None = None,
) -> int:
    """Fork a child running ``edgekit ARGV``; return its pid (reap it with :func:`wait`)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid:
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        return pid
    code = HARNESS_ERROR
    try:
        _child_setup(cwd, env, out, err)
        if prepare is not None:
            prepare()
        code = _run_main(argv)
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def wait(pid: int, timeout: float) -> tuple[int | None, int | None, bool, float]:
    """Reap ``pid`` within ``timeout`` s, else kill its process group: (code, signal, timed_out, seconds)."""
    start = time.monotonic()
    fd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    timed_out = not ready
    if timed_out:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - start
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status), timed_out, seconds
    return os.WEXITSTATUS(status), None, timed_out, seconds


def read_text(path: Path, limit: int = 200_000) -> str:
    """A child's captured output (bytes it could not decode kept as escapes)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "backslashreplace")
    except OSError:
        return ""


def run(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    prepare: Callable[[], None] | None = None,
    logs: Path | None = None,
) -> Outcome:
    """Run ``edgekit ARGV`` in a forked child and wait for it."""
    logs = logs or cwd
    out, err = logs / ".attack-stdout", logs / ".attack-stderr"
    pid = spawn(argv, cwd, env, out, err, prepare)
    code, sig, timed_out, seconds = wait(pid, timeout)
    result = Outcome(code, sig, timed_out, seconds, read_text(out), read_text(err))
    for path in (out, err):
        path.unlink(missing_ok=True)
    return result


def call(fn: Callable[..., Any], *args: Any, timeout: float = 600) -> Any:
    """``fn(*args)`` in a forked child (native code must not run in the server); its pickled result."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        code = 0
        try:
            payload = pickle.dumps(("ok", fn(*args)))
        except BaseException as exc:
            payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
            code = 1
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(payload)
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    wait(pid, timeout)
    if not data:
        raise RuntimeError(f"{fn.__name__} died in its child")
    status, value = pickle.loads(data)
    if status != "ok":
        raise RuntimeError(f"{fn.__name__} failed in its child: {value}")
    return value


@dataclass
class Orphan:
    """A process left running by a case."""

    pid: int
    command: str


def orphans() -> list[Orphan]:
    """Live processes re-parented to this server (grandchildren whose parent died), not zombies."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        state, ppid = fields[0], int(fields[1])
        if ppid != me or state == "Z":
            continue
        try:
            cmdline = (
                Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
        except OSError:
            continue
        found.append(Orphan(int(entry), cmdline.strip()[:200]))
    return found


def reap_orphans(keep: str | None = None) -> None:
    """Kill every process left to this server (but those whose command starts with ``keep``), reap zombies."""
    for orphan in orphans():
        if keep and orphan.command.startswith(keep):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(orphan.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if not [o for o in orphans() if not (keep and o.command.startswith(keep))]:
                return
            time.sleep(0.01)
