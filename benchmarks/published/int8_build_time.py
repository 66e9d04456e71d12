"""How long the default INT8 build (``convert --int8``) takes, step by step, on this machine.

Converts each NanoDet-Plus ONNX model to an fp32 build once, then runs the INT8 build with
convert's defaults (method ``search``: channel equalization, statistics on every calibration
image, threshold search, bias correction, automatic keep-float to cosine 0.999 with at most 16
layers) ``--runs`` times, the models interleaved round by round. Prints per step the median
wall time with its range, and the median CPU time of the process: on a shared machine the wall
time grows with the other jobs while the CPU time stays close to what an idle machine takes.
The load average before and after is printed too. The budget is 60 s for the 1.5x model.

Usage: ``python -m benchmarks.published.int8_build_time [--models m,1.5x] [--runs 3]
[--calib DIR] [--threads 1] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.published.assets import shared_root
from converters.int8_build import build_int8
from edge.manifest import load_manifest

SHARED = shared_root()
MODELS = {
    "m": SHARED / "models/onnx/nanodet-plus-m_416.onnx",
    "1.5x": SHARED / "models/onnx/nanodet-plus-m-1.5x_416-from-int8.onnx",
}
BUDGET_S = 60.0
STEPS = (
    "equalization",
    "statistics",
    "thresholds",
    "search",
    "bias_correction",
    "keep_float",
    "write",
    "total",
)


def fp32_build(onnx: Path, work: Path) -> Path:
    from converters.convert import convert_onnx

    return convert_onnx(onnx, work / onnx.stem, fp16=False).manifest_path.parent


def one_build(build: Path, calib: Path, out: Path, threads: int) -> dict:
    manifest = load_manifest(build)
    files = manifest.build("fp32")
    result = build_int8(
        build / files.param,
        build / files.bin,
        manifest.input,
        calib,
        out / "model.int8.param",
        out / "model.int8.bin",
        out / "calibration.table",
        method="search",
        auto_keep_float=True,
        threads=threads,
    )
    return {
        "wall": result.timings,
        "cpu": result.cpu_timings,
        "kept_float": len(result.kept_float),
        "auto_keep_float": result.auto_keep_float,
    }


def summarise(runs: list[dict]) -> dict:
    steps = {}
    for step in STEPS:
        wall = [r["wall"].get(step, 0.0) for r in runs]
        cpu = [r["cpu"].get(step, 0.0) for r in runs]
        steps[step] = {
            "wall_median_s": round(statistics.median(wall), 2),
            "wall_min_s": round(min(wall), 2),
            "wall_max_s": round(max(wall), 2),
            "cpu_median_s": round(statistics.median(cpu), 2),
        }
    return {
        "runs": len(runs),
        "steps": steps,
        "kept_float": [r["kept_float"] for r in runs],
        "auto_keep_float": runs[-1]["auto_keep_float"],
    }


def print_report(results: dict, loads: tuple, runs: int) -> None:
    print(
        f"\nINT8 build time (convert --int8 defaults), median of {runs} runs; load average {loads[0]} -> {loads[1]}"
    )
    for key, summary in results.items():
        print(f"\n{MODELS[key].name}")
        print(f"{'step':>16} {'wall s':>8} {'range':>15} {'cpu s':>7}")
        for step, row in summary["steps"].items():
            spread = f"{row['wall_min_s']:.1f}-{row['wall_max_s']:.1f}"
            print(f"{step:>16} {row['wall_median_s']:8.1f} {spread:>15} {row['cpu_median_s']:7.1f}")
        total = summary["steps"]["total"]
        verdict = "within" if total["wall_median_s"] <= BUDGET_S else "OVER"
        print(
            f"  {verdict} the {BUDGET_S:.0f} s budget (wall); CPU {total['cpu_median_s']:.1f} s;"
            f" kept in fp16: {summary['kept_float']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="m,1.5x")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calib", type=Path, default=SHARED / "data/coco128")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    keys = [k for k in args.models.split(",") if k]
    unknown = [k for k in keys if k not in MODELS]
    if unknown or args.runs < 1:
        parser.error(f"models from {list(MODELS)}, runs >= 1 (got {unknown or args.runs})")
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="edgekit-int8time-") as tmp:
        work = Path(tmp)
        builds = {key: fp32_build(MODELS[key], work) for key in keys}
        runs: dict[str, list[dict]] = {key: [] for key in keys}
        for round_no in range(args.runs):
            for key in keys:  # interleaved: every model sees the same machine state in a round
                out = work / f"int8-{key}-{round_no}"
                started = time.perf_counter()
                runs[key].append(one_build(builds[key], args.calib, out, args.threads))
                print(f"[{key}] run {round_no + 1}: {time.perf_counter() - started:.1f} s", flush=True)
    results = {key: summarise(r) for key, r in runs.items()}
    loads = (load_before, round(os.getloadavg()[0], 2))
    print_report(results, loads, args.runs)
    if args.json:
        payload = {"load_average": loads, "threads": args.threads, "budget_s": BUDGET_S, "models": results}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
