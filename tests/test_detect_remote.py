"""``edgekit detect/eval --target``: the device detects, this host gets the same records and images.

References are independent of the path under test: a local ``edgekit detect`` / ``eval`` run by
the CLI in another process. Devices: this machine (``local``), the emulated adbd as an arm64 phone
without Python (the native aarch64 runner runs under QEMU), and, for edgekit installed on the
board itself, the emulated arm64 Debian board (``benchmarks/targets/qemu.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.remote import to_detections
from edge.runtime.resolve import resolve_model
from tests import test_bench_adb as adb_tests
from tests.support.assets import skip_or_fail
from tests.support.cli import message_lines, run_edgekit
from tests.support.slim_venv import build_wheel
from tests.test_bench_adb import AdbServer, _connect
from tests.test_bench_native_targets import ARM_DEVICE, native_runner
from tests.test_bench_native_targets import native_cache as _native_cache
from tests.test_bench_qemu import TOLERANCE, _unmatched

adb_server = adb_tests.adb_server
start_device = adb_tests.start_device
native_cache = _native_cache  # autouse: the real native runner cache despite the adb fixtures' HOME
IMAGES = ("bus.jpg", "street.png", "zidane.jpg")


def _images(demo_images: Path) -> list[Path]:
    return [demo_images / name for name in IMAGES]


def _detect(build: Path, images: list[Path], out: Path, *extra: str, env: dict | None = None) -> dict:
    res = run_edgekit("detect", build, *images, "-o", out, "--json", *extra, timeout=3600, env=env)
    assert res.returncode == 0, res.stderr
    return {"json": json.loads(res.stdout), "stderr": res.stderr}


def _threshold(build: Path) -> float:
    return resolve_model(build).decoder.score_threshold


def _compare(
    local: dict, remote: dict, threshold: float, box_tol: float, score_tol: float
) -> tuple[int, list[str]]:
    """Every detection of each side has a counterpart on the other: same class, box and score
    within tolerance (detections within ``score_tol`` of the threshold may be missing)."""
    total, problems = 0, []
    for a, b in zip(local["results"], remote["results"], strict=True):
        assert (a["width"], a["height"]) == (b["width"], b["height"])
        da, db = to_detections(a["detections"]), to_detections(b["detections"])
        for x, y, side in ((da, db, "local"), (db, da, "remote")):
            counted, missing = _unmatched(x, y, threshold, box_tol, score_tol)
            total += counted
            problems += [f"{Path(a['input']).name}: {side} {m}" for m in missing]
    return total, problems


def test_detect_on_a_target_with_the_python_runner_matches_local(
    nanodet_plus_build: Path, demo_images: Path, tmp_path: Path
) -> None:
    """Preprocess here, infer on the device, decode here: identical records, identical drawings."""
    images = _images(demo_images)
    local = _detect(nanodet_plus_build, images, tmp_path / "local")
    remote = _detect(
        nanodet_plus_build, images, tmp_path / "remote", "--target", "local", "--runner", "python"
    )
    assert remote["json"]["results"] == local["json"]["results"]
    assert remote["json"]["runner"] == "python" and remote["json"]["target"] == "local"
    for key in ("model", "precision", "layout"):
        assert remote["json"][key] == local["json"][key]
    assert "preprocessing and decoding on this host, inference on local (Python runner)" in remote["stderr"]
    for image in images:
        # drawn from the records (boxes rounded to 0.01 px): the same boxes, give or take a pixel
        # edge, so the two differ by far less than either differs from the undrawn image
        drawn, reference, plain = (
            cv2.imread(str(path)).astype(np.int16)
            for path in (tmp_path / "remote" / image.name, tmp_path / "local" / image.name, image)
        )
        assert np.abs(drawn - reference).mean() < 0.1 * np.abs(reference - plain).mean()
        record = json.loads((tmp_path / "remote" / f"{image.stem}.json").read_text())
        assert record == next(r for r in local["json"]["results"] if r["input"] == str(image))


def test_detect_over_adb_with_the_python_runner_infers_on_the_device(
    adb_server: AdbServer, start_device, nanodet_plus_build: Path, demo_images: Path, tmp_path: Path
) -> None:
    """A Termux-like phone (python3 with ncnn): its runner.py infers, this host pre- and post-processes."""
    device = start_device()
    _connect(adb_server, device)
    images = _images(demo_images)
    local = _detect(nanodet_plus_build, images, tmp_path / "local")
    remote = _detect(nanodet_plus_build, images, tmp_path / "remote", "--target", f"adb://{device.serial}")
    assert remote["json"]["results"] == local["json"]["results"]
    assert remote["json"]["runner"] == "python"
    assert any("edgekit_runner.py infer" in t for t in device.trace())


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_detect_with_the_native_host_runner_matches_local(
    precision: str, int8_build: Path, demo_images: Path, tmp_path: Path
) -> None:
    """The whole pipeline in the C++ core, through --target: what the runner wrote, drawn here,
    and the local detections within 1 px / 0.01 (the issue's host tolerance) on the original
    files, JPEG and PNG: the core decodes JPEG like OpenCV (tests/test_native_decode.py)."""
    binary = native_runner("host")
    images = _images(demo_images)
    args = ("--precision", precision)
    local = _detect(int8_build, images, tmp_path / "local", *args)
    remote = _detect(
        int8_build, images, tmp_path / "remote", *args, "--target", "local", "--runner", "native"
    )
    assert remote["json"]["runner"] == "native" and remote["json"]["precision"] == precision
    assert "whole pipeline on local (native edgekit-runner" in remote["stderr"]
    direct = tmp_path / "direct.json"
    ran = subprocess.run(
        [binary, "detect", "--build", int8_build, "--precision", precision, "--threads", "1", "--out", direct, *images],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout
    written = json.loads(direct.read_text())
    written = written["results"] if isinstance(written, dict) else written
    assert [r["detections"] for r in written] == [r["detections"] for r in remote["json"]["results"]]
    threshold = _threshold(int8_build)
    total, problems = _compare(local["json"], remote["json"], threshold, 1.0, 0.01)
    assert total >= 15 and problems == []
    for image in images:
        record = json.loads((tmp_path / "remote" / f"{image.stem}.json").read_text())
        assert record["input"] == str(image) and (tmp_path / "remote" / image.name).is_file()


@pytest.fixture(scope="module")
def int8_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NanoDet-Plus-m 416 in fp32, fp16 and edgekit's INT8 (calibrated on the demo images; the
    automatic keep-float search off for time)."""
    from converters.convert import Int8Options, convert_onnx
    from tests.support.assets import require_asset

    onnx = require_asset("models/onnx/nanodet-plus-m_416.onnx")
    calib = require_asset("data/images")
    out = tmp_path_factory.mktemp("int8") / "nanodet-plus-m_416-build"
    return convert_onnx(onnx, out, int8=Int8Options(calib, auto_keep_float=False)).manifest_path.parent


@pytest.mark.slow
def test_detect_on_an_arm_phone_without_python_matches_local(
    adb_server: AdbServer, start_device, nanodet_plus_build: Path, demo_images: Path, tmp_path: Path
) -> None:
    """No --runner: the phone has no python3, so the aarch64 edgekit-runner detects under QEMU."""
    native_runner("aarch64")
    device = start_device(*ARM_DEVICE)
    _connect(adb_server, device)
    images = _images(demo_images)
    threshold = _threshold(nanodet_plus_build)
    for precision in ("fp32", "fp16"):
        args = ("--precision", precision, "--force")
        local = _detect(nanodet_plus_build, images, tmp_path / "local", *args)
        remote = _detect(
            nanodet_plus_build, images, tmp_path / "remote", *args, "--target", f"adb://{device.serial}"
        )
        assert remote["json"]["runner"] == "native"
        assert f"whole pipeline on adb://{device.serial}" in remote["stderr"]
        box_tol, score_tol, _ = TOLERANCE[precision]  # 1 px / 0.02 on every file, JPEG and PNG
        total, problems = _compare(local["json"], remote["json"], threshold, box_tol, score_tol)
        assert total >= 15
        if precision == "fp32":
            assert problems == []
        else:  # ARMv8.2 fp16 arithmetic (-cpu max): see test_bench_qemu's tolerance note
            assert len(problems) <= 0.05 * total, problems
    assert any("edgekit-runner" in t and "detect" in t for t in device.trace())


def test_eval_on_a_target_is_the_devices_own_map(nanodet_plus_build: Path, shared: Path) -> None:
    coco = shared / "data" / "coco-val2017-subset"
    common = ("--coco", coco / "instances.json", "--images", coco / "images", "--limit", "4")
    common += ("--precision", "fp32", "--json")
    local = run_edgekit("eval", nanodet_plus_build, *common)
    remote = run_edgekit("eval", nanodet_plus_build, *common, "--target", "local", "--runner", "python")
    assert local.returncode == 0 and remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout) == json.loads(local.stdout)
    assert json.loads(remote.stdout)["results"][0]["map"] > 0.1
    assert "inference on local (Python runner)" in remote.stderr


