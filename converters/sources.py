"""Where build tooling downloads from: the package index pip is configured to use, and the Debian mirror
the host's apt sources use. No host is written here; both come from the machine's own configuration.

- :func:`debian_mirror`: ``$EDGEKIT_DEBIAN_MIRROR``, else the mirror of the host's apt sources
  (one-line ``*.list`` files and deb822 ``*.sources`` files), for debootstrap.
- :func:`download_sdist`: a project's source archive from pip's configured indexes (PEP 503 simple
  pages), checked against the sha256 the index lists for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from edge.errors import EdgekitError

MIRROR_VARIABLE = "EDGEKIT_DEBIAN_MIRROR"
APT_ROOT = Path("/etc/apt")
# Debian release names and aliases: a source naming one of them is a Debian archive
DEBIAN_SUITES = frozenset(
    {"buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid"}
    | {"oldoldstable", "oldstable", "stable", "testing", "unstable"}
)
DEBOOTSTRAP_SCHEMES = ("http", "https", "ftp", "file")
TIMEOUT_S = 60.0


class SourceError(EdgekitError):
    """No usable index or mirror, or a download that does not match its listed checksum."""


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


# --- package index -------------------------------------------------------------------------------


def pip_config(python: str = sys.executable) -> dict[str, str]:
    """pip's effective configuration (``pip config list``: ``section.key='value'`` lines)."""
    try:
        out = subprocess.run(
            [python, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=TIMEOUT_S
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    config = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip()] = value.strip().strip("'\"")
    return config


def pip_default_index() -> str:
    """The index pip uses when nothing is configured, as pip itself defines it."""
    from pip._internal.models.index import PyPI

    return PyPI.simple_url


def _setting(name: str, config: Mapping[str, str], environ: Mapping[str, str]) -> str | None:
    variable = "PIP_" + name.upper().replace("-", "_")
    if environ.get(variable):
        return environ[variable]
    for section in (":env:", "download", "global"):
        if config.get(f"{section}.{name}"):
            return config[f"{section}.{name}"]
    return None


def pip_index_urls(
    config: Mapping[str, str] | None = None, environ: Mapping[str, str] = os.environ
) -> list[str]:
    """pip's index followed by its extra indexes, from its environment and configuration."""
    config = pip_config() if config is None else config
    index = _setting("index-url", config, environ) or pip_default_index()
    extras = (_setting("extra-index-url", config, environ) or "").split()
    return [index, *(url for url in extras if url != index)]


@dataclass(frozen=True)
class IndexFile:
    """One file listed on a PEP 503 project page."""

    filename: str
    url: str
    sha256: str | None


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip()))
            self._href = None


def parse_simple_page(html: str, page_url: str) -> list[IndexFile]:
    """The files of a PEP 503 project page, with absolute URLs and their listed sha256."""
    parser = _LinkParser()
    parser.feed(html)
    files = []
    for href, text in parser.links:
        url, fragment = urldefrag(urljoin(page_url, href))
        digest = dict(p.split("=", 1) for p in fragment.split("&") if "=" in p).get("sha256")
        filename = text or unquote(Path(urlsplit(url).path).name)
        files.append(IndexFile(filename, url, digest.lower() if digest else None))
    return files


def normalize_project(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _read(url: str) -> bytes | None:
    """The body at ``url`` (a ``file:`` directory reads its index.html); None when absent."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
        path = path / "index.html" if path.is_dir() else path
        return path.read_bytes() if path.is_file() else None
    request = urllib.request.Request(url, headers={"Accept": "text/html"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise SourceError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SourceError(f"cannot read {url}: {getattr(exc, 'reason', exc)}") from None


def find_sdist(project: str, version: str, index_urls: Iterable[str]) -> IndexFile:
    """The ``PROJECT-VERSION.tar.gz`` source archive listed on the first index that has it."""
    wanted = {f"{name}-{version}.tar.gz" for name in (project, normalize_project(project).replace("-", "_"))}
    searched = []
    for index in index_urls:
        page_url = index.rstrip("/") + f"/{normalize_project(project)}/"
        searched.append(index)
        body = _read(page_url)
        if body is None:
            continue
        text = body.decode("utf-8", errors="replace")
        if text.lstrip().startswith("{"):  # a PEP 691 JSON answer despite the Accept header
            files = [
                IndexFile(f["filename"], urljoin(page_url, f["url"]), f.get("hashes", {}).get("sha256"))
                for f in json.loads(text).get("files", [])
            ]
        else:
            files = parse_simple_page(text, page_url)
        for entry in files:
            if entry.filename in wanted:
                return entry
    raise SourceError(
        f"no source archive of {project} {version} on the configured indexes ({', '.join(searched)})"
    )


def download(entry: IndexFile, dest_dir: Path) -> Path:
    """Download ``entry`` into ``dest_dir`` atomically, refusing it unless its sha256 matches the index."""
    if not entry.sha256:
        raise SourceError(f"the index lists no sha256 for {entry.filename}; refusing an unchecked download")
    dest_dir.mkdir(parents=True, exist_ok=True)
    body = _read(entry.url)
    if body is None:
        raise SourceError(f"{entry.url} is listed but absent")
    actual = hashlib.sha256(body).hexdigest()
    if actual != entry.sha256:
        raise SourceError(f"{entry.filename}: sha256 {actual} does not match the index's {entry.sha256}")
    fd, tmp = tempfile.mkstemp(prefix=f".{entry.filename}.", dir=dest_dir)
    with os.fdopen(fd, "wb") as fh:
        fh.write(body)
    target = dest_dir / entry.filename
    os.replace(tmp, target)
    return target


def download_sdist(
    project: str, version: str, dest_dir: Path, index_urls: Iterable[str] | None = None
) -> Path:
    """``project``'s ``version`` source archive from pip's configured indexes, checksum-verified."""
    urls = pip_index_urls() if index_urls is None else list(index_urls)
    return download(find_sdist(project, version, urls), dest_dir)
