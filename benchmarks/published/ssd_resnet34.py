"""SSD-ResNet34 1200x1200 figures: build -> convert (fp32, fp16, INT8) -> latency and peak memory of
every build at 1 and 2 threads, next to onnxruntime on the same ONNX file. Prints them and writes
``benchmarks/published/ssd_resnet34_results.json``.

    python3 -m benchmarks.published.ssd_resnet34 [--threads 1,2] [--repeats 2] [--loops 3]
        [--warmup 1] [--calib-num 2] [--results benchmarks/published/ssd_resnet34_results.json]

The model is ``edgekit zoo build ssd-resnet34-1200 --with-postprocess`` (generated weights: its
accuracy cannot be measured, only its speed, size, memory and parity). ``edgekit convert`` cuts
the NMS/TopK tail, verifies on 4 COCO val2017 images and calibrates INT8 on the first
``--calib-num`` coco128 images (few: one calibration pass of this 433-GFLOP model takes minutes
here). Builds are cached under ``~/.cache/edgekit/bench-builds``. Each repeat runs every ncnn
configuration (one runner process per build and precision, ``edgekit bench``'s harness) and then
onnxruntime (one process per thread count) on the original file, tail included: interleaved
rounds; the tables give the median of the per-run medians and the spread (max - min of the run
medians, relative to their median). Peak memory is the runner process's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.harness import BenchConfig, run_benchmarks
from benchmarks.published.assets import shared_root
from benchmarks.published.bench_nanodet import BUILD_CACHE, summarize
from benchmarks.targets.registry import parse_target
from edge.atomic import write_json
from edge.errors import EdgekitError

NAME = "ssd-resnet34-1200"
SHARED = shared_root()
CALIBRATION = SHARED / "data" / "coco128"
VERIFY = SHARED / "data" / "coco-val2017-subset" / "images"
RESULTS = Path(__file__).with_name("ssd_resnet34_results.json")
ONNX = BUILD_CACHE / f"{NAME}.onnx"
BUILD = BUILD_CACHE / NAME

# One onnxruntime timing run in a fresh process: load, warm up, time, report peak RSS (VmHWM).
ORT_PROBE = """
import json, sys, time
import numpy as np, onnxruntime as ort
path, threads, loops, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
t0 = time.perf_counter()
session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
load_ms = 1000 * (time.perf_counter() - t0)
x = np.random.default_rng(0).normal(0, 1, (1, 3, 1200, 1200)).astype(np.float32)
name = session.get_inputs()[0].name
for _ in range(warmup):
    session.run(None, {name: x})
times = []
for _ in range(loops):
    t0 = time.perf_counter()
    session.run(None, {name: x})
    times.append(1000 * (time.perf_counter() - t0))
