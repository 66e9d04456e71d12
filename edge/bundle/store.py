"""Stage, verify and commit bundles: every change to the app's assets is all or nothing.

A bundle is a build trimmed to the chosen precisions: its ``.param``/``.bin`` files, copied and
checked against the manifest's sha256 and size, and a ``manifest.json`` that lists only those
precisions. Bundles are staged in a hidden directory inside the assets (aapt ignores dot names,
so a leftover never reaches an APK), then renamed into place and the index is replaced last;
any failure before that leaves the assets as they were. ``--force`` and ``--remove`` only touch
a bundle the index lists, and only when its directory holds nothing but the files it lists.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from edge.bundle.app import App, check_name, find_bundle, read_index, write_index
from edge.errors import EdgekitError
from edge.manifest import MANIFEST_NAME, NCNN, PRECISIONS, load_manifest, manifest_to_dict, validate

#: precisions bundled when --precision is not given (what a phone runs), among those a build has
DEFAULT_PRECISIONS = ("fp16", "int8")
#: file name suffixes the app stores uncompressed in the APK (app/build.gradle.kts noCompress)
UNCOMPRESSED = (".bin",)
#: zip local header + central directory entry, without the name (twice) and extra fields
ZIP_ENTRY_OVERHEAD = 30 + 46


@dataclass
class BundlePlan:
    """One build to bundle: where it comes from, its name and the precisions to copy."""

    build: Path
    name: str
    precisions: tuple[str, ...]


def plan_bundles(
    builds: list[Path], names: list[str] | None, precisions: tuple[str, ...] | None
) -> list[BundlePlan]:
    """Check every BUILD and name before anything is written."""
    if names is not None and len(names) != len(builds):
        raise EdgekitError("--name names one bundle: give a single BUILD with --name")
    for p in precisions or ():
        if p not in PRECISIONS:
            raise EdgekitError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
    plans: list[BundlePlan] = []
    for i, build in enumerate(builds):
        build = Path(build)
        if not (build / MANIFEST_NAME).is_file():
            raise EdgekitError(
                f"{build} is not a build directory (no {MANIFEST_NAME}); make one with edgekit convert"
            )
        held = load_manifest(build).artifacts.get(NCNN, {})
        if precisions is not None:
            missing = [p for p in precisions if p not in held]
            if missing:
                raise EdgekitError(
                    f"{build} has no {', '.join(missing)} model (it has {', '.join(held) or 'none'})"
                )
            chosen = precisions
        else:
            chosen = tuple(p for p in DEFAULT_PRECISIONS if p in held)
            if not chosen:
                raise EdgekitError(
                    f"{build} has neither fp16 nor int8 (it has {', '.join(held) or 'none'}); choose with --precision"
                )
        name = check_name(names[i] if names else build.resolve().name)
        if any(p.name == name for p in plans):
            raise EdgekitError(
                f"two builds would both be bundled as {name!r}; name them with separate --name runs"
            )
        plans.append(BundlePlan(build, name, chosen))
    return plans


@contextlib.contextmanager
def locked(app: App) -> Iterator[None]:
    """Hold the app's bundle lock (one ``edgekit bundle`` at a time per app)."""
    app.assets.mkdir(parents=True, exist_ok=True)
    fd = os.open(app.assets, os.O_RDONLY | os.O_DIRECTORY)  # lock the directory itself: no lock file
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def add_bundles(app: App, plans: list[BundlePlan], force: bool) -> list[dict[str, Any]]:
    """Copy every planned bundle into the app atomically; returns their index entries."""
    with locked(app):
        index = read_index(app)
        for plan in plans:
            _check_replaceable(app, index, plan.name, force)
        stage = Path(tempfile.mkdtemp(prefix=".edgekit-stage-", dir=app.assets))
        try:
            entries = [_stage_bundle(plan, stage / plan.name) for plan in plans]
            _commit(app, index, stage, entries)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return entries


def remove_bundle(app: App, name: str) -> dict[str, Any]:
    """Delete bundle ``name`` (only the files ``edgekit bundle`` wrote) and drop it from the index."""
    check_name(name)
    with locked(app):
        index = read_index(app)
        entry = find_bundle(index, name)
        if entry is None:
            listed = ", ".join(b["name"] for b in index["bundles"]) or "none"
            raise EdgekitError(f"the app has no bundle {name!r} (bundles: {listed})")
        _check_only_listed(app, entry)
        trash = Path(tempfile.mkdtemp(prefix=".edgekit-trash-", dir=app.assets))
        try:
            os.replace(app.assets / name, trash / name)
            try:
                write_index(app, {**index, "bundles": [b for b in index["bundles"] if b["name"] != name]})
            except BaseException:
                os.replace(trash / name, app.assets / name)
                raise
        finally:
            shutil.rmtree(trash, ignore_errors=True)
    return entry


