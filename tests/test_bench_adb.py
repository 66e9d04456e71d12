"""The adb benchmark target, driven through the real adb client and server.

Every test starts a private adb server (its own port and HOME, so no keys or devices of the
user's are touched) and one or more emulated devices (``tests/support/adbd.py``, the device
side of adb's TCP transport) on loopback ports, then uses :class:`AdbTarget` against them.
The emulated device runs commands on this host, so its ``python3`` has ncnn, as on a Termux
phone. (USB devices cannot be hidden from an adb server: run these tests with no phone
plugged in, as in CI.)
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.harness import BenchConfig, run_benchmarks
from benchmarks.runners import parse_benchncnn
from benchmarks.targets.adb import AdbTarget, TargetError, parse_devices, parse_target_spec
from tests.support.assets import skip_or_fail

REPO_ROOT = Path(__file__).resolve().parents[1]
ADBD = REPO_ROOT / "tests" / "support" / "adbd.py"
RUNNER = REPO_ROOT / "edge" / "board" / "runner.py"


def _adb_client() -> str:
    found = shutil.which("adb")
    if found is None:
        skip_or_fail("the adb client is not installed (apt-get install adb)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AdbServer:
    """A private adb server; ``adb(...)`` runs the client against it."""

    client: str

    def adb(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.client, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def states(self) -> dict[str, str]:
        return {d.serial: d.state for d in parse_devices(self.adb("devices").stdout)}


@dataclass
class Device:
    """An emulated device process: its serial and the directory standing for /data/local/tmp."""

    process: subprocess.Popen[str]
    port: int
    sandbox: Path
    log: Path

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def trace(self) -> list[str]:
        """The services opened and sync requests made so far (the device's --trace log)."""
        return self.log.read_text().splitlines()


@pytest.fixture
def adb_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AdbServer]:
    client = _adb_client()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(_free_port()))
    monkeypatch.delenv("ADB_VENDOR_KEYS", raising=False)
    monkeypatch.setenv("ADB_EMU", "0")  # no scanning of local emulator ports 5555-5585
    monkeypatch.setenv("ADB_MDNS", "0")  # no discovery of devices on the network
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    monkeypatch.delenv("EDGEKIT_ADB", raising=False)
    server = AdbServer(client)
    started = server.adb("start-server")
    assert started.returncode == 0, started.stderr
    try:
        yield server
    finally:
        server.adb("kill-server")


@pytest.fixture
def start_device(tmp_path: Path) -> Iterator[Callable[..., Device]]:
    devices: list[Device] = []

    def start(*flags: str) -> Device:
        sandbox = tmp_path / f"device{len(devices)}"
        log = tmp_path / f"device{len(devices)}.log"
        with log.open("w") as log_file:
            process = subprocess.Popen(
                [sys.executable, str(ADBD), "--sandbox", str(sandbox), "--trace", *flags],
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
            )
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening 127.0.0.1:"), line
        device = Device(process, int(line.rsplit(":", 1)[1]), sandbox, log)
        devices.append(device)
        return device

    yield start
    for device in devices:
        if device.process.poll() is None:
            device.process.send_signal(signal.SIGTERM)
            try:
                device.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                device.process.kill()
                device.process.wait()


def _connect(server: AdbServer, device: Device) -> None:
    server.adb("connect", device.serial)
    deadline = time.monotonic() + 5
    while server.states().get(device.serial) != "device":
        assert time.monotonic() < deadline, server.states()
        time.sleep(0.05)


# -- push / run / pull ------------------------------------------------------------------------