def test_eval_with_the_native_runner_scores_the_cores_detections(
    nanodet_plus_build: Path, shared: Path
) -> None:
    """The C++ core's own detections (JPEG decoded like OpenCV) score the Python runtime's mAP."""
    native_runner("host")
    coco = shared / "data" / "coco-val2017-subset"
    common = ("--coco", coco / "instances.json", "--images", coco / "images", "--limit", "8", "--json")
    local = run_edgekit("eval", nanodet_plus_build, *common)
    remote = run_edgekit("eval", nanodet_plus_build, *common, "--target", "local", "--runner", "native")
    assert local.returncode == 0 and remote.returncode == 0, remote.stderr
    ours, theirs = (json.loads(r.stdout)["results"] for r in (local, remote))
    assert [(r["precision"], r["images"]) for r in theirs] == [(r["precision"], r["images"]) for r in ours]
    for a, b in zip(ours, theirs, strict=True):
        # the same pixels in, the same detections out (stb-decoded JPEGs were 0.0009 off: measured)
        assert b["map"] > 0.1 and abs(a["map"] - b["map"]) < 1e-4, (a, b)
    assert remote.stderr.count("whole pipeline on local (native edgekit-runner") == len(ours)


def test_remote_detect_refuses_what_it_cannot_do(
    nanodet_plus_build: Path, ncnn_models: Path, demo_images: Path, tmp_path: Path
) -> None:
    image = demo_images / "bus.jpg"
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not really")
    cases = [
        ((nanodet_plus_build, video, "--target", "local"), "--target detects images, not videos"),
        ((nanodet_plus_build, image, "--target", "nowhere"), "unknown target 'nowhere'"),
        (
            (ncnn_models / "nanodet-m_320" / "model.param", image, "--target", "local", "--runner", "native"),
            "the native runner takes a build directory",
        ),
        (
            (nanodet_plus_build, image, "--target", "local", "--runner", "pyhton"),
            "--runner pyhton: not one of",
        ),
    ]
    for args, expected in cases:
        res = run_edgekit("detect", *args, "-o", tmp_path / "out", "--force")
        lines = message_lines(res.stderr)
        assert res.returncode != 0 and len(lines) == 1 and expected in lines[0], res.stderr


