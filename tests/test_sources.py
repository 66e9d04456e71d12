"""Where build tooling downloads from: apt sources (one-line and deb822), pip's configured indexes and
their PEP 503 pages, served for real on loopback."""

from __future__ import annotations

import functools
import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks.published import runner_vs_cpp
from converters.sources import (
    SourceError,
    apt_sources,
    debian_mirror,
    download,
    download_sdist,
    find_sdist,
    parse_deb822_sources,
    parse_one_line_sources,
    parse_simple_page,
    pip_config,
    pip_default_index,
    pip_index_urls,
)

SOURCES_LIST = """\
# See sources.list(5)
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian bookworm main contrib
deb-src http://mirror.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main  # security
#deb http://old.example/debian bullseye main
deb cdrom:[Debian GNU/Linux 12]/ bookworm main
"""

DEB822 = """\
Types: deb deb-src
# a comment inside the paragraph
URIs: https://one.example/debian https://two.example/debian
Suites: trixie trixie-updates
Components: main non-free-firmware
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NdOOHwPIJlgPu6JDcKw/NZJPR8lsD3K87ZM18gzyQZJD+w
 -----END PGP PUBLIC KEY BLOCK-----

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: https://vendor.example/apt
Suites: nodistro
Components: main
"""


def test_one_line_sources_are_parsed_with_options_and_comments() -> None:
    entries = parse_one_line_sources(SOURCES_LIST)
    assert [(e.types, e.uris, e.suites, e.components) for e in entries] == [
        (("deb",), ("http://mirror.example/debian",), ("bookworm",), ("main", "contrib")),
        (("deb-src",), ("http://mirror.example/debian",), ("bookworm",), ("main",)),
        (("deb",), ("http://security.example/debian-security",), ("bookworm-security",), ("main",)),
        (("deb",), ("cdrom:[Debian GNU/Linux 12]/",), ("bookworm",), ("main",)),
    ]


def test_deb822_sources_keep_every_field_and_the_enabled_flag() -> None:
    one, disabled, vendor = parse_deb822_sources(DEB822)
    assert one.types == ("deb", "deb-src")
    assert one.uris == ("https://one.example/debian", "https://two.example/debian")
    assert one.suites == ("trixie", "trixie-updates") and one.components == ("main", "non-free-firmware")
    assert one.enabled and not disabled.enabled
    assert vendor.suites == ("nodistro",)


@pytest.fixture
def apt_root(tmp_path: Path) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    return tmp_path


def test_mirror_prefers_the_wanted_suite_then_any_debian_release(apt_root: Path) -> None:
    (apt_root / "sources.list.d" / "debian.sources").write_text(DEB822)
    (apt_root / "sources.list.d" / "vendor.list").write_text("deb http://vendor.example/apt stable-x main\n")
    (apt_root / "sources.list.d" / "old.list.disabled").write_text(
        "deb http://off.example/debian bookworm main\n"
    )
    assert len(apt_sources(apt_root)) == 4
    # no source serves bookworm (the disabled one does not count): a trixie mirror serves it too
    assert debian_mirror("bookworm", apt_root, environ={}) == "https://one.example/debian"
    (apt_root / "sources.list").write_text(SOURCES_LIST)
    assert debian_mirror("bookworm", apt_root, environ={}) == "http://mirror.example/debian"


def test_mirror_variable_wins_and_no_debian_source_is_a_clear_error(apt_root: Path) -> None:
    (apt_root / "sources.list.d" / "vendor.list").write_text("deb http://vendor.example/apt nodistro main\n")
    mirror = debian_mirror("bookworm", apt_root, environ={"EDGEKIT_DEBIAN_MIRROR": "http://mine.example/d/"})
    assert mirror == "http://mine.example/d"
    with pytest.raises(SourceError, match="set EDGEKIT_DEBIAN_MIRROR"):
        debian_mirror("bookworm", apt_root, environ={})


def test_this_hosts_mirror_comes_from_its_own_apt_sources() -> None:
    if not apt_sources():
        pytest.skip("this host has no apt sources")
    mirror = debian_mirror("bookworm", environ={})
    assert any(mirror in entry.uris or mirror + "/" in entry.uris for entry in apt_sources())


def test_pip_settings_follow_the_environment_then_its_configuration() -> None:
    config = {"global.index-url": "http://g.example/simple", "global.extra-index-url": "file:///a file:///b"}
    assert pip_index_urls(config, environ={}) == ["http://g.example/simple", "file:///a", "file:///b"]
    download_section = {**config, "download.index-url": "http://d.example/simple"}
    assert pip_index_urls(download_section, environ={})[0] == "http://d.example/simple"
    environ = {"PIP_INDEX_URL": "http://e.example/simple", "PIP_EXTRA_INDEX_URL": "http://x.example/simple"}
    assert pip_index_urls(config, environ) == ["http://e.example/simple", "http://x.example/simple"]
    assert pip_index_urls({}, environ={}) == [pip_default_index()]


