"""Per-frame time of preprocessing, ncnn inference and decode + NMS for NanoDet-Plus-m 416.

Converts ``models/onnx/nanodet-plus-m_416.onnx`` with ``edgekit convert`` (output ``1 x 3598 x
112``), runs it on the COCO subset's first images, then times the decode + NMS of every frame's
raw outputs at the interactive thresholds (score 0.4, NMS 0.5) and the COCO-evaluation ones
(0.05, 0.6, 100 per image); also the other layouts of the same weights (ncnn clsdis and pnnx
models). All figures are medians over frames (each frame's decode repeated ``--repeat`` times).

Usage: ``python -m benchmarks.published.decode_speed [--frames 30] [--repeat 20] [--threads 1] [--shared DIR]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.published.assets import shared_root
from edge.decoders import decode
from edge.media import read_image
from edge.preprocess import preprocess
from edge.runtime.detector import Detector

THRESHOLDS = {"interactive 0.4/0.5": (0.4, 0.5, 100), "COCO eval 0.05/0.6": (0.05, 0.6, 100)}


def median_ms(values: list[float]) -> float:
    return 1000 * statistics.median(values)


def stage_times(detector: Detector, images: list, repeat: int) -> dict[str, float]:
    """Median per-frame preprocess and inference times, and decode + NMS per threshold set."""
    pre, infer, frames = [], [], []
    detector.session.run(preprocess(images[0], detector.spec.input)[0])  # warm-up
    for image in images:
        t0 = time.perf_counter()
        tensor, transform = preprocess(image, detector.spec.input)
        t1 = time.perf_counter()
        outputs = detector.session.run(tensor)
        t2 = time.perf_counter()
        pre.append(t1 - t0)
        infer.append(t2 - t1)
        frames.append((outputs, transform))
    result = {"preprocess": median_ms(pre), "inference (ncnn)": median_ms(infer)}
    spec = detector.spec.decoder
    for label, (score, nms, max_det) in THRESHOLDS.items():
        per_frame = []
        for outputs, transform in frames:
            w, h = transform.input_width, transform.input_height
            samples = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                decode(outputs, spec, w, h, score_threshold=score, nms_threshold=nms, max_detections=max_det)
                samples.append(time.perf_counter() - t0)
            per_frame.append(statistics.median(samples))
        result[f"decode+NMS {label}"] = median_ms(per_frame)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=shared_root())
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from converters.convert import convert_onnx

    image_dir = args.shared / "data/coco-val2017-subset/images"
    images = [read_image(p) for p in sorted(image_dir.glob("*.jpg"))[: args.frames]]
    ncnn = args.shared / "models/ncnn"
    with tempfile.TemporaryDirectory(prefix="edgekit-speed-") as tmp:
        build = convert_onnx(args.shared / "models/onnx/nanodet-plus-m_416.onnx", Path(tmp) / "plus416")
        variants = {
            "edgekit build (1x3598x112)": Detector.open(build.manifest_path.parent, threads=args.threads),
            "ncnn clsdis (cls/dis pairs)": Detector.open(
                ncnn / "nanodet-plus-m_416-clsdis/model.param", threads=args.threads
            ),
            "ncnn pnnx (112x3598 logits)": Detector.open(
                ncnn / "nanodet-plus-m_416-pnnx/model.param", threads=args.threads
            ),
            "ncnn pnnx (per-stride 112xHxW)": Detector.open(
                ncnn / "nanodet-plus-m_416-pnnx/model.param",
                outputs=["231", "228", "225", "222"],
                threads=args.threads,
            ),
        }
        print(
            f"NanoDet-Plus-m 416, {len(images)} COCO frames, {args.threads} ncnn thread(s), medians in ms per frame"
        )
        rows = {}
        for name, detector in variants.items():
            rows[name] = stage_times(detector, images, args.repeat)
            outputs, transform = detector.raw(images[0])
            layout = decode(outputs, detector.spec.decoder, transform.input_width, transform.input_height)[0]
            print(f"\n{name}  [layout {layout}]")
            for key, value in rows[name].items():
                print(f"  {key:<32} {value:8.3f}")
            detector.close()
    main_row = rows["edgekit build (1x3598x112)"]
    print(
        f"\ndecode + NMS of the 3598-location output: {main_row['decode+NMS interactive 0.4/0.5']:.3f} ms median "
        f"(interactive thresholds), {main_row['decode+NMS COCO eval 0.05/0.6']:.3f} ms (COCO-eval thresholds); "
        f"target <= 1 ms"
    )


if __name__ == "__main__":
    main()
