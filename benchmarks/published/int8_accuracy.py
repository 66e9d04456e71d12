"""INT8 accuracy of every calibration method on COCO (official NanoDet protocol), with sizes.

For each model: convert the ONNX (fp32 + fp16 builds), evaluate both, then calibrate on
coco128 with each method (kl, aciq, eq: ncnn2table's; search: edgekit's channel equalization +
threshold search + bias correction; edgekit: search + automatic keep-float, the convert default), write the INT8 model, evaluate it on
coco-val2017-subset and print mAP, the drop against the fp16 and fp32 builds, the .bin size
against fp16, the layers kept float and the build time. ``--latency`` adds median latencies
(1 and 2 threads, >= 30 loops) of every build on this machine.

Usage: ``python -m benchmarks.published.int8_accuracy [--models m,1.5x] [--methods kl,aciq,eq,search,edgekit]
[--num-images N] [--limit N] [--latency] [--json OUT]`` (``--num-images``: calibrate on the first
N images only, to see how much mAP moves with the calibration set).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.published.assets import shared_root
from converters.int8_build import build_int8
from converters.speed_check import median_latency_ms
from edge.coco_eval import evaluate, load_coco
from edge.manifest import load_manifest
from edge.runtime.detector import Detector

SHARED = shared_root()
MODELS = {
    "m": SHARED / "models/onnx/nanodet-plus-m_416.onnx",
    "1.5x": SHARED / "models/onnx/nanodet-plus-m-1.5x_416-from-int8.onnx",
}
AUTO_TARGET = 0.999
VARIANTS = {
    "kl": {"method": "kl"},
    "aciq": {"method": "aciq"},
    "eq": {"method": "eq"},
    "search": {"method": "search"},
    "edgekit": {"method": "search", "auto_keep_float": AUTO_TARGET},
    # the faster INT8 graph on x86: convert's default plus --float-depthwise
    "edgekit-floatdw": {"method": "search", "auto_keep_float": AUTO_TARGET, "float_depthwise": True},
}


def evaluate_model(path: Path, precision: str, dataset, threads: int) -> float:
    if dataset is None:
        return float("nan")
    detector = Detector.open(path, precision=precision, preset="nanodet-plus", size=416, threads=threads)
    try:
        return evaluate(detector, dataset, precision=precision).map
    finally:
        detector.close()


def latency_ms(
    param: Path, binf: Path, precision: str, input_name: str, shape: list[int], threads: int
) -> float:
    return median_latency_ms(param, binf, precision, input_name, shape, ["out0"], threads=threads, loops=30)


def run_model(key: str, args, dataset, work: Path) -> dict:
    from converters.convert import convert_onnx

    onnx = MODELS[key]
    build = convert_onnx(onnx, work / onnx.stem).manifest_path.parent
    manifest = load_manifest(build)
    rows: dict[str, dict] = {}
    for precision in ("fp32", "fp16"):
        files = manifest.build(precision)
        rows[precision] = {
            "map": evaluate_model(build, precision, dataset, args.threads),
            "bin_bytes": (build / files.bin).stat().st_size,
            "param": build / files.param,
        }
        print(f"[{key}] {precision}: mAP {rows[precision]['map']:.4f}", flush=True)
    for name in args.methods:
        param, binf = build / f"model.int8-{name}.param", build / f"model.int8-{name}.bin"
        started = time.perf_counter()
        result = build_int8(
            build / manifest.build("fp32").param,
            build / manifest.build("fp32").bin,
            manifest.input,
            args.calib,
            param,
            binf,
            build / f"table-{name}.table",
            num_images=args.num_images,
            threads=args.threads,
            **VARIANTS[name],
        )
        seconds = time.perf_counter() - started
        rows[name] = {
            "map": evaluate_model(param, "int8", dataset, args.threads),
            "bin_bytes": binf.stat().st_size,
            "param": param,
            "kept_float": result.kept_float,
            "quantized_layers": result.quantized_layers,
            "fused_requantize": result.fused_requantize,
            "build_seconds": round(seconds, 1),
            "output_cosine": result.output_cosine,
        }
        print(f"[{key}] {name}: mAP {rows[name]['map']:.4f} ({seconds:.0f} s build)", flush=True)
    if args.latency:
        for name, row in rows.items():
            precision = name if name in ("fp32", "fp16") else "int8"
            param = row["param"]
            row["latency_ms"] = {
                t: round(
                    latency_ms(param, param.with_suffix(".bin"), precision, "in0", manifest.input.shape, t), 2
                )
                for t in (1, 2)
            }
            print(f"[{key}] {name}: latency {row['latency_ms']}", flush=True)
    for row in rows.values():
        row["param"] = str(row["param"].name)
        row["drop_vs_fp16_points"] = round(100 * (rows["fp16"]["map"] - row["map"]), 2)
        row["drop_vs_fp32_points"] = round(100 * (rows["fp32"]["map"] - row["map"]), 2)
        row["bin_vs_fp16"] = round(row["bin_bytes"] / rows["fp16"]["bin_bytes"], 3)
    return rows


def _conv_layer(name: str, src: str, dst: str, channels: int, kernel: int, depthwise: bool):
    import numpy as np

    from edge.ncnn.model import Layer
    from edge.ncnn.param_ids import ConvolutionDepthWise as Conv
    from edge.ncnn.weights import Weight

    per_out = (1 if depthwise else channels) * kernel * kernel
    weight = np.random.default_rng(0).standard_normal(channels * per_out).astype(np.float32) / np.sqrt(
        per_out
    )
    params = {
        Conv.NUM_OUTPUT: channels,
        Conv.KERNEL_W: kernel,
        Conv.PAD_LEFT: kernel // 2,
        Conv.BIAS_TERM: 1,
        Conv.WEIGHT_DATA_SIZE: weight.size,
        Conv.ACTIVATION_TYPE: 2,  # leaky ReLU
        Conv.ACTIVATION_PARAMS: [0.1],
    }
    if depthwise:
        params[Conv.GROUP] = channels
    weights = [
        Weight("weight", weight.reshape(channels, -1), "fp32"),
        Weight("bias", np.zeros(channels, np.float32), "untagged"),
    ]
    return Layer("ConvolutionDepthWise" if depthwise else "Convolution", name, [src], [dst], params, weights)


def layer_bench(channels: int, threads: int, loops: int = 30) -> None:
    """Six chained layers of one kind at 52x52 (leaky ReLU fused): fp32 vs INT8 with/without requantize."""
    import numpy as np

    from converters.calib_table import CalibrationTable
    from converters.int8_writer import write_int8_model
    from edge.ncnn.model import Layer, NcnnModel

    kinds = {"1x1 conv": (1, False), "3x3 depthwise": (3, True), "5x5 depthwise": (5, True)}
    for label, (kernel, depthwise) in kinds.items():
        layers, src = [Layer("Input", "in", [], ["in"], {})], "in"
        for i in range(6):
            layers.append(_conv_layer(f"l{i}", src, f"b{i}", channels, kernel, depthwise))
            src = f"b{i}"
        model = NcnnModel(layers)
        table = CalibrationTable()
        for layer in layers[1:]:
            table.weight_scales[layer.name] = np.full(
                channels, 127 / np.abs(layer.weight("weight").array).max(), np.float32
            )
            table.input_scales[layer.name] = 127 / 4.0
        timings = {}
        with tempfile.TemporaryDirectory() as tmp:
            variants = {"fp32": model, "int8": write_int8_model(model, table)[0]}
            variants["int8 no requantize"] = write_int8_model(model, table, fuse_requantize=False)[0]
            for name, variant in variants.items():
                param, binf = Path(tmp) / f"{len(timings)}.param", Path(tmp) / f"{len(timings)}.bin"
                variant.write(param, binf)
                precision = "fp32" if name == "fp32" else "int8"
                timings[name] = median_latency_ms(
                    param, binf, precision, "in", [1, channels, 52, 52], [src], threads=threads, loops=loops
                )
        print(
            f"{label:>14} x6, {channels} ch, 52x52, {threads} thread(s): "
            + ", ".join(f"{k} {v:.2f} ms" for k, v in timings.items()),
            flush=True,
        )


def print_table(results: dict) -> None:
    for key, rows in results.items():
        print(f"\n{MODELS[key].name}: mAP on coco-val2017-subset, drops in points, latency in ms")
        print(
            f"{'build':>9} {'mAP':>7} {'-fp16':>6} {'-fp32':>6} {'bin/fp16':>8} {'kept':>5} {'lat1':>7} {'lat2':>7}"
        )
        for name, r in rows.items():
            lat = r.get("latency_ms", {})
            print(
                f"{name:>9} {r['map']:7.4f} {r['drop_vs_fp16_points']:6.2f} {r['drop_vs_fp32_points']:6.2f}"
                f" {r['bin_vs_fp16']:8.3f} {len(r.get('kept_float', {})):5d}"
                f" {lat.get(1, float('nan')):7.1f} {lat.get(2, float('nan')):7.1f}"
            )
        for name, r in rows.items():
            if r.get("kept_float"):
                print(f"  {name} kept float: " + "; ".join(f"{k} ({v})" for k, v in r["kept_float"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="m,1.5x")
    parser.add_argument("--methods", default="kl,aciq,eq,search,edgekit")
    parser.add_argument("--calib", type=Path, default=SHARED / "data/coco128")
    parser.add_argument("--limit", type=int, help="evaluate on the first N images only")
    parser.add_argument("--num-images", type=int, help="calibrate on the first N calibration images only")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--latency", action="store_true", help="also time every build (1 and 2 threads)")
    parser.add_argument(
        "--no-map", action="store_true", help="skip the COCO evaluation (sizes, latency only)"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--work", type=Path, help="keep the builds in this directory (default: a temp dir)")
    parser.add_argument(
        "--layer-bench",
        type=int,
        metavar="CHANNELS",
        help="only time fp32 vs INT8 layer chains of this width",
    )
    args = parser.parse_args()
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in args.methods if m not in VARIANTS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {list(VARIANTS)}")
    if args.layer_bench:
        for threads in (1, 2):
            layer_bench(args.layer_bench, threads)
        return
    subset = SHARED / "data/coco-val2017-subset"
    dataset = (
        None if args.no_map else load_coco(subset / "instances.json", subset / "images", limit=args.limit)
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-int8acc-") as tmp:
        work = args.work or Path(tmp)
        for key in args.models.split(","):
            results[key] = run_model(key, args, dataset, work)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
