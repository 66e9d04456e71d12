"""The Debian mirror the host's apt sources use (no host is written here).

:func:`debian_mirror`: ``$EDGEKIT_DEBIAN_MIRROR``, else the mirror of the host's apt sources (one-line
``*.list`` files and deb822 ``*.sources`` files). Used by debootstrap (benchmarks' qemu target, via
:mod:`converters.sources`) and by the native build to fetch Debian source packages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from edge.native.sdist import SourceError

MIRROR_VARIABLE = "EDGEKIT_DEBIAN_MIRROR"
APT_ROOT = Path("/etc/apt")
# Debian release names and aliases: a source naming one of them is a Debian archive
DEBIAN_SUITES = frozenset(
    {"buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid"}
    | {"oldoldstable", "oldstable", "stable", "testing", "unstable"}
)
DEBOOTSTRAP_SCHEMES = ("http", "https", "ftp", "file")

# --- Debian mirror -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AptSource:
    """One apt source entry: ``deb URI SUITE COMPONENT...`` or a deb822 paragraph."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    enabled: bool = True


# deb [options] URI SUITE [COMPONENT...]; a cdrom URI may hold spaces inside brackets
_ONE_LINE = re.compile(r"^(deb|deb-src)\s+(?:\[[^\]]*\]\s+)?(\S*\[[^\]]*\]\S*|\S+)\s+(\S+)(.*)$")


def parse_one_line_sources(text: str) -> list[AptSource]:
    """Entries of a one-line-style ``sources.list`` (options in brackets are skipped)."""
    entries = []
    for raw in text.splitlines():
        match = _ONE_LINE.match(raw.split("#", 1)[0].strip())
        if match:
            kind, uri, suite, components = match.groups()
            entries.append(AptSource((kind,), (uri,), (suite,), tuple(components.split())))
    return entries


def parse_deb822_sources(text: str) -> list[AptSource]:
    """Entries of a deb822-style ``*.sources`` file (one per paragraph)."""
    entries = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in paragraph.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "uris" in fields and "suites" in fields:
            entries.append(
                AptSource(
                    tuple(fields.get("types", "deb").split()),
                    tuple(fields["uris"].split()),
                    tuple(fields["suites"].split()),
                    tuple(fields.get("components", "").split()),
                    fields.get("enabled", "yes").lower() not in ("no", "false", "0"),
                )
            )
    return entries


def apt_sources(root: Path = APT_ROOT) -> list[AptSource]:
    """Every entry of ``root/sources.list``, ``root/sources.list.d/*.list`` and ``*.sources``."""
    entries = []
    files = [root / "sources.list", *sorted((root / "sources.list.d").glob("*.list"))]
    for path in files:
        if path.is_file():
            entries += parse_one_line_sources(path.read_text(errors="replace"))
    for path in sorted((root / "sources.list.d").glob("*.sources")):
        entries += parse_deb822_sources(path.read_text(errors="replace"))
    return entries


def pick_debian_mirror(entries: Iterable[AptSource], suite: str) -> str | None:
    """The first enabled binary ``main`` source serving ``suite``, else any Debian release."""
    usable = [
        (uri, entry)
        for entry in entries
        if entry.enabled and "deb" in entry.types and "main" in entry.components
        for uri in entry.uris
        if urlsplit(uri).scheme in DEBOOTSTRAP_SCHEMES
    ]
    for wanted in ({suite}, DEBIAN_SUITES):
        for uri, entry in usable:
            if wanted.intersection(entry.suites):
                return uri.rstrip("/")
    return None


def debian_mirror(suite: str, root: Path = APT_ROOT, environ: Mapping[str, str] = os.environ) -> str:
    """The Debian mirror for debootstrap: ``$EDGEKIT_DEBIAN_MIRROR``, else the host's apt sources."""
    if environ.get(MIRROR_VARIABLE):
        return environ[MIRROR_VARIABLE].rstrip("/")
    mirror = pick_debian_mirror(apt_sources(root), suite)
    if mirror is None:
        raise SourceError(f"no Debian mirror in the apt sources under {root}; set {MIRROR_VARIABLE} to one")
    return mirror
