"""The Android demo (android-demo/): its build files, its asset loader and its benchmark mode.

No Android SDK can be installed here, so no APK is built: these tests check what can be checked
on this machine, for real.

* The Gradle and CMake files: every source, asset and directory they reference exists, the JNI
  functions match the Kotlin ``external`` declarations, and the pinned ncnn release is the
  installed wheel's (written in one place).
* The app's asset loader (``bundle_assets.cpp``) compiled with the native core by the host
  compiler (``tests/support/android_host``): a bundle written by ``edgekit bundle`` read through
  it gives the same detections as ``edgekit detect`` on the shared demo images.
* ``edgekit bench --target adb --runner app`` against the emulated adb device, which answers
  ``am start -n io.edgekit.demo/.BenchActivity ...`` with the core's aarch64 bench under QEMU.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from tests.support.assets import skip_or_fail
from tests.support.cli import run_edgekit

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "android-demo"
APP = DEMO / "app"
CPP = APP / "src" / "main" / "cpp"
KOTLIN = APP / "src" / "main" / "java" / "io" / "edgekit" / "demo"
ASSETS = Path("app/src/main/assets/edgekit")
ADBD = REPO / "tests" / "support" / "adbd.py"


def wheel_release() -> str:
    import ncnn

    return ncnn.__version__.rsplit(".", 1)[-1]  # 1.0.20261020 -> release tag 20261020


def gradle_property(name: str) -> str:
    found = re.search(rf"^{re.escape(name)}=(.*)$", (DEMO / "gradle.properties").read_text(), re.M)
    assert found, f"{name} missing from gradle.properties"
    return found.group(1).strip()


# -- build files ------------------------------------------------------------------------------


def test_pinned_ncnn_is_the_wheels_and_written_once() -> None:
    version = gradle_property("edgekit.ncnnVersion")
    assert version == wheel_release()
    build = (APP / "build.gradle.kts").read_text()
    cmake = (CPP / "CMakeLists.txt").read_text()
    assert 'gradleProperty("edgekit.ncnnVersion")' in build and "-DEDGEKIT_NCNN_VERSION=$ncnnVersion" in build
    assert "ncnn-${EDGEKIT_NCNN_VERSION}-android-vulkan" in cmake
    assert "releases/download/${EDGEKIT_NCNN_VERSION}/${NCNN_PACKAGE}.zip" in cmake
    # ONE place: no build file but gradle.properties names the release
    for path in [
        *DEMO.rglob("*.kts"),
        *DEMO.rglob("*.toml"),
        *DEMO.rglob("CMakeLists.txt"),
        *DEMO.rglob("*.kt"),
    ]:
        assert version not in path.read_text(), f"{path} repeats the ncnn version"


def test_gradle_files_reference_what_exists() -> None:
    settings = (DEMO / "settings.gradle.kts").read_text()
    for module in re.findall(r'include\("(:[\w-]+)"\)', settings):
        assert (DEMO / module[1:] / "build.gradle.kts").is_file()
    build = (APP / "build.gradle.kts").read_text()
    for relative in re.findall(r'file\("([^"]+)"\)', build):
        assert (APP / relative).is_file(), relative
    # every library/plugin alias used is declared in the version catalog, with a fixed version
    catalog = (DEMO / "gradle" / "libs.versions.toml").read_text()
    versions = dict(re.findall(r'^(\w+) = "([^"]+)"$', catalog.split("[libraries]")[0], re.M))
    assert versions and all(re.fullmatch(r"\d+(\.\d+)+", v) for v in versions.values()), versions
    declared = {n.replace("-", ".") for n in re.findall(r"^([\w-]+) = \{", catalog, re.M)}
    used = set(
        re.findall(r"\(libs\.((?:plugins\.)?[\w.]+)\)", build + (DEMO / "build.gradle.kts").read_text())
    )
    assert used and {u.removeprefix("plugins.") for u in used} <= declared, used - declared
    for ref in re.findall(r'version\.ref = "(\w+)"', catalog):
        assert ref in versions
    # SDK / NDK / CMake pinned, and the README states the same
    readme = (DEMO / "README.md").read_text()
    for pattern, label in (
        (r"compileSdk = (\d+)", "API {}"),
        (r'ndkVersion = "([\d.]+)"', "{}"),
        (r'version = "(3\.[\d.]+)"', "{}"),
    ):
        value = re.search(pattern, build)
        assert value, pattern
        assert label.format(value.group(1)) in readme
    assert versions["agp"] in readme and versions["kotlin"] in readme and versions["camerax"] in readme
    wrapper = (DEMO / "gradle" / "wrapper" / "gradle-wrapper.properties").read_text()
    assert re.search(r"gradle-([\d.]+)-bin\.zip", wrapper).group(1) in readme
    # the manifest's activities and the package the bench harness starts
    manifest = (APP / "src" / "main" / "AndroidManifest.xml").read_text()
    marker = json.loads((DEMO / "edgekit-app.json").read_text())
    assert f'namespace = "{marker["package"]}"' in build and f'applicationId = "{marker["package"]}"' in build
    for activity in re.findall(r'android:name="\.(\w+)"', manifest):
        assert re.search(rf"class {activity}\b", (KOTLIN / f"{activity}.kt").read_text())
    from benchmarks.app_runner import ACTIVITY, PACKAGE

    assert marker["package"] == PACKAGE and f'android:name="{ACTIVITY}"' in manifest
    assert (DEMO / marker["assets"] / "index.json").is_file()


def test_cmake_files_reference_what_exists() -> None:
    cmake = (CPP / "CMakeLists.txt").read_text()
    library = re.search(r"add_library\(edgekit_jni SHARED([^)]*)\)", cmake).group(1).split()
    assert library and all((CPP / name).is_file() for name in library), library
    native = re.search(r"set\(EDGEKIT_NATIVE_DIR \$\{EDGEKIT_DEMO_DIR\}/([^)]+)\)", cmake).group(1)
    demo_dir = re.search(r"set\(EDGEKIT_DEMO_DIR \$\{CMAKE_CURRENT_SOURCE_DIR\}/([^)]+)\)", cmake).group(1)
    assert (CPP / demo_dir).resolve() == DEMO
    assert (DEMO / native).resolve() == REPO / "edge" / "native"  # the app compiles the core's sources
    core = (REPO / "edge" / "native" / "CMakeLists.txt").read_text()
    assert "add_library(edgekit_core" in core and "target_link_libraries(edgekit_jni edgekit_core" in cmake
    for source in re.findall(r"\b(src/\w+\.cpp)\b", core):
        assert (REPO / "edge" / "native" / source).is_file(), source
    for header in re.findall(r'#include "([\w/]+\.h)"', "".join(p.read_text() for p in CPP.glob("*.cpp"))):
        assert (
            (CPP / header).is_file()
            or (REPO / "edge/native/include" / header).is_file()
            or header
            in (
                "cpu.h",
                "gpu.h",
            )
        ), header  # cpu.h / gpu.h: ncnn's headers, from its Android prebuilt
    host = (REPO / "tests/support/android_host/CMakeLists.txt").read_text()
    assert "${EDGEKIT_APP_CPP}/bundle_assets.cpp" in host and (CPP / "bundle_assets.cpp").is_file()


def test_jni_functions_match_the_kotlin_declarations() -> None:
    kotlin = (KOTLIN / "NativeCore.kt").read_text()
    declared = set(re.findall(r"external fun (\w+)\(", kotlin))
    glue = (CPP / "jni_glue.cpp").read_text()
    exported = set(re.findall(r"Java_io_edgekit_demo_NativeCore_(\w+)\(", glue))
    assert declared and declared == exported
    # the same parameters on both sides: Kotlin's, then the C function's after (JNIEnv*, jobject)
    jni_types = {"AssetManager": "jobject", "Bitmap": "jobject", "String": "jstring", "Int": "jint",
                 "Long": "jlong", "Boolean": "jboolean", "IntArray": "jintArray"}  # fmt: skip
    for name, params in re.findall(r"external fun (\w+)\(([^)]*)\)", kotlin):
        kotlin_types = [jni_types[p.split(":")[1].strip()] for p in params.split(",") if p.strip()]
        c_params = re.search(rf"Java_io_edgekit_demo_NativeCore_{name}\(([^)]*)\)", glue).group(1)
        c_types = [p.split()[0] for p in c_params.split(",")][2:]
        assert c_types == kotlin_types, name
    assert (
        "options.use_vulkan = use_gpu == JNI_TRUE" in glue and "plan.use_vulkan = use_gpu == JNI_TRUE" in glue
    )
    # BenchActivity reads every extra the harness sends, with the type it sends it as, and "gpu"
    from benchmarks.app_runner import am_start_command
    from benchmarks.runners import BenchModel, TimingPlan

    activity = (KOTLIN / "BenchActivity.kt").read_text()
    read = dict((k, t) for t, k in re.findall(r"extras\.get(String|Int|Boolean)\(\"(\w+)\"", activity))
    model = BenchModel("b", "fp16", Path("m.param"), Path("m.bin"), "in0", (3, 416, 416))
    argv = am_start_command(
        model, TimingPlan(threads=(1, 2), loops=5, warmup=1, timeout=60), "0" * 64, "o.json"
    )
    flags = {"--es": "String", "--ei": "Int", "--ez": "Boolean"}
    sent = {argv[i + 1]: flags[f] for i, f in enumerate(argv) if f in flags}
    assert sent and all(read.get(k) == v for k, v in sent.items()), (sent, read)
    assert read.get("gpu") == "Boolean" and "--ez gpu true" in activity
    assert (
        'System.loadLibrary("edgekit_jni")' in kotlin
        and "add_library(edgekit_jni" in (CPP / "CMakeLists.txt").read_text()
    )
    layout = (APP / "src/main/res/layout/activity_main.xml").read_text()
    strings = (APP / "src/main/res/values/strings.xml").read_text()
    main = (KOTLIN / "MainActivity.kt").read_text()
    for view in set(re.findall(r"\bui\.(\w+)\b", main)) - {"root"}:
        assert f'android:id="@+id/{view}"' in layout, view
    for name in set(re.findall(r"R\.string\.(\w+)", main)):
        assert f'name="{name}"' in strings, name


# -- the asset loader on the host ---------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle_host() -> Path:
    """The cached host build of the app's asset loader + the native core."""
    from tests.support.android_host import build_program

    if shutil.which("cmake") is None or shutil.which("c++") is None:
        skip_or_fail("cmake and a C++ compiler are needed (apt-get install cmake g++)")
    return build_program()


