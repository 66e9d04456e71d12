"""The native core on the host: ``edgekit-runner`` against the Python runtime, for real.

The runner is built on demand (``edgekit native build``, cached under ~/.cache/edgekit/native; the
first build takes tens of minutes on 2 cores). Independent references: the Python runtime's own
``edgekit detect --json`` and ``edge/board/runner.py`` on the same builds and images.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.board import runner as board_runner
from edge.manifest import load_manifest
from edge.native.locate import runner_path
from edge.preprocess import preprocess
from tests.support.assets import require_asset
from tests.support.cli import run_edgekit
from tests.support.native_builds import bare_build, compare_runs, pixels_build, plus_build, run_native_detect

pytestmark = [pytest.mark.slow, pytest.mark.native]

BOX_TOL, SCORE_TOL = 1.0, 0.01


@pytest.fixture(scope="session")
def host_runner() -> Path:
    return runner_path("host")


@pytest.fixture(scope="session")
def original_images() -> list[Path]:
    folder = require_asset("data/images")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png"))


@pytest.fixture(scope="session")
def images(original_images: list[Path]) -> list[Path]:
    """The shared demo images as they are (JPEG and PNG): the core decodes JPEG with libjpeg-turbo
    and OpenCV's settings, so both runtimes see the same pixels (tests/test_native_decode.py) and
    the issue's 1 px / 0.01 holds on the original files."""
    return original_images


