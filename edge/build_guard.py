"""What ``convert -o DIR --force`` may replace: an edgekit build or an empty directory, nothing else.

A build is a directory holding a ``manifest.json`` edgekit can read and only the files that
manifest names (plus the manifest itself). Never replaced, even with ``--force``: a symbolic link,
a file, the current directory or one holding it, a directory holding an input of the run (the
source model, its parity or calibration images), a directory with any other file in it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from edge.errors import EdgekitError
from edge.manifest import MANIFEST_NAME, Manifest, load_manifest

ONLY = "--force replaces only a build directory edgekit wrote, or an empty directory"


def build_file_names(manifest: Manifest) -> set[str]:
    """Names of the top-level entries a build with ``manifest`` holds."""
    names = {MANIFEST_NAME}
    for builds in manifest.artifacts.values():
        for artifact in builds.values():
            names.update(Path(f.path).parts[0] for f in artifact.files.values() if f.path)
            table = artifact.details.get("table") if isinstance(artifact.details, dict) else None
            if isinstance(table, str) and table:
                names.add(Path(table).parts[0])
    return names


def _holds(folder: Path, path: Path) -> bool:
    return folder == path or folder in path.parents


def check_replaceable(target: Path, protected: Iterable[Path] = ()) -> None:
    """Raise a one-line :class:`EdgekitError` unless ``--force`` may replace ``target``."""
    target = Path(target)
    if target.is_symlink():
        raise EdgekitError(f"refusing to replace {target}: it is a symbolic link; {ONLY}")
    if not target.is_dir():
        raise EdgekitError(f"refusing to replace {target}: it is not a directory; {ONLY}")
    real = target.resolve()
    cwd = Path.cwd().resolve()
    if _holds(real, cwd):
        what = "the current directory" if real == cwd else "a parent of the current directory"
        raise EdgekitError(f"refusing to replace {target}: it is {what}")
    for path in protected:
        if _holds(real, Path(path).resolve()):
            raise EdgekitError(f"refusing to replace {target}: it holds {path}, an input of this run")
    try:
        entries = sorted(os.listdir(target))
    except OSError as exc:
        raise EdgekitError(f"cannot list {target}: {exc.strerror}") from None
    if not entries:
        return
    if MANIFEST_NAME not in entries:
        raise EdgekitError(
            f"refusing to replace {target}: it is not empty and holds no {MANIFEST_NAME}; {ONLY}"
        )
    try:
        manifest = load_manifest(target)
    except EdgekitError:
        raise EdgekitError(
            f"refusing to replace {target}: its {MANIFEST_NAME} is not a manifest edgekit can read; {ONLY}"
        ) from None
    allowed = build_file_names(manifest)
    foreign = [
        e for e in entries if e not in allowed or not (target / e).is_file() or (target / e).is_symlink()
    ]
    if foreign:
        shown = ", ".join(repr(e) for e in foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise EdgekitError(
            f"refusing to replace {target}: it holds {shown}, which edgekit did not write; {ONLY}"
        )


def check_build_target(target: Path, force: bool, protected: Iterable[Path] = ()) -> None:
    """Before any work: ``target`` is absent, or ``force`` is given and it may be replaced."""
    target = Path(target)
    if not os.path.lexists(target):
        return
    if not force:
        raise EdgekitError(f"{target} already exists; pass --force to overwrite it")
    check_replaceable(target, protected)