peak = next(int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"load_ms": load_ms, "median_ms": float(np.median(times)), "peak_memory_mb": peak}))
"""


def _verify_images(folder: Path) -> Path:
    """A folder of links to the first 4 COCO val2017 subset images (parity inputs)."""
    folder.mkdir(parents=True, exist_ok=True)
    for image in sorted(VERIFY.glob("*.jpg"))[:4]:
        link = folder / image.name
        if not link.exists():
            link.symlink_to(image)
    return folder


def prepare(calib_num: int) -> tuple[dict, dict]:
    """Build the ONNX and convert it (first run only); returns the zoo figures and convert summary."""
    from converters.convert import Int8Options, convert_onnx
    from converters.zoo.build import build_zoo_model
    from converters.zoo.ssd_resnet34 import build_network
    from converters.zoo.stats import graph_size
    from edge.manifest import load_manifest

    summary_path = BUILD_CACHE / f"{NAME}.convert.json"
    if not ONNX.is_file():
        print(f"building {ONNX} (first run only)", file=sys.stderr)
        build_zoo_model(NAME, ONNX, with_postprocess=True)
    if not (BUILD / "manifest.json").is_file() or not summary_path.is_file():
        print(f"converting with --int8 --calib-num {calib_num} (first run only; slow)", file=sys.stderr)
        result = convert_onnx(
            ONNX,
            BUILD,
            force=True,
            verify_images=_verify_images(BUILD_CACHE / "ssd-verify-images"),
            int8=Int8Options(CALIBRATION, num_images=calib_num),
            progress=lambda msg: print(f"  {msg}", file=sys.stderr),
        )
        write_json(summary_path, {"timings_s": {k: round(v, 1) for k, v in result.timings.items()}})
    manifest = load_manifest(BUILD)
    size = graph_size(build_network(1200).model)  # the network alone, without the tail
    converted = json.loads(summary_path.read_text())
    converted["parity"] = {
        p: {
            "cosine": round(b.parity.cosine, 7),
            "max_abs": round(b.parity.max_abs, 5),
            "inputs": b.parity.inputs,
        }
        for p, b in manifest.builds.items()
    }
    converted["sizes_mb"] = {p: round(b.size_bytes / 1e6, 1) for p, b in manifest.builds.items()}
    int8 = manifest.builds["int8"].details
    converted["int8"] = {k: int8.get(k) for k in ("method", "calibration_images", "latency_here_ms")}
    converted["int8"]["kept_float_layers"] = len(int8.get("kept_float", {}))
    converted["notes"] = manifest.notes
    return {"gflops": round(size.gflops, 2), "mparams": round(size.mparams, 3)}, converted


def onnxruntime_run(threads: int, loops: int, warmup: int) -> dict:
    run = subprocess.run(
        [sys.executable, "-c", ORT_PROBE, str(ONNX), str(threads), str(loops), str(warmup)],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        raise EdgekitError(f"onnxruntime run failed: {run.stderr.strip().splitlines()[-1:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def summarize_ort(runs: dict[int, list[dict]]) -> list[dict]:
    rows = []
    for threads, measured in sorted(runs.items()):
        medians = [m["median_ms"] for m in measured]
        mid = statistics.median(medians)
        rows.append(
            {
                "runtime": "onnxruntime",
                "threads": threads,
                "runs": len(measured),
                "median_ms": round(mid, 1),
                "run_medians_ms": [round(m, 1) for m in medians],
                "spread_pct": round(100 * (max(medians) - min(medians)) / mid, 1),
                "load_ms": round(statistics.median(m["load_ms"] for m in measured), 1),
                "peak_memory_mb": round(max(m["peak_memory_mb"] for m in measured), 1),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--loops", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--calib-num", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    threads = tuple(int(t) for t in args.threads.split(","))

    try:
        model, converted = prepare(args.calib_num)
        config = BenchConfig(
            precisions=("fp32", "fp16", "int8"), threads=threads, loops=args.loops, warmup=args.warmup
        )
        reports, ort_runs = [], {t: [] for t in threads}
        for i in range(args.repeats):
            print(f"round {i + 1}/{args.repeats}: ncnn", file=sys.stderr)
            report = run_benchmarks([BUILD], [parse_target("local")], config)
            if report.errors:
                raise EdgekitError("; ".join(e.message for e in report.errors))
            reports.append(report)
            for t in threads:
                print(f"round {i + 1}/{args.repeats}: onnxruntime, {t} threads", file=sys.stderr)
                ort_runs[t].append(onnxruntime_run(t, args.loops, args.warmup))
    except EdgekitError as exc:
        raise SystemExit(f"error: {exc}") from None

    rows, ort_rows = summarize(reports), summarize_ort(ort_runs)
    print(f"{NAME}: {model['gflops']} GFLOPs, {model['mparams']} M parameters (generated weights)")
    print(
        f"{'runtime':12} {'prec':5} {'thr':>3} {'median ms':>10} {'spread':>7} {'peak MB':>8} {'size MB':>8}"
    )
    for r in rows:
        print(
            f"{'ncnn':12} {r['precision']:5} {r['threads']:>3} {r['median_ms']:>10.1f} {r['spread_pct']:>6.1f}% "
            f"{r['peak_memory_mb']:>8.1f} {r['size_bytes'] / 1e6:>8.1f}"
        )
    for r in ort_rows:
        print(
            f"{'onnxruntime':12} {'fp32':5} {r['threads']:>3} {r['median_ms']:>10.1f} {r['spread_pct']:>6.1f}% "
            f"{r['peak_memory_mb']:>8.1f} {ONNX.stat().st_size / 1e6:>8.1f}"
        )
    for precision, parity in converted["parity"].items():
        print(
            f"parity {precision}: cosine {parity['cosine']}, max abs {parity['max_abs']} ({parity['inputs']})"
        )
    print("accuracy: not measurable (generated weights; the official ones are not reachable here)")
    target = reports[0].targets
    results = {
        "generated_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python3 -m benchmarks.published.ssd_resnet34 " + " ".join(sys.argv[1:]),
        "config": vars(args) | {"results": args.results.name},
        "model": model
        | {"weights": "generated (seed 0)", "accuracy": "not measurable without the official weights"},
        "convert": converted,
        "targets": target,
        "ncnn": rows,
        "onnxruntime": ort_rows,
        "notes": reports[0].notes,
    }
    write_json(args.results, results)
    print(f"wrote {args.results}", file=sys.stderr)


if __name__ == "__main__":
    main()
