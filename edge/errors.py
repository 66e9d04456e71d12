"""The one exception type users see: a one-line message, never a traceback."""

from __future__ import annotations

import errno
import os


class EdgekitError(Exception):
    """A user-facing failure; the CLI prints ``str(err)`` on one line and exits non-zero."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        text = " ".join(str(message).split())  # one line; undecodable path bytes shown as escapes
        super().__init__(text.encode("utf-8", "backslashreplace").decode("utf-8"))


class ModelFormatError(EdgekitError):
    """A .param/.bin file that is malformed or does not match its graph."""


class ParityError(EdgekitError):
    """A build that computes something other than the ONNX reference."""

    exit_code = 3


#: exit code of a failure of the machine (disk full, permissions, memory), not of the input's content
SYSTEM_EXIT_CODE = 74  # EX_IOERR


def _shown_path(path: object) -> str:
    text = os.fsdecode(path) if isinstance(path, str | bytes | os.PathLike) else str(path)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")  # undecodable bytes as \xNN


def system_error_message(exc: BaseException) -> str | None:
    """One honest line for an OS-level failure (disk full, permission, name too long, memory,
    undecodable text), naming the path where Python knows it; None for anything else (a bug)."""
    if isinstance(exc, MemoryError):
        return "out of memory: the input or model needs more memory than this machine has free"
    if isinstance(exc, UnicodeError):
        if isinstance(exc, UnicodeDecodeError | UnicodeEncodeError):
            return f"text that is not valid {exc.encoding}: {exc.reason} (a file name or file that is not UTF-8?)"
        return f"text that is not valid UTF-8: {exc}"
    if not isinstance(exc, OSError):
        return None
    where = " ".join(_shown_path(p) for p in (exc.filename, exc.filename2) if p is not None)
    words = {
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EROFS: "read-only file system",
        errno.ENAMETOOLONG: "file name too long",
        errno.ENOENT: "no such file or directory",
        errno.ENOTDIR: "not a directory",
        errno.EISDIR: "is a directory",
        errno.EFBIG: "file too large",
        errno.EMFILE: "too many open files",
        errno.ELOOP: "too many levels of symbolic links",
        errno.EIO: "input/output error",
    }
    what = words.get(exc.errno or 0) or exc.strerror or type(exc).__name__
    return f"{what}: {where}" if where else f"{what} ({type(exc).__name__})"