@pytest.fixture(scope="session")
def plus_builds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plus_build(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def layout_builds(tmp_path_factory: pytest.TempPathFactory, plus_builds: Path) -> dict[str, Path]:
    """One build directory per NanoDet layout of tests/golden, from the shared real models."""
    from converters.convert import convert_onnx

    ncnn = require_asset("models/ncnn")
    root = tmp_path_factory.mktemp("layouts")
    pnnx = ncnn / "nanodet-plus-m_416-pnnx/model.param"
    legacy_bins = convert_onnx(
        require_asset("models/onnx/nanodet-m_416.onnx"), root / "m416"
    ).manifest_path.parent
    return {
        "nanodet-single": plus_builds,
        "nanodet-single-chw": bare_build(pnnx, root / "chw"),
        "nanodet-strides": bare_build(pnnx, root / "strides", outputs=["231", "228", "225", "222"]),
        "nanodet-cls-dis": bare_build(ncnn / "nanodet-plus-m_416-clsdis/model.param", root / "clsdis"),
        "nanodet-legacy": bare_build(ncnn / "nanodet-m_320/model.param", root / "legacy"),
        "nanodet-legacy-integrated": legacy_bins,
        "nanodet-legacy-pixels": pixels_build(legacy_bins, root / "pixels"),
    }


def python_detect(build: Path, images: list[Path], precision: str, out: Path) -> dict:
    proc = run_edgekit("detect", build, *images, "--precision", precision, "--json", "-o", out, "--force")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def other_family_builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SSD-ResNet34 (zoo, generated weights, 416 input, its NMS/TopK tail cut by convert) and the
    two YOLOv8 layouts (tests/support/yolov8_graphs: letterboxed RGB input, grey 114 padding)."""
    import onnx

    from converters.convert import convert_onnx
    from converters.zoo.build import build_zoo_model
    from tests.support.yolov8_graphs import LAYOUTS, yolov8_head

    root = tmp_path_factory.mktemp("families")
    ssd = root / "ssd-resnet34-416.onnx"
    build_zoo_model("ssd-resnet34-1200", ssd, input_size=416, with_postprocess=True)
    builds = {"ssd-loc-conf": convert_onnx(ssd, root / "ssd").manifest_path.parent}
    for layout in LAYOUTS:
        path = root / f"yolov8-{layout}.onnx"
        onnx.save(yolov8_head(layout, 128, 3), str(path))
        built = convert_onnx(path, root / f"yolov8-{layout}").manifest_path.parent
        builds[load_manifest(built).decoder.layout] = built
    return builds


def test_ssd_and_yolov8_detect_like_python(host_runner, other_family_builds, images, tmp_path):
    assert set(other_family_builds) == {"ssd-loc-conf", "yolov8-dfl", "yolov8-decoded"}
    score = "0.05"
    for layout, build in other_family_builds.items():
        proc = run_edgekit("detect", build, *images, "--json", "-o", tmp_path / layout, "--score", score)
        assert proc.returncode == 0, proc.stderr
        python = json.loads(proc.stdout)
        native = run_native_detect(
            [host_runner], build, images, tmp_path / f"{layout}.json", "fp32", extra=["--score", score]
        )
        assert native["layout"] == python["layout"] == layout
        assert assert_same(python, native, float(score), BOX_TOL, SCORE_TOL) >= 10, layout


def assert_same(python: dict, native: dict, threshold: float, box_tol: float, score_tol: float) -> int:
    counted, problems = compare_runs(python, native, threshold, box_tol, score_tol)
    assert not problems, problems
    return counted


def test_every_golden_layout_detects_like_python(host_runner, layout_builds, images, tmp_path):
    golden = {p.stem for p in Path(__file__).parent.joinpath("golden").glob("nanodet-*.json")}
    assert golden <= set(layout_builds)  # every layout of tests/golden is covered
    seen = {}
    for case, build in layout_builds.items():
        manifest = load_manifest(build)
        python = python_detect(build, images, "fp32", tmp_path / f"py-{case}")
        native = run_native_detect([host_runner], build, images, tmp_path / f"{case}.json", "fp32")
        assert native["layout"] == python["layout"] == manifest.decoder.layout
        seen[case] = (manifest.decoder.layout, manifest.decoder.config.distances)
        counted = assert_same(python, native, manifest.decoder.score_threshold, BOX_TOL, SCORE_TOL)
        assert counted >= 10, (case, counted)  # real detections were compared
    assert seen["nanodet-legacy-integrated"] == ("nanodet-legacy", "bins")
    assert seen["nanodet-legacy-pixels"] == ("nanodet-legacy", "pixels")


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_plus_precisions_detect_like_python(host_runner, plus_builds, images, tmp_path, precision):
    python = python_detect(plus_builds, images, precision, tmp_path / "py")
    native = run_native_detect([host_runner], plus_builds, images, tmp_path / "n.json", precision)
    assert native["precision"] == precision
    threshold = load_manifest(plus_builds).decoder.score_threshold
    assert assert_same(python, native, threshold, BOX_TOL, SCORE_TOL) >= 10


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_in_memory_loading_detects_like_files(host_runner, plus_builds, images, tmp_path, precision):
    """open_build_memory (the Android app's path) gives exactly what open_build gives."""
    files = run_native_detect([host_runner], plus_builds, images[:3], tmp_path / "f.json", precision)
    memory = run_native_detect(
        [host_runner],
        plus_builds,
        images[:3],
        tmp_path / "m.json",
        precision,
        extra=["--memory", "1"],
    )
    assert memory == files


def _variant(build: Path, out: Path, **input_fields) -> Path:
    """A copy of ``build``'s manifest (files symlinked) with other preprocessing."""
    out.mkdir()
    data = json.loads((build / "manifest.json").read_text())
    data["input"].update(input_fields)
    for rel in {f["path"] for a in data["artifacts"]["ncnn"].values() for f in a["files"].values()}:
        (out / rel).symlink_to((build / rel).resolve())
    (out / "manifest.json").write_text(json.dumps(data))
    return out


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"color": "RGB", "mean": [1.5, 2.0, 200.25], "norm": [0.5, 0.0125, 1.0]},
        {"resize": "letterbox", "pad_multiple": 32, "pad_value": 114.0},
        {"resize": "letterbox", "pad_multiple": 0, "pad_value": 7.0},
    ],
)
@pytest.mark.parametrize("name", ["street.png", "zidane.jpg"])
def test_preprocessing_is_bit_exact(host_runner, plus_builds, tmp_path, fields, name):
    """The runner's network input equals edge/preprocess.py's bit for bit, on PNG and on JPEG."""
    build = _variant(plus_builds, tmp_path / "b", **fields)
    image = require_asset(f"data/images/{name}")
    proc = subprocess.run(
        [host_runner, "preprocess", "--build", build, "--out", tmp_path / "t.f32", image],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout
    info = json.loads(proc.stdout)
    expected, transform = preprocess(cv2.imread(str(image)), load_manifest(build).input)
    got = np.fromfile(tmp_path / "t.f32", np.float32).reshape(info["shape"])
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)
    assert info["transform"]["pad_x"] == transform.pad_x and info["transform"]["scale_y"] == transform.scale_y