def make_demo_copy(parent: Path, build: Path, *bundle_args: str) -> Path:
    """A copy of android-demo/ (no bundle of the checkout's) with ``build`` bundled by `edgekit bundle`."""
    copy = parent / "android-demo"
    shutil.copytree(DEMO, copy, ignore=shutil.ignore_patterns(".ncnn", "build", ".gradle", ".cxx"))
    for child in (copy / ASSETS).iterdir():
        if child.is_dir():
            shutil.rmtree(child)
    (copy / ASSETS / "index.json").write_text('{"schema": "edgekit.bundles/1", "bundles": []}')
    res = run_edgekit("bundle", build, "--app", copy, *bundle_args)
    assert res.returncode == 0, res.stderr
    return copy


@pytest.fixture(scope="module")
def demo_copy(tmp_path_factory: pytest.TempPathFactory, nanodet_plus_build: Path) -> Path:
    """android-demo/ holding nanodet-plus-m_416 fp32 + fp16 as bundle ``nanodet``."""
    parent = tmp_path_factory.mktemp("app")
    return make_demo_copy(parent, nanodet_plus_build, "--precision", "fp32,fp16", "--name", "nanodet")


def _iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_bundle_read_by_the_app_loader_detects_like_edgekit_detect(
    bundle_host: Path,
    demo_copy: Path,
    nanodet_plus_build: Path,
    demo_images: Path,
    tmp_path: Path,
    precision: str,
) -> None:
    from edge.manifest import load_manifest
    from tests.support.android_host import run_program

    # the shared images decoded once (OpenCV, as edgekit detect reads them) into lossless PNGs, so
    # both sides see the same pixels: the JPEG decoders differ (stb_image in the core, libjpeg-turbo
    # in OpenCV) by enough to move a box ~2 px (person.jpg), which says nothing about the loader
    images = []
    for source in sorted(p for p in demo_images.iterdir() if p.suffix.lower() in (".jpg", ".png")):
        images.append(tmp_path / f"{source.stem}.png")
        assert cv2.imwrite(str(images[-1]), cv2.imread(str(source), cv2.IMREAD_COLOR))
    code, native = run_program(
        bundle_host, "detect", "--assets", str(demo_copy / ASSETS), "--bundle", "nanodet",
        "--precision", precision, *map(str, images),
    )  # fmt: skip
    assert code == 0, native
    ref = run_edgekit(
        "detect", nanodet_plus_build, *images, "-o", tmp_path / "out", "--precision", precision, "--json"
    )
    assert ref.returncode == 0, ref.stderr
    expected = {Path(r["input"]).name: r for r in json.loads(ref.stdout)["results"]}
    # a detection scoring within 0.01 of the threshold may fall on either side of it (scores agree
    # to 0.01, not bit for bit)
    threshold = load_manifest(nanodet_plus_build).decoder.score_threshold
    clear = threshold + 0.01
    compared = 0
    assert sorted(Path(r["input"]).name for r in native["results"]) == sorted(expected)
    for got in native["results"]:
        want = expected[Path(got["input"]).name]
        assert (got["width"], got["height"]) == (want["width"], want["height"])
        assert sorted(d["class_name"] for d in got["detections"] if d["score"] >= clear) == sorted(
            d["class_name"] for d in want["detections"] if d["score"] >= clear
        ), got["input"]
        matched: set[int] = set()
        for d in want["detections"]:
            candidates = [(i, g) for i, g in enumerate(got["detections"]) if g["class_id"] == d["class_id"]]
            best = max(candidates, key=lambda ig: _iou(ig[1]["box"], d["box"]), default=None)
            if best is None or _iou(best[1]["box"], d["box"]) < 0.5:
                assert d["score"] < clear, (got["input"], "missing", d)
                continue
            i, match = best
            matched.add(i)
            assert max(abs(x - y) for x, y in zip(match["box"], d["box"], strict=True)) <= 1.0, (
                got["input"],
                d,
            )
            assert abs(match["score"] - d["score"]) <= 0.01, (got["input"], d, match)
            assert match["class_name"] == d["class_name"]
            compared += 1
        extra = [g for i, g in enumerate(got["detections"]) if i not in matched]
        assert all(g["score"] < clear for g in extra), (got["input"], "extra", extra)
    assert compared >= 10  # the demo images hold plenty of objects


