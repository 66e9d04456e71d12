"""The layers are enforced: ``lint-imports`` keeps the real tree and catches deliberate violations,
and the CLI finds its commands only through the ``edgekit.commands`` entry points."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import entry_points
from pathlib import Path

import grimp
import pytest

from tests.support.assets import REPO_ROOT
from tests.support.cli import run_edgekit

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
LINT_IMPORTS = Path(sysconfig.get_path("scripts")) / "lint-imports"
PACKAGES = ("edge", "converters", "benchmarks")
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
CONTRACTS = {c["id"]: c["name"] for c in PYPROJECT["tool"]["importlinter"]["contracts"]}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the tree at ``root`` (its packages first on the path)."""
    if not LINT_IMPORTS.exists():
        pytest.fail("lint-imports is not installed (it is in the dev extra)")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def contract_states(output: str) -> dict[str, str]:
    """Contract name -> KEPT / BROKEN, from lint-imports' summary (names may wrap over lines)."""
    summary = " ".join(output.split())
    return {
        key: match.group(1)
        for key, name in CONTRACTS.items()
        if (match := re.search(re.escape(name) + r".*? (KEPT|BROKEN)", summary))
    }


def test_real_tree_keeps_every_contract() -> None:
    proc = lint_imports(REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert contract_states(proc.stdout) == dict.fromkeys(CONTRACTS, "KEPT")


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """A copy of the three packages and pyproject.toml, free to break."""
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}  # deliberate violation\n")


MUTATIONS = {
    # name: (contract it breaks, module the report must name, change)
    "edge imports converters": (
        "layers",
        "edge -> converters",
        lambda root: _append(root / "edge/__init__.py", "import converters"),
    ),
    "converters imports benchmarks": (
        "layers",
        "converters -> benchmarks",
        lambda root: _append(root / "converters/__init__.py", "import benchmarks"),
    ),
    "a cycle inside edge": (
        "edge-acyclic",
        "_cycle_",
        lambda root: (
            (root / "edge/_cycle_a.py").write_text("import edge._cycle_b\n"),
            (root / "edge/_cycle_b.py").write_text("import edge._cycle_a\n"),
        ),
    ),
    "the board runner imports the rest of edge": (
        "board-runner-standalone",
        "edge.board -> edge.errors",
        lambda root: _append(root / "edge/board/__init__.py", "import edge.errors"),
    ),
    "the board runner imports a non-stdlib package": (
        "board-runner-standalone",
        "edge.board -> typer",
        lambda root: _append(root / "edge/board/__init__.py", "import typer"),
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_wrong_import_breaks_its_contract(mutation: str, tree_copy: Path) -> None:
    contract, culprit, mutate = MUTATIONS[mutation]
    mutate(tree_copy)
    proc = lint_imports(tree_copy)
    assert proc.returncode != 0, proc.stdout
    assert contract_states(proc.stdout)[contract] == "BROKEN"
    broken_section = proc.stdout.split(CONTRACTS[contract])[-1]
    assert culprit in broken_section, proc.stdout


def test_board_runner_imports_only_the_standard_library_ncnn_and_numpy() -> None:
    graph = grimp.build_graph(*PACKAGES, include_external_packages=True, cache_dir=None)
    board = {m for m in graph.modules if m == "edge.board" or m.startswith("edge.board.")}
    imported = {i for m in board for i in graph.find_modules_directly_imported_by(m)} - board
    assert imported, "the board runner imports nothing?"
    assert {i.split(".")[0] for i in imported} <= set(sys.stdlib_module_names) | {"ncnn", "numpy"}


def _help_commands(text: str) -> set[str]:
    """Command names in the Commands panel of Typer's help."""
    panel = text.split("Commands", 1)[1]
    return set(re.findall(r"^\W+([a-z][\w-]*)\s{2,}\S", panel, flags=re.MULTILINE))


def _help(env: dict[str, str] | None = None) -> set[str]:
    proc = run_edgekit("--help", env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return _help_commands(proc.stdout)


def test_help_lists_exactly_the_declared_commands() -> None:
    declared = PYPROJECT["project"]["entry-points"]["edgekit.commands"]
    installed = {entry.name for entry in entry_points(group="edgekit.commands")}
    assert installed == set(declared), "reinstall: the installed entry points are stale"
    assert _help() == set(declared)


def test_a_command_declared_by_another_distribution_is_found(tmp_path: Path) -> None:
    """No hard-coded command list: a plug-in's entry point adds a command."""
    (tmp_path / "edgekit_hello.py").write_text(
        "import typer\n\n\ndef hello(name: str) -> None:\n"
        '    """Say hello."""\n    typer.echo(f"hello {name}")\n'
    )
    info = tmp_path / "edgekit_hello-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edgekit-hello\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[edgekit.commands]\nhello = edgekit_hello:hello\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    assert _help(env) == {entry.name for entry in entry_points(group="edgekit.commands")} | {"hello"}
    proc = run_edgekit("hello", "board", env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello board"