def test_push_run_pull_round_trip(adb_server: AdbServer, start_device, tmp_path: Path) -> None:
    device = start_device()
    payload = os.urandom(300_000)  # > 64 KiB: several sync DATA chunks
    local = tmp_path / "payload.bin"
    local.write_bytes(payload)
    script = tmp_path / "tool.sh"
    script.write_text('#!/bin/sh\necho "args: $*"\necho "to stderr" >&2\nexit 3\n')
    script.chmod(0o755)

    target = AdbTarget.from_spec(f"adb://{device.serial}")  # not connected yet: open() connects
    with target:
        assert target.name == f"adb://{device.serial}"
        assert target.shell_v2
        assert target.workdir.startswith("/data/local/tmp/edgekit-")
        host_workdir = device.sandbox / target.workdir.removeprefix("/data/local/tmp/")
        assert host_workdir.is_dir()

        remote = target.push(local, "payload.bin")
        assert remote == f"{target.workdir}/payload.bin"
        assert (host_workdir / "payload.bin").read_bytes() == payload

        digest = target.run(["sha256sum", "payload.bin"], timeout=30)
        assert digest.returncode == 0
        assert digest.stdout.split()[0] == hashlib.sha256(payload).hexdigest()

        tool = target.push(script, "tool.sh")
        assert os.stat(host_workdir / "tool.sh").st_mode & stat.S_IXUSR  # mode travels with SEND
        result = target.run([tool, "a b", "c;d"], timeout=30)
        assert (result.returncode, result.stdout, result.stderr) == (3, "args: a b c;d\n", "to stderr\n")
        assert target.run(["sh", "-c", "exit 0"], timeout=30).returncode == 0
        assert target.run(["sh", "-c", "kill -9 $$"], timeout=30).returncode == 137
        assert target.run(["pwd"], timeout=30).stdout.strip() == target.workdir
        missing = target.run(["no-such-command-xyz"], timeout=30)
        assert missing.returncode == 127

        target.run(["sh", "-c", "head -c 200000 payload.bin > made.bin"], timeout=30)
        back = target.pull(f"{target.workdir}/made.bin", tmp_path / "out" / "made.bin")
        assert back.read_bytes() == payload[:200_000]
        assert target.pull("payload.bin", tmp_path / "again.bin").read_bytes() == payload

        with pytest.raises(TargetError, match="no-such-file"):
            target.pull("no-such-file", tmp_path / "nothing.bin")
        assert not (tmp_path / "nothing.bin").exists()
        assert not (tmp_path / "nothing.bin.partial").exists()
        with pytest.raises(TargetError, match="inside the work directory"):
            target.push(local, "../escape.bin")
        listing = adb_server.adb("-s", device.serial, "ls", target.workdir).stdout  # sync LIS2
        assert {"payload.bin", "tool.sh", "made.bin"} <= {line.split()[-1] for line in listing.splitlines()}
    assert not host_workdir.exists()  # close() removed the work directory
    trace = device.trace()
    assert any(t.startswith("open shell,v2,") for t in trace)
    assert any(t.startswith(("sync STA2 ", "sync LST2 ")) for t in trace)
    for request in ("SEND", "RECV", "LIS2"):
        assert any(t.startswith(f"sync {request} /data/local/tmp/edgekit-") for t in trace), request


