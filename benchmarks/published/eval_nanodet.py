"""COCO mAP of every shared NanoDet model and layout on the full coco-val2017-subset.

Evaluates each ncnn model in ``models/ncnn`` (the pnnx model twice: its concat output and its
per-stride blobs), and a build converted by ``edgekit convert`` from every ONNX in
``models/onnx`` in each precision it holds; prints one table (or JSON with ``--json``) and the
spread of mAP across the layouts/builds of the NanoDet-Plus-m 416 weights.

Usage: ``python -m benchmarks.published.eval_nanodet [--limit N] [--threads N] [--json] [--shared DIR]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.published.assets import shared_root
from edge.coco_eval import evaluate, load_coco
from edge.runtime.detector import Detector
from edge.runtime.resolve import build_precisions

SAME_WEIGHTS = ("nanodet-plus-m_416-clsdis", "nanodet-plus-m_416-pnnx", "nanodet-plus-m_416.onnx")
PNNX_STRIDE_BLOBS = ["231", "228", "225", "222"]


def planned_runs(shared: Path, builds_dir: Path, console: Console) -> list[dict]:
    """Every (label, model path, precision, extra Detector args) to evaluate."""
    runs = []
    for folder in sorted((shared / "models/ncnn").iterdir()):
        param = folder / "model.param"
        precision = build_precisions(param)[0]
        runs.append({"model": folder.name, "source": "ncnn", "path": param, "precision": precision, "kw": {}})
        if folder.name == "nanodet-plus-m_416-pnnx":
            runs.append(
                {
                    "model": folder.name,
                    "source": "ncnn (per-stride blobs)",
                    "path": param,
                    "precision": precision,
                    "kw": {"outputs": PNNX_STRIDE_BLOBS},
                }
            )
    try:
        from converters.convert import convert_onnx
    except ImportError:
        console.print("converters.convert not available: ONNX models skipped")
        return runs
    for onnx in sorted((shared / "models/onnx").glob("*.onnx")):
        started = time.perf_counter()
        result = convert_onnx(onnx, builds_dir / onnx.stem)
        build = result.manifest_path.parent
        console.print(f"converted {onnx.name} in {time.perf_counter() - started:.1f} s")
        for precision in build_precisions(build):
            runs.append(
                {
                    "model": onnx.name,
                    "source": "edgekit build",
                    "path": build,
                    "precision": precision,
                    "kw": {},
                }
            )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=shared_root())
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    console = Console(stderr=True)
    subset = args.shared / "data/coco-val2017-subset"
    dataset = load_coco(subset / "instances.json", subset / "images", args.limit)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgekit-eval-") as tmp:
        for run in planned_runs(args.shared, Path(tmp), console):
            detector = Detector.open(
                run["path"], precision=run["precision"], threads=args.threads, **run["kw"]
            )
            started = time.perf_counter()
            result = evaluate(detector, dataset, precision=run["precision"])
            rows.append(
                {
                    "model": run["model"],
                    "source": run["source"],
                    "layout": detector.detected_layout,
                    **result.to_dict(),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
            detector.close()
            console.print(
                f"{run['model']} ({run['source']}) {run['precision']}: mAP {result.map:.4f}", highlight=False
            )
    same = [r["map"] for r in rows if r["model"] in SAME_WEIGHTS]
    spread = max(same) - min(same) if same else float("nan")
    if args.json:
        print(
            json.dumps(
                {"images": len(dataset.images), "results": rows, "plus_m_416_spread": spread}, indent=1
            )
        )
        return
    table = Table(
        title=f"NanoDet COCO mAP on coco-val2017-subset ({len(dataset.images)} images, official protocol)"
    )
    for name in ("model", "source", "layout", "precision", "mAP", "mAP50", "small", "medium", "large"):
        table.add_column(
            name, justify="left" if name in ("model", "source", "layout", "precision") else "right"
        )
    for r in rows:
        metrics = (r["map"], r["map50"], r["map_small"], r["map_medium"], r["map_large"])
        table.add_row(r["model"], r["source"], r["layout"], r["precision"], *(f"{v:.4f}" for v in metrics))
    out = Console(width=160)
    out.print(table)
    out.print(f"NanoDet-Plus-m 416 (same weights) across {len(same)} layouts/builds: mAP spread {spread:.4f}")


if __name__ == "__main__":
    main()
