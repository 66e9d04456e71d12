"""Show that the native ``edgekit-runner`` times ncnn like the Python board runner does.

Both runners run the same loop (``bench``: fresh extractor, input, every output extracted) on the
same .param/.bin with the same policy options; the native one is edgekit's static C++ runner built
by ``edgekit native build`` (ncnn from the installed wheel's source release, trimmed to edgekit's
layer types, ``NCNN_RUNTIME_CPU`` like the wheel). They run in alternating rounds (the order flips
every round) so machine noise hits both alike; per precision the script prints each side's median
over all timed iterations, the spread of the round medians and the ratio native / Python.

    python3 -m benchmarks.published.runner_native_vs_python [--model M.param] [--precision fp32,fp16]
        [--threads 1] [--loops 40] [--warmup 5] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.published.assets import shared_path
from edge.board import runner as board_runner
from edge.native.locate import runner_path

DEFAULT_MODEL = shared_path("models/ncnn/nanodet-plus-m_416-pnnx/model.param")


def bench_args(model: Path, precision: str, threads: int, loops: int, warmup: int) -> list[str]:
    return [
        "bench", "--param", str(model), "--bin", str(model.with_suffix(".bin")), "--input", "in0",
        "--shape", "3,416,416", "--precision", precision, "--threads", str(threads),
        "--loops", str(loops), "--warmup", str(warmup),
    ]  # fmt: skip


def timed(cmd: list[str]) -> list[float]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {proc.stdout.strip()} {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)["runs"][0]["latencies_ms"]


def compare(model: Path, precision: str, threads: int, loops: int, warmup: int, rounds: int) -> dict:
    args = bench_args(model, precision, threads, loops, warmup)
    commands = {
        "native": [str(runner_path("host")), *args],
        "python": [sys.executable, board_runner.__file__, *args],
    }
    samples: dict[str, list[float]] = {"native": [], "python": []}
    round_medians: list[dict[str, float]] = []
    for r in range(rounds):
        order = ("native", "python") if r % 2 == 0 else ("python", "native")
        medians = {}
        for side in order:
            lat = timed(commands[side])
            samples[side] += lat
            medians[side] = statistics.median(lat)
        round_medians.append(medians)
        print(
            f"  {precision} round {r + 1}: native {medians['native']:.2f} ms, python {medians['python']:.2f} ms",
            file=sys.stderr,
        )
    native, python = statistics.median(samples["native"]), statistics.median(samples["python"])
    return {
        "model": str(model),
        "precision": precision,
        "threads": threads,
        "rounds": rounds,
        "loops_per_round": loops,
        "native_median_ms": native,
        "python_median_ms": python,
        "ratio_native_over_python": native / python,
        "native_round_range_ms": [
            min(m["native"] for m in round_medians),
            max(m["native"] for m in round_medians),
        ],
        "python_round_range_ms": [
            min(m["python"] for m in round_medians),
            max(m["python"] for m in round_medians),
        ],
        "round_medians_ms": round_medians,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=".param with its .bin beside it")
    parser.add_argument("--precision", default="fp32,fp16", help="comma-separated precisions")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--loops", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5, help="alternating native / Python runs")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    results = [
        compare(args.model, p, args.threads, args.loops, args.warmup, args.rounds)
        for p in args.precision.split(",")
        if p
    ]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"{Path(r['model']).parent.name} {r['precision']}, {r['threads']} thread(s), "
              f"{r['rounds']} x {r['loops_per_round']} loops")  # fmt: skip
        print(f"  native runner median {r['native_median_ms']:8.2f} ms  (round medians "
              f"{r['native_round_range_ms'][0]:.2f}-{r['native_round_range_ms'][1]:.2f})")  # fmt: skip
        print(f"  Python runner median {r['python_median_ms']:8.2f} ms  (round medians "
              f"{r['python_round_range_ms'][0]:.2f}-{r['python_round_range_ms'][1]:.2f})")  # fmt: skip
        print(f"  ratio native / Python {r['ratio_native_over_python']:.3f}")


if __name__ == "__main__":
    main()
