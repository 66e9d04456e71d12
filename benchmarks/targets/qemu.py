"""An emulated ARM64 board: QEMU user-mode, a Debian arm64 root and the package index's aarch64 wheels.

The root (``debootstrap --foreign`` from the host's own Debian mirror, or ``$EDGEKIT_DEBIAN_MIRROR``;
packages unpacked with ``dpkg -x``) and the aarch64 ``ncnn``/``numpy`` wheels (from pip's configured
index) are built once into the cache directory (``$EDGEKIT_QEMU_ROOT``, default
``~/.cache/edgekit/qemu-aarch64``), atomically: built in a temporary sibling, renamed into place,
guarded by a lock so parallel runs wait instead of building twice.
Timings on this target are emulated; outputs are real ARM ncnn outputs.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from benchmarks.targets.base import TargetError, TimingDefaults
from benchmarks.targets.local import LocalTarget
from converters.sources import SourceError, debian_mirror
from edge.env import env_path

SUITE = "bookworm"  # Debian 12: python3.11, matching the cp311 wheels below
PYTHON_TAG = "3.11"
READY = "edgekit-qemu-root.json"
FIX_TOOLS = "apt-get install -y qemu-user-static debootstrap"


def cache_dir() -> Path:
    """Where the emulated board lives between runs."""
    return env_path("EDGEKIT_QEMU_ROOT") or Path.home() / ".cache" / "edgekit" / "qemu-aarch64"


def _tool(name: str) -> str:
    exe = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if exe is None:
        raise TargetError(f"{name} is not installed; run `{FIX_TOOLS}`")
    return exe


def _check(argv: list[str], what: str, timeout: float) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise TargetError(f"{what} took more than {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
        raise TargetError(f"{what} failed: {' / '.join(tail)}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_board(cache: Path | None = None, progress=None) -> Path:
    """The cached emulated board directory (``root/`` and ``site/``), built on first use."""
    cache = (cache or cache_dir()).absolute()
    if (cache / READY).is_file():
        return cache
    say = progress or (lambda _m: None)
    with _locked(cache.with_name(cache.name + ".lock")):
        if (cache / READY).is_file():  # built by someone else while we waited
            return cache
        stage = Path(tempfile.mkdtemp(prefix=f".{cache.name}.", suffix=".partial", dir=cache.parent))
        try:
            _build_board(stage, say)
            if cache.exists():  # an incomplete leftover without READY
                shutil.rmtree(cache)
            os.replace(stage, cache)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    return cache


def _build_board(stage: Path, say) -> None:
    root, site, wheels = stage / "root", stage / "site", stage / "wheels"
    try:
        mirror = debian_mirror(SUITE)
    except SourceError as exc:
        raise TargetError(str(exc)) from None
    _tool("qemu-aarch64-static")
    say(f"debootstrap arm64 {SUITE} (first use only)")
    _check(
        [_tool("debootstrap"), "--arch=arm64", "--foreign", "--variant=minbase", "--include=python3",
         SUITE, str(root), mirror],
        "debootstrap", timeout=900,
    )  # fmt: skip
    archives = root / "var" / "cache" / "apt" / "archives"
    for deb in sorted(archives.glob("*.deb")):
        _check(["dpkg", "-x", str(deb), str(root)], f"dpkg -x {deb.name}", timeout=300)
        deb.unlink()
    if not (root / "usr" / "bin" / f"python{PYTHON_TAG}").exists():
        raise TargetError(f"the arm64 root has no python{PYTHON_TAG}")
    say("downloading aarch64 ncnn and numpy wheels")
    ncnn_req = _ncnn_requirement()
    _check(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
         PYTHON_TAG, "--implementation", "cp", "--platform", "manylinux_2_28_aarch64", "--platform",
         "manylinux2014_aarch64", "--platform", "manylinux_2_17_aarch64", "-d", str(wheels), ncnn_req,
         "numpy<2.3"],
        "pip download of the aarch64 wheels", timeout=600,
    )  # fmt: skip
    site.mkdir()
    names = []
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(site)
        names.append(wheel.name)
    shutil.rmtree(wheels)
    info = {"suite": SUITE, "python": PYTHON_TAG, "wheels": names}
    (stage / READY).write_text(json.dumps(info, indent=2) + "\n")


def _ncnn_requirement() -> str:
    """The host's ncnn version, so emulated and host outputs come from the same ncnn."""
    try:
        return f"ncnn=={importlib.metadata.version('ncnn')}"
    except importlib.metadata.PackageNotFoundError:
        return "ncnn"


def _check_cpu(qemu: str, cpu: str) -> None:
    """A clear error for a CPU model this QEMU does not emulate."""
    listing = subprocess.run([qemu, "-cpu", "help"], capture_output=True, text=True, timeout=30).stdout
    known = [line.split()[0] for line in listing.splitlines()[1:] if line.strip()]
    if known and cpu not in known:
        raise TargetError(f"QEMU emulates no CPU {cpu!r}; choose one of: {', '.join(known)}")


class QemuTarget(LocalTarget):
    """``qemu-aarch64[:CPU]``: runs commands under ``qemu-aarch64-static -cpu CPU`` in a host temp dir.

    ``max`` (the default) has every ARMv8.x extension, so ncnn's fp16-arithmetic and dotprod
    kernels run (as on a Raspberry Pi 5 or a recent phone); ``cortex-a72`` is a Raspberry Pi 4
    class core (NEON, fp16 storage only). The Debian root is built on first use by a program that
    needs it (``python3``): the static native ``edgekit-runner`` runs with no root filesystem.
    """

    emulated = True
    workdir_prefix = "edgekit-bench-qemu-"
    #: an emulated inference takes seconds (11-38 s for NanoDet-Plus-m 416): the figures only
    #: prove the ARM code paths, so a few runs at one thread are enough
    timing_defaults = TimingDefaults(loops=3, warmup=1, threads=(1,))

    def __init__(self, cache: Path | None = None, cpu: str = "max", name: str = "qemu-aarch64") -> None:
        super().__init__(name)
        self.cache = cache
        self.cpu = cpu
        self._board: Path | None = None

    def open(self) -> None:
        self._qemu = _tool("qemu-aarch64-static")
        _check_cpu(self._qemu, self.cpu)
        super().open()

    def machine(self) -> str:
        return "aarch64"

    def board(self) -> Path:
        """The Debian arm64 root and wheels, built on first use: a static binary needs neither."""
        if self._board is None:
            self._board = ensure_board(self.cache)
        return self._board

    def _resolve(self, program: str) -> str:
        if "/" in program:  # a pushed file, e.g. the static native runner
            return program
        root = self.board() / "root"
        if program == "python3":
            return str(root / "usr" / "bin" / f"python{PYTHON_TAG}")
        for d in ("usr/bin", "bin", "usr/sbin", "sbin"):
            if (root / d / program).exists():
                return str(root / d / program)
        return program

    def command(self, argv: list[str]) -> tuple[list[str], dict[str, str]]:
        if self._workdir is None:
            raise TargetError(f"{self.name} is not open")
        program = self._resolve(argv[0])
        if not Path(program).exists():
            raise FileNotFoundError(program)
        env = {**os.environ, "QEMU_CPU": self.cpu, "PYTHONDONTWRITEBYTECODE": "1"}
        if self._board is not None:  # dynamically linked programs of the root need its loader
            env |= {"QEMU_LD_PREFIX": str(self._board / "root"), "PYTHONPATH": str(self._board / "site")}
        return [self._qemu, program, *argv[1:]], env
