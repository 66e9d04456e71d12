"""Time ``edgekit convert`` on NanoDet-Plus-m-1.5x 416 (target: at most 20 s on a 2-core machine).

Usage: python -m benchmarks.published.convert_time [--runs 3] [--onnx PATH] [--images DIR]
Prints each step's median over the runs and the total, from one process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from benchmarks.published.assets import shared_root
from converters.convert import convert_onnx

SHARED = shared_root()
DEFAULT_ONNX = SHARED / "models/onnx/nanodet-plus-m-1.5x_416-from-int8.onnx"
TARGET_S = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--onnx", type=Path, default=DEFAULT_ONNX)
    parser.add_argument("--images", type=Path, default=SHARED / "data/images")
    args = parser.parse_args()
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            result = convert_onnx(args.onnx, Path(tmp) / f"b{i}", verify_images=args.images)
            runs.append(result.timings)
    print(f"edgekit convert {args.onnx.name}: fp32 + fp16, verified on {args.images} ({args.runs} runs)")
    for step in runs[0]:
        values = [r[step] for r in runs]
        print(
            f"  {step:16s} median {statistics.median(values):6.2f} s   (min {min(values):.2f}, max {max(values):.2f})"
        )
    total = statistics.median(r["total"] for r in runs)
    verdict = "meets" if total <= TARGET_S else "MISSES"
    print(f"total median {total:.2f} s: {verdict} the {TARGET_S:.0f} s target (cores: {os.cpu_count()})")


if __name__ == "__main__":
    main()
