"""What running convert's native steps in forked children costs (``edge.isolate``).

    python -m benchmarks.published.isolation_overhead [--rounds 6]

Converts NanoDet-Plus-m 416 once (for a build to check parity on), then, in fresh processes (as a
real convert runs), times the four steps convert isolates: onnxsim, the onnxruntime reference on
4 seeded inputs, and the fp32 and fp16 parity runs of ncnn, with ``EDGEKIT_ISOLATE=1`` and ``=0``
interleaved (ABBA). Prints per-step medians and the paired per-round difference with its range.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.published.assets import CHECKOUT, shared_path

MODEL = "models/onnx/nanodet-plus-m_416.onnx"
STEPS = ("simplify", "reference", "parity_fp32", "parity_fp16")


def _steps(build: Path) -> dict[str, float]:
    """One pass over the isolated steps in this process (isolation as the environment says)."""
    from converters.convert import measure_parity
    from converters.onnx_check import load_onnx, resolve_input_shape
    from converters.parity import make_inputs, reference_outputs
    from converters.simplify import simplify
    from edge.manifest import load_manifest

    model = load_onnx(shared_path(MODEL))
    name, shape = resolve_input_shape(model, None)
    manifest = load_manifest(build)
    inputs = make_inputs(manifest.input, None)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    simplified = simplify(model, name, shape)
    times["simplify"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    references = reference_outputs(simplified, name, inputs.tensors)
    times["reference"] = time.perf_counter() - t0
    for p in ("fp32", "fp16"):
        t0 = time.perf_counter()
        files = (build / f"model.{p}.param", build / f"model.{p}.bin")
        measure_parity(*files, p, manifest.input, manifest.outputs, inputs, references)
        times[f"parity_{p}"] = time.perf_counter() - t0
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_steps(args.child)))
        return
    from converters.convert import convert_onnx

    with tempfile.TemporaryDirectory(prefix="edgekit-isolation-") as tmp:
        build = convert_onnx(shared_path(MODEL), Path(tmp) / "build").manifest_path.parent
        runs: dict[str, list[dict[str, float]]] = {"1": [], "0": []}
        for r in range(args.rounds):
            for iso in ("1", "0") if r % 2 == 0 else ("0", "1"):
                env = {**os.environ, "EDGEKIT_ISOLATE": iso}
                argv = [
                    sys.executable,
                    "-m",
                    "benchmarks.published.isolation_overhead",
                    "--child",
                    str(build),
                ]
                out = subprocess.run(argv, env=env, cwd=CHECKOUT, capture_output=True, text=True, check=True)
                runs[iso].append(json.loads(out.stdout.strip().splitlines()[-1]))
    for key in (*STEPS, "sum"):
        for row in runs["1"] + runs["0"]:
            row.setdefault("sum", sum(row[s] for s in STEPS))
        diff = [a[key] - b[key] for a, b in zip(runs["1"], runs["0"], strict=True)]
        print(
            f"{key:12s} isolated {statistics.median(r[key] for r in runs['1']):.3f} s"
            f"  in-process {statistics.median(r[key] for r in runs['0']):.3f} s"
            f"  paired difference median {statistics.median(diff):+.3f} s"
            f" (range {min(diff):+.3f} .. {max(diff):+.3f}, {len(diff)} rounds)"
        )


if __name__ == "__main__":
    main()
