"""Build ncnn and the native runner for one architecture, once, into edgekit's cache.

Layout under ``~/.cache/edgekit/native/<ncnn version>/`` (``$EDGEKIT_NATIVE_CACHE`` overrides the
``native`` folder): ``src/ncnn-<version>/`` (the sdist of the installed ncnn wheel, shared by the
architectures), and per architecture ``<arch>/ncnn/`` (static libncnn + headers, trimmed to
:data:`edge.native.layers.KEPT_LAYERS`), ``<arch>/libjpeg-turbo/`` (static libjpeg from the Debian
source package, :mod:`edge.native.libjpeg`: the core decodes JPEG like OpenCV), ``<arch>/bin/edgekit-runner``
(static) and ``<arch>/build.json`` (what was built from what). A file lock per architecture makes concurrent
callers wait for one build; every result is installed by an atomic rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path

from edge.atomic import write_json
from edge.native.cmake import NativeBuildError, Progress, build_command, generator, locked, publish_stage, run
from edge.native.layers import KEPT_LAYERS, layer_options
from edge.native.libjpeg import ensure_libjpeg, jpeg_built
from edge.native.sdist import download_sdist, unpack_cmake_tree

ARCHES = ("host", "aarch64")
NATIVE_DIR = Path(__file__).resolve().parent
TOOLCHAIN = NATIVE_DIR / "toolchains" / "aarch64-linux-gnu.toolchain.cmake"
CACHE_VARIABLE = "EDGEKIT_NATIVE_CACHE"
RUNNER_NAME = "edgekit-runner"
CROSS_COMPILER = "aarch64-linux-gnu-g++"
#: the C++ sources whose content decides whether the runner must be rebuilt
CORE_GLOBS = (
    "CMakeLists.txt",
    "include/edgekit/*.h",
    "src/*.cpp",
    "src/*.h",
    "runner/*.cpp",
    "toolchains/*.cmake",
)


def ncnn_version() -> str:
    """Version of the installed ncnn wheel: the C++ sources built are that release's."""
    try:
        return metadata.version("ncnn")
    except metadata.PackageNotFoundError:
        raise NativeBuildError(
            "the ncnn Python package is not installed; its version picks the ncnn source"
        ) from None


def cache_root() -> Path:
    base = os.environ.get(CACHE_VARIABLE)
    return Path(base) if base else Path.home() / ".cache" / "edgekit" / "native"


def host_arch_name() -> str:
    """``uname -m`` of this machine as a build arch: x86_64 -> host, aarch64/arm64 -> aarch64."""
    machine = platform.machine().lower()
    return "aarch64" if machine in ("aarch64", "arm64") else "host"


def check_arch(arch: str) -> str:
    if arch not in ARCHES:
        raise NativeBuildError(f"unknown arch {arch!r} (expected one of {', '.join(ARCHES)})")
    return arch


def arch_dir(arch: str, version: str | None = None) -> Path:
    return cache_root() / (version or ncnn_version()) / check_arch(arch)


def runner_file(arch: str, version: str | None = None) -> Path:
    return arch_dir(arch, version) / "bin" / RUNNER_NAME


# --- what a build is made of ----------------------------------------------------------------------