def test_pip_config_is_read_from_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nindex-url = http://127.0.0.1:9/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    assert pip_config()["global.index-url"] == "http://127.0.0.1:9/simple"
    assert pip_index_urls(environ={})[0] == "http://127.0.0.1:9/simple"


def _sdist(version: str) -> bytes:
    """A small ``ncnn-VERSION.tar.gz`` with the layout of ncnn's source archive."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        body = b"// net.h\n"
        info = tarfile.TarInfo(f"ncnn-{version}/src/net.h")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def _write_index(root: Path, archive: bytes, version: str, listed_sha: str | None = None) -> None:
    """A PEP 503 index under ``root``: ``simple/ncnn/`` linking ``files/`` with relative URLs."""
    (root / "files").mkdir(parents=True)
    (root / "files" / f"ncnn-{version}.tar.gz").write_bytes(archive)
    (root / "files" / f"ncnn-{version}-cp311-cp311-linux_x86_64.whl").write_bytes(b"not this one")
    sha = listed_sha or hashlib.sha256(archive).hexdigest()
    page = root / "simple" / "ncnn"
    page.mkdir(parents=True)
    (page / "index.html").write_text(
        "<!DOCTYPE html><html><body><h1>Links for ncnn</h1>\n"
        f'<a href="../../files/ncnn-{version}-cp311-cp311-linux_x86_64.whl#sha256=00">'
        f"ncnn-{version}-cp311-cp311-linux_x86_64.whl</a><br/>\n"
        f'<a href="../../files/ncnn-{version}.tar.gz#sha256={sha}" data-requires-python="&gt;=3.8">'
        f"ncnn-{version}.tar.gz</a><br/>\n</body></html>\n"
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on loopback: (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_simple_page_links_are_absolute_with_their_sha256() -> None:
    html = '<a href="../../f/x-1.tar.gz#sha256=ABCD">x-1.tar.gz</a><a href="/y.whl">y.whl</a>'
    files = parse_simple_page(html, "http://i.example/simple/x/")
    assert [(f.filename, f.url, f.sha256) for f in files] == [
        ("x-1.tar.gz", "http://i.example/f/x-1.tar.gz", "abcd"),
        ("y.whl", "http://i.example/y.whl", None),
    ]


def test_sdist_found_on_the_second_index_and_checked(served: tuple[Path, str], tmp_path: Path) -> None:
    root, base = served
    archive = _sdist("1.0.20240410")
    _write_index(root / "b", archive, "1.0.20240410")
    (root / "a" / "simple").mkdir(parents=True)  # an index without ncnn: 404, next index
    indexes = [f"{base}/a/simple", f"{base}/b/simple/"]
    entry = find_sdist("ncnn", "1.0.20240410", indexes)
    assert entry.url == f"{base}/b/files/ncnn-1.0.20240410.tar.gz"
    path = download_sdist("ncnn", "1.0.20240410", tmp_path / "dl", indexes)
    assert path.read_bytes() == archive and path.name == "ncnn-1.0.20240410.tar.gz"
    with pytest.raises(SourceError, match=r"no source archive of ncnn 9\.9"):
        find_sdist("ncnn", "9.9", indexes)


def test_a_download_that_does_not_match_the_listed_sha256_is_refused(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    root, base = served
    _write_index(root, _sdist("1.0.1"), "1.0.1", listed_sha="0" * 64)
    entry = find_sdist("ncnn", "1.0.1", [f"{base}/simple"])
    with pytest.raises(SourceError, match="does not match"):
        download(entry, tmp_path / "dl")
    assert not list((tmp_path / "dl").iterdir())


def test_file_indexes_work_like_http_ones(tmp_path: Path) -> None:
    archive = _sdist("1.0.2")
    _write_index(tmp_path / "idx", archive, "1.0.2")
    path = download_sdist("ncnn", "1.0.2", tmp_path / "dl", [(tmp_path / "idx" / "simple").as_uri()])
    assert path.read_bytes() == archive


def test_runner_vs_cpp_fetches_ncnn_source_from_the_configured_index(
    served: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, base = served
    _write_index(root, _sdist("1.0.3"), "1.0.3")
    monkeypatch.setenv("PIP_INDEX_URL", f"{base}/simple")
    tree = runner_vs_cpp.fetch_source("1.0.3", tmp_path / "cache")
    assert (tree / "src" / "net.h").read_bytes() == b"// net.h\n"
    assert not list((tmp_path / "cache").glob("*.tar.gz"))  # the archive is removed once unpacked