# -- edgekit installed on the emulated arm64 board itself ------------------------------------------

#: the board's kernel: a user + mount namespace whose binfmt_misc (per namespace since Linux 6.7)
#: runs aarch64 ELF files under qemu-aarch64-static, so board programs can start each other
#: (``edgekit bench --target local`` starts the runner as a child process), as on a real board
BINFMT = (
    "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || exit 111; "
    "printf '%s' ':qemu-aarch64:M::"
    "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:"
    "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:"
    "'\"$QEMU\"':F' > /proc/sys/fs/binfmt_misc/register || exit 112; "
    'exec "$@"'
)


def _on_board(root: Path, *argv: str | Path, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """Run an aarch64 program of the board (its own loader and libraries from ``root``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env |= {"QEMU_LD_PREFIX": str(root), "QEMU_CPU": "max", "PYTHONDONTWRITEBYTECODE": "1"}
    env["QEMU"] = shutil.which("qemu-aarch64-static") or "qemu-aarch64-static"
    argv = ["unshare", "-Urm", "sh", "-c", BINFMT, "board", *map(str, argv)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_slim_install_on_the_emulated_arm64_board(
    nanodet_plus_build: Path, demo_images: Path, tmp_path: Path
) -> None:
    """``pip install edgekit`` (the slim runtime) with Debian's python3 on the arm64 board, then
    ``edgekit detect`` (same detections as x86) and ``edgekit bench --target local`` there.

    The wheel is built from this checkout; its dependencies are the aarch64 wheels of the index
    pip is configured to use (ncnn pinned to this host's version). pip itself runs on the board,
    from its own wheel (Debian's minimal python3 has no pip)."""
    from importlib.metadata import version

    from benchmarks.targets.qemu import PYTHON_TAG, ensure_board
    from tests.test_bench_qemu import _need_tools

    _need_tools()
    root = ensure_board() / "root"
    probe = _on_board(root, root / "usr" / "bin" / f"python{PYTHON_TAG}", "-c", "print(1)", timeout=300)
    if probe.returncode in (111, 112) or probe.stdout.strip() != "1":
        skip_or_fail(f"no binfmt_misc in a user namespace here (Linux 6.7+): {probe.stderr.strip()}")
    wheel = build_wheel(tmp_path / "dist")
    wheels = tmp_path / "wheels"
    download = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", PYTHON_TAG,
                "--implementation", "cp", "--platform", "manylinux_2_28_aarch64", "--platform", "manylinux2014_aarch64",
                "--platform", "manylinux_2_17_aarch64", "-d", str(wheels), str(wheel), f"ncnn=={version('ncnn')}", "pip"]  # fmt: skip
    res = subprocess.run(download, capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        skip_or_fail(f"cannot download the aarch64 wheels from the configured index: {res.stderr[-500:]}")
    pip_wheel = next(wheels.glob("pip-*.whl"))

    times = {}
    t0 = time.monotonic()
    venv = tmp_path / "venv"
    made = _on_board(root, root / "usr" / "bin" / f"python{PYTHON_TAG}", "-m", "venv", "--without-pip", venv)
    assert made.returncode == 0, made.stderr
    python, edgekit = venv / "bin" / "python", venv / "bin" / "edgekit"
    installed = _on_board(
        root, python, pip_wheel / "pip", "install", "-q", "--no-index", "--find-links", wheels, "edgekit"
    )
    assert installed.returncode == 0, installed.stderr
    times["pip install"] = time.monotonic() - t0
    # the slim runtime only: no conversion or evaluation extras came with it
    extras = "import importlib.util as u; print([m for m in ('onnx', 'onnxruntime', 'pycocotools') if u.find_spec(m)])"
    assert _on_board(root, python, "-c", extras).stdout.strip() == "[]"

    images = _images(demo_images)[:2]
    t0 = time.monotonic()
    on_board = _on_board(root, edgekit, "detect", nanodet_plus_build, *images, "--precision", "fp32",
                         "-o", tmp_path / "arm", "--json")  # fmt: skip
    times["detect"] = time.monotonic() - t0
    assert on_board.returncode == 0, on_board.stderr
    arm = json.loads(on_board.stdout)
    local = _detect(nanodet_plus_build, images, tmp_path / "x86", "--precision", "fp32")["json"]
    total, problems = _compare(local, arm, _threshold(nanodet_plus_build), 1.0, 0.02)
    assert total >= 5 and problems == []

    t0 = time.monotonic()
    bench = _on_board(root, edgekit, "bench", nanodet_plus_build, "--target", "local", "--precision", "fp16",
                      "--threads", "1", "--loops", "2", "--warmup", "0", "--json")  # fmt: skip
    times["bench"] = time.monotonic() - t0
    assert bench.returncode == 0, bench.stderr
    report = json.loads(bench.stdout)
    assert report["errors"] == []
    assert report["targets"]["local"]["machine"] == "aarch64"
    assert report["targets"]["local"]["runner"] == "python"
    assert [(r["precision"], r["threads"]) for r in report["results"]] == [("fp16", 1)]
    print("emulated board timings (s):", {k: round(v) for k, v in times.items()})
