"""The ssh target against a real OpenSSH server on 127.0.0.1 (``tests/support/sshd.py``).

The server runs as root in the foreground with temporary host and user keys on a free port;
the client is the system ``ssh`` in batch mode with strict host-key checking against a
known_hosts file holding the temporary host key.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.harness import BenchConfig, run_benchmarks
from benchmarks.targets.registry import parse_target
from tests.support.assets import skip_or_fail
from tests.support.cli import run_edgekit
from tests.support.sshd import SshServer, sshd_available, start_sshd

SHAPE = (3, 416, 416)


def _need_sshd() -> None:
    reason = sshd_available()
    if reason:
        skip_or_fail(reason)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    _need_sshd()
    srv = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield srv
    srv.stop()


@pytest.fixture
def ssh_env(server: SshServer, monkeypatch: pytest.MonkeyPatch) -> SshServer:
    for key, value in server.client_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("EDGEKIT_SSH_PYTHON", sys.executable)  # the board's Python with ncnn
    return server


def _remote_dirs() -> set[str]:
    """edgekit's temporary directories on the 'board' (this machine, reached over loopback)."""
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    return {p.name for p in tmp.glob("edgekit-bench.*")}


@pytest.mark.slow
def test_ssh_full_report_fp32_fp16_int8(
    ssh_env: SshServer, nanodet_plus_build: Path, int8_param: Path
) -> None:
    before = _remote_dirs()
    config = BenchConfig(threads=(1, 2), loops=3, warmup=1, shape=SHAPE)
    report = run_benchmarks([nanodet_plus_build, int8_param], [parse_target(ssh_env.spec)], config)
    data = report.to_dict()
    assert data["errors"] == []
    rows = {(r["build"], r["precision"], r["threads"]) for r in data["results"]}
    assert rows == {
        (b, p, n)
        for b, p in [
            ("nanodet-plus-m_416-build", "fp32"),
            ("nanodet-plus-m_416-build", "fp16"),
            ("nanodet-plus-m_416-int8", "int8"),
        ]
        for n in (1, 2)
    }
    for r in data["results"]:
        assert r["target"] == ssh_env.spec and r["emulated"] is False
        lat = r["latency_ms"]
        assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"]
        assert lat["min"] <= lat["mean"] and r["fps"] == pytest.approx(1000 / lat["mean"])
        assert r["load_ms"] > 0 and r["peak_memory_mb"] > 10
    manifest = json.loads((nanodet_plus_build / "manifest.json").read_text())
    fp32 = manifest["artifacts"]["ncnn"]["fp32"]["files"]
    expected = sum((nanodet_plus_build / f["path"]).stat().st_size for f in fp32.values())
    assert {r["size_bytes"] for r in data["results"] if r["precision"] == "fp32"} == {expected}
    info = data["targets"][ssh_env.spec]
    assert info["cores"] >= 1 and info["ncnn_version"] and info["os"] and info["python"]
    assert "governor" in info and info["arm_fp16"] is False  # x86 "board"
    assert _remote_dirs() == before  # the mktemp -d directory was removed


def test_ssh_board_without_ncnn_names_the_fix(
    ssh_env: SshServer, int8_param: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = tmp_path / "python-without-site-packages"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -S -I "$@"\n')
    bare.chmod(0o755)
    monkeypatch.setenv("EDGEKIT_SSH_PYTHON", str(bare))
    config = BenchConfig(shape=SHAPE, runner="python")  # auto would take the native runner
    report = run_benchmarks([int8_param], [parse_target(ssh_env.spec)], config)
    assert report.results == []
    (err,) = report.errors
    assert "ncnn is missing" in err.message and "pip install ncnn numpy" in err.message


def test_ssh_board_without_python(
    ssh_env: SshServer, int8_param: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEKIT_SSH_PYTHON", "/nonexistent/python3")
    config = BenchConfig(shape=SHAPE, runner="python")  # auto would take the native runner
    report = run_benchmarks([int8_param], [parse_target(ssh_env.spec)], config)
    (err,) = report.errors
    assert "python3 is not installed" in err.message and "apt install python3" in err.message


def test_ssh_unknown_host_key_is_refused(
    ssh_env: SshServer, int8_param: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    monkeypatch.setenv("EDGEKIT_SSH_KNOWN_HOSTS", str(empty))
    report = run_benchmarks([int8_param], [parse_target(ssh_env.spec)], BenchConfig(shape=SHAPE))
    (err,) = report.errors
    assert "host key not known" in err.message and report.results == []


def test_ssh_server_killed_mid_run_keeps_results(
    nanodet_plus_build: Path, int8_param: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The board dies while the second model is being measured: the first one's results stay."""
    _need_sshd()
    srv = start_sshd(tmp_path / "sshd")
    for key, value in srv.client_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("EDGEKIT_SSH_PYTHON", sys.executable)
    killed = threading.Event()
    watchers: list[threading.Thread] = []

    def kill_when_running() -> None:
        """Kill the server once the runner is measuring fp16 on the board (not while connecting)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(
                "edgekit_runner.py bench" in c and "--precision fp16" in c for c in srv.session_processes()
            ):
                time.sleep(0.3)
                srv.kill()
                killed.set()
                return
            time.sleep(0.05)

    def progress(_target: str, message: str) -> None:
        if message.startswith("nanodet-plus-m_416-build fp16: measuring") and not watchers:
            watchers.append(threading.Thread(target=kill_when_running))
            watchers[0].start()

    try:
        config = BenchConfig(
            precisions=("fp32", "fp16", "int8"), threads=(1,), loops=50, warmup=1, shape=SHAPE
        )
        report = run_benchmarks([nanodet_plus_build, int8_param], [parse_target(srv.spec)], config, progress)
    finally:
        for t in watchers:
            t.join()
        srv.stop()
    assert killed.is_set()
    assert [(r.build, r.precision) for r in report.results] == [("nanodet-plus-m_416-build", "fp32")]
    (err,) = report.errors
    assert err.target == srv.spec and err.precision == "fp16"
    assert srv.spec in err.message and "while measuring nanodet-plus-m_416-build fp16" in err.message


def test_cli_fleet_with_dead_target_prints_partial_report(
    ssh_env: SshServer, int8_param: Path, tmp_path: Path
) -> None:
    """A fleet of a live ssh board, the local machine and a dead board: results from the two
    live ones, an error for the dead one, JSON printed, exit status non-zero."""
    with socket_closed_port() as port:
        dead = f"ssh://root@127.0.0.1:{port}"
        proc = run_edgekit("bench", int8_param,
               "--target", ssh_env.spec, "--target", "local", "--target", dead, "--threads", "1",
               "--loops", "2", "--warmup", "0", "--shape", "3,416,416", "--json",
               "--csv", tmp_path / "r.csv", timeout=300)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert {r["target"] for r in data["results"]} == {ssh_env.spec, "local"}
    assert [e["target"] for e in data["errors"]] == [dead]
    assert "Connection refused" in data["errors"][0]["message"]
    assert "Connection refused" in proc.stderr and "Traceback" not in proc.stderr
    assert set(data["targets"]) == {ssh_env.spec, "local"}
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 3  # header + 2 results


class socket_closed_port:
    """A loopback port nothing listens on (bound, not listening, for the block's duration)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