def core_digest() -> str:
    """sha256 over the core's C++/CMake sources (names and contents)."""
    digest = hashlib.sha256()
    for pattern in CORE_GLOBS:
        for path in sorted(NATIVE_DIR.glob(pattern)):
            digest.update(path.relative_to(NATIVE_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def compiler_for(arch: str) -> str:
    return CROSS_COMPILER if arch == "aarch64" and host_arch_name() != "aarch64" else "c++"


def ncnn_cmake_options(source: Path, arch: str) -> list[str]:
    """ncnn's configuration: static, no Vulkan/tools/examples/benchmark/Python, trimmed layers.

    ``NCNN_RUNTIME_CPU`` stays on (ncnn's default) on every arch: on x86 the kernels for each ISA
    are compiled and picked at run time like the wheel's; on ARM the fp16 / dotprod / i8mm kernels.
    """
    options = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DNCNN_SHARED_LIB=OFF",
        "-DNCNN_VULKAN=OFF",
        "-DNCNN_BUILD_TOOLS=OFF",
        "-DNCNN_BUILD_EXAMPLES=OFF",
        "-DNCNN_BUILD_BENCHMARK=OFF",
        "-DNCNN_BUILD_TESTS=OFF",
        "-DNCNN_PYTHON=OFF",
        "-DNCNN_SIMPLEOCV=ON",
        "-DNCNN_OPENMP=ON",
        "-DNCNN_RUNTIME_CPU=ON",
        # ncnn stamps the configure date as its version unless told; say the wheel's release
        f"-DNCNN_VERSION={source.name.rsplit('.', 1)[-1]}",
        *layer_options(source),
    ]
    if arch == "aarch64" and host_arch_name() != "aarch64":
        options.append(f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}")
    return options


def options_digest(options: list[str]) -> str:
    """What decides the compiled ncnn (the toolchain path and the version label do not)."""
    cleaned = [o for o in options if not o.startswith(("-DCMAKE_TOOLCHAIN_FILE=", "-DNCNN_VERSION="))]
    return hashlib.sha256("\n".join(cleaned).encode()).hexdigest()


# --- tools ----------------------------------------------------------------------------------------


def check_tools(arch: str) -> None:
    if shutil.which("cmake") is None:
        raise NativeBuildError("cmake is not installed (apt-get install cmake)")
    compiler = compiler_for(arch)
    if shutil.which(compiler) is None:
        package = "g++-aarch64-linux-gnu" if compiler == CROSS_COMPILER else "g++"
        raise NativeBuildError(f"{compiler} is not installed (apt-get install {package})")


# --- the steps ------------------------------------------------------------------------------------


def ensure_source(version: str, progress: Progress) -> Path:
    """ncnn's source tree for ``version``, downloaded from pip's index and unpacked once."""
    root = cache_root() / version
    tree = root / "src" / f"ncnn-{version}"
    if (tree / "CMakeLists.txt").is_file():
        return tree
    with locked(root / "src.lock"):
        if (tree / "CMakeLists.txt").is_file():
            return tree
        progress(f"downloading the ncnn {version} source archive from pip's configured index")
        with tempfile.TemporaryDirectory(prefix=".ncnn-src.", dir=root) as tmp:
            unpacked = unpack_cmake_tree(download_sdist("ncnn", version, Path(tmp)), Path(tmp) / "x")
            tree.parent.mkdir(parents=True, exist_ok=True)
            os.replace(unpacked, tree)
    return tree


def ensure_ncnn(source: Path, arch: str, jobs: int, progress: Progress) -> Path:
    """The installed static ncnn for ``arch`` (built when missing or configured differently)."""
    home = source.parent.parent / arch
    prefix = home / "ncnn"
    options = ncnn_cmake_options(source, arch)
    digest = options_digest(options)
    stamp = prefix / "edgekit-ncnn.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("options_sha256") == digest:
        return prefix
    work = home / ".work" / "ncnn"  # kept between attempts: an interrupted build resumes
    stage = home / ".work" / "ncnn-install"
    shutil.rmtree(stage, ignore_errors=True)
    log = home / "build.log"
    t0 = time.monotonic()
    progress(f"{arch}: configuring ncnn ({len(KEPT_LAYERS)} layer types, log {log})")
    run(
        [
            "cmake",
            "-S",
            str(source),
            "-B",
            str(work),
            *generator(),
            f"-DCMAKE_INSTALL_PREFIX={stage}",
            *options,
        ],
        home,
        progress,
        f"{arch}: configuring ncnn",
        log,
    )
    run(build_command(work, jobs), home, progress, f"{arch}: building ncnn", log)
    run(["cmake", "--install", str(work)], home, progress, f"{arch}: installing ncnn", log)
    seconds = time.monotonic() - t0
    record = {
        "options_sha256": digest,
        "build_seconds": round(seconds, 1),
        "jobs": jobs,
        "layers": list(KEPT_LAYERS),
    }
    publish_stage(stage, prefix, work, "edgekit-ncnn.json", record)
    progress(f"{arch}: ncnn built in {seconds / 60:.1f} min")
    return prefix


def json_include(home: Path) -> list[str]:
    """nlohmann/json for the core: the host's header-only install, linked into a private folder.

    A cross build must not see the host's /usr/include, so only the ``nlohmann`` folder is exposed;
    without it, the core's CMakeLists fetches the same release itself.
    """
    for base in (Path("/usr/include"), Path("/usr/local/include")):
        if (base / "nlohmann" / "json.hpp").is_file():
            private = home / ".work" / "json-include"
            private.mkdir(parents=True, exist_ok=True)
            link = private / "nlohmann"
            if not link.exists():
                link.symlink_to(base / "nlohmann")
            return [f"-DEDGEKIT_JSON_INCLUDE_DIR={private}"]
    return []


def build_runner(prefix: Path, arch: str, jobs: int, progress: Progress, jpeg: Path | None = None) -> Path:
    """Compile the core and ``edgekit-runner`` against ``prefix``'s ncnn (and ``jpeg``'s libjpeg-turbo);
    install the binary atomically."""
    home = prefix.parent
    work = home / ".work" / "core"
    log = home / "build.log"
    options = [
        f"-Dncnn_DIR={prefix / 'lib' / 'cmake' / 'ncnn'}",
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DEDGEKIT_NCNN_VERSION={ncnn_version()}",
        *json_include(home),
        f"-DEDGEKIT_JPEG_DIR={jpeg or ''}",
    ]
    if arch == "aarch64" and host_arch_name() != "aarch64":
        options.append(f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}")
    t0 = time.monotonic()
    progress(f"{arch}: building {RUNNER_NAME}")
    run(
        ["cmake", "-S", str(NATIVE_DIR), "-B", str(work), *generator(), *options],
        home,
        progress,
        f"{arch}: configuring {RUNNER_NAME}",
        log,
    )
    run(build_command(work, jobs, RUNNER_NAME), home, progress, f"{arch}: building {RUNNER_NAME}", log)
    built = work / RUNNER_NAME
    target = home / "bin" / RUNNER_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{RUNNER_NAME}.", dir=target.parent)
    os.close(fd)
    shutil.copyfile(built, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    progress(f"{arch}: {RUNNER_NAME} built in {time.monotonic() - t0:.0f} s -> {target}")
    return target


def up_to_date(arch: str, version: str) -> bool:
    stamp = arch_dir(arch, version) / "build.json"
    if not (stamp.is_file() and runner_file(arch, version).is_file() and jpeg_built(arch_dir(arch, version))):
        return False
    try:
        return json.loads(stamp.read_text()).get("core_sha256") == core_digest()
    except (OSError, ValueError):
        return False


def build(
    arch: str, jobs: int | None = None, progress: Progress = lambda _: None, force: bool = False
) -> Path:
    """Build (or reuse) ncnn and ``edgekit-runner`` for ``arch``; the runner's path."""
    check_arch(arch)
    version = ncnn_version()
    if not force and up_to_date(arch, version):
        return runner_file(arch, version)
    check_tools(arch)
    jobs = jobs or os.cpu_count() or 1
    home = arch_dir(arch, version)
    with locked(home.parent / f"{arch}.lock"):
        if not force and up_to_date(arch, version):  # another process built it while we waited
            return runner_file(arch, version)
        source = ensure_source(version, progress)
        prefix = ensure_ncnn(source, arch, jobs, progress)
        cross = TOOLCHAIN if arch == "aarch64" and host_arch_name() != "aarch64" else None
        jpeg = ensure_libjpeg(source.parent.parent, arch, jobs, progress, cross)
        runner = build_runner(prefix, arch, jobs, progress, jpeg)
        write_json(
            home / "build.json",
            {
                "ncnn_version": version,
                "arch": arch,
                "core_sha256": core_digest(),
                "runner": f"bin/{RUNNER_NAME}",
            },
        )
    return runner
