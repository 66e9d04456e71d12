"""Issue 14, classes 2 and 3: no lost or overwritten file, no mixed build, no junk, no orphan.

Real converts (pnnx, onnxruntime, ncnn) of the smallest shared model, killed by SIGKILL, SIGTERM
and SIGHUP at seeded random points; concurrent writers; a reader looping during ``--force``
replacements; ``--force`` and ``detect -o`` refusals; tampered build files.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.checksums import ChecksumMismatch
from edge.errors import EdgekitError
from edge.manifest import MANIFEST_NAME, load_manifest
from edge.runtime.detector import Detector
from edge.runtime.resolve import resolve_model
from edge.staging import staging_owner
from tests.support.build_checks import (
    assert_complete_build,
    no_process_left,
    other_build,
    processes_mentioning,
    sha,
    variant_of,
)
from tests.support.cli import REPO_ROOT
from tests.support.warm_cli import WarmCli

SMALL = "nanodet-m-0.5x_320.onnx"
KILL_POINTS = int(os.environ.get("EDGEKIT_KILL_POINTS", "20"))
REPLACEMENTS = 4
SEED = 14


def edgekit(*args: object, cwd: Path = REPO_ROOT) -> subprocess.Popen[str]:
    """Start ``python -m edge ARGS`` (not waited for)."""
    return subprocess.Popen(
        [sys.executable, "-m", "edge", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def cli() -> Iterator[WarmCli]:
    """One warm edgekit CLI for the module (see tests.support.warm_cli)."""
    warm = WarmCli()
    yield warm
    warm.close()


@pytest.fixture(scope="module")
def small_onnx(onnx_models: Path) -> Path:
    return onnx_models / SMALL


@pytest.fixture(scope="module")
def small_build(small_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from converters.convert import convert_onnx

    return convert_onnx(
        small_onnx, tmp_path_factory.mktemp("small") / "build", fp16=False
    ).manifest_path.parent


# --- signals at random points of a real convert ----------------------------------------------------


def test_signals_at_random_points_of_a_convert(cli, small_onnx, tmp_path):
    """SIGKILL, SIGTERM, SIGHUP at seeded random points of the work (after start-up) of a convert."""
    work = tmp_path / "work"
    work.mkdir()
    out = work / "out"
    log = tmp_path / "stderr.txt"
    args = ("convert", small_onnx, "-o", out, "--force", "--no-fp16")
    cli.start(args, log)
    cli.wait_for_output()
    started = time.monotonic()
    assert cli.finish() == 0, log.read_text()
    whole = time.monotonic() - started  # from the first progress line to the end
    rng = random.Random(SEED)
    kinds = (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP)
    killed: set[int] = set()
    staged_after_kill9 = 0
    for point in range(KILL_POINTS):
        signum = kinds[point % len(kinds)]
        delay = rng.uniform(0.0, whole)
        pid = cli.start(args, log)
        killed.add(pid)
        cli.wait_for_output()
        time.sleep(delay)
        code = cli.finish(signum)
        where = f"point {point}: {signum.name} {delay:.2f} s into the work"
        assert code in (0, -signum), (where, code, log.read_text())
        assert no_process_left(str(work)) == [], where  # pnnx died with edgekit
        if out.exists():  # absent or complete, never half-written
            assert_complete_build(out)
        beside = sorted(set(os.listdir(work)) - {"out"})
        assert all(staging_owner(name) in killed for name in beside), (where, beside)  # only staging
        own = [name for name in beside if staging_owner(name) == pid]
        if signum == signal.SIGKILL:
            staged_after_kill9 += bool(own)
        else:  # caught: edgekit removed its own staging before dying by the signal
            assert own == [], (where, own)
    cli.start(args, log)
    assert cli.finish() == 0, log.read_text()
    assert os.listdir(work) == ["out"]  # the last run swept the staging the killed ones left
    assert_complete_build(out)
    assert no_process_left(str(work)) == []
    print(
        f"{KILL_POINTS} signals over {whole:.1f} s of work; kill -9 left staging {staged_after_kill9}x, swept"
    )


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_pnnx_dies_with_a_killed_convert(cli, small_onnx, tmp_path, signum):
    """The signal lands while pnnx runs: pnnx ends with edgekit (SIGKILL: by PR_SET_PDEATHSIG)."""
    out = tmp_path / "out"
    cli.start(("convert", small_onnx, "-o", out, "--no-fp16"), tmp_path / "stderr.txt")
    deadline = time.monotonic() + 120
    while not any("pnnx" in cmd and "ncnnparam=" in cmd for cmd in processes_mentioning(str(tmp_path))):
        assert time.monotonic() < deadline, "pnnx never ran"
        time.sleep(0.002)
    assert cli.finish(signum) == -signum
    assert no_process_left(str(tmp_path)) == []
    left = os.listdir(tmp_path)
    assert sorted(left) == sorted(["stderr.txt", *[n for n in left if staging_owner(n)]])
    assert signum == signal.SIGKILL or len(left) == 1  # SIGTERM: staging removed too


# --- concurrent writers and a reader during replacements ----------------------------------------


def test_three_concurrent_converts_exactly_one_wins(small_onnx, tmp_path):
    out = tmp_path / "out"
    procs = [edgekit("convert", small_onnx, "-o", out, "--no-fp16") for _ in range(3)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    codes = [code for code, _ in results]
    assert codes.count(0) == 1, results
    for code, err in results:
        if code != 0:
            lines = [ln for ln in err.splitlines() if not ln.startswith("edgekit: [")]
            assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
            assert "already exists" in lines[0] or "created by another run" in lines[0], lines
    assert os.listdir(tmp_path) == ["out"]
    assert_complete_build(out)


def test_reader_never_sees_a_mixed_build_during_force_replacements(
    cli, small_onnx, small_build, demo_images, tmp_path
):
    """Replace a build by two alternating ones (other weights) while a reader keeps opening it."""
    out = tmp_path / "out"
    sources = {"a": small_onnx, "b": variant_of(small_onnx, tmp_path / "variant.onnx")}
    image = cv2.imread(str(demo_images / "bus.jpg"))
    expected = {}  # source sha256 -> what a consistent build of it detects
    shutil.copytree(small_build, tmp_path / "a")  # small_onnx converted with --no-fp16
    for name, source in sources.items():
        if name != "a":
            code, err = cli.run("convert", source, "-o", tmp_path / name, "--no-fp16")
            assert code == 0, err
        detector = Detector.open(tmp_path / name)
        expected[sha(source)] = detector.detect(image).boxes.round(3).tolist()
        detector.close()
    assert len({str(v) for v in expected.values()}) == 2
    shutil.copytree(tmp_path / "a", out)
    stop = threading.Event()
    failures: list[str] = []
    opened = dict.fromkeys(expected, 0)

    def writer() -> None:
        try:
            for i in range(REPLACEMENTS):
                code, err = cli.run("convert", sources["ba"[i % 2]], "-o", out, "--force", "--no-fp16")
                if code != 0:
                    failures.append(err)
        finally:
            stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    while not stop.is_set():
        spec = resolve_model(out)
        assert spec.pinned is not None
        records = spec.pinned.manifest.builds["fp32"].files
        for role, path in zip(("param", "bin"), spec.load_paths(), strict=True):
            # what ncnn loads is what this manifest describes (hashed here, not by edgekit)
            assert sha(path) == records[role].sha256, role
        opened[spec.pinned.manifest.source["sha256"]] += 1
        detector = Detector.open(out)
        found = detector.detect(image).boxes.round(3).tolist()
        source = detector.spec.pinned.manifest.source["sha256"]
        detector.close()
        assert found == expected[source], "detections of another build than the manifest's"
        time.sleep(0.01)  # leave the writer some CPU on a small machine
    thread.join()
    assert failures == []
    assert all(opened.values()), opened  # the reader saw both builds
    assert_complete_build(out)
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "out", "variant.onnx"]


# --- what --force may replace ----------------------------------------------------------------


def test_force_refuses_what_is_not_an_edgekit_build(cli, small_onnx, small_build, tmp_path):
    from converters.convert import convert_onnx

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("user data")
    code, err = cli.run("convert", small_onnx, "-o", foreign, "--force")
    assert code == 2 and err.count("\n") == 1 and "refusing to replace" in err, err
    assert (foreign / "notes.txt").read_text() == "user data"

    mixed = tmp_path / "build-plus"  # a real build with one file edgekit did not write
    shutil.copytree(small_build, mixed)
    (mixed / "results.csv").write_text("keep")
    with pytest.raises(EdgekitError, match=r"'results\.csv', which edgekit did not write"):
        convert_onnx(small_onnx, mixed, force=True, fp16=False)
    assert (mixed / "results.csv").read_text() == "keep"

    models = tmp_path / "models"  # a parent of the source model
    models.mkdir()
    source = models / SMALL
    shutil.copy(small_onnx, source)
    with pytest.raises(EdgekitError, match="an input of this run"):
        convert_onnx(source, models, force=True, fp16=False)
    assert source.is_file()

    link = tmp_path / "link"
    link.symlink_to(small_build)
    with pytest.raises(EdgekitError, match="symbolic link"):
        convert_onnx(small_onnx, link, force=True, fp16=False)

    here = tmp_path / "here"  # the current directory, and its parent
    here.mkdir()
    for target in (".", ".."):
        code, err = cli.run("convert", small_onnx, "-o", target, "--force", cwd=here)
        assert code == 2 and "refusing to replace" in err and "current directory" in err, err
    assert here.is_dir() and (tmp_path / "mine" / "notes.txt").is_file()


def test_force_replaces_a_build_or_an_empty_directory_leaving_nothing_beside(
    small_onnx, small_build, tmp_path
):
    from converters.convert import convert_onnx

    empty = tmp_path / "empty"
    empty.mkdir()
    convert_onnx(small_onnx, empty, force=True, fp16=False)
    assert_complete_build(empty)
    old = tmp_path / "old"
    shutil.copytree(small_build, old)
    inode = os.stat(old / MANIFEST_NAME).st_ino
    convert_onnx(small_onnx, old, force=True, fp16=False)
    assert os.stat(old / MANIFEST_NAME).st_ino != inode  # another build in its place
    assert_complete_build(old)
    assert sorted(os.listdir(tmp_path)) == ["empty", "old"]  # no .old-PID copy, no staging


# --- detect never overwrites its inputs ----------------------------------------------------------------


def test_detect_refuses_to_overwrite_its_inputs(cli, small_build, demo_images, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(demo_images, images)
    before = {p.name: sha(p) for p in images.iterdir()}
    for inputs in ([images], [images / "bus.jpg"]):
        code, err = cli.run("detect", small_build, *inputs, "-o", images, "--force")
        assert code == 2 and err.count("\n") == 1 and "would overwrite the input" in err, err
    assert {p.name: sha(p) for p in images.iterdir()} == before


def test_killed_video_detect_leaves_no_temporary_file(cli, small_build, demo_images, tmp_path):
    video = tmp_path / "clip.avi"
    frame = cv2.resize(cv2.imread(str(demo_images / "bus.jpg")), (320, 240))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 240))
    for i in range(300):
        writer.write(np.roll(frame, i, axis=1))
    writer.release()
    out = tmp_path / "out"
    for signum in (signal.SIGTERM, signal.SIGKILL):
        cli.start(("detect", small_build, video, "-o", out, "--force"), tmp_path / "stderr.txt")
        deadline = time.monotonic() + 120
        while not (out.is_dir() and any(staging_owner(n) for n in os.listdir(out))):
            assert time.monotonic() < deadline, (tmp_path / "stderr.txt").read_text()
            time.sleep(0.02)
        assert cli.finish(signum) == -signum
        left = [n for n in os.listdir(out) if staging_owner(n)]
        assert len(left) == (1 if signum == signal.SIGKILL else 0), (signum, left)  # SIGTERM: cleaned up
    code, err = cli.run("detect", small_build, demo_images / "bus.jpg", "-o", out)  # the next run sweeps
    assert code == 0, err
    assert sorted(os.listdir(out)) == ["bus.jpg", "bus.json"]


# --- checksums -------------------------------------------------------------------------------------


def test_tampered_same_size_bin_is_refused(cli, small_build, demo_images, tmp_path):
    build = tmp_path / "build"
    shutil.copytree(small_build, build)
    Detector.open(build).close()  # verified once: its checksum is now cached
    binf = build / "model.fp32.bin"
    st = binf.stat()
    data = bytearray(binf.read_bytes())
    data[len(data) // 2] ^= 0x40
    with open(binf, "r+b") as fh:  # in place: same inode, same size, mtime put back
        fh.write(data)
    os.utime(binf, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ChecksumMismatch, match=r"model\.fp32\.bin does not match the sha256"):
        resolve_model(build)
    code, err = cli.run("detect", build, demo_images / "bus.jpg", "-o", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "model.fp32.bin does not match the sha256" in err, err
    other = build / "other.bin"  # a swapped file of the same size
    other.write_bytes(bytes(st.st_size))
    os.replace(other, binf)
    with pytest.raises(ChecksumMismatch, match=r"model\.fp32\.bin"):
        resolve_model(build)


def test_force_without_renameat2_still_replaces_cleanly(small_onnx, small_build, tmp_path, monkeypatch):
    """Where the kernel or file system lacks renameat2, --force falls back to two renames."""
    import edge.atomic
    from converters.convert import convert_onnx

    monkeypatch.setattr(edge.atomic, "exchange", lambda a, b: False)
    monkeypatch.setattr(edge.atomic, "rename_noreplace", lambda a, b: False)
    out = tmp_path / "out"
    shutil.copytree(small_build, out)
    convert_onnx(small_onnx, out, force=True)
    assert "fp16" in load_manifest(out).builds
    assert_complete_build(out)
    assert os.listdir(tmp_path) == ["out"]
    with pytest.raises(EdgekitError, match="already exists"):
        convert_onnx(small_onnx, out, fp16=False)


def test_pinned_reader_against_a_tight_exchange_loop(small_build, tmp_path):
    """Two builds swapped by renameat2 as fast as possible: a reader that reads the manifest and then
    the files by path can mix them; resolve_model (pinned) never does."""
    from edge.renames import exchange

    out = tmp_path / "out"
    shutil.copytree(small_build, out)
    spare = other_build(small_build, tmp_path / "spare")
    stop = threading.Event()

    def swapper() -> None:
        while not stop.is_set():
            assert exchange(out, spare)

    thread = threading.Thread(target=swapper)
    thread.start()
    naive_mixed = pinned_opens = 0
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:  # the naive reader: manifest first, then the file by its path
                record = load_manifest(out).builds["fp32"].files["bin"]
                naive_mixed += sha(out / record.path) != record.sha256
            except EdgekitError:
                pass
            spec = resolve_model(out)
            assert spec.pinned is not None
            records = spec.pinned.manifest.builds["fp32"].files
            assert sha(spec.load_paths()[1]) == records["bin"].sha256
            pinned_opens += 1
    finally:
        stop.set()
        thread.join()
    assert pinned_opens > 20
    print(f"naive reader saw {naive_mixed} mixed builds; {pinned_opens} pinned opens saw none")


# --- issue 14, second attack round: outputs that are inputs, swallowed signals, Ctrl-C ------------


def test_calibrate_and_bench_never_overwrite_their_inputs(cli, small_build, demo_images, tmp_path):
    build, images = tmp_path / "build", tmp_path / "images"
    shutil.copytree(small_build, build)
    shutil.copytree(demo_images, images)
    before = {p: sha(p) for p in [*build.iterdir(), *images.iterdir()]}
    picture = sorted(images.iterdir())[0]
    for out in (build / "model.fp32.bin", build / MANIFEST_NAME, picture):
        code, err = cli.run("calibrate", build, "--images", images, "-o", out, "--force")
        assert code == 2 and err.count("\n") == 1 and "would overwrite the input" in err, err
    code, err = cli.run("bench", build, "--csv", build / MANIFEST_NAME, "--force")
    assert code == 2 and "would overwrite the input" in err, err
    assert {p: sha(p) for p in [*build.iterdir(), *images.iterdir()]} == before


SWALLOWED = """
import os, signal, sys, time
from edge.signals import Terminated, pending_termination, terminate_as_exception

