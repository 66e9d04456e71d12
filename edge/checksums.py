"""File checksums recorded in manifests, and checking them when a build is opened.

:func:`verify_fd` compares an open file with the manifest's ``bytes`` and ``sha256``. Hashing is
remembered per file identity ``(device, inode, size, mtime_ns, ctime_ns)``, in memory and in
``checksums.json`` under the user's cache folder (``$EDGEKIT_CACHE_DIR``, else
``$XDG_CACHE_HOME/edgekit``, else ``~/.cache/edgekit``), so opening the same build again skips
the hashing. Any write to a file changes its ``ctime`` (which no program can set back), and a
replaced file has another inode, so a corrupted or swapped file, even of the same size, is always
hashed again and caught. ``EDGEKIT_CHECKSUM_CACHE=0`` turns the cache off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from edge.errors import EdgekitError

CACHE_FILE = "checksums.json"
CACHE_ENTRIES = 512  # newest kept; a build has 2 files per precision


class ChecksumMismatch(EdgekitError):
    """A build file whose size or sha256 is not what its manifest records."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_fd(fd: int, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of an open file, from its start (the descriptor's offset is not used)."""
    digest = hashlib.sha256()
    offset = 0
    while block := os.pread(fd, chunk, offset):
        digest.update(block)
        offset += len(block)
    return digest.hexdigest()


def _cache_enabled() -> bool:
    return os.environ.get("EDGEKIT_CHECKSUM_CACHE", "1").strip().lower() not in ("0", "no", "false", "off")


def _cache_path() -> Path | None:
    base = os.environ.get("EDGEKIT_CACHE_DIR") or (
        str(Path(os.environ["XDG_CACHE_HOME"]) / "edgekit") if os.environ.get("XDG_CACHE_HOME") else None
    )
    try:
        return (Path(base) if base else Path.home() / ".cache" / "edgekit") / CACHE_FILE
    except (RuntimeError, ValueError):  # no home directory, or a path Python cannot use
        return None


class _KnownHashes:
    """Checksums already computed, by file identity; shared by every open in this process."""

    def __init__(self) -> None:
        self.entries: dict[str, str] | None = None

    def _load(self, path: Path | None) -> dict[str, str]:
        if self.entries is None:
            self.entries = {}
            with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
                data = json.loads(path.read_text(encoding="utf-8")) if path else {}
                self.entries = {str(k): str(v) for k, v in data.get("entries", {}).items()}
        return self.entries

    def get(self, key: str) -> str | None:
        return self._load(_cache_path()).get(key) if _cache_enabled() else None

    def put(self, key: str, digest: str) -> None:
        if not _cache_enabled():
            return
        path = _cache_path()
        entries = self._load(path)
        entries.pop(key, None)
        entries[key] = digest
        for old in list(entries)[: max(0, len(entries) - CACHE_ENTRIES)]:
            del entries[old]
        if path is None:
            return
        from edge.atomic import write_json  # edge.atomic is heavier; only needed when saving

        with contextlib.suppress(OSError):
            write_json(path, {"version": 1, "entries": entries})


KNOWN = _KnownHashes()


def file_identity(st: os.stat_result) -> str:
    """What changes whenever a file's contents may have changed."""
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def verify_fd(fd: int, shown: Path, sha256: str, size: int | None = None) -> None:
    """Raise :class:`ChecksumMismatch` naming ``shown`` unless the open file matches the manifest."""
    st = os.fstat(fd)
    if size is not None and st.st_size != size:
        raise ChecksumMismatch(
            f"{shown} has {st.st_size} bytes but the build's manifest says {size}: the file was changed"
            " or replaced after the build was written; convert the model again"
        )
    key = file_identity(st)
    digest = KNOWN.get(key)
    if digest is None:
        digest = sha256_fd(fd)
        if digest == sha256.lower():
            KNOWN.put(key, digest)
    if digest != sha256.lower():
        raise ChecksumMismatch(
            f"{shown} does not match the sha256 in the build's manifest: the file was corrupted or"
            " replaced after the build was written; convert the model again"
        )
