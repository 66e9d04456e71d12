"""Build (once, cached) and run ``bundle-host``: the Android demo's asset loader + native core on this host.

The program (``tests/support/android_host/``, with AddressSanitizer and UBSan) compiles ``android-demo/app/src/main/cpp/bundle_assets.cpp``
and edgekit's native core (``edge/native``) with the host compiler against the host ncnn that
``edgekit native build`` caches. It is cached under ``~/.cache/edgekit/android-host/<digest>/``, the
digest covering the app's C++ sources, this program and the core's sources, so an edit rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST_DIR = Path(__file__).resolve().with_name("android_host")
APP_CPP = REPO_ROOT / "android-demo" / "app" / "src" / "main" / "cpp"
#: the app's C++ that runs without Android (the JNI glue and the AAssetManager reader do not)
HOST_SOURCES = ("bundle_assets.h", "bundle_assets.cpp")
PROGRAM = "bundle-host"
#: the program (core included) is built with AddressSanitizer and UBSan: a memory error fails the test
SANITIZE = "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
#: OpenMP's thread pool is never freed at exit: leak reports would be noise
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0"}


def cache_dir() -> Path:
    base = os.environ.get("EDGEKIT_NATIVE_CACHE")
    root = Path(base).parent if base else Path.home() / ".cache" / "edgekit"
    return root / "android-host"


def sources_digest() -> str:
    from edge.native.build import core_digest

    digest = hashlib.sha256(core_digest().encode())
    for path in [*(APP_CPP / name for name in HOST_SOURCES), *sorted(HOST_DIR.iterdir())]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build_program(jobs: int = 2) -> Path:
    """The cached ``bundle-host`` for the current sources, built when missing."""
    from edge.native.build import generator, json_include
    from edge.native.locate import runner_path

    home = cache_dir() / sources_digest()
    program = home / PROGRAM
    if program.is_file():
        return program
    ncnn_prefix = Path(runner_path("host")).parent.parent / "ncnn"  # builds host ncnn + core on first use
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=home.parent) as tmp:
        work = Path(tmp)
        configure = [
            "cmake", "-S", str(HOST_DIR), "-B", str(work), *generator(), "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
            f"-DCMAKE_CXX_FLAGS={SANITIZE}",
            f"-Dncnn_DIR={ncnn_prefix / 'lib' / 'cmake' / 'ncnn'}",
            f"-DEDGEKIT_APP_CPP={APP_CPP}", f"-DEDGEKIT_NATIVE_DIR={REPO_ROOT / 'edge' / 'native'}",
            *json_include(work),
        ]  # fmt: skip
        for cmd in (configure, ["cmake", "--build", str(work), "--parallel", str(jobs), "--target", PROGRAM]):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(
                    f"{' '.join(cmd[:3])} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
                )
        staged = home.with_name(home.name + ".partial")
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir()
        shutil.copy2(work / PROGRAM, staged / PROGRAM)
        os.replace(staged, home)
    return program


def run_program(program: Path, *args: str, timeout: float = 600) -> tuple[int, dict[str, Any]]:
    """(exit code, the program's one JSON line)."""
    env = {**os.environ, **SANITIZER_ENV}
    proc = subprocess.run(
        [str(program), *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if "Sanitizer" in proc.stderr:
        raise AssertionError(f"{PROGRAM} hit a sanitizer error:\n{proc.stderr[-4000:]}")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise AssertionError(f"{PROGRAM} printed nothing (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return proc.returncode, json.loads(lines[-1])
