"""How long INT8 calibration takes, and how much memory it holds, on this machine.

Converts the ONNX model to an fp32 build (or reuses ``--build``), then times ``calibrate``
(statistics over every image + thresholds) and prints seconds, images per second and the peak
resident memory, which stays flat in the number of images (histograms, not activations).

Usage: ``python -m benchmarks.published.calibration_speed [--onnx PATH | --build DIR] [--images DIR]
[--num N] [--method kl] [--threads N] [--json]``
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.published.assets import shared_root
from converters.calib_table import parse_table, table_text
from converters.int8_build import calibrate
from edge.manifest import load_manifest

SHARED = shared_root()
DEFAULT_ONNX = SHARED / "models/onnx/nanodet-plus-m-1.5x_416-from-int8.onnx"
DEFAULT_IMAGES = SHARED / "data/coco128"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fp32_build(onnx: Path, work: Path) -> Path:
    from converters.convert import convert_onnx

    return convert_onnx(onnx, work / onnx.stem, fp16=False).manifest_path.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, default=DEFAULT_ONNX)
    parser.add_argument("--build", type=Path, help="existing build directory (skips conversion)")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--num", type=int, default=128)
    parser.add_argument("--method", default="kl")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="edgekit-calspeed-") as tmp:
        build = args.build or fp32_build(args.onnx, Path(tmp))
        manifest = load_manifest(build)
        files = manifest.build("fp32")
        rss_before = peak_rss_mb()
        started = time.perf_counter()
        cal = calibrate(
            build / files.param,
            build / files.bin,
            manifest.input,
            args.images,
            method=args.method,
            num_images=args.num,
            threads=args.threads,
        )
        seconds = time.perf_counter() - started
        cal.close()
    table = parse_table(table_text(cal.table))
    report = {
        "model": str(args.build or args.onnx),
        "method": args.method,
        "images": len(cal.images),
        "threads": args.threads,
        "seconds": round(seconds, 2),
        "images_per_second": round(len(cal.images) / seconds, 2),
        "stages_s": {k: round(v, 2) for k, v in cal.timings.items()},
        "quantizable_layers": len(table.input_scales),
        "peak_rss_mb_before": round(rss_before, 1),
        "peak_rss_mb_after": round(peak_rss_mb(), 1),
        "budget_s": 60,
        "within_budget": seconds <= 60,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
