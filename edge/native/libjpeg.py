"""libjpeg-turbo for the native core: the Debian source package, fetched and built once per arch.

The Python runtime decodes JPEG with OpenCV, which bundles libjpeg-turbo; the native core decodes
with the same library and settings so both see the same pixels. The source is the Debian
``orig`` tarball from the mirror the host's apt sources use (:func:`edge.native.apt.debian_mirror`),
trusted along Debian's own chain: the suite's ``InRelease`` (signature checked with ``gpgv`` and the
archive keyring when both exist) lists the sha256 of ``main/source/Sources.xz``, which lists the
``.dsc``'s, which lists the ``orig`` tarball's. Only the static ``libjpeg.a`` and its headers are
built (no tools, no TurboJPEG API), into ``<cache>/<ncnn version>/<arch>/libjpeg-turbo/``.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from edge.native.apt import DEBIAN_SUITES, debian_mirror
from edge.native.cmake import Progress, build_command, generator, locked, publish_stage, run
from edge.native.sdist import SourceError, _read, unpack_cmake_tree

PACKAGE = "libjpeg-turbo"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
OS_RELEASE = Path("/etc/os-release")
HEADERS = ("jpeglib.h", "jerror.h", "jmorecfg.h")


def debian_suite(os_release: Path = OS_RELEASE) -> str:
    """This host's Debian release name (``VERSION_CODENAME``), else ``stable``."""
    try:
        fields = dict(line.split("=", 1) for line in os_release.read_text().splitlines() if "=" in line)
    except OSError:
        return "stable"
    name = fields.get("VERSION_CODENAME", "").strip().strip("\"'")
    return name if name in DEBIAN_SUITES else "stable"


def _fetch(url: str) -> bytes:
    body = _read(url)
    if body is None:
        raise SourceError(f"{url} is absent")
    return body


def _sha256_table(text: str) -> dict[str, str]:
    """``name -> sha256`` of a ``Checksums-Sha256:``/``SHA256:`` field (deb822 continuation lines)."""
    table: dict[str, str] = {}
    inside = False
    for line in text.splitlines():
        if re.match(r"^(Checksums-Sha256|SHA256):", line):
            inside = True
        elif inside and line[:1] in (" ", "\t"):
            parts = line.split()
            if len(parts) == 3:
                table[parts[2]] = parts[0].lower()
        else:
            inside = False
    return table


def _checked(body: bytes, sha256: str | None, what: str) -> bytes:
    if not sha256:
        raise SourceError(f"no sha256 listed for {what}; refusing an unchecked download")
    actual = hashlib.sha256(body).hexdigest()
    if actual != sha256:
        raise SourceError(f"{what}: sha256 {actual} does not match the listed {sha256}")
    return body


def release_text(mirror: str, suite: str) -> str:
    """The suite's ``InRelease``, its signature verified with ``gpgv`` when gpgv and the keyring exist."""
    body = _fetch(f"{mirror}/dists/{suite}/InRelease")
    if shutil.which("gpgv") and KEYRING.is_file():
        with tempfile.NamedTemporaryFile(suffix=".InRelease") as tmp:
            tmp.write(body)
            tmp.flush()
            proc = subprocess.run(
                ["gpgv", "--keyring", str(KEYRING), "--output", "-", tmp.name], capture_output=True
            )
        if proc.returncode != 0:
            raise SourceError(f"{mirror}/dists/{suite}/InRelease: bad signature ({KEYRING})")
        return proc.stdout.decode("utf-8", errors="replace")
    return body.decode("utf-8", errors="replace")


def source_paragraph(mirror: str, suite: str, package: str = PACKAGE) -> str:
    """``package``'s paragraph of the suite's ``main/source/Sources.xz`` (checked against InRelease)."""
    listed = _sha256_table(release_text(mirror, suite)).get("main/source/Sources.xz")
    index = _checked(_fetch(f"{mirror}/dists/{suite}/main/source/Sources.xz"), listed, "Sources.xz")
    for paragraph in lzma.decompress(index).decode("utf-8", errors="replace").split("\n\n"):
        if paragraph.startswith(f"Package: {package}\n"):
            return paragraph
    raise SourceError(f"no source package {package} in {suite} on {mirror}")


