"""Paths handed to native libraries (ncnn, OpenCV), which only take UTF-8 text.

Linux file names are bytes; one that is not valid UTF-8 reaches Python as a string with
surrogate escapes, which the bindings refuse with a ``TypeError``. :func:`native_path` gives
such a file to the library through ``/proc/self/fd`` instead, and names the file otherwise.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from edge.errors import EdgekitError


def is_utf8(path: str | Path) -> bool:
    """True when ``path`` can be passed to a native library as UTF-8 text."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@contextlib.contextmanager
def native_path(path: str | Path, what: str = "file") -> Iterator[str]:
    """A UTF-8 string naming the existing file ``path`` (itself, or ``/proc/self/fd/N`` while open)."""
    if is_utf8(path):
        yield str(path)
        return
    proc = Path("/proc/self/fd")
    if not proc.is_dir():
        raise EdgekitError(f"the {what} name {os.fsencode(path)!r} is not valid UTF-8: rename it")
    fd = os.open(path, os.O_RDONLY)
    try:
        yield str(proc / str(fd))
    finally:
        os.close(fd)


def require_utf8(path: str | Path, what: str = "file") -> str:
    """``str(path)`` for a native library that creates the file; refused when not valid UTF-8."""
    if not is_utf8(path):
        raise EdgekitError(f"the {what} name {os.fsencode(path)!r} is not valid UTF-8: choose another name")
    return str(path)
