"""Open a build directory consistently: its manifest and the files it names, from one build, verified.

``convert --force`` replaces a build by exchanging directories (:mod:`edge.renames`), so a build
directory's name always points to one complete build, but a reader that reads ``manifest.json``
and later opens ``model.fp32.bin`` by path may get the next build's file. :func:`pin_build`
instead opens the directory once, reads the manifest and opens the chosen precision's files
relative to that directory, and checks them against the manifest's sizes and sha256
(:func:`edge.checksums.verify_fd`). The files stay open: ncnn loads them through
``/proc/self/fd`` (:attr:`PinnedFile.load_path`), so what runs is exactly what was verified,
even if the build is replaced or deleted meanwhile. A build replaced while being pinned (its
directory gone, or files vanishing from it) is pinned again, a few times.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.atomic import parse_json
from edge.checksums import verify_fd
from edge.errors import EdgekitError
from edge.manifest import MANIFEST_NAME, Artifact, Manifest, manifest_from_dict

ATTEMPTS = 20
_PROC_FD = Path("/proc/self/fd")


class _Replaced(Exception):
    """The build directory was replaced or removed while it was being pinned."""


@dataclass(eq=False)
class PinnedFile:
    """One open build file: ``shown`` is its path for messages, :attr:`load_path` the one to load."""

    shown: Path
    fd: int

    def __post_init__(self) -> None:
        weakref.finalize(self, os.close, self.fd)

    @property
    def load_path(self) -> Path:
        """A path that opens this very file (``/proc/self/fd/N`` on Linux), even if it was replaced."""
        return _PROC_FD / str(self.fd) if _PROC_FD.is_dir() else self.shown


@dataclass(eq=False)
class PinnedBuild:
    """A build's manifest and one precision's ``.param`` and ``.bin``, open and verified."""

    manifest: Manifest
    precision: str
    param: PinnedFile
    bin: PinnedFile


def _open_at(dir_fd: int, name: str, build: Path) -> int:
    try:
        return os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    except FileNotFoundError:
        raise _Replaced from None
    except OSError as exc:
        raise EdgekitError(f"cannot open {build / name}: {exc.strerror}") from None


def _read_manifest(dir_fd: int, build: Path) -> Manifest:
    fd = _open_at(dir_fd, MANIFEST_NAME, build)
    with os.fdopen(fd, "rb") as fh:
        try:
            raw = fh.read()
        except OSError as exc:
            raise EdgekitError(f"cannot read manifest {build / MANIFEST_NAME}: {exc}") from None
    return manifest_from_dict(parse_json(raw, "manifest", build / MANIFEST_NAME))


def _pin_file(dir_fd: int, build: Path, name: str, sha256: str, size: int | None) -> PinnedFile:
    pinned = PinnedFile(build / name, _open_at(dir_fd, name, build))
    if sha256:  # a migrated version-1 manifest may not have one
        verify_fd(pinned.fd, pinned.shown, sha256, size)
    return pinned


def _same_directory(build: Path, dir_fd: int) -> bool:
    try:
        st, pinned = os.stat(build), os.fstat(dir_fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (pinned.st_dev, pinned.st_ino)


def _first_missing(build: Path, artifact: Artifact | None) -> Path:
    names = [f.path for f in artifact.files.values()] if artifact else []
    return next((build / n for n in names if not (build / n).is_file()), build / MANIFEST_NAME)


def pin_build(build: Path, choose: Callable[[Manifest], tuple[str, Artifact]]) -> PinnedBuild:
    """Open ``build`` consistently; ``choose(manifest)`` names the precision and its artifact.

    Raises :class:`edge.checksums.ChecksumMismatch` for a file that is not the one the manifest
    describes, and a one-line :class:`EdgekitError` for a missing one.
    """
    build = Path(build)
    for attempt in range(ATTEMPTS):
        try:
            dir_fd = os.open(build, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:  # between the two renames of a non-atomic replacement
            time.sleep(0.005 * (attempt + 1))
            continue
        except OSError as exc:
            raise EdgekitError(f"cannot open build directory {build}: {exc.strerror}") from None
        artifact: Artifact | None = None
        try:
            manifest = _read_manifest(dir_fd, build)
            precision, artifact = choose(manifest)
            param, weights = (
                _pin_file(dir_fd, build, f.path, f.sha256, f.bytes)
                for f in (artifact.files["param"], artifact.files["bin"])
            )
            return PinnedBuild(manifest, precision, param, weights)
        except _Replaced:
            if _same_directory(build, dir_fd):  # not replaced: the file is really missing
                raise EdgekitError(f"model file missing: {_first_missing(build, artifact)}") from None
        finally:
            os.close(dir_fd)
    raise EdgekitError(f"{build} kept being replaced while it was opened; try again")