def download_orig(dest: Path, suite: str | None = None) -> tuple[Path, str]:
    """The checked ``orig`` tarball of libjpeg-turbo in ``dest`` and its upstream version."""
    suite = suite or debian_suite()
    mirror = debian_mirror(suite)
    paragraph = source_paragraph(mirror, suite)
    directory = re.search(r"^Directory:\s*(\S+)", paragraph, re.M)
    if directory is None:
        raise SourceError(f"the {PACKAGE} entry of {suite} names no Directory")
    files = _sha256_table(paragraph)
    dsc_name = next((name for name in files if name.endswith(".dsc")), None)
    if dsc_name is None:
        raise SourceError(f"the {PACKAGE} entry of {suite} lists no .dsc")
    base = f"{mirror}/{directory.group(1)}"
    dsc = _checked(_fetch(f"{base}/{dsc_name}"), files[dsc_name], dsc_name).decode("utf-8", "replace")
    origs = {n: s for n, s in _sha256_table(dsc).items() if re.search(r"\.orig\.tar\.\w+$", n)}
    if len(origs) != 1:
        raise SourceError(f"{dsc_name} lists {len(origs)} orig tarballs (expected one)")
    name, sha256 = origs.popitem()
    body = _checked(_fetch(f"{base}/{name}"), sha256, name)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / name
    target.write_bytes(body)
    return target, name.split("_", 1)[1].split(".orig.", 1)[0]


def ensure_source(root: Path, progress: Progress) -> Path:
    """libjpeg-turbo's source tree under ``root/src/`` (downloaded and unpacked once)."""
    found = sorted(p for p in (root / "src").glob(f"{PACKAGE}-*") if (p / "CMakeLists.txt").is_file())
    if found:
        return found[-1]
    with locked(root / "src.lock"):
        found = sorted(p for p in (root / "src").glob(f"{PACKAGE}-*") if (p / "CMakeLists.txt").is_file())
        if found:
            return found[-1]
        progress(f"downloading the {PACKAGE} source from the Debian mirror of apt's sources")
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{PACKAGE}-src.", dir=root) as tmp:
            archive, version = download_orig(Path(tmp))
            unpacked = unpack_cmake_tree(archive, Path(tmp) / "x")
            tree = root / "src" / f"{PACKAGE}-{version}"
            tree.parent.mkdir(parents=True, exist_ok=True)
            os.replace(unpacked, tree)
    return tree


def jpeg_built(home: Path) -> bool:
    """Whether ``home`` (an arch folder) holds a built libjpeg-turbo (a runner linked without it is stale)."""
    return (home / PACKAGE / "edgekit-libjpeg.json").is_file()


def cmake_options(arch: str, cross_toolchain: Path | None) -> list[str]:
    """Static ``libjpeg.a`` only. SIMD: NEON on ARM (bit-exact with the C code for the integer
    DCT, tested against OpenCV); none on x86, which would need nasm."""
    options = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DENABLE_SHARED=OFF",
        "-DENABLE_STATIC=ON",
        "-DWITH_TURBOJPEG=OFF",
        "-DWITH_JAVA=OFF",
        "-DCMAKE_POSITION_INDEPENDENT_CODE=ON",
        f"-DWITH_SIMD={'ON' if arch == 'aarch64' else 'OFF'}",
    ]
    if cross_toolchain is not None:
        options.append(f"-DCMAKE_TOOLCHAIN_FILE={cross_toolchain}")
    return options


def ensure_libjpeg(
    root: Path, arch: str, jobs: int, progress: Progress, cross_toolchain: Path | None
) -> Path:
    """The prefix (``include/``, ``lib/libjpeg.a``) of libjpeg-turbo for ``arch``, built when missing."""
    source = ensure_source(root, progress)
    home = root / arch
    prefix = home / PACKAGE
    options = cmake_options(arch, cross_toolchain)
    kept = [o for o in options if not o.startswith("-DCMAKE_TOOLCHAIN_FILE=")]  # its path is not content
    digest = hashlib.sha256("\n".join([source.name, *kept]).encode()).hexdigest()
    stamp = prefix / "edgekit-libjpeg.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("options_sha256") == digest:
        return prefix
    work = home / ".work" / PACKAGE
    stage = home / ".work" / f"{PACKAGE}-install"
    shutil.rmtree(stage, ignore_errors=True)
    log = home / "build.log"
    t0 = time.monotonic()
    progress(f"{arch}: building {source.name} (static libjpeg, log {log})")
    run(
        ["cmake", "-S", str(source), "-B", str(work), *generator(), *options],
        home,
        progress,
        f"{arch}: configuring {PACKAGE}",
        log,
    )
    run(build_command(work, jobs, "jpeg-static"), home, progress, f"{arch}: building {PACKAGE}", log)
    (stage / "lib").mkdir(parents=True)
    (stage / "include").mkdir()
    shutil.copyfile(work / "libjpeg.a", stage / "lib" / "libjpeg.a")
    shutil.copyfile(work / "jconfig.h", stage / "include" / "jconfig.h")
    for header in HEADERS:
        shutil.copyfile(source / header, stage / "include" / header)
    seconds = time.monotonic() - t0
    record = {
        "options_sha256": digest,
        "source": source.name,
        "build_seconds": round(seconds, 1),
        "jobs": jobs,
    }
    publish_stage(stage, prefix, work, "edgekit-libjpeg.json", record)
    progress(f"{arch}: {PACKAGE} built in {seconds:.0f} s")
    return prefix