def test_policy_agrees_with_python(host_runner):
    for precision in board_runner.PRECISIONS:
        for threads in (1, 3):
            out = subprocess.run(
                [host_runner, "policy", "--precision", precision, "--threads", str(threads)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert json.loads(out) == board_runner.ncnn_options(precision, threads)


def _python_runner(*args: str) -> dict:
    proc = subprocess.run(
        ["python3", board_runner.__file__, *args], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)


def test_bench_and_probe_json_match_the_python_runner(host_runner, ncnn_models):
    model = ncnn_models / "nanodet-plus-m_416-pnnx"
    args = ["--param", str(model / "model.param"), "--bin", str(model / "model.bin"), "--input", "in0"]
    args += [
        "--shape",
        "3,416,416",
        "--precision",
        "fp16",
        "--threads",
        "1,2",
        "--loops",
        "3",
        "--warmup",
        "1",
    ]
    args += ["--powersave", "2"]
    native = json.loads(
        subprocess.run([host_runner, "bench", *args], capture_output=True, text=True, check=True).stdout
    )
    python = _python_runner("bench", *args)
    assert native.keys() == python.keys()
    assert (
        (native["precision"], native["powersave"])
        == (python["precision"], python["powersave"])
        == ("fp16", 2)
    )
    for a, b in zip(native["runs"], python["runs"], strict=True):
        assert a.keys() == b.keys()
        assert a["threads"] == b["threads"] and a["outputs"] == b["outputs"] == ["out0"]
        assert len(a["latencies_ms"]) == 3 and all(v > 0 for v in a["latencies_ms"])
        assert a["peak_rss_scope"] == b["peak_rss_scope"]
    probe = json.loads(
        subprocess.run([host_runner, "probe"], capture_output=True, text=True, check=True).stdout
    )
    assert set(_python_runner("probe")) <= set(probe)
    assert probe["runner"] == "native" and probe["python"] is None
    assert {"fp16", "dotprod", "i8mm"} <= set(probe["ncnn_features"])
    assert probe["ncnn_version"] == board_runner.import_ncnn().__version__
    assert probe["x86_avx2"] == _python_runner("probe")["x86_avx2"]


def test_vulkan_is_refused_with_one_line_where_ncnn_has_none(
    host_runner, plus_builds, images, ncnn_models, tmp_path
):
    """The runner's ncnn is built without Vulkan: --vulkan 1 (Options/BenchOptions::use_vulkan) is a
    usage error naming that, never a silent CPU run; --vulkan 0 is the CPU run."""
    model = ncnn_models / "nanodet-plus-m_416-pnnx"
    bench = ["bench", "--param", model / "model.param", "--bin", model / "model.bin", "--input", "in0",
             "--shape", "3,416,416", "--loops", "1", "--warmup", "0"]  # fmt: skip
    detect = [
        "detect",
        "--build",
        plus_builds,
        "--precision",
        "fp32",
        "--out",
        tmp_path / "o.json",
        images[0],
    ]
    for command in (bench, detect):
        code, out = _run(host_runner, *command, "--vulkan", "1")
        assert (code, out["error"]) == (2, "usage"), out
        assert out["message"] == "this ncnn build has no Vulkan: run on the CPU (use_vulkan off)"
        assert not (tmp_path / "o.json").exists()
        code, out = _run(host_runner, *command, "--vulkan", "0")
        assert code == 0 and "error" not in out and "vulkan" not in out, out
    assert json.loads((tmp_path / "o.json").read_text())["results"][0]["detections"]
    code, out = _run(host_runner, *bench, "--vulkan", "yes")
    assert (code, out["error"]) == (2, "usage") and "--vulkan must be 0 or 1" in out["message"]


# --- bad input: one JSON line, the right exit code, never a crash -------------------------------------


def _run(runner: Path, *args) -> tuple[int, dict]:
    proc = subprocess.run([runner, *map(str, args)], capture_output=True, text=True, timeout=300)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    return proc.returncode, json.loads(lines[0])


def _copy_build(build: Path, out: Path) -> Path:
    shutil.copytree(build, out, symlinks=False)
    return out


def _rewrite(build: Path, precision: str, role: str, data: bytes, *, record: bool) -> None:
    """Replace one artifact file; ``record``: update the manifest's sha256/bytes to match."""
    import hashlib

    manifest = json.loads((build / "manifest.json").read_text())
    entry = manifest["artifacts"]["ncnn"][precision]["files"][role]
    (build / entry["path"]).write_bytes(data)
    if record:
        entry["sha256"], entry["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
        (build / "manifest.json").write_text(json.dumps(manifest))


def test_bad_input_is_one_json_line_and_an_exit_code(host_runner, plus_builds, images, tmp_path):
    image = images[0]
    detect = ["detect", "--precision", "fp32", "--out", tmp_path / "o.json"]

    # a layout the core lacks
    b = _copy_build(plus_builds, tmp_path / "layout")
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["decoder"]["layout"] = "nanodet-hexagonal"
    (b / "manifest.json").write_text(json.dumps(manifest))
    code, out = _run(host_runner, *detect, "--build", b, image)
    assert (code, out["error"]) == (4, "model") and "nanodet-hexagonal" in out["message"]

    # a family the core lacks
    manifest["decoder"]["family"] = "retinanet"
    (b / "manifest.json").write_text(json.dumps(manifest))
    code, out = _run(host_runner, *detect, "--build", b, image)
    assert (code, out["error"]) == (4, "model") and "retinanet" in out["message"]

    # a layer type compiled out of this runner, and one ncnn does not know
    param = (plus_builds / load_manifest(plus_builds).builds["fp32"].param).read_text().splitlines()
    for layer_type, phrase in (
        ("Erf", "not compiled into this native runner"),
        ("Frobnicate", "not an ncnn layer"),
    ):
        b = _copy_build(plus_builds, tmp_path / layer_type)
        layers, blobs = (int(v) for v in param[1].split())
        extra = f"{layer_type} extra0 1 1 out0 extra_out0"
        text = "\n".join([param[0], f"{layers + 1} {blobs + 1}", *param[2:], extra]) + "\n"
        _rewrite(b, "fp32", "param", text.encode(), record=True)
        code, out = _run(host_runner, *detect, "--build", b, image)
        assert (
            (code, out["error"]) == (4, "model") and layer_type in out["message"] and phrase in out["message"]
        )
        code, out = _run(
            host_runner,
            "bench",
            "--param",
            b / "model.param",
            "--input",
            "in0",
            "--shape",
            "3,416,416",
            "--loops",
            "1",
        )
        assert (code, out["error"]) == (4, "model") and layer_type in out["message"]

    # a truncated .bin: caught by the manifest's size, and by ncnn's bounded load when the record matches
    bin_rel = load_manifest(plus_builds).builds["fp32"].bin
    data = (plus_builds / bin_rel).read_bytes()
    for record, phrase in ((False, "truncated"), (True, "could not load the weights")):
        b = _copy_build(plus_builds, tmp_path / f"trunc-{record}")
        _rewrite(b, "fp32", "bin", data[: len(data) // 3], record=record)
        code, out = _run(host_runner, *detect, "--build", b, image)
        assert (code, out["error"]) == (4, "model") and phrase in out["message"], out
        code, out = _run(host_runner, *detect, "--memory", "1", "--build", b, image)  # open_build_memory
        assert (code, out["error"]) == (4, "model") and phrase in out["message"], out
    code, out = _run(
        host_runner, "bench", "--param", b / "model.param", "--bin", b / bin_rel, "--input", "in0", "--shape",
        "3,416,416", "--loops", "1",
    )  # fmt: skip
    assert (code, out["error"]) == (4, "model")

    # a changed .bin of the right size: the checksum
    b = _copy_build(plus_builds, tmp_path / "flipped")
    _rewrite(b, "fp32", "bin", data[:-4] + b"\x00\x00\x80\x7f", record=False)
    code, out = _run(host_runner, *detect, "--build", b, image)
    assert (code, out["error"]) == (4, "model") and "sha256" in out["message"]

    # missing and unreadable images
    code, out = _run(host_runner, *detect, "--build", plus_builds, tmp_path / "absent.jpg")
    assert (code, out["error"]) == (5, "input") and "absent.jpg" in out["message"]
    fake = tmp_path / "fake.jpg"
    fake.write_text("not an image")
    code, out = _run(host_runner, *detect, "--build", plus_builds, fake)
    assert (code, out["error"]) == (5, "input") and "fake.jpg" in out["message"]
    assert not (tmp_path / "o.json").exists()  # nothing half-written

    # not a build, a precision the build lacks, usage
    code, out = _run(host_runner, *detect, "--build", tmp_path, image)
    assert (code, out["error"]) == (4, "model") and "manifest.json" in out["message"]
    code, out = _run(host_runner, "detect", "--build", plus_builds, "--precision", "fp8", "--out", "x", image)
    assert (code, out["error"]) == (2, "usage")
    for args in (
        [],
        ["explode"],
        ["bench", "--param"],
        ["bench", "--shape", "3,x,4", "--param", "p", "--input", "i"],
    ):
        code, out = _run(host_runner, *args)
        assert (code, out["error"]) == (2, "usage"), args
