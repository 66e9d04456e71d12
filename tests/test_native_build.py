"""The native build driver without compiling: layer trimming, cache layout, arch names, CLI errors, locking."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from edge.errors import EdgekitError
from edge.native import build as native_build
from edge.native.layers import KEPT_LAYERS, layer_options
from edge.native.locate import arch_for_machine, runner_path
from tests.support.cli import message_lines, run_edgekit


def _fake_source(tmp_path: Path) -> Path:
    src = tmp_path / "ncnn-src" / "src"
    src.mkdir(parents=True)
    names = ["AbsVal", "Convolution", "LSTM", "Spectrogram", "Input", "ArgMax"]
    body = "\n".join(f"ncnn_add_layer({n})" if n != "ArgMax" else f"ncnn_add_layer({n} OFF)" for n in names)
    (src / "CMakeLists.txt").write_text(body + "\n")
    return src.parent


def test_layer_options_keep_the_listed_types_only(tmp_path):
    options = layer_options(_fake_source(tmp_path))
    assert "-DWITH_LAYER_convolution=ON" in options and "-DWITH_LAYER_input=ON" in options
    assert "-DWITH_LAYER_lstm=OFF" in options and "-DWITH_LAYER_spectrogram=OFF" in options
    assert "-DWITH_LAYER_argmax=OFF" in options
    assert len(options) == 6


def test_kept_layers_cover_every_shared_model(ncnn_models: Path):
    """Every layer type of the shared NanoDet models (pnnx, clsdis, legacy, int8) is compiled in."""
    used = set()
    for param in ncnn_models.glob("*/*.param"):
        used |= {line.split()[0] for line in param.read_text().splitlines()[2:] if line.strip()}
    assert used <= set(KEPT_LAYERS), sorted(used - set(KEPT_LAYERS))


def test_ncnn_options_are_static_trimmed_and_cross_compiled(tmp_path):
    source = _fake_source(tmp_path)
    host = native_build.ncnn_cmake_options(source, "host")
    arm = native_build.ncnn_cmake_options(source, "aarch64")
    for opts in (host, arm):
        assert {
            "-DNCNN_VULKAN=OFF",
            "-DNCNN_SHARED_LIB=OFF",
            "-DNCNN_RUNTIME_CPU=ON",
            "-DNCNN_BUILD_TOOLS=OFF",
        } <= set(opts)
    assert any(
        o.startswith("-DCMAKE_TOOLCHAIN_FILE=") and o.endswith("aarch64-linux-gnu.toolchain.cmake")
        for o in arm
    )
    assert not any(o.startswith("-DCMAKE_TOOLCHAIN_FILE=") for o in host)
    assert native_build.options_digest(host) == native_build.options_digest(arm)  # same ncnn, other compiler


def test_cache_layout_follows_version_and_arch(monkeypatch, tmp_path):
    monkeypatch.setenv(native_build.CACHE_VARIABLE, str(tmp_path))
    version = native_build.ncnn_version()
    assert native_build.runner_file("aarch64") == tmp_path / version / "aarch64" / "bin" / "edgekit-runner"
    with pytest.raises(EdgekitError, match="edgekit native build --arch aarch64"):
        runner_path("aarch64", build=False)
    with pytest.raises(EdgekitError, match="unknown arch"):
        runner_path("riscv64")


def test_machine_names_map_to_build_arches():
    assert arch_for_machine("aarch64") in ("aarch64", "host")
    assert arch_for_machine("arm64") == arch_for_machine("aarch64")
    with pytest.raises(EdgekitError, match="no native runner"):
        arch_for_machine("mips")


def _hold(path: str, seconds: float, queue) -> None:
    with native_build.locked(Path(path)):
        queue.put(("in", time.monotonic()))
        time.sleep(seconds)
        queue.put(("out", time.monotonic()))


def test_the_build_lock_serialises_processes(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_hold, args=(str(tmp_path / "x.lock"), 0.5, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    events = sorted(queue.get() for _ in range(4))
    ins = sorted(t for k, t in events if k == "in")
    outs = sorted(t for k, t in events if k == "out")
    assert ins[1] >= outs[0]  # the second holder entered after the first left


def test_cli_errors_are_one_line():
    for args, phrase in (
        (["native", "build", "--arch", "sparc"], "unknown arch"),
        (["native", "explode"], "unknown action"),
        (["native", "build", "--jobs", "0"], "--jobs"),
    ):
        proc = run_edgekit(*args)
        assert proc.returncode == 2, proc.stderr
        lines = message_lines(proc.stderr)
        assert len(lines) == 1 and phrase in lines[0], proc.stderr
