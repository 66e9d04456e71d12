"""The wheel: what it holds, what it requires, and a slim runtime install that detects and benches.

A plain venv gets only the wheel's runtime dependencies (no extras): ``detect`` and
``bench --target local`` work there, with the same detections as the full install, while
``convert``, ``eval`` and ``bench --plot`` say in one line which extra they need.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.assets import require_asset
from tests.support.cli import run_edgekit
from tests.support.slim_venv import build_wheel, make_slim_venv, runtime_requirements, wheel_metadata

pytestmark = pytest.mark.slow  # builds a wheel and a venv

SLIM = {"ncnn", "numpy", "opencv-python-headless", "typer", "rich", "jsonschema"}
EXTRAS = {
    "convert": {"onnx", "onnxsim", "onnxruntime"},
    "eval": {"pycocotools"},
    "plot": {"matplotlib"},
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def slim_bin(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_slim_venv(tmp_path_factory.mktemp("venv") / "slim", wheel)


def test_wheel_ships_the_product_not_the_published_scripts(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"edge", "converters", "benchmarks"}
    assert not [n for n in names if n.startswith("benchmarks/published")]
    assert not [n for n in names if n.startswith("tests/")]
    for module in ("edge/board/runner.py", "edge/cli.py", "converters/sources.py", "benchmarks/harness.py"):
        assert module in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[edgekit.commands]" in text and "edgekit = edge.cli:main" in text


def test_runtime_requirements_are_slim_and_extras_hold_the_rest(wheel: Path) -> None:
    runtime = {canonicalize_name(r.name) for r in runtime_requirements(wheel)}
    assert runtime <= SLIM and SLIM - {"jsonschema"} <= runtime
    meta = wheel_metadata(wheel)
    assert set(meta["Provides-Extra"]) >= {*EXTRAS, "all", "dev"}

    def names(extra: str) -> set[str]:
        reqs = [Requirement(r) for r in meta["Requires-Dist"]]
        return {
            canonicalize_name(r.name)
            for r in reqs
            if r.marker is not None
            and r.marker.evaluate({"extra": extra})
            and not r.marker.evaluate({"extra": ""})
        }

    for extra, wanted in EXTRAS.items():
        assert names(extra) == wanted
    assert names("all") == {"edgekit"}  # edgekit[convert,eval,plot]
    assert names("dev") == {"edgekit", "pytest", "hypothesis", "ruff", "import-linter"}


def _run(bin_dir: Path, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", COLUMNS="200")
    return subprocess.run(
        [str(bin_dir / args[0]), *map(str, args[1:])], capture_output=True, text=True, cwd=cwd, env=env,
        timeout=600,
    )  # fmt: skip


def test_slim_venv_lacks_the_extras(slim_bin: Path, tmp_path: Path) -> None:
    probe = "import importlib.util as u, edge; print(edge.__file__, [m for m in {} if u.find_spec(m)])"
    proc = _run(slim_bin, "python", "-c", probe.format(sorted(set().union(*EXTRAS.values()))), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    location, found = proc.stdout.split(" ", 1)
    assert str(slim_bin.parent) in location  # edgekit from the wheel, not the checkout
    assert found.strip() == "[]"


def test_slim_install_detects_like_the_full_install(slim_bin: Path, tmp_path: Path) -> None:
    param = require_asset("models/ncnn/nanodet-plus-m_416-clsdis/model.param")
    image = require_asset("data/images/bus.jpg")
    slim = _run(slim_bin, "edgekit", "detect", param, image, "-o", tmp_path / "slim", "--json", cwd=tmp_path)
    assert slim.returncode == 0, slim.stderr
    full = run_edgekit("detect", param, image, "-o", tmp_path / "full", "--json")
    assert full.returncode == 0, full.stderr
    slim_results, full_results = json.loads(slim.stdout)["results"], json.loads(full.stdout)["results"]
    assert slim_results[0]["detections"] and [r["detections"] for r in slim_results] == [
        r["detections"] for r in full_results
    ]


def test_slim_install_benches_locally(slim_bin: Path, tmp_path: Path) -> None:
    param = require_asset("models/ncnn/nanodet-plus-m_416-int8/model.param")
    proc = _run(slim_bin, "edgekit", "bench", param, "--target", "local", "--shape", "3,416,416",
                "--threads", "1", "--loops", "2", "--warmup", "1", "--json", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["errors"] == []
    assert [(r["target"], r["precision"]) for r in report["results"]] == [("local", "int8")]
    assert report["results"][0]["latency_ms"]["median"] > 0


@pytest.mark.parametrize(
    ("args", "extra", "what"),
    [
        (("convert", "model.onnx", "-o", "build"), "convert", "edgekit convert"),
        (("eval", "build", "--coco", "ann.json", "--images", "images"), "eval", "edgekit eval"),
        (("bench", "model.param", "--plot", "bench.png"), "plot", "edgekit bench --plot"),
    ],
)
def test_commands_needing_an_extra_say_which_in_one_line(
    slim_bin: Path, tmp_path: Path, args: tuple[str, ...], extra: str, what: str
) -> None:
    proc = _run(slim_bin, "edgekit", *args, cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.strip() == f"error: {what} needs the '{extra}' extra: pip install 'edgekit[{extra}]'"
