"""Names for work-in-progress files and directories, and removal of those left by dead processes.

Everything edgekit writes goes first to a hidden sibling of its target named
``.NAME.PID-TOKEN.partial`` (a directory: a build being converted; with the target's suffix
appended for a video, ``.NAME.PID-TOKEN.partial.mp4``) or ``.NAME.PID-TOKEN.tmp`` (a file written
atomically). A process killed before it could clean up (``kill -9``, power loss) leaves one behind;
:func:`sweep_stale` removes those whose PID is no longer running, so the next run into the same
folder tidies up. The PID check is conservative: a PID reused by a live process keeps its entry.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from pathlib import Path

#: staging names never exceed this many bytes (a file name's limit is 255)
MAX_NAME_BYTES = 240
_STAGED = re.compile(
    r"^\.(?P<name>.*)\.(?P<pid>\d+)-(?P<token>[0-9a-f]{8})\.(?P<kind>partial|tmp)(\.\w{1,8})?$", re.S
)


def _short(name: str, room: int) -> str:
    """``name`` cut to at most ``room`` UTF-8 bytes (on a character boundary)."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= room:
        return name
    return raw[:room].decode("utf-8", "ignore")


def staging_path(target: Path, kind: str = "partial", suffix: str = "") -> Path:
    """A fresh hidden sibling of ``target`` for this process: ``.NAME.PID-TOKEN.KIND[SUFFIX]``."""
    target = Path(target)
    tail = f".{os.getpid()}-{secrets.token_hex(4)}.{kind}{suffix}"
    room = MAX_NAME_BYTES - 1 - len(tail.encode())
    return target.with_name(f".{_short(target.name, room)}{tail}")


def make_staging_dir(target: Path) -> Path:
    """Create and return an empty staging directory beside ``target`` (mode 0777 minus the umask)."""
    while True:
        stage = staging_path(target)
        try:
            os.mkdir(stage)
            return stage
        except FileExistsError:  # astronomically unlikely: another token
            continue


def staging_owner(name: str) -> int | None:
    """The PID a staging name belongs to, or None when ``name`` is not an edgekit staging name."""
    match = _STAGED.match(name)
    return int(match["pid"]) if match else None


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists (ours or another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(folder: Path) -> list[Path]:
    """Remove the staging entries in ``folder`` whose process is gone; returns what was removed.

    Never raises: a folder that cannot be listed, or an entry that cannot be removed, is left alone.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        pid = staging_owner(entry.name)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        path = Path(entry.path)
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed
