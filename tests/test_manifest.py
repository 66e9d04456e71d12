"""Manifest v2: schema-validated reads with one-line errors, v1 manifests migrated in memory,
and a real v1 manifest of the previous release still driving detect, eval and bench."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from conftest import require_asset

from edge.checksums import sha256_file
from edge.errors import EdgekitError
from edge.manifest import SCHEMA_FILE, load_manifest, manifest_from_dict, manifest_to_dict
from tests.support.cli import run_edgekit

V1_FIXTURE = Path(__file__).parent / "golden" / "manifest-v1-nanodet-plus-m_416.json"
IMAGES = ("bus.jpg", "zidane.jpg")


@pytest.fixture(scope="module")
def v1_build(nanodet_plus_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The current build's model files beside the previous release's v1 manifest of the same ONNX."""
    build = tmp_path_factory.mktemp("v1") / "nanodet-plus-m_416-v1"
    build.mkdir()
    for name in ("model.fp32.param", "model.fp32.bin", "model.fp16.param", "model.fp16.bin"):
        shutil.copyfile(nanodet_plus_build / name, build / name)
    shutil.copyfile(V1_FIXTURE, build / "manifest.json")
    return build


def test_v1_fixture_checksums_match_todays_conversion(v1_build: Path) -> None:
    """pnnx is deterministic: the v1 manifest describes today's files byte for byte."""
    v1 = json.loads(V1_FIXTURE.read_text())
    assert v1["schema"] == "edgekit.manifest/1"
    for b in v1["builds"].values():
        assert sha256_file(v1_build / b["param"]) == b["param_sha256"]
        assert sha256_file(v1_build / b["bin"]) == b["bin_sha256"]


def test_v1_is_migrated_in_memory() -> None:
    m = manifest_from_dict(json.loads(V1_FIXTURE.read_text()))
    assert m.schema == "edgekit.manifest/2"
    assert m.source["file"] == "nanodet-plus-m_416.onnx" and "path" not in m.source
    assert (m.decoder.family, m.decoder.preset, m.decoder.layout) == ("nanodet", "nanodet-plus", "auto")
    assert m.decoder.config.strides == (8, 16, 32, 64) and m.decoder.config.class_scores is None
    assert m.decoder.category_ids[0] == 1 and len(m.decoder.category_ids) == 80
    assert set(m.artifacts) == {"ncnn"} and m.build("fp16").bin == "model.fp16.bin"
    assert m.build("fp32").parity.inputs == "random:0"
    manifest_from_dict(manifest_to_dict(m))  # the migrated form is a valid v2 manifest


def test_v1_manifest_drives_detect_eval_and_bench(
    v1_build: Path, nanodet_plus_build: Path, tmp_path: Path
) -> None:
    images = require_asset("data/images")
    inputs = [images / name for name in IMAGES]
    old = run_edgekit("detect", v1_build, *inputs, "-o", tmp_path / "old", "--json")
    new = run_edgekit("detect", nanodet_plus_build, *inputs, "-o", tmp_path / "new", "--json")
    assert old.returncode == 0 and new.returncode == 0, old.stderr + new.stderr
    old_data, new_data = json.loads(old.stdout), json.loads(new.stdout)
    assert old_data["layout"] == new_data["layout"] == "nanodet-single"
    assert [r["detections"] for r in old_data["results"]] == [r["detections"] for r in new_data["results"]]
    assert all(r["detections"] for r in old_data["results"])

    coco = require_asset("data/coco-val2017-subset")
    ev = run_edgekit(
        "eval", v1_build, "--coco", coco / "instances.json", "--images", coco / "images",
        "--limit", 5, "--precision", "fp32", "--json",
    )  # fmt: skip
    assert ev.returncode == 0, ev.stderr
    (result,) = json.loads(ev.stdout)["results"]
    assert result["build"] == v1_build.name and result["map"] > 0.2

    bench = run_edgekit(
        "bench", v1_build, "--target", "local", "--threads", "1", "--loops", "2", "--warmup", "1", "--json"
    )
    assert bench.returncode == 0, bench.stderr
    results = json.loads(bench.stdout)["results"]
    assert sorted(r["precision"] for r in results) == ["fp16", "fp32"]


def test_v2_round_trip_and_no_absolute_paths(nanodet_plus_build: Path) -> None:
    text = (nanodet_plus_build / "manifest.json").read_text()
    data = json.loads(text)
    assert data["schema"] == "edgekit.manifest/2"
    assert manifest_to_dict(load_manifest(nanodet_plus_build)) == data
    assert str(nanodet_plus_build.parent) not in text and str(require_asset(".")) not in text
    files = data["artifacts"]["ncnn"]["fp16"]["files"]
    assert files["bin"]["path"] == "model.fp16.bin" and files["bin"]["bytes"] > 1_000_000
    assert json.loads(SCHEMA_FILE.read_text())["$id"] == "edgekit.manifest/2"


def _broken(data: dict, path: str, value: object) -> dict:
    broken = copy.deepcopy(data)
    *parents, last = path.split(".")
    node = broken
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return broken


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("input.shape", [1, 3, 416], r"manifest field input\.shape: .* is too short"),
        ("decoder.layout", KeyError, r"manifest field decoder: .*'layout' is a required property"),
        ("decoder.score_threshold", 1.5, r"manifest field decoder.score_threshold: 1.5 is greater than"),
        ("decoder.config.reg_max", "seven", r"manifest field decoder\.config\.reg_max: expected an integer"),
        ("decoder.config.bogus", 1, r"manifest field decoder\.config\.bogus: unknown field"),
        ("decoder.family", "yolo", r"no decoder for model family 'yolo'"),
        (
            "artifacts.ncnn.fp32.files.param.sha256",
            "abc",
            r"artifacts\.ncnn\.fp32\.files\.param\.sha256: 'abc'",
        ),
        ("artifacts.ncnn.fp32.files.bin.path", "/abs/model.bin", r"artifacts\.ncnn\.fp32\.files\.bin\.path"),
        ("source.file", "/work/model.onnx", r"manifest field source\.file"),
        ("schema", "edgekit.manifest/9", r"not an edgekit manifest \(schema 'edgekit.manifest/9'"),
    ],
)
def test_bad_field_is_one_line_naming_it(
    nanodet_plus_build: Path, path: str, value: object, message: str
) -> None:
    data = json.loads((nanodet_plus_build / "manifest.json").read_text())
    with pytest.raises(EdgekitError, match=message) as caught:
        manifest_from_dict(_broken(data, path, value))
    assert "\n" not in str(caught.value)


def test_cli_reports_a_bad_manifest_in_one_line(nanodet_plus_build: Path, tmp_path: Path) -> None:
    build = tmp_path / "b"
    shutil.copytree(nanodet_plus_build, build)
    data = json.loads((build / "manifest.json").read_text())
    (build / "manifest.json").write_text(json.dumps(_broken(data, "decoder.config.strides", [8, "x"])))
    run = run_edgekit("detect", build, require_asset("data/images/bus.jpg"), "-o", tmp_path / "o")
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2 and len(lines) == 1 and "Traceback" not in run.stderr
    assert "decoder.config.strides[1]: expected an integer" in lines[0]
