"""Source archives from the package index pip is configured to use (PEP 503 simple pages).

:func:`download_sdist` finds ``PROJECT-VERSION.tar.gz`` on pip's index (then its extra indexes),
downloads it and checks it against the sha256 the index lists. ``pip download --no-binary`` cannot
be used for ncnn: its setup.py stamps the build date as the version, so pip discards the archive.
No index host is written here; the index comes from pip's own configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from edge.errors import EdgekitError

TIMEOUT_S = 60.0


class SourceError(EdgekitError):
    """No usable index or mirror, or a download that does not match its listed checksum."""


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


def unpack_cmake_tree(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` under ``dest`` and return the top-level folder holding a ``CMakeLists.txt``."""
    with tarfile.open(archive) as tar:
        try:
            tar.extractall(dest, filter="data")
        except TypeError:  # Python without extraction filters
            tar.extractall(dest)
    unpacked = [p for p in dest.iterdir() if (p / "CMakeLists.txt").is_file()]
    if not unpacked:
        raise SourceError(f"{archive.name} holds no CMake source tree")
    return unpacked[0]
