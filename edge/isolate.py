"""Run a native step that may still die (simplifier, ncnn's first load and run, onnxruntime) in a child.

A segfault, a SIGFPE or an abort inside C++ kills the whole Python process: no cleanup, no message,
exit 139. :func:`run_isolated` runs the step in a forked child instead; the result comes back
through a pipe, a Python exception is re-raised as it was, and a death by signal becomes one
:class:`EdgekitError` naming the step (and what it was working on). The child's stdout and stderr
go to a scratch file, so native libraries' own prints never mix with edgekit's lines; the last
line the library printed is quoted when it died.

The child shares the parent's memory copy-on-write, so nothing is re-imported or re-loaded; the
cost is the fork plus pickling the arguments' results (measured in the reliability notes).
Where ``fork`` does not exist (Windows) or ``EDGEKIT_ISOLATE=0``, the step runs in-process.

A step must run ncnn on one thread: once the parent has run an OpenMP region on several threads,
libgomp's pool is gone in the child and a multi-threaded region there waits for it forever.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import os
import pickle
import signal
import sys
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

from edge.env import env_flag
from edge.errors import EdgekitError

T = TypeVar("T")


class NativeCrash(EdgekitError):
    """A native step died (signal, or exit without a result): the one-line report of it."""

    exit_code = 4


_SIGNAL_WORDS = {
    signal.SIGSEGV: "segmentation fault",
    signal.SIGFPE: "arithmetic error (SIGFPE)",
    signal.SIGABRT: "abort",
    signal.SIGBUS: "bus error",
    signal.SIGILL: "illegal instruction",
    signal.SIGKILL: "killed (out of memory?)",
}
_PR_SET_PDEATHSIG = 1


def isolation_enabled() -> bool:
    """True where native steps run in a forked child (``EDGEKIT_ISOLATE=0`` turns it off)."""
    return hasattr(os, "fork") and sys.platform.startswith("linux") and env_flag("EDGEKIT_ISOLATE", True)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this child when the parent dies (kill -9 of edgekit leaves no orphan)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() == 1:  # the parent already died between fork and prctl
            os._exit(137)


def _single_threaded_openmp() -> None:
    """OpenMP regions without a thread count use one thread here (see the module doc)."""
    ncnn = sys.modules.get("ncnn")
    if ncnn is not None and hasattr(ncnn, "set_omp_num_threads"):
        ncnn.set_omp_num_threads(1)


def _child(write_fd: int, log_fd: int, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    """Body of the forked child: never returns."""
    code = 0
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)  # the parent's cleanup handlers are the parent's
        _die_with_parent()
        faulthandler.disable()  # a crash here is reported by the parent, in one line
        gc.freeze()  # collections here skip the inherited objects: no copy-on-write of their pages
        _single_threaded_openmp()
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        try:
            payload = ("ok", fn(*args, **kwargs))
        except BaseException as exc:  # re-raised in the parent
            payload = ("err", exc)
        try:
            data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an unpicklable result or exception: keep its message
            detail = payload[1] if payload[0] == "err" else exc
            data = pickle.dumps(("err", EdgekitError(f"{type(detail).__name__}: {detail}")))
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view) :]
    except BaseException:
        code = 70
    finally:
        os._exit(code)


def _last_line(log_fd: int) -> str:
    with contextlib.suppress(OSError):
        os.lseek(log_fd, 0, os.SEEK_SET)
        text = os.read(log_fd, 1 << 16).decode("utf-8", "replace")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if lines:
            return lines[-1][:200]
    return ""


def describe_death(status: int) -> str:
    """``segmentation fault`` / ``exit status 3`` for a ``waitpid`` status."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return _SIGNAL_WORDS.get(sig, f"killed by {name}")
    return f"exit status {os.WEXITSTATUS(status)}"


def run_isolated(step: str, fn: Callable[..., T], *args: Any, where: str = "", **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a forked child; a native crash becomes one :class:`EdgekitError`.

    ``step`` names what runs (``"onnxsim"``, ``"ncnn (fp32 build)"``); ``where`` says what it was
    working on (``"on node 'Conv_3'"``) and is appended to the message.
    """
    if not isolation_enabled():
        return fn(*args, **kwargs)
    with tempfile.TemporaryFile(prefix="edgekit-native-") as log:
        kind, value = _fork_and_wait(step, where, log.fileno(), fn, args, kwargs)
    if kind == "err":
        raise value
    return value


def _fork_and_wait(
    step: str, where: str, log_fd: int, fn: Callable[..., Any], args: tuple, kwargs: dict
) -> tuple[str, Any]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_fd)
        _child(write_fd, log_fd, fn, args, kwargs)
    os.close(write_fd)
    chunks: list[bytes] = []
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            while chunk := pipe.read(1 << 20):
                chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        if pid:  # interrupted while waiting: the child goes with us
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
    data = b"".join(chunks)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT:
        raise KeyboardInterrupt
    if data and not os.WIFSIGNALED(status):
        return pickle.loads(data)
    said = _last_line(log_fd)
    suffix = f" {where}" if where else ""
    raise NativeCrash(
        f"{step} crashed{suffix}: {describe_death(status)}" + (f" (it printed: {said})" if said else "")
    )