def test_app_loader_refuses_bad_bundles(bundle_host: Path, demo_copy: Path, tmp_path: Path) -> None:
    from tests.support.android_host import run_program

    assets = demo_copy / ASSETS
    code, out = run_program(bundle_host, "list", "--assets", str(assets))
    assert code == 0 and out == [{"name": "nanodet", "precisions": ["fp32", "fp16"]}]
    base = ("detect", "--assets", str(assets), "--precision", "fp16")
    code, out = run_program(bundle_host, *base, "--bundle", "missing", str(tmp_path))
    assert (code, out["error"]) == (2, "usage") and "no bundle 'missing' (bundles: nanodet)" in out["message"]
    code, out = run_program(
        bundle_host, "detect", "--assets", str(assets), "--bundle", "nanodet", "--precision", "int8"
    )
    assert (code, out["error"]) == (2, "usage") and "has no int8 model (it has fp32, fp16)" in out["message"]
    # a .bin changed after bundling: the core's checksum check refuses it (one line, exit 4)
    tampered = tmp_path / "assets"
    shutil.copytree(assets, tampered)
    weights = tampered / "nanodet" / "model.fp16.bin"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0x01
    weights.write_bytes(bytes(data))
    code, out = run_program(
        bundle_host, "detect", "--assets", str(tampered), "--bundle", "nanodet", "--precision", "fp16"
    )
    assert (code, out["error"]) == (4, "model") and "sha256" in out["message"] and "\n" not in out["message"]