def hook():  # the signal arrives while Python runs an at-fork callback, which discards exceptions
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):
        pass

os.register_at_fork(after_in_parent=hook)
with terminate_as_exception():
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(5)
        print("missed")
    except Terminated as exc:
        print("terminated", exc.signum == signal.SIGTERM)
with terminate_as_exception():
    try:  # a termination that surfaces as another exception is still known as one
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(5)
        except Terminated:
            raise ImportError("initialization failed") from None
    except ImportError:
        print("pending", pending_termination() == signal.SIGHUP)
"""


def test_a_signal_swallowed_by_an_at_fork_callback_is_delivered_again():
    run = subprocess.run(
        [sys.executable, "-c", SWALLOWED], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60
    )
    assert run.stdout.split() == ["terminated", "True", "pending", "True"], run.stdout + run.stderr


def test_helper_children_start_without_preexec_fn():
    from edge.signals import child_command, child_options

    assert "preexec_fn" not in child_options()  # at-fork callbacks in the parent would eat signals
    wrapped = child_command(["/bin/sh", "-c", "cat /proc/self/status"])
    status = subprocess.run(wrapped, capture_output=True, text=True, check=True).stdout
    assert status  # the wrapper execs the command itself
    assert wrapped[-3:] == ["/bin/sh", "-c", "cat /proc/self/status"]


def test_ctrl_c_during_a_convert_says_interrupted(small_onnx, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "convert", small_onnx, "-o", tmp_path / "out"],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(2.0)  # past the imports, inside the conversion
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted", err
    assert not (tmp_path / "out").exists()
