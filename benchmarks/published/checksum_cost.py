"""What verifying a build's sha256 values costs when it is opened (NanoDet-Plus-m-1.5x 416, fp32).

Opens one build in interleaved rounds four ways: the reader before verification existed (locate
the files, parse the .param), :func:`edge.runtime.resolve.resolve_model` with the checksum cache
off (hashes the fp32 ``.param`` and 9.8 MB ``.bin`` every time) and warm (file identity known),
and the whole ``Detector.open`` (ncnn load) for scale; then the first open in a fresh process,
cache off and warm (the cache file is read from disk). Medians with the interquartile range.

Usage: ``python -m benchmarks.published.checksum_cost [--build DIR] [--rounds 21] [--shared DIR]``
(without ``--build``: converts ``models/onnx/nanodet-plus-m-1.5x_416-from-int8.onnx`` first).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.published.assets import shared_root
from edge.runtime.detector import Detector
from edge.runtime.resolve import locate_model, read_param_graph, resolve_model

FRESH = (
    "import sys, time; from pathlib import Path; from edge.runtime.resolve import resolve_model;"
    "t = time.perf_counter(); resolve_model(Path(sys.argv[1])); print((time.perf_counter() - t) * 1000)"
)


def _old_reader(build: Path) -> None:
    located = locate_model(build)
    param, weights = located.files_for("fp32")
    read_param_graph(param)
    assert weights is not None and weights.is_file()


def _with_cache(on: bool, action: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        os.environ["EDGEKIT_CHECKSUM_CACHE"] = "1" if on else "0"
        return action()

    return run


def _fresh_ms(build: Path, on: bool) -> float:
    env = dict(os.environ, EDGEKIT_CHECKSUM_CACHE="1" if on else "0")
    out = subprocess.run([sys.executable, "-c", FRESH, str(build)], env=env, capture_output=True, text=True)
    return float(out.stdout)


def measure(build: Path, rounds: int) -> dict[str, list[float]]:
    """Milliseconds per way of opening ``build``, ``rounds`` interleaved rounds."""
    cases: dict[str, Callable[[], object]] = {
        "before: locate + parse .param, no verification": lambda: _old_reader(build),
        "resolve_model, cache off (hashes every time)": _with_cache(False, lambda: resolve_model(build)),
        "resolve_model, cache warm": _with_cache(True, lambda: resolve_model(build)),
        "Detector.open (ncnn load), cache warm": _with_cache(True, lambda: Detector.open(build).close()),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    times |= {"fresh process, first open, cache off": [], "fresh process, first open, cache warm": []}
    _with_cache(True, lambda: resolve_model(build))()  # warm
    for _ in range(rounds):
        for name, action in cases.items():
            t0 = time.perf_counter()
            action()
            times[name].append((time.perf_counter() - t0) * 1000)
        times["fresh process, first open, cache off"].append(_fresh_ms(build, False))
        times["fresh process, first open, cache warm"].append(_fresh_ms(build, True))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, help="an existing build (default: convert the shared 1.5x)")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--shared", type=Path, help="shared assets folder (default: $EDGEKIT_SHARED)")
    args = parser.parse_args()
    if args.shared:
        os.environ["EDGEKIT_SHARED"] = str(args.shared)
    with tempfile.TemporaryDirectory(prefix="edgekit-checksum-cost-") as tmp:
        os.environ["EDGEKIT_CACHE_DIR"] = tmp  # a cache of its own, not the user's
        build = args.build
        if build is None:
            from converters.convert import convert_onnx

            onnx = shared_root() / "models/onnx/nanodet-plus-m-1.5x_416-from-int8.onnx"
            build = convert_onnx(onnx, Path(tmp) / "build", fp16=False).manifest_path.parent
        times = measure(build, args.rounds)
    print(f"{build.name}: fp32 .param + .bin, {args.rounds} interleaved rounds; ms: median (IQR)")
    for name, values in times.items():
        q1, _, q3 = statistics.quantiles(values, n=4)
        print(f"  {name:48s} {statistics.median(values):8.2f}  ({q1:.2f}-{q3:.2f})")


if __name__ == "__main__":
    main()
