"""A wheel of the checkout and a plain venv holding only its slim runtime dependencies.

The venv is isolated (no system site-packages). Its dependencies are the distributions the wheel
requires without extras, and theirs, linked from this interpreter's installed copies (no
download, same versions); edgekit itself is installed from the wheel with pip.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.assets import REPO_ROOT

BUILD_INPUTS = ("pyproject.toml", "README.md", "edge", "converters", "benchmarks")


def build_wheel(out_dir: Path) -> Path:
    """``pip wheel --no-deps`` of a clean copy of the checkout (no stale build/ or egg-info in it)."""
    source = out_dir / "source"
    for name in BUILD_INPUTS:
        if (REPO_ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(REPO_ROOT / name, source / name, ignore=ignore)
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w", str(out_dir)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    (wheel,) = out_dir.glob("edgekit-*.whl")
    return wheel


def wheel_metadata(wheel: Path) -> dict[str, list[str]]:
    """The wheel's METADATA headers, each as a list of values."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(zf.read(name).decode())
    headers: dict[str, list[str]] = {}
    for key, value in message.items():
        headers.setdefault(key, []).append(value)
    return headers


def runtime_requirements(wheel: Path) -> list[Requirement]:
    """The wheel's requirements without any extra (what ``pip install edgekit`` brings)."""
    requirements = [Requirement(r) for r in wheel_metadata(wheel).get("Requires-Dist", [])]
    return [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]


def dependency_closure(requirements: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Installed distributions satisfying ``requirements`` and, recursively, their own (no extras)."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(requirements)
    while todo:
        requirement = todo.pop()
        key = canonicalize_name(requirement.name)
        if key in found:
            continue
        found[key] = dist = metadata.distribution(requirement.name)
        for text in dist.requires or []:
            nested = Requirement(text)
            if nested.marker is None or nested.marker.evaluate({"extra": ""}):
                todo.append(nested)
    return found


def _link_distribution(dist: metadata.Distribution, site: Path) -> None:
    """Symlink a distribution's top-level packages, modules and dist-info into ``site``."""
    source = Path(str(dist.locate_file("")))
    tops = {Path(str(f)).parts[0] for f in dist.files or []}
    for top in sorted(tops - {"..", "__pycache__"}):
        if not (site / top).exists():
            (site / top).symlink_to(source / top)


def make_slim_venv(root: Path, wheel: Path) -> Path:
    """A plain venv with the wheel's runtime closure and the wheel itself; returns its bin/ directory."""
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(root)
    python = root / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    for dist in dependency_closure(runtime_requirements(wheel)).values():
        _link_distribution(dist, site)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return root / "bin"