def test_only_device_is_chosen_and_described(
    adb_server: AdbServer, start_device, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = start_device()
    _connect(adb_server, device)
    calls = tmp_path / "adb-calls.log"
    client = tmp_path / "my-adb"  # EDGEKIT_ADB names the client to use
    client.write_text(
        f'#!/bin/sh\necho "$1" >> {shlex.quote(str(calls))}\nexec {shlex.quote(adb_server.client)} "$@"\n'
    )
    client.chmod(0o755)
    monkeypatch.setenv("EDGEKIT_ADB", str(client))
    with AdbTarget.from_spec("adb") as target:
        assert target.name == f"adb://{device.serial}"
        assert target.python is not None and os.path.basename(target.python).startswith("python")
        info = target.describe()
        assert info["ro.product.model"] == "edgekit emulated device"
        assert info["ro.build.version.release"] == "14"
    assert calls.read_text().split()[:2] == ["devices", "-s"]


def test_adb_devices_output_parses() -> None:
    text = (
        "* daemon not running; starting now at tcp:5037\n* daemon started successfully\n"
        "List of devices attached\nR58M1234ABC\tdevice\n192.168.1.20:5555\toffline\n"
        "emulator-5554\tunauthorized\n0123456789\tno permissions (user in plugdev group); see [the udev rules page]\n\n"
    )
    assert [(d.serial, d.state) for d in parse_devices(text)] == [
        ("R58M1234ABC", "device"),
        ("192.168.1.20:5555", "offline"),
        ("emulator-5554", "unauthorized"),
        ("0123456789", "no permissions (user in plugdev group); see [the udev rules page]"),
    ]


def test_old_device_without_shell_protocol_or_stat_v2(
    adb_server: AdbServer, start_device, tmp_path: Path
) -> None:
    device = start_device("--legacy")  # an old adbd: shell v1 (no exit status), sync v1 only
    _connect(adb_server, device)
    payload = os.urandom(150_000)
    (tmp_path / "p.bin").write_bytes(payload)
    with AdbTarget(device.serial) as target:
        assert not target.shell_v2
        result = target.run(["sh", "-c", "echo out; exit 5"], timeout=30)
        assert result.returncode == 5
        assert result.stdout == "out\n"
        assert target.run(["true"], timeout=30).returncode == 0
        target.push(tmp_path / "p.bin", "p.bin")
        assert target.pull("p.bin", tmp_path / "back.bin").read_bytes() == payload
        listing = adb_server.adb("-s", device.serial, "ls", target.workdir).stdout  # sync LIST
        assert "p.bin" in {line.split()[-1] for line in listing.splitlines()}
    trace = device.trace()
    assert any(t.startswith("open shell:") for t in trace)
    assert not any("shell,v2" in t or t.startswith(("sync STA2", "sync LST2")) for t in trace)
    assert any(t.startswith("sync STAT ") for t in trace)
    assert any(t.startswith("sync LIST ") for t in trace)


def test_device_that_asks_for_authorization_and_gets_it(adb_server: AdbServer, start_device) -> None:
    device = start_device("--auth", "accept")
    _connect(adb_server, device)
    with AdbTarget(device.serial) as target:
        assert target.run(["echo", "allowed"], timeout=30).stdout == "allowed\n"
    assert (Path(os.environ["HOME"]) / ".android" / "adbkey.pub").is_file()  # the private HOME's key


# -- devices that cannot be used --------------------------------------------------------------


def test_no_device(adb_server: AdbServer) -> None:
    with pytest.raises(TargetError, match="no Android device found"):
        AdbTarget.from_spec("adb").open()


def test_unknown_serial(adb_server: AdbServer) -> None:
    with pytest.raises(TargetError, match=r"adb device R58M123 not found \(adb devices lists: none\)"):
        AdbTarget("R58M123").open()


def test_more_than_one_device_needs_a_serial(adb_server: AdbServer, start_device) -> None:
    first, second = start_device(), start_device()
    _connect(adb_server, first)
    _connect(adb_server, second)
    with pytest.raises(TargetError, match="more than one adb device") as caught:
        AdbTarget.from_spec("adb").open()
    assert first.serial in str(caught.value) and second.serial in str(caught.value)
    with AdbTarget(second.serial) as target:  # a serial picks one
        assert target.run(["true"], timeout=30).returncode == 0


def test_unauthorized_device(adb_server: AdbServer, start_device) -> None:
    device = start_device("--auth", "never")
    adb_server.adb("connect", device.serial)
    assert adb_server.states()[device.serial] == "unauthorized"
    with pytest.raises(TargetError, match="is unauthorized: unlock it and allow USB debugging"):
        AdbTarget(device.serial).open()


def test_offline_device(adb_server: AdbServer, start_device) -> None:
    device = start_device("--offline")  # accepts TCP, never answers the CNXN handshake
    connecting = subprocess.Popen(
        [adb_server.client, "connect", device.serial], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 5
        while adb_server.states().get(device.serial) != "offline":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(TargetError, match="is offline"):
            AdbTarget(device.serial).open()
        assert time.monotonic() - started < 5
    finally:
        connecting.kill()
        connecting.wait()


def test_bad_target_spec() -> None:
    assert parse_target_spec("adb") is None
    assert parse_target_spec("adb://emulator-5554") == "emulator-5554"
    with pytest.raises(TargetError, match="not an adb target"):
        parse_target_spec("ssh://pi@host")


def test_missing_adb_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGEKIT_ADB", str(tmp_path / "adb"))
    with pytest.raises(TargetError, match="is not an executable adb client"):
        AdbTarget().open()


# -- devices that fail mid-run ----------------------------------------------------------------


def test_device_killed_during_a_command(adb_server: AdbServer, start_device) -> None:
    device = start_device("--die-on", "sleep 30", "--die-delay", "0.3")
    _connect(adb_server, device)
    target = AdbTarget(device.serial)
    target.open()
    started = time.monotonic()
    with pytest.raises(
        TargetError, match=rf"adb device {device.serial} went away while running sleep"
    ) as caught:
        target.run(["sleep", "30"], timeout=60)
    assert time.monotonic() - started < 10
    assert "\n" not in str(caught.value)
    target.close()  # never raises, returns promptly
    assert time.monotonic() - started < 15
    device.process.wait(timeout=5)


def test_device_killed_during_a_push(adb_server: AdbServer, start_device, tmp_path: Path) -> None:
    device = start_device("--die-on", r"sync SEND .*/big\.bin,", "--die-delay", "0")
    _connect(adb_server, device)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2_000_000))
    target = AdbTarget(device.serial)
    target.open()
    started = time.monotonic()
    with pytest.raises(TargetError, match=r"went away while pushing big\.bin"):
        target.push(big, "big.bin")
    target.close()
    assert time.monotonic() - started < 10


