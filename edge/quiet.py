"""Keep native libraries' own prints (ncnn, OpenCV/FFmpeg, libpng, onnxruntime) out of edgekit's output.

They write straight to file descriptors 1 and 2 from C, around edgekit's one-line messages.
:func:`native_output` points both descriptors at a scratch file for the duration of a native call
and hands back what was printed, so a failure can quote the library's reason in its own line.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import tempfile
from collections.abc import Iterator


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def _flush_c_stdio() -> None:
    """Push C stdio buffers (printf from native code) into the redirected descriptors."""
    libc = _libc()
    if libc is not None:
        libc.fflush(None)


_state = {"depth": 0, "scratch": -1}


def _scratch_fd() -> int:
    """One scratch file per process (unlinked at once), reused: a redirect costs a few syscalls."""
    if _state["scratch"] < 0 or _state.get("pid") != os.getpid():
        handle, name = tempfile.mkstemp(prefix="edgekit-native-")
        os.unlink(name)
        _state["scratch"], _state["pid"] = handle, os.getpid()
    return _state["scratch"]


@contextlib.contextmanager
def native_output() -> Iterator[list[str]]:
    """Capture fds 1 and 2 for the block; the yielded list holds the printed lines afterwards.

    Nested blocks leave the capture to the outermost one.
    """
    lines: list[str] = []
    if _state["depth"]:
        yield lines
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        scratch = _scratch_fd()
        os.ftruncate(scratch, 0)
        os.lseek(scratch, 0, os.SEEK_SET)
        saved = (os.dup(1), os.dup(2))
    except (OSError, ValueError, AttributeError):  # no descriptors to redirect (embedded, closed)
        yield lines
        return
    os.dup2(scratch, 1)
    os.dup2(scratch, 2)
    _state["depth"] += 1
    try:
        yield lines
    finally:
        _state["depth"] -= 1
        _flush_c_stdio()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        os.lseek(scratch, 0, os.SEEK_SET)
        text = os.read(scratch, 1 << 16).decode("utf-8", "replace")
        lines.extend(line.strip() for line in text.splitlines() if line.strip())


def last_words(lines: list[str], limit: int = 200) -> str:
    """`` (ncnn said: ...)`` from captured lines, or empty when nothing was printed."""
    return f" (it printed: {lines[-1][:limit]})" if lines else ""
