"""The edgekit demo app as the emulated adb device (tests/support/adbd.py ``--app``) runs it.

No APK can be built or run on this machine, so the emulated device stands in for the installed
app: its ``pm path`` knows the package, and its ``am start -n <package>/.BenchActivity ...``
does what the activity does (android-demo/app/src/main/java/io/edgekit/demo/BenchActivity.kt):
reads the bundled build from the app's assets (``edgekit bundle``'s index and manifest), checks
the ``sha256`` extra against the bundled ``.bin``, runs the native core's bench loop (the aarch64
``edgekit-runner bench`` under QEMU on an arm64 device, ``--qemu``: the same C++ core the app links) and writes its JSON, or an
``{"error", "message"}`` line, to ``<external files dir>/<out>`` via ``<out>.partial`` and a rename.
Like ``am start``, it returns once the activity is launched; the benchmark runs on detached.

    python android_app.py --app ANDROID_DEMO_DIR --files HOST_DIR pm path PACKAGE
    python android_app.py --app ANDROID_DEMO_DIR --files HOST_DIR am start -S -W -n PKG/.BenchActivity --es build NAME ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_ACTIVITY = ".BenchActivity"


def app_info(app: Path) -> tuple[str, Path]:
    """(package, assets directory) from the demo's edgekit-app.json."""
    marker = json.loads((app / "edgekit-app.json").read_text())
    return marker["package"], app / marker["assets"]


def parse_am_start(argv: list[str]) -> tuple[str, dict[str, str | int | bool]]:
    """(component, extras) of ``start [-S] [-W] -n COMPONENT --es/--ei/--ez KEY VALUE ...``."""
    if not argv or argv[0] != "start":
        raise ValueError(f"unsupported am command: {' '.join(argv)}")
    component, extras, i = "", {}, 1
    while i < len(argv):
        flag = argv[i]
        if flag in ("-S", "-W"):
            i += 1
        elif flag == "-n":
            component, i = argv[i + 1], i + 2
        elif flag in ("--es", "--ei", "--ez"):
            key, value = argv[i + 1], argv[i + 2]
            extras[key] = int(value) if flag == "--ei" else (value == "true") if flag == "--ez" else value
            i += 3
        else:
            raise ValueError(f"unsupported am start option {flag}")
    return component, extras


def bench(assets: Path, extras: dict[str, str | int | bool], qemu: str | None) -> dict:
    """What BenchActivity computes for these extras (the native core's bench JSON, or an error).

    The core is the device's build: aarch64 under ``qemu`` on an arm64 device, else this host's.
    """
    index = json.loads((assets / "index.json").read_text())
    name, precision = str(extras.get("build", "")), str(extras.get("precision", "fp16"))
    entry = next((b for b in index["bundles"] if b["name"] == name), None)
    if entry is None:
        return {"error": "usage", "message": f"the app has no bundle '{name}'"}
    manifest = json.loads((assets / entry["manifest"]).read_text())
    artifact = manifest["artifacts"]["ncnn"].get(precision)
    if artifact is None:
        held = ", ".join(entry["precisions"])  # the wording of bundle_assets.cpp read_bundle
        return {"error": "usage", "message": f"bundle {name} has no {precision} model (it has {held})"}
    bundle_dir = (assets / entry["manifest"]).parent
    param, weights = (
        bundle_dir / artifact["files"]["param"]["path"],
        bundle_dir / artifact["files"]["bin"]["path"],
    )
    expected = str(extras.get("sha256", ""))
    if expected and hashlib.sha256(weights.read_bytes()).hexdigest() != expected:
        return {
            "error": "model",
            "message": f"bundle {name} {precision} is not the build given (sha256 differs)",
        }
    sys.path.insert(0, str(REPO_ROOT))
    from edge.native.locate import runner_path

    _, c, h, w = manifest["input"]["shape"]
    core = (
        [qemu, "-cpu", "max", str(runner_path("aarch64", build=False))]
        if qemu
        else [str(runner_path("host", build=False))]
    )
    argv = [
        *core, "bench",
        "--param", str(param), "--bin", str(weights),
        "--input", manifest["input"]["ncnn_name"], "--shape", f"{c},{h},{w}",
        "--precision", precision, "--threads", str(extras.get("threads", "1")),
        "--loops", str(extras.get("loops", 100)), "--warmup", str(extras.get("warmup", 10)),
        "--powersave", str(extras.get("powersave", 0)),
        "--vulkan", "1" if extras.get("gpu") is True else "0",  # the "gpu" extra: BenchOptions::use_vulkan
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": "crash", "message": (proc.stderr.strip().splitlines() or ["no output"])[-1]}


def run_activity(assets: Path, files: Path, extras: dict[str, str | int | bool], qemu: str | None) -> None:
    """The detached part of ``am start``: bench, then write the result file atomically."""
    try:
        result = bench(assets, extras, qemu)
    except Exception as exc:  # the app writes an error result, it never leaves the harness waiting
        result = {"error": "crash", "message": f"{type(exc).__name__}: {exc}"}
    files.mkdir(parents=True, exist_ok=True)
    out = files / Path(str(extras.get("out", "bench.json"))).name
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(result) + "\n")
    os.replace(partial, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", type=Path, required=True)
    parser.add_argument(
        "--files", type=Path, required=True, help="host dir standing for the external files dir"
    )
    parser.add_argument("--qemu", help="qemu-aarch64-static: the device is arm64 (its core runs under QEMU)")
    parser.add_argument("--detached-extras", help=argparse.SUPPRESS)
    parser.add_argument("tool", choices=("am", "pm"))
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    package, assets = app_info(args.app)
    if args.detached_extras is not None:
        run_activity(assets, args.files, json.loads(args.detached_extras), args.qemu)
        return 0
    if args.tool == "pm":
        if args.args[:1] == ["path"] and args.args[1:] == [package]:
            print(f"package:/data/app/{package}-1/base.apk")
            return 0
        return 1
    try:
        component, extras = parse_am_start(args.args)
    except (ValueError, IndexError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    if component not in (f"{package}/{BENCH_ACTIVITY}", f"{package}/{package}{BENCH_ACTIVITY}"):
        print(f"Error: Activity class {{{component}}} does not exist.", file=sys.stderr)
        return 1
    began = time.monotonic()
    subprocess.Popen(
        [sys.executable, __file__, "--app", str(args.app), "--files", str(args.files),
         *(["--qemu", args.qemu] if args.qemu else []), "--detached-extras", json.dumps(extras), "am"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    took = int((time.monotonic() - began) * 1000)
    print(f"Starting: Intent {{ cmp={component} (has extras) }}")
    print(
        f"Status: ok\nLaunchState: COLD\nActivity: {component}\nTotalTime: {took}\nWaitTime: {took}\nComplete"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