def test_device_that_stops_answering_times_out(adb_server: AdbServer, start_device) -> None:
    device = start_device("--hang-on", "sleep 30")
    _connect(adb_server, device)
    target = AdbTarget(device.serial)
    target.open()
    started = time.monotonic()
    with pytest.raises(TargetError, match="timed out after 2 s"):
        target.run(["sleep", "30"], timeout=2)
    target.close()
    assert time.monotonic() - started < 8


# -- the benchmark harness over adb -----------------------------------------------------------


def _nanodet_builds(ncnn_models: Path) -> list[Path]:
    return [
        ncnn_models / "nanodet-plus-m_416-clsdis" / "model.param",  # fp16 weights: fp32 and fp16 runs
        ncnn_models / "nanodet-plus-m_416-int8" / "model.param",  # INT8 graph: int8 run
    ]


def test_harness_over_adb_reports_every_precision(
    adb_server: AdbServer, start_device, ncnn_models: Path
) -> None:
    device = start_device()
    _connect(adb_server, device)
    config = BenchConfig(threads=(1,), loops=3, warmup=1, shape=(3, 416, 416))
    report = run_benchmarks(_nanodet_builds(ncnn_models), [AdbTarget(device.serial)], config).to_dict()
    assert report["errors"] == []
    name = f"adb://{device.serial}"
    runs = {(r["build"], r["precision"]): r for r in report["results"]}
    assert set(runs) == {
        ("nanodet-plus-m_416-clsdis", "fp32"),
        ("nanodet-plus-m_416-clsdis", "fp16"),
        ("nanodet-plus-m_416-int8", "int8"),
    }
    for r in runs.values():
        assert r["target"] == name and r["threads"] == 1 and not r["emulated"]
        assert 0 < r["latency_ms"]["min"] <= r["latency_ms"]["median"]
        assert r["load_ms"] > 0 and r["size_bytes"] > 0
    assert report["targets"][name]["ncnn_version"]
    assert not list(device.sandbox.iterdir())  # the work directory is gone


