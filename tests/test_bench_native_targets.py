"""``edgekit bench --runner python|native|auto|PATH`` and ``--cores`` on real targets.

The devices are real transports: the emulated adbd (``tests/support/adbd.py``) as an arm64 phone
with no Python, whose pushed aarch64 binaries run under ``qemu-aarch64-static``; a real OpenSSH
server whose account's python3 has no ncnn; QEMU user mode with no root filesystem at all. The
native runner is the real ``edgekit-runner`` (built once per architecture and cached, as
``edgekit native build`` does); tests that need it skip locally (fail on CI) when it cannot be built.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks.harness import BenchConfig, run_benchmarks
from benchmarks.runners import (
    BenchModel,
    NativeRunner,
    PythonRunner,
    RunnerFailed,
    call_json,
    check_runner_choice,
    choose_runner,
)
from benchmarks.targets.adb import AdbTarget
from benchmarks.targets.local import LocalTarget
from benchmarks.targets.qemu import QemuTarget
from benchmarks.targets.registry import parse_target
from edge.errors import EdgekitError
from tests import test_bench_adb as adb_tests
from tests.support.assets import skip_or_fail
from tests.support.cli import message_lines, run_edgekit
from tests.support.sshd import SshServer, sshd_available, start_sshd
from tests.test_bench_adb import AdbServer, _connect

# the emulated-adbd fixtures of the adb target tests: a private adb server, devices on demand
adb_server = adb_tests.adb_server
start_device = adb_tests.start_device

SHAPE = (3, 416, 416)
try:  # resolved at import, before any fixture changes HOME
    from edge.native.build import cache_root as _native_cache_root

    NATIVE_CACHE: Path | None = _native_cache_root()
except ImportError:
    NATIVE_CACHE = None
ARM_DEVICE = ("--arch", "aarch64", "--no-python")  # a stock arm64 phone: no Python at all


@pytest.fixture(autouse=True)
def native_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the native runner cache of the real home: the adb fixtures give the client a fresh HOME."""
    try:
        from edge.native.build import CACHE_VARIABLE, cache_root
    except ImportError:
        return
    monkeypatch.setenv(CACHE_VARIABLE, str(NATIVE_CACHE or cache_root()))


def native_runner(arch: str) -> Path:
    """The real edgekit-runner for ``arch`` (built and cached on first use)."""
    try:
        from edge.native.locate import runner_path
    except ImportError as exc:
        skip_or_fail(f"the native runner is not in this checkout yet ({exc})")
    try:
        return Path(runner_path(arch, build=True))
    except EdgekitError as exc:
        skip_or_fail(f"the native runner for {arch} cannot be built here: {exc}")


def _need_qemu() -> None:
    if shutil.which("qemu-aarch64-static") is None:
        skip_or_fail("qemu-aarch64-static is not installed (apt-get install qemu-user-static)")


def _rows(report: dict) -> set[tuple[str, str, int]]:
    return {(r["build"], r["precision"], r["threads"]) for r in report["results"]}


def _check_latencies(report: dict) -> None:
    for r in report["results"]:
        lat = r["latency_ms"]
        assert 0 < lat["min"] <= lat["median"] <= lat["p99"]
        assert r["load_ms"] is not None and r["load_ms"] > 0


# -- choosing the runner ----------------------------------------------------------------------


def test_runner_choice_is_checked_before_any_target(tmp_path: Path) -> None:
    assert check_runner_choice(None) == "auto"
    assert check_runner_choice("native") == "native"
    with pytest.raises(EdgekitError, match=r"not one of auto, python, native(, app)? and no such file"):
        check_runner_choice("pyhton")
    benchncnn = tmp_path / "benchncnn"
    benchncnn.write_bytes(b"\x7fELF some other benchmark binary")
    native = tmp_path / "my-runner"
    native.write_bytes(b"\x7fELF ... usage: edgekit-runner probe|bench|detect ...")
    with LocalTarget() as local:
        assert isinstance(choose_runner("auto", local), PythonRunner)  # this Python has ncnn
        assert choose_runner(benchncnn, local).kind == "benchncnn"
        chosen = choose_runner(native, local)
        assert isinstance(chosen, NativeRunner) and chosen.binary == native


def test_bench_cli_rejects_bad_runner_and_cores(ncnn_models: Path) -> None:
    model = str(ncnn_models / "nanodet-m_320" / "model.param")
    bad_runner = run_edgekit("bench", model, "--runner", "pyhton")
    assert bad_runner.returncode == 2 and "Traceback" not in bad_runner.stderr
    assert "--runner pyhton: not one of auto, python, native" in bad_runner.stderr
    bad_cores = run_edgekit("bench", model, "--cores", "medium")
    assert (
        bad_cores.returncode == 2 and "--cores 'medium': choose one of all, little, big" in bad_cores.stderr
    )


