"""edgekit's published NanoDet figures: latency of NanoDet-Plus-m-1.5x 416 builds, and the
Python runner against a C++ timing loop. Prints them and updates ``benchmarks/published/results.json``.

    python3 -m benchmarks.published.bench_nanodet [--target local] [--threads 1,2] [--repeats 3]
        [--loops 50] [--warmup 10] [--no-cpp | --cpp-native] [--results benchmarks/published/results.json]

Builds (made on the first run, cached under ``~/.cache/edgekit/bench-builds``): fp32, fp16 and
INT8 from ``edgekit convert --int8`` of the shared ``nanodet-plus-m-1.5x_416-from-int8.onnx``
(calibrated on coco128); the INT8 variant with depthwise layers kept in fp16
(``--float-depthwise``, the faster INT8 graph on x86); and, for comparison, the shared INT8 model
made by ncnn's own tools. Each configuration is measured
``--repeats`` times (separate runner processes); the table gives the median of the per-run
medians and the run-to-run spread (max - min of the run medians, relative to their median).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path

from benchmarks.harness import BenchConfig, BenchReport, run_benchmarks
from benchmarks.published.assets import shared_root
from benchmarks.targets.registry import parse_target
from edge.atomic import write_json
from edge.errors import EdgekitError

SHARED = shared_root()
ONNX = SHARED / "models" / "onnx" / "nanodet-plus-m-1.5x_416-from-int8.onnx"
INT8 = SHARED / "models" / "ncnn" / "nanodet-plus-m-1.5x_416-int8" / "model.param"
CALIBRATION = SHARED / "data" / "coco128"
BUILD_CACHE = Path.home() / ".cache" / "edgekit" / "bench-builds"
RESULTS = Path(__file__).with_name("results.json")


def edgekit_build() -> Path:
    """The fp32 + fp16 + INT8 edgekit build of NanoDet-Plus-m-1.5x 416 (converted once, then reused)."""
    out = BUILD_CACHE / "nanodet-plus-m-1.5x_416"
    manifest = out / "manifest.json"
    if not manifest.is_file() or '"int8"' not in manifest.read_text():
        from converters.convert import Int8Options, convert_onnx

        print(f"converting {ONNX.name} with --int8 (first run only)", file=sys.stderr)
        convert_onnx(ONNX, out, fp16=True, verify=True, force=True, int8=Int8Options(CALIBRATION))
    return out


def float_depthwise_build(build: Path) -> Path:
    """The INT8 variant with every depthwise convolution kept in fp16, as a bare .param/.bin."""
    out = BUILD_CACHE / "nanodet-plus-m-1.5x_416-int8-fp16dw"
    param = out / "model.param"
    if not (param.is_file() and (out / "model.bin").is_file()):
        from converters.int8_build import build_int8
        from edge.manifest import load_manifest

        print("building the INT8 variant with fp16 depthwise layers (first run only)", file=sys.stderr)
        out.mkdir(parents=True, exist_ok=True)
        manifest = load_manifest(build)
        fp32 = manifest.build("fp32")
        build_int8(
            build / fp32.param,
            build / fp32.bin,
            manifest.input,
            CALIBRATION,
            param,
            out / "model.bin",
            out / "calibration.table",
            method="search",
            auto_keep_float=True,
            float_depthwise=True,
        )
    return param


def summarize(reports: list[BenchReport]) -> list[dict]:
    """Per (target, build, precision, threads): median of run medians and the spread."""
    groups: dict[tuple, list] = {}
    for report in reports:
        for r in report.results:
            groups.setdefault((r.target, r.build, r.precision, r.threads), []).append(r)
    rows = []
    for (target, build, precision, threads), runs in groups.items():
        medians = [r.latency_ms.median for r in runs]
        mid = statistics.median(medians)
        rows.append(
            {
                "target": target,
                "build": build,
                "precision": precision,
                "threads": threads,
                "runs": len(runs),
                "median_ms": round(mid, 3),
                "run_medians_ms": [round(m, 3) for m in medians],
                "spread_pct": round(100 * (max(medians) - min(medians)) / mid, 1),
                "p90_ms": round(statistics.median(r.latency_ms.p90 for r in runs), 3),
                "fps": round(1000 / statistics.median(r.latency_ms.mean for r in runs), 2),
                "load_ms": round(statistics.median(r.load_ms for r in runs), 2),
                "peak_memory_mb": round(max(r.peak_memory_mb for r in runs), 1),
                "size_bytes": runs[0].size_bytes,
                "emulated": runs[0].emulated,
            }
        )
    return rows


def print_rows(rows: list[dict]) -> None:
    head = f"{'build':32} {'prec':5} {'thr':>3} {'median ms':>10} {'spread':>7} {'p90 ms':>8} {'FPS':>7} {'size MB':>8}"
    print(head)
    for r in rows:
        print(
            f"{r['build']:32} {r['precision']:5} {r['threads']:>3} {r['median_ms']:>10.2f} "
            f"{r['spread_pct']:>6.1f}% {r['p90_ms']:>8.2f} {r['fps']:>7.1f} {r['size_bytes'] / 1e6:>8.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="local")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loops", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--no-cpp", action="store_true", help="skip the runner-vs-C++ comparison")
    parser.add_argument(
        "--cpp-native", action="store_true", help="C++ side: ncnn built for this CPU's ISA (quicker build)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    try:
        build = edgekit_build()
        builds = [build, float_depthwise_build(build), INT8]
        config = BenchConfig(
            precisions=("fp32", "fp16", "int8"),
            threads=tuple(int(t) for t in args.threads.split(",")),
            loops=args.loops,
            warmup=args.warmup,
            shape=(3, 416, 416),
        )
        reports = []
        for i in range(args.repeats):
            print(f"run {i + 1}/{args.repeats}", file=sys.stderr)
            report = run_benchmarks(builds, [parse_target(args.target)], config)
            if report.errors:
                raise EdgekitError("; ".join(e.message for e in report.errors))
            reports.append(report)
    except EdgekitError as exc:
        raise SystemExit(f"error: {exc}") from None
    rows = summarize(reports)
    target_info = reports[0].targets
    print_rows(rows)
    for name, info in target_info.items():
        print(f"{name}: {info.get('cpu')}, {info.get('cores')} cores, ncnn {info.get('ncnn_version')}")

    comparison = None
    if not args.no_cpp:
        from benchmarks.published.runner_vs_cpp import compare, print_comparison

        fp32 = builds[0] / "model.fp32.param"
        comparison = compare(
            fp32,
            shape="3,416,416",
            threads=1,
            loops=args.loops,
            rounds=args.repeats,
            runtime_cpu=not args.cpp_native,
        )
        print_comparison(comparison)

    results = {
        "generated_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python3 -m benchmarks.published.bench_nanodet " + " ".join(sys.argv[1:]),
        "config": {"repeats": args.repeats, "loops": args.loops, "warmup": args.warmup},
        "targets": target_info,
        "nanodet_plus_m_1_5x_416": rows,
        "runner_vs_cpp": comparison,
        "notes": reports[0].notes,
    }
    write_json(args.results, results)
    print(f"wrote {args.results}", file=sys.stderr)


if __name__ == "__main__":
    main()
