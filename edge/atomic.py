"""Atomic outputs: write to a temporary sibling, then rename into place."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from edge.errors import EdgekitError
from edge.renames import exchange, rename_noreplace
from edge.resources import JSON_EXPANSION, check_readable_whole
from edge.staging import make_staging_dir, staging_path, sweep_stale


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def refuse_overwrite(path: Path, force: bool) -> None:
    """Raise unless ``path`` is absent or ``force`` allows replacing it."""
    if path.exists() and not force:
        raise EdgekitError(f"{path} already exists; pass --force to overwrite it")


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file (through links), None for one that does not exist."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def refuse_overwriting_inputs(
    outputs: Iterable[Path | None], files: Iterable[Path] = (), folders: Iterable[Path] = ()
) -> None:
    """Refuse, even with ``--force``, an output that would replace one of the command's inputs.

    ``files`` are input files (compared by device and inode, so links and other spellings count);
    ``folders`` are input folders (a build, a folder of images): an existing file inside one is an
    input too. Outputs that do not exist yet replace nothing and pass.
    """
    by_identity = {key: Path(f) for f in files if (key := _identity(Path(f))) is not None}
    roots = [(Path(d).resolve(), Path(d)) for d in folders if Path(d).is_dir()]
    for out in outputs:
        if out is None or (key := _identity(Path(out))) is None:
            continue
        source = by_identity.get(key)
        if source is None:
            real = Path(out).resolve()
            source = next((given for root, given in roots if real.is_relative_to(root)), None)
        if source is not None:
            raise EdgekitError(f"the output {out} would overwrite the input {source}; choose another output")


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (same-directory temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_path(path, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON file; an unreadable or malformed one is a one-line error naming ``what`` it is."""
    try:
        check_readable_whole(Path(path), what, JSON_EXPANSION)
        data = Path(path).read_bytes()
    except OSError as exc:
        raise EdgekitError(f"cannot read {what} {path}: {exc}") from None
    return parse_json(data, what, path)


def parse_json(data: bytes, what: str, path: Path) -> Any:
    """Decode the bytes of the JSON file ``path``; malformed or absurdly nested text is one line."""
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise EdgekitError(f"cannot read {what} {path}: nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgekitError(f"cannot read {what} {path}: {exc}") from None


def _require_empty(target: Path) -> None:
    if any(target.iterdir()):
        raise EdgekitError(f"refusing to replace {target}: it is not empty")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder`` itself: edgekit writers publishing into it take turns."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # a file system without locks: the renames alone still decide
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
                raise
        yield
    finally:
        os.close(fd)  # releases the lock


def _publish(stage: Path, target: Path, force: bool, may_replace: Callable[[Path], None]) -> None:
    """Move ``stage`` to ``target``: only onto nothing without ``force``; with it, swap atomically.

    Returns with ``stage`` holding the replaced build (or gone); the caller removes it.
    """
    with _locked(target.parent):
        if not os.path.lexists(target):
            try:
                if not rename_noreplace(stage, target):
                    os.rename(stage, target)  # only an empty directory could have appeared meanwhile
            except FileExistsError:
                raise _appeared(target) from None
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                    raise _appeared(target) from None
                raise
            return
        if not force:
            raise _appeared(target)
        may_replace(target)  # again, under the lock: what is there now
        if not exchange(stage, target):  # two renames; a reader may find no build for an instant
            old = staging_path(target)
            os.rename(target, old)
            try:
                os.rename(stage, target)
            except BaseException:
                os.rename(old, target)  # put the previous build back
                raise
            os.rename(old, stage)


def _appeared(target: Path) -> EdgekitError:
    return EdgekitError(
        f"{target} was created by another run while this one worked; not replaced (pass --force to replace it)"
    )


@contextlib.contextmanager
def staged_directory(
    target: Path, force: bool, may_replace: Callable[[Path], None] = _require_empty
) -> Iterator[Path]:
    """Yield an empty staging directory that becomes ``target`` only if the block succeeds.

    The staging directory is a sibling of ``target`` named for this process
    (:func:`edge.staging.staging_path`), so the final move is a rename and a later run removes it
    if this process is killed; stale ones of dead processes are removed first. Without ``force``
    the rename happens only onto nothing, so of concurrent runs exactly one wins. With ``force``,
    ``may_replace(target)`` must accept what is there, and the directories are exchanged in one
    step (``renameat2``), so ``target`` always names one complete build. On any error or
    exception (including SIGTERM/SIGHUP turned into one) the staging directory is removed and
    ``target`` is left as it was.
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(target.parent)
    if os.path.lexists(target):
        if not force:
            raise EdgekitError(f"{target} already exists; pass --force to overwrite it")
        may_replace(target)
    stage = make_staging_dir(target)
    try:
        yield stage
        _publish(stage, target, force, may_replace)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