def test_cores_reach_ncnn_through_the_python_runner(ncnn_models: Path) -> None:
    """--cores big is ncnn's powersave 2: the runner reports what ncnn kept (get_cpu_powersave)."""
    model = ncnn_models / "nanodet-m_320" / "model.param"
    for cores, powersave in (("big", 2), ("little", 1), ("all", 0)):
        config = BenchConfig(
            threads=(1,), loops=2, warmup=0, runner="python", cores=cores, shape=(3, 320, 320)
        )
        report = run_benchmarks([model], [LocalTarget()], config).to_dict()
        assert report["errors"] == [], report["errors"]
        assert report["targets"]["local"]["runner"] == "python"
        assert report["targets"]["local"]["cores_used"] == cores
        with LocalTarget() as local:
            runner = PythonRunner()
            out = call_json(
                local,
                [*runner.argv(runner.install(local)), "bench", "--param", str(model), "--input", "input.1",
                 "--shape", "3,320,320", "--loops", "1", "--warmup", "0", "--powersave", str(powersave)],
                120, "python",
            )  # fmt: skip
        assert out["powersave"] == powersave


# -- devices without Python -------------------------------------------------------------------


def test_python_runner_on_a_phone_without_python_says_so(
    adb_server: AdbServer, start_device, ncnn_models: Path
) -> None:
    device = start_device(*ARM_DEVICE)
    _connect(adb_server, device)
    with AdbTarget(device.serial) as target:
        assert target.python is None
        assert target.machine() == "aarch64"
    config = BenchConfig(threads=(1,), loops=1, warmup=0, runner="python", shape=(3, 320, 320))
    report = run_benchmarks(
        [ncnn_models / "nanodet-m_320" / "model.param"], [AdbTarget(device.serial)], config
    )
    [error] = report.errors
    assert "python3 is not installed" in error.message and "--runner native" in error.message
    assert "\n" not in error.message


@pytest.mark.slow
def test_adb_phone_without_python_full_report_with_the_native_runner(
    adb_server: AdbServer, start_device, nanodet_plus_build: Path, int8_param: Path
) -> None:
    """No --runner: auto finds no python3 and runs the aarch64 edgekit-runner under QEMU."""
    _need_qemu()
    native_runner("aarch64")
    device = start_device(*ARM_DEVICE)
    _connect(adb_server, device)
    config = BenchConfig(threads=(1,), loops=1, warmup=0, shape=SHAPE)
    report = run_benchmarks([nanodet_plus_build, int8_param], [AdbTarget(device.serial)], config).to_dict()
    assert report["errors"] == [], report["errors"]
    assert _rows(report) == {
        ("nanodet-plus-m_416-build", "fp32", 1),
        ("nanodet-plus-m_416-build", "fp16", 1),
        ("nanodet-plus-m_416-int8", "int8", 1),
    }
    _check_latencies(report)
    info = report["targets"][f"adb://{device.serial}"]
    assert info["runner"] == "native" and info["machine"] == "aarch64"
    assert any("no python3 with ncnn" in note for note in report["notes"])
    assert any("open shell" in t and "edgekit-runner" in t for t in device.trace())