def test_bench_through_the_app_loader_prints_the_runners_json(
    bundle_host: Path, demo_copy: Path, nanodet_plus_build: Path, tmp_path: Path
) -> None:
    from edge.checksums import sha256_file
    from tests.support.android_host import run_program

    args = ("bench", "--assets", str(demo_copy / ASSETS), "--bundle", "nanodet", "--precision", "fp16",
            "--threads", "1,2", "--loops", "3", "--warmup", "1", "--scratch", str(tmp_path))  # fmt: skip
    code, out = run_program(
        bundle_host, *args, "--sha256", sha256_file(nanodet_plus_build / "model.fp16.bin")
    )
    assert code == 0, out
    assert out["precision"] == "fp16" and [r["threads"] for r in out["runs"]] == [1, 2]
    for run in out["runs"]:
        assert (
            len(run["latencies_ms"]) == 3 and all(v > 0 for v in run["latencies_ms"]) and run["load_ms"] > 0
        )
        assert {"peak_rss_mb", "peak_rss_scope", "outputs"} <= set(run)
    assert list(tmp_path.iterdir()) == []  # the scratch model files are removed
    # the same JSON as the native runner's bench on the same files
    from edge.manifest import load_manifest
    from edge.native.locate import runner_path

    spec = load_manifest(nanodet_plus_build).input
    runner = subprocess.run(
        [str(runner_path("host")), "bench", "--param", str(nanodet_plus_build / "model.fp16.param"),
         "--bin", str(nanodet_plus_build / "model.fp16.bin"), "--input", spec.ncnn_name, "--shape", f"3,{spec.height},{spec.width}",
         "--precision", "fp16", "--threads", "1", "--loops", "1", "--warmup", "0"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    reference = json.loads(runner.stdout.strip().splitlines()[-1])
    assert set(reference) <= set(out) and set(out) - set(reference) == {"runner", "bundle"}
    assert set(reference["runs"][0]) == set(out["runs"][0])
    code, out = run_program(bundle_host, *args, "--sha256", "0" * 64)
    assert (code, out["error"]) == (4, "model") and "is not the build given" in out["message"]
    # BenchActivity's "gpu" extra / the GPU switch: this host's ncnn has no Vulkan, so the core
    # refuses with one line (never a silent CPU run) and the scratch files are removed
    no_vulkan = "this ncnn build has no Vulkan: run on the CPU (use_vulkan off)"
    code, out = run_program(bundle_host, *args, "--gpu", "1")
    assert (code, out) == (2, {"error": "usage", "message": no_vulkan}) and list(tmp_path.iterdir()) == []
    detect = ("detect", "--assets", str(demo_copy / ASSETS), "--bundle", "nanodet", "--precision", "fp16")
    code, out = run_program(
        bundle_host, *detect, "--gpu", "1", str(tmp_path / "never-read.png")
    )  # open refuses
    assert (code, out) == (2, {"error": "usage", "message": no_vulkan})


def test_jni_glue_type_checks_against_the_core(bundle_host: Path) -> None:
    """The Android-only C++ (JNI glue, AAssetManager reader) against the core's header, the JDK's
    jni.h and declaration stubs of the NDK calls it makes: type-checked only, never linked here."""
    from edge.native.locate import runner_path

    jdk = next(iter(sorted(Path("/usr/lib/jvm").glob("*/include/jni.h"))), None)
    if jdk is None:
        skip_or_fail("a JDK's jni.h is needed (apt-get install openjdk-17-jdk-headless)")
    ncnn_include = Path(runner_path("host")).parent.parent / "ncnn" / "include" / "ncnn"
    stubs = REPO / "tests" / "support" / "android_stubs"
    for source in ("jni_glue.cpp", "bundle_assets_android.cpp"):
        cmd = ["c++", "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
               f"-I{stubs}", f"-I{jdk.parent}", f"-I{jdk.parent / 'linux'}", f"-I{ncnn_include}",
               f"-I{REPO / 'edge/native/include'}", f"-I{CPP}", str(CPP / source)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]


# -- benchmark mode over adb ---------------------------------------------------------------------


def test_bench_runner_app_over_emulated_adb(
    nanodet_plus_build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge.checksums import sha256_file
    from edge.native.locate import runner_path
    from tests.test_bench_adb import _free_port

    adb = shutil.which("adb")
    if adb is None or shutil.which("qemu-aarch64-static") is None:
        skip_or_fail("adb and qemu-user-static are needed (apt-get install adb qemu-user-static)")
    runner_path("aarch64")  # the app's bench is the core's: its aarch64 build (cached)
    # bundled under the build directory's name, as `edgekit bench` asks the app for it
    demo_copy = make_demo_copy(tmp_path, nanodet_plus_build, "--precision", "fp16")
    from edge.native.build import cache_root

    home = tmp_path / "home"  # a private adb server: its own HOME (keys) and port
    home.mkdir()
    env = {
        "EDGEKIT_NATIVE_CACHE": str(cache_root()),
        "HOME": str(home),
        "ANDROID_ADB_SERVER_PORT": str(_free_port()),
        "ADB_EMU": "0",
        "ADB_MDNS": "0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    monkeypatch.delenv("EDGEKIT_ADB", raising=False)
    subprocess.run([adb, "start-server"], check=True, capture_output=True, timeout=30)
    log = tmp_path / "device.log"
    with log.open("w") as log_file:
        device = subprocess.Popen(
            [sys.executable, str(ADBD), "--sandbox", str(tmp_path / "sandbox"), "--trace", "--arch", "aarch64",
             "--no-python", "--app", str(demo_copy)],
            stdout=subprocess.PIPE, stderr=log_file, text=True,
        )  # fmt: skip
    try:
        line = device.stdout.readline()
        assert line.startswith("listening 127.0.0.1:"), line
        serial = f"127.0.0.1:{line.rsplit(':', 1)[1].strip()}"
        subprocess.run([adb, "connect", serial], capture_output=True, timeout=30)
        deadline = time.monotonic() + 10
        while (
            f"{serial}\tdevice" not in subprocess.run([adb, "devices"], capture_output=True, text=True).stdout
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        res = run_edgekit(
            "bench", nanodet_plus_build, "--target", f"adb://{serial}", "--runner", "app",
            "--precision", "fp16", "--threads", "1", "--loops", "2", "--warmup", "1", "--cores", "big", "--json",
            timeout=900, env={**os.environ, **env},
        )  # fmt: skip
        assert res.returncode == 0, res.stderr + res.stdout
        report = json.loads(res.stdout)
        [result] = report["results"]
        assert (result["build"], result["precision"], result["threads"]) == (
            nanodet_plus_build.name,
            "fp16",
            1,
        )
        assert result["latency_ms"]["median"] > 0 and result["load_ms"] > 0
        assert report["targets"][f"adb://{serial}"]["runner"] == "app"
        # the exact am start the harness sent (the device's trace of opened services)
        sha = sha256_file(nanodet_plus_build / "model.fp16.bin")
        expected = (
            f"am start -S -W -n io.edgekit.demo/.BenchActivity --es build {nanodet_plus_build.name} "
            f"--es precision fp16 --es threads 1 --ei loops 2 --ei warmup 1 --ei powersave 2 --es sha256 {sha} "
            "--es out bench-"
        )
        started = [t for t in log.read_text().splitlines() if "am start" in t]
        assert len(started) == 1 and expected in started[0], started
        # a precision the bundle lacks: the app's answer is one clear error in the report, exit 1
        res = run_edgekit(
            "bench", nanodet_plus_build, "--target", f"adb://{serial}", "--runner", "app",
            "--precision", "fp32", "--threads", "1", "--loops", "1", "--warmup", "0", "--json",
            timeout=600, env={**os.environ, **env},
        )  # fmt: skip
        assert res.returncode == 1
        [error] = json.loads(res.stdout)["errors"]
        assert error["message"].endswith(
            f"the app's benchmark failed: bundle {nanodet_plus_build.name} has no fp32 model (it has fp16)"
        )
    finally:
        device.terminate()
        device.wait(timeout=10)
        subprocess.run([adb, "kill-server"], capture_output=True, timeout=30)
