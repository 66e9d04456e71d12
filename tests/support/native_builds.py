"""Build directories for the native runner's tests, and comparing its detections with Python's.

The shared ncnn models are bare ``.param``/``.bin`` pairs; the native runner opens build
directories. :func:`bare_build` writes one around a bare model: the Python runtime resolves it
(preset, input, layout settled on a real run, roles as ncnn blobs) and the manifest records that,
with the files symlinked (relative paths only). :func:`pixels_build` derives a NanoDet-m build whose
integrated distances come out in pixels (a ``BinaryOp`` x stride appended per level): a real model
for the ``nanodet-legacy`` pixels case.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import write_json
from edge.checksums import sha256_file
from edge.decoders import settle_decoder
from edge.manifest import load_manifest, manifest_to_dict, validate
from edge.manifest.model import Artifact, FileRecord, Manifest, OutputSpec
from edge.ncnn.model import NcnnModel
from edge.runtime.resolve import resolve_model
from edge.runtime.session import NcnnSession

PRECISION_FILES = ("param", "bin")


def _record(path: Path, name: str) -> FileRecord:
    return FileRecord(path=name, sha256=sha256_file(path), bytes=path.stat().st_size)


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.exists() or link.is_symlink():
        link.unlink()
    os.symlink(Path(target).resolve(), link)


def write_manifest(out: Path, manifest: Manifest) -> Path:
    data = manifest_to_dict(manifest)
    validate(data)
    write_json(out / "manifest.json", data)
    return out


def bare_build(param: Path, out: Path, outputs: list[str] | None = None, precision: str = "fp32") -> Path:
    """A build directory around a bare ``param`` (and its ``.bin``): the manifest the Python runtime implies."""
    spec = resolve_model(param, outputs=outputs)
    session = NcnnSession(spec)
    try:
        tensor = np.zeros((3, spec.input.height, spec.input.width), np.float32)
        arrays = session.run(tensor)
    finally:
        session.close()
    decoder = settle_decoder(arrays, spec.decoder, spec.input.width, spec.input.height, spec.outputs)
    out.mkdir(parents=True, exist_ok=True)
    _link(spec.param, out / "model.param")
    _link(spec.bin, out / "model.bin")
    files = {
        "param": _record(out / "model.param", "model.param"),
        "bin": _record(out / "model.bin", "model.bin"),
    }
    artifact = Artifact(files=files, size_bytes=sum(f.bytes or 0 for f in files.values()))
    manifest = Manifest(
        source={"file": param.name, "sha256": files["param"].sha256, "bytes": files["param"].bytes},
        input=spec.input,
        outputs=[
            OutputSpec(name=name, ncnn_name=blob, shape=[1, *arrays[name].shape])
            for name, blob in spec.outputs.items()
        ],
        decoder=decoder,
        artifacts={"ncnn": {precision: artifact}},
        tools={},
        notes=["test build around a bare ncnn model"],
    )
    return write_manifest(out, manifest)


def pixels_build(bins_build: Path, out: Path) -> Path:
    """``bins_build`` (NanoDet-m, ``dis`` integrated in bins) with every ``dis{s}`` multiplied by ``s``."""
    manifest = load_manifest(bins_build)
    decoder = manifest.decoder
    assert decoder is not None and decoder.layout == "nanodet-legacy" and decoder.config.distances == "bins"
    artifact = manifest.builds["fp32"]
    model = NcnnModel.read(bins_build / artifact.param)
    text = (bins_build / artifact.param).read_text().splitlines()
    layers, blobs = (int(v) for v in text[1].split())
    roles = dict(decoder.roles)
    extra = []
    for stride in decoder.config.strides:
        blob = roles[f"dis{stride}"]
        scaled = f"{blob}_px"
        # BinaryOp: 0=op_type (2 = mul) 1=with_scalar 2=b
        extra.append(f"BinaryOp px{stride} 1 1 {blob} {scaled} 0=2 1=1 2={float(stride):e}")
        roles[f"dis{stride}"] = scaled
    assert all(layer.type != "Noop" for layer in model.layers)  # the graph is what we think it is
    text[1] = f"{layers + len(extra)} {blobs + len(extra)}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.param").write_text("\n".join([*text, *extra]) + "\n")
    _link(bins_build / artifact.bin, out / "model.bin")
    files = {
        "param": _record(out / "model.param", "model.param"),
        "bin": _record(out / "model.bin", "model.bin"),
    }
    pixels = dataclasses.replace(
        decoder, roles=roles, config=dataclasses.replace(decoder.config, distances="pixels")
    )
    outputs = [
        dataclasses.replace(o, ncnn_name=roles.get(_role_of(decoder.roles, o.ncnn_name), o.ncnn_name))
        for o in manifest.outputs
    ]
    derived = dataclasses.replace(
        manifest,
        outputs=outputs,
        decoder=pixels,
        artifacts={
            "ncnn": {"fp32": Artifact(files=files, size_bytes=sum(f.bytes or 0 for f in files.values()))}
        },
        notes=["test build: integrated distances multiplied by the stride in the graph"],
    )
    return write_manifest(out, derived)


def plus_build(root: Path) -> Path:
    """nanodet-plus-m_416.onnx converted once per test session into ``root``: fp32, fp16 and int8
    (``convert --int8`` calibrated on the demo images, automatic keep-float off for time)."""
    from converters.convert import Int8Options, convert_onnx
    from tests.support.assets import require_asset

    out = Path(root) / "native-nanodet-plus-m_416"
    if (out / "manifest.json").is_file():
        return out
    onnx = require_asset("models/onnx/nanodet-plus-m_416.onnx")
    calib = require_asset("data/images")
    return convert_onnx(onnx, out, int8=Int8Options(calib, auto_keep_float=False)).manifest_path.parent


def _role_of(roles: dict[str, str], blob: str) -> str:
    return next((role for role, b in roles.items() if b == blob), "")


# --- comparing detections ----------------------------------------------------------------------------


def run_native_detect(
    runner: list[str],
    build: Path,
    images: list[Path],
    out: Path,
    precision: str,
    env: dict[str, str] | None = None,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    """``edgekit-runner detect`` (``runner`` may be ``[qemu, path]``), ``extra`` options: the --out JSON."""
    cmd = [*map(str, runner), "detect", "--build", str(build), "--precision", precision, "--out", str(out)]
    cmd += extra or []
    proc = subprocess.run([*cmd, *map(str, images)], capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}: {proc.stdout} {proc.stderr[-2000:]}"
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["images"] == len(images)
    return json.loads(out.read_text())


def unmatched(
    a: list[dict], b: list[dict], threshold: float, box_tol: float, score_tol: float
) -> tuple[int, list[str]]:
    """Detections of ``a`` that count (score clear of the threshold by ``score_tol``) and those
    with no counterpart in ``b``: same class, every box edge within ``box_tol`` px, score within
    ``score_tol``."""
    used: set[int] = set()
    counted, problems = 0, []
    for det in a:
        if det["score"] - threshold <= score_tol:
            continue
        counted += 1
        for j, other in enumerate(b):
            if j in used or other["class_id"] != det["class_id"]:
                continue
            close_box = max(abs(p - q) for p, q in zip(det["box"], other["box"], strict=True)) <= box_tol
            if close_box and abs(det["score"] - other["score"]) <= score_tol:
                used.add(j)
                break
        else:
            problems.append(f"{det['class_name']} {det['score']:.3f} {det['box']}")
    return counted, problems


def compare_runs(
    left: dict,
    right: dict,
    threshold: float,
    box_tol: float,
    score_tol: float,
    input_size: tuple[int, int] | None = None,
) -> tuple[int, list[str]]:
    """Both directions, image by image: (detections compared, problems).

    ``box_tol`` is in image pixels, or in network-input pixels when ``input_size`` (W, H of a
    stretched input) is given: then scaled per image by how much the image was shrunk.
    """
    total, problems = 0, []
    for ra, rb in zip(left["results"], right["results"], strict=True):
        assert Path(ra["input"]).name == Path(rb["input"]).name
        assert (ra["width"], ra["height"]) == (rb["width"], rb["height"])
        tol = box_tol
        if input_size is not None:
            tol = box_tol * max(ra["width"] / input_size[0], ra["height"] / input_size[1])
        for a, b, side in ((ra, rb, "left"), (rb, ra, "right")):
            counted, missing = unmatched(a["detections"], b["detections"], threshold, tol, score_tol)
            total += counted
            problems += [f"{Path(ra['input']).name}: only {side}: {m}" for m in missing]
    return total, problems
