"""Where the native runner for an architecture is, building it on demand.

Other layers (bench targets, ``detect --target``) call :func:`runner_path`; the build itself is
:func:`edge.native.build.build` (cached, locked, so concurrent callers share one build).
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable
from pathlib import Path

from edge.native.build import ARCHES, NativeBuildError, build, ncnn_version, runner_file, up_to_date

#: ``uname -m`` values and the build arch each runs
MACHINE_ARCH = {"aarch64": "aarch64", "arm64": "aarch64", "armv8l": "aarch64"}


def _stderr(message: str) -> None:
    sys.stderr.write(f"[edgekit native] {message}\n")
    sys.stderr.flush()


def arch_for_machine(machine: str) -> str:
    """The build arch for a ``uname -m`` answer: aarch64/arm64 -> "aarch64"; this host's machine -> "host"."""
    m = machine.strip().lower()
    if m in MACHINE_ARCH:
        return "host" if platform.machine().lower() in MACHINE_ARCH else MACHINE_ARCH[m]
    if m == platform.machine().lower():
        return "host"
    raise NativeBuildError(f"no native runner for machine {machine!r} (edgekit builds {', '.join(ARCHES)})")


def runner_path(arch: str, build: bool = True, progress: Callable[[str], None] = _stderr) -> Path:
    """Path of ``edgekit-runner`` for ``arch`` ("host" or "aarch64"), built first when missing or stale.

    With ``build=False`` a missing runner is an error telling the user to run ``edgekit native build``.
    """
    if arch not in ARCHES:
        raise NativeBuildError(f"unknown arch {arch!r} (expected one of {', '.join(ARCHES)})")
    version = ncnn_version()
    if up_to_date(arch, version):
        return runner_file(arch, version)
    if not build:
        raise NativeBuildError(
            f"the native runner for {arch} is not built (or is stale); run `edgekit native build --arch {arch}`"
        )
    return _build(arch, progress)


def _build(arch: str, progress: Callable[[str], None]) -> Path:
    return build(arch, progress=progress)