@pytest.fixture
def board_without_ncnn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real sshd whose account's python3 is Debian's, without ncnn."""
    reason = sshd_available()
    if reason:
        skip_or_fail(reason)
    python = Path("/usr/bin/python3")
    if (
        not python.exists()
        or subprocess.run([python, "-c", "import ncnn"], capture_output=True).returncode == 0
    ):
        skip_or_fail("needs a python3 without ncnn at /usr/bin/python3")
    server = start_sshd(tmp_path / "sshd")
    for key, value in server.client_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("EDGEKIT_SSH_PYTHON", str(python))
    yield server
    server.stop()


def test_ssh_board_without_ncnn_full_report_with_the_native_runner(
    board_without_ncnn: SshServer, nanodet_plus_build: Path, int8_param: Path
) -> None:
    native_runner("host")
    config = BenchConfig(threads=(1, 2), loops=3, warmup=1, shape=SHAPE)
    target = parse_target(board_without_ncnn.spec)
    report = run_benchmarks([nanodet_plus_build, int8_param], [target], config).to_dict()
    assert report["errors"] == [], report["errors"]
    assert _rows(report) == {
        (b, p, n)
        for b, p in [
            ("nanodet-plus-m_416-build", "fp32"),
            ("nanodet-plus-m_416-build", "fp16"),
            ("nanodet-plus-m_416-int8", "int8"),
        ]
        for n in (1, 2)
    }
    _check_latencies(report)
    assert report["targets"][board_without_ncnn.spec]["runner"] == "native"
    # --runner python on the same board: the fix-it message, one line
    failed = run_benchmarks(
        [int8_param], [target], BenchConfig(threads=(1,), runner="python", shape=SHAPE)
    ).to_dict()
    [error] = failed["errors"]
    assert "Python module ncnn is missing" in error["message"] and "pip install ncnn" in error["message"]


@pytest.mark.slow
def test_qemu_native_runner_needs_no_root_filesystem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, int8_param: Path
) -> None:
    _need_qemu()
    native_runner("aarch64")
    empty = tmp_path / "no-board"
    monkeypatch.setenv("EDGEKIT_QEMU_ROOT", str(empty))
    config = BenchConfig(threads=(1,), loops=1, warmup=0, runner="native", shape=SHAPE)
    report = run_benchmarks(
        [int8_param], [QemuTarget(), QemuTarget(cpu="cortex-a53", name="qemu-aarch64:cortex-a53")], config
    ).to_dict()
    assert report["errors"] == [], report["errors"]
    assert not empty.exists()  # no Debian root was built or used
    assert report["targets"]["qemu-aarch64"]["arm_fp16"] is True
    assert report["targets"]["qemu-aarch64:cortex-a53"]["arm_fp16"] is False
    for r in report["results"]:
        assert r["emulated"] is True


# -- runner errors, relayed as one line -------------------------------------------------------


def _model(tmp_path: Path, source: Path, truncate: bool = False) -> BenchModel:
    param, weights = tmp_path / "m.param", tmp_path / "m.bin"
    shutil.copyfile(source / "model.param", param)
    data = (source / "model.bin").read_bytes()
    weights.write_bytes(data[: len(data) // 2] if truncate else data)
    return BenchModel("m", "fp32", param, weights, "data", SHAPE)


@pytest.mark.parametrize("kind", ["python", "native"])
def test_truncated_bin_is_one_clear_line_from_either_runner(
    tmp_path: Path, ncnn_models: Path, kind: str
) -> None:
    runner = PythonRunner() if kind == "python" else NativeRunner(native_runner("host"))
    model = _model(tmp_path, ncnn_models / "nanodet-plus-m_416-pnnx", truncate=True)
    from benchmarks.harness import TimingPlan

    plan = TimingPlan((1,), 1, 0, 120.0)
    with LocalTarget() as local:
        installed = runner.install(local)
        with pytest.raises(RunnerFailed) as failed:
            runner.measure(local, installed, model, lambda p, _s: str(p), plan)
    message = str(failed.value)
    assert message.startswith("model error:") and "\n" not in message, message


def test_native_runner_errors_relayed_by_the_cli(tmp_path: Path, nanodet_plus_build: Path) -> None:
    """A missing image and a build naming a layout the core lacks: exit codes 5 and 4, one line each."""
    binary = native_runner("host")
    missing = subprocess.run(
        [binary, "detect", "--build", str(nanodet_plus_build), "--precision", "fp32", "--threads", "1",
         "--out", str(tmp_path / "d.json"), str(tmp_path / "nope.jpg")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 5, missing
    line = json.loads(missing.stdout.strip().splitlines()[-1])
    assert line["error"] == "input" and "nope.jpg" in line["message"]
    with LocalTarget() as local, pytest.raises(RunnerFailed, match=r"^input error: .*nope\.jpg"):
        call_json(local, [str(binary), *missing.args[1:]], 120, "native")


def _build_with_layer(build: Path, out: Path, old: str, new: str) -> Path:
    """A copy of ``build`` whose fp32 graph has ``new`` layers instead of ``old`` (manifest updated)."""
    shutil.copytree(build, out)
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["artifacts"]["ncnn"]["fp32"]
    param = out / entry["files"]["param"]["path"]
    lines = param.read_text().splitlines()
    swapped = [new + line[len(old) :] if line.startswith(old + " ") else line for line in lines]
    assert swapped != lines
    param.write_text("\n".join(swapped) + "\n")
    data = param.read_bytes()
    entry["files"]["param"] |= {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    entry["size_bytes"] = len(data) + entry["files"]["bin"]["bytes"]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


def test_a_layer_the_native_runner_lacks_is_one_line_from_bench_and_detect(
    nanodet_plus_build: Path, demo_images: Path, tmp_path: Path
) -> None:
    """SELU is a layer ncnn (and so the Python runtime) has but the native core does not compile in."""
    native_runner("host")
    build = _build_with_layer(nanodet_plus_build, tmp_path / "selu-build", "Sigmoid", "SELU")
    bench = run_edgekit("bench", build, "--runner", "native", "--precision", "fp32", "--threads", "1",
                        "--loops", "1", "--warmup", "0")  # fmt: skip
    assert bench.returncode == 1, bench
    errors = [
        line for line in bench.stderr.splitlines() + bench.stdout.splitlines() if line.startswith("error:")
    ]
    assert len(errors) == 1 and "SELU" in errors[0] and "fp32 failed on local" in errors[0], errors
    assert str(build / "model.fp32.param") in errors[0]  # the user's file, not its copy on the target
    detect = run_edgekit("detect", build, demo_images / "bus.jpg", "--precision", "fp32", "--target", "local",
                         "--runner", "native", "-o", tmp_path / "out")  # fmt: skip
    lines = message_lines(detect.stderr)
    assert detect.returncode != 0 and len(lines) == 1 and "SELU" in lines[0], detect.stderr
