"""Atomic directory renames beyond ``os.replace``: no-replace and exchange (Linux ``renameat2``).

``rename_noreplace`` moves a directory to a name only if nothing is there (plain ``rename`` would
silently replace an empty directory). ``exchange`` swaps two paths in one step, so a build
directory's name always points to one complete build. Both return False where the kernel, the C
library or the file system lacks ``renameat2`` (the callers then fall back to two renames under a
lock). Other failures raise ``OSError`` as ``os.rename`` would.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
from pathlib import Path
from typing import Any

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_AT_FDCWD = -100
#: renameat2's syscall number where glibc lacks the wrapper (before 2.28)
_SYSCALL = {"x86_64": 316, "aarch64": 276, "riscv64": 276, "armv7l": 382, "armv8l": 382, "i686": 353}
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


def _renameat2() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    func = getattr(libc, "renameat2", None)
    if func is not None:
        func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        return func
    number = _SYSCALL.get(platform.machine())
    if number is None:
        return None
    return lambda *args: libc.syscall(number, *args)


_FUNC = _renameat2()


def _call(src: Path, dst: Path, flags: int) -> bool:
    if _FUNC is None:
        return False
    ret = _FUNC(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags)
    if ret == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def rename_noreplace(src: Path, dst: Path) -> bool:
    """Rename ``src`` to ``dst`` unless ``dst`` exists (``FileExistsError``); False if unsupported."""
    return _call(Path(src), Path(dst), RENAME_NOREPLACE)


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap the paths ``a`` and ``b`` (both must exist); False if unsupported."""
    return _call(Path(a), Path(b), RENAME_EXCHANGE)
