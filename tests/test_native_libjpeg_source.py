"""libjpeg-turbo's source for the native build: Debian's chain of checksums, on a mirror in a folder.

The mirror is a ``file:`` URL given through ``$EDGEKIT_DEBIAN_MIRROR`` (the same lookup debootstrap
uses); ``InRelease`` lists ``Sources.xz``'s sha256, which lists the ``.dsc``'s, which lists the
``orig`` tarball's. Any link that does not match is refused; an unsigned ``InRelease`` is refused
where ``gpgv`` and the Debian archive keyring exist (real gpgv).
"""

from __future__ import annotations

import hashlib
import io
import lzma
import shutil
import tarfile
from pathlib import Path

import pytest

from edge.native import libjpeg
from edge.native.sdist import SourceError

SUITE = "bookworm"
POOL = "pool/main/libj/libjpeg-turbo"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_mirror(root: Path, orig_sha: str | None = None, dsc_sha: str | None = None) -> Path:
    """A Debian mirror tree with one source package; ``*_sha`` override what is listed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        body = b"cmake_minimum_required(VERSION 3.16)\n"
        info = tarfile.TarInfo("libjpeg-turbo-9.8.7/CMakeLists.txt")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    orig = buf.getvalue()
    dsc = (
        "Format: 3.0 (quilt)\nSource: libjpeg-turbo\nVersion: 1:9.8.7-1\nChecksums-Sha256:\n"
        f" {orig_sha or _sha(orig)} {len(orig)} libjpeg-turbo_9.8.7.orig.tar.gz\n"
        " 00 1 libjpeg-turbo_9.8.7-1.debian.tar.xz\n"
    ).encode()
    sources = (
        "Package: other\nVersion: 1\n\n"
        "Package: libjpeg-turbo\nVersion: 1:9.8.7-1\nChecksums-Sha256:\n"
        f" {dsc_sha or _sha(dsc)} {len(dsc)} libjpeg-turbo_9.8.7-1.dsc\n"
        f" {_sha(orig)} {len(orig)} libjpeg-turbo_9.8.7.orig.tar.gz\n"
        f"Directory: {POOL}\nPriority: optional\n"
    ).encode()
    index = lzma.compress(sources)
    release = f"Suite: {SUITE}\nSHA256:\n {_sha(index)} {len(index)} main/source/Sources.xz\n".encode()
    (root / POOL).mkdir(parents=True)
    (root / POOL / "libjpeg-turbo_9.8.7.orig.tar.gz").write_bytes(orig)
    (root / POOL / "libjpeg-turbo_9.8.7-1.dsc").write_bytes(dsc)
    (root / "dists" / SUITE / "main" / "source").mkdir(parents=True)
    (root / "dists" / SUITE / "main" / "source" / "Sources.xz").write_bytes(index)
    (root / "dists" / SUITE / "InRelease").write_bytes(release)
    return root


@pytest.fixture
def unsigned_ok(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Test mirrors are unsigned: no keyring, so InRelease is read without gpgv."""
    monkeypatch.setattr(libjpeg, "KEYRING", tmp_path / "no-keyring.gpg")


def test_the_orig_tarball_is_fetched_through_the_checksum_chain(tmp_path, monkeypatch, unsigned_ok):
    mirror = make_mirror(tmp_path / "mirror")
    monkeypatch.setenv("EDGEKIT_DEBIAN_MIRROR", mirror.as_uri())
    archive, version = libjpeg.download_orig(tmp_path / "dl", SUITE)
    assert version == "9.8.7" and archive.name == "libjpeg-turbo_9.8.7.orig.tar.gz"
    tree = libjpeg.ensure_source(tmp_path / "cache", lambda _: None)
    assert tree.name == "libjpeg-turbo-9.8.7" and (tree / "CMakeLists.txt").is_file()


@pytest.mark.parametrize("broken", ["orig", "dsc", "sources"])
def test_a_link_that_does_not_match_is_refused(tmp_path, monkeypatch, unsigned_ok, broken):
    wrong = "0" * 64
    mirror = make_mirror(
        tmp_path / "mirror",
        orig_sha=wrong if broken == "orig" else None,
        dsc_sha=wrong if broken == "dsc" else None,
    )
    if broken == "sources":
        index = mirror / "dists" / SUITE / "main" / "source" / "Sources.xz"
        index.write_bytes(lzma.compress(b"Package: libjpeg-turbo\n"))
    monkeypatch.setenv("EDGEKIT_DEBIAN_MIRROR", mirror.as_uri())
    with pytest.raises(SourceError, match="sha256"):
        libjpeg.download_orig(tmp_path / "dl", SUITE)
    assert not (tmp_path / "dl").exists()


def test_an_unsigned_release_is_refused_where_the_keyring_exists(tmp_path, monkeypatch):
    if shutil.which("gpgv") is None or not libjpeg.KEYRING.is_file():
        pytest.skip("gpgv or the Debian archive keyring is not installed")
    monkeypatch.setenv("EDGEKIT_DEBIAN_MIRROR", make_mirror(tmp_path / "mirror").as_uri())
    with pytest.raises(SourceError, match="bad signature"):
        libjpeg.download_orig(tmp_path / "dl", SUITE)


def test_the_suite_is_the_hosts_debian_release(tmp_path):
    release = tmp_path / "os-release"
    release.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n')
    assert libjpeg.debian_suite(release) == "bookworm"
    release.write_text("ID=ubuntu\nVERSION_CODENAME=noble\n")
    assert libjpeg.debian_suite(release) == "stable"
    assert libjpeg.debian_suite(tmp_path / "absent") == "stable"