def test_harness_keeps_results_of_a_device_killed_mid_run(
    adb_server: AdbServer, start_device, ncnn_models: Path
) -> None:
    # the device vanishes 0.3 s into its second benchmark run (clsdis at fp16)
    device = start_device("--die-on", r"edgekit_runner\.py bench", "--die-after", "2", "--die-delay", "0.3")
    _connect(adb_server, device)
    config = BenchConfig(threads=(1,), loops=20, warmup=1, shape=(3, 416, 416))
    started = time.monotonic()
    report = run_benchmarks(_nanodet_builds(ncnn_models), [AdbTarget(device.serial)], config).to_dict()
    assert time.monotonic() - started < 30
    assert [(r["build"], r["precision"]) for r in report["results"]] == [
        ("nanodet-plus-m_416-clsdis", "fp32")
    ]
    [error] = report["errors"]
    assert error["precision"] == "fp16"
    assert f"adb device {device.serial} went away while running python3" in error["message"]
    assert "\n" not in error["message"]


BENCHNCNN_OUTPUT = """\
loop_count = 4
num_threads = 1
powersave = 0
gpu_device = -1
cooldown = 0
          squeezenet  min =    2.62  max =    2.73  avg =    2.67
"""


def test_benchncnn_output_lines_parse() -> None:
    assert parse_benchncnn(BENCHNCNN_OUTPUT) == {"min": 2.62, "max": 2.73, "mean": 2.67}
    benchncnn_format = "%20s  min = %7.2f  max = %7.2f  avg = %7.2f"  # benchncnn's own printf format
    line = benchncnn_format % ("model.param", 1234.5, 2000.25, 1500.0)
    assert parse_benchncnn(line) == {"min": 1234.5, "max": 2000.25, "mean": 1500.0}


def _benchncnn_wrapper(tmp_path: Path) -> Path:
    """A benchncnn-compatible program: benchncnn's arguments in, benchncnn's output lines out.

    It times the model with edgekit's board runner (``bench`` mode, zero weights as benchncnn
    uses) and prints the statistics in benchncnn's format.
    """
    wrapper = tmp_path / "benchncnn"
    wrapper.write_text(
        f"""#!/bin/sh
# usage: benchncnn LOOPS THREADS POWERSAVE GPU COOLDOWN param=PATH shape=[w,h,c]
loops=$1 threads=$2
param=${{6#param=}}
shape=$(echo "${{7#shape=}}" | tr -d '[]')
input=$(awk '$1 == "Input" {{ print $5; exit }}' "$param")
chw=$(echo "$shape" | awk -F, '{{ print $3 "," $2 "," $1 }}')
echo "loop_count = $loops"
echo "num_threads = $threads"
python3 {shlex.quote(str(RUNNER))} bench --param "$param" --input "$input" --shape "$chw" --threads "$threads" \\
    --loops "$loops" --warmup 1 | python3 -c '
import json, sys
run = json.load(sys.stdin)["runs"][0]["latencies_ms"]
print("%20s  min = %7.2f  max = %7.2f  avg = %7.2f" % (sys.argv[1], min(run), max(run), sum(run) / len(run)))
' "$(basename "$param")"
"""
    )
    wrapper.chmod(0o755)
    return wrapper


def test_harness_over_adb_with_a_benchncnn_compatible_runner(
    adb_server: AdbServer, start_device, ncnn_models: Path, tmp_path: Path
) -> None:
    device = start_device()
    _connect(adb_server, device)
    config = BenchConfig(
        precisions=("fp32",),
        threads=(1,),
        loops=3,
        warmup=1,
        shape=(3, 416, 416),
        runner=_benchncnn_wrapper(tmp_path),
    )
    builds = [ncnn_models / "nanodet-plus-m_416-clsdis" / "model.param"]
    report = run_benchmarks(builds, [AdbTarget(device.serial)], config).to_dict()
    assert report["errors"] == []
    [result] = report["results"]
    latency = result["latency_ms"]
    assert 0 < latency["min"] <= latency["mean"] and latency["median"] is None