def _check_replaceable(app: App, index: dict[str, Any], name: str, force: bool) -> None:
    target = app.assets / name
    entry = find_bundle(index, name)
    if entry is None:
        if target.exists() or target.is_symlink():
            raise EdgekitError(
                f"{target} exists but was not made by edgekit bundle; choose another --name or move it away"
            )
        return
    if not force:
        raise EdgekitError(f"the app already holds a bundle {name!r}; pass --force to replace it")
    _check_only_listed(app, entry)


def _check_only_listed(app: App, entry: dict[str, Any]) -> None:
    """Refuse to delete a bundle directory holding anything its index entry does not list."""
    directory = app.assets / entry["name"]
    listed = {str(PurePosixPath(f["path"])) for f in entry["files"]}
    if directory.is_symlink() or not directory.is_dir():
        raise EdgekitError(f"{directory} is not the directory edgekit bundle wrote; fix it by hand")
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(app.assets).as_posix()
        if path.is_dir() and not path.is_symlink():
            continue
        if rel not in listed:
            raise EdgekitError(f"{path} was not written by edgekit bundle; move it away first")


def _stage_bundle(plan: BundlePlan, dest: Path) -> dict[str, Any]:
    """Copy one build's chosen precisions to ``dest``, verifying each file; its index entry."""
    manifest = manifest_to_dict(load_manifest(plan.build))
    held = manifest["artifacts"][NCNN]
    manifest["artifacts"] = {NCNN: {p: held[p] for p in plan.precisions}}
    manifest["notes"] = [
        *manifest["notes"],
        f"bundled by edgekit bundle: {', '.join(plan.precisions)} of {', '.join(held)}",
    ]
    validate(manifest)
    dest.mkdir(parents=True)
    files: list[dict[str, Any]] = []
    copied: set[str] = set()
    for precision in plan.precisions:
        for role, record in manifest["artifacts"][NCNN][precision]["files"].items():
            rel = _inside(record["path"], plan.build, f"{precision} {role}")
            if rel in copied:
                continue
            copied.add(rel)
            digest, size = _copy_verified(plan.build / rel, dest / rel)
            if digest != record["sha256"] or (record.get("bytes") is not None and size != record["bytes"]):
                raise EdgekitError(
                    f"{plan.build / rel} does not match its manifest (sha256 or size differs): the build was "
                    "modified or damaged; rebuild it with edgekit convert"
                )
            files.append({"path": f"{plan.name}/{rel}", "sha256": digest, "bytes": size})
    text = json.dumps(manifest, indent=2) + "\n"
    (dest / MANIFEST_NAME).write_text(text, encoding="utf-8")
    raw = text.encode("utf-8")
    files.insert(
        0,
        {
            "path": f"{plan.name}/{MANIFEST_NAME}",
            "sha256": hashlib.sha256(raw).hexdigest(),
            "bytes": len(raw),
        },
    )
    return {
        "name": plan.name,
        "source": plan.build.resolve().name,
        "precisions": list(plan.precisions),
        "manifest": f"{plan.name}/{MANIFEST_NAME}",
        "files": files,
        "bytes": sum(f["bytes"] for f in files),
        "apk_bytes": sum(apk_bytes(dest.parent / f["path"], f["path"]) for f in files),
    }


def _inside(path: str, build: Path, what: str) -> str:
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise EdgekitError(f"{build}: the manifest's {what} file {path!r} is not inside the build")
    return rel.as_posix()


def _copy_verified(source: Path, dest: Path) -> tuple[str, int]:
    """Copy ``source`` to ``dest`` hashing what was written; (sha256, bytes)."""
    if not source.is_file():
        raise EdgekitError(f"{source} is missing: the build is incomplete; rebuild it with edgekit convert")
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with open(source, "rb") as src, open(dest, "wb") as out:
        while block := src.read(1 << 20):
            digest.update(block)
            out.write(block)
            size += len(block)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def apk_bytes(path: Path, name: str) -> int:
    """What one asset adds to the APK: stored (``.bin``) or deflated, plus its zip entry headers."""
    data = path.read_bytes()
    body = len(data) if name.endswith(UNCOMPRESSED) else len(zlib.compress(data, 6))
    entry_name = len(f"assets/edgekit/{name}".encode())
    return body + ZIP_ENTRY_OVERHEAD + 2 * entry_name


def _commit(app: App, index: dict[str, Any], stage: Path, entries: list[dict[str, Any]]) -> None:
    """Move the staged bundles into place (old ones aside), write the index; undo on failure."""
    trash = stage / ".replaced"
    trash.mkdir()
    moved: list[str] = []
    replaced: list[str] = []
    try:
        for entry in entries:
            name = entry["name"]
            if (app.assets / name).exists():
                os.replace(app.assets / name, trash / name)
                replaced.append(name)
            os.replace(stage / name, app.assets / name)
            moved.append(name)
        names = {e["name"] for e in entries}
        write_index(
            app, {**index, "bundles": [b for b in index["bundles"] if b["name"] not in names] + entries}
        )
    except BaseException:
        for name in moved:
            shutil.rmtree(app.assets / name, ignore_errors=True)
        for name in replaced:
            os.replace(trash / name, app.assets / name)
        raise
