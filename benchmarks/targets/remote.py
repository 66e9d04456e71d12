"""Detection on a target, for ``edgekit detect/eval --target`` (the ``edgekit.targets`` provider).

With the native ``edgekit-runner`` the whole pipeline runs on the device (``edgekit-runner
detect``: decode the image, preprocess, ncnn, decode, NMS); with edgekit's Python board runner,
images are preprocessed here, the device runs the raw inference (``runner.py infer``) and the
outputs are decoded here. Either way the records are those of a local ``edgekit detect --json``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.runners import NativeRunner, PythonRunner, RunnerFailed, call_json, choose_runner
from benchmarks.targets.base import Target, TargetError
from benchmarks.targets.registry import parse_target
from edge.errors import EdgekitError
from edge.manifest import MANIFEST_NAME
from edge.media import read_image
from edge.preprocess import preprocess
from edge.remote import RemoteDetections, RemoteRequest
from edge.runtime.detector import Detector
from edge.runtime.resolve import ModelSpec, resolve_model

#: seconds allowed for one detect / infer call on the device (emulated inferences take many seconds)
DETECT_TIMEOUT = 7200.0

Say = Callable[[str], None]


class TargetDetection:
    """The provider registered under ``edgekit.targets``: opens the target, picks the runner."""

    def detect(self, request: RemoteRequest, progress: Say) -> RemoteDetections:
        target = parse_target(request.target)
        try:
            progress(f"connecting to {target.name}")
            target.open()
            try:
                runner = choose_runner(request.runner, target, progress)
                if isinstance(runner, NativeRunner):
                    return _native(target, runner, request, progress)
                if isinstance(runner, PythonRunner):
                    return _python(target, runner, request, progress)
                raise EdgekitError(
                    f"--runner {request.runner}: a benchncnn binary only times models; detection needs "
                    "native, python or an edgekit-runner binary"
                )
            finally:
                target.close()
        except TargetError as exc:
            raise EdgekitError(f"{target.name}: {exc}") from None
        except RunnerFailed as exc:
            raise EdgekitError(f"the runner on {target.name} failed: {exc}") from None


#: where each runner runs which part of the pipeline (``{target}``: the target's name)
WHERE = {
    "native": "whole pipeline on {target} (native edgekit-runner: preprocessing, inference, decoding)",
    "python": "preprocessing and decoding on this host, inference on {target} (Python runner)",
}


def _detections(
    target: Target,
    runner: str,
    spec: ModelSpec,
    layout: str | None,
    class_names: tuple[str, ...],
    records: list[dict[str, Any]],
) -> RemoteDetections:
    """One run's records on ``target``, labelled with the runner and where each step ran."""
    return RemoteDetections(
        target=target.name,
        runner=runner,
        where=WHERE[runner].format(target=target.name),
        model=spec.name,
        precision=spec.precision,
        layout=layout,
        class_names=class_names,
        records=records,
    )


def _push_images(target: Target, images: list[Path]) -> list[str]:
    return [target.push(path, f"image{i}{path.suffix.lower()}") for i, path in enumerate(images)]


def _native(target: Target, runner: NativeRunner, request: RemoteRequest, say: Say) -> RemoteDetections:
    """The whole pipeline on the device: push the build's manifest and files, the images, run detect."""
    build = Path(request.build)
    if not (build.is_dir() and (build / MANIFEST_NAME).is_file()):
        raise EdgekitError(
            f"{build}: the native runner takes a build directory (manifest.json); convert the model "
            "with `edgekit convert`, or use --runner python"
        )
    spec = resolve_model(build, precision=request.precision, preset=request.preset, size=request.size)
    say(f"installing the native runner on {target.name}")
    installed = runner.install(target)
    say(f"pushing {spec.name} {spec.precision} and {len(request.images)} images")
    remote_manifest = target.push(build / MANIFEST_NAME, MANIFEST_NAME)
    for path in (spec.param, spec.bin):
        target.push(path, path.name)
    remote_images = _push_images(target, request.images)
    out = str(Path(remote_manifest).parent / "detections.json")
    argv = [*runner.argv(installed), "detect", "--build", str(Path(remote_manifest).parent)]
    argv += ["--precision", spec.precision, "--threads", str(request.threads), "--out", out]
    for flag, value in (
        ("--score", request.score_threshold),
        ("--nms", request.nms_threshold),
        ("--max-det", request.max_detections),
    ):
        if value is not None:
            argv += [flag, str(value)]
    say(f"detecting on {target.name} (native runner)")
    try:
        summary = call_json(target, [*argv, *remote_images], DETECT_TIMEOUT, "native")
    except RunnerFailed as exc:  # name the user's files, not their copies on the device
        reason = str(exc)
        for remote, local in [
            *zip(remote_images, request.images, strict=True),
            (str(Path(remote_manifest).parent), build),
        ]:
            reason = reason.replace(remote, str(local))
        raise RunnerFailed(reason) from None
    with tempfile.TemporaryDirectory(prefix="edgekit-remote-") as tmp:
        pulled = json.loads(target.pull(out, Path(tmp) / "detections.json").read_text())
    records = pulled.get("results", []) if isinstance(pulled, dict) else pulled
    if not isinstance(records, list) or len(records) != len(request.images):
        raise EdgekitError(f"the native runner on {target.name} returned no result for every image")
    for record, local in zip(records, request.images, strict=True):
        record["input"] = str(local)
    names = tuple(spec.decoder.class_names) or tuple(str(i) for i in range(spec.decoder.num_classes))
    return _detections(target, "native", spec, summary.get("layout") or spec.decoder.layout, names, records)


def _python(target: Target, runner: PythonRunner, request: RemoteRequest, say: Say) -> RemoteDetections:
    """Preprocess here, raw inference on the device (runner.py infer), decode here."""
    detector = Detector.open(
        Path(request.build),
        precision=request.precision,
        preset=request.preset,
        size=request.size,
        threads=request.threads,
        layout=request.layout,
        score_threshold=request.score_threshold,
        nms_threshold=request.nms_threshold,
        max_detections=request.max_detections,
    )
    try:
        spec = detector.spec
        installed = runner.install(target)
        say(f"preprocessing {len(request.images)} images here")
        with tempfile.TemporaryDirectory(prefix="edgekit-remote-") as tmp:
            images, transforms, tensors = [], [], []
            for i, path in enumerate(request.images):
                image = read_image(path)
                tensor, transform = preprocess(image, spec.input)
                local = Path(tmp) / f"tensor{i}.npy"
                np.save(local, tensor)
                images.append(image)
                transforms.append(transform)
                tensors.append(target.push(local, local.name))
            blobs = list(spec.outputs.values())
            argv = [*runner.argv(installed), "infer", "--param", target.push(spec.param, "model.param")]
            argv += ["--bin", target.push(spec.bin, "model.bin"), "--input", spec.input.ncnn_name]
            argv += ["--outputs", ",".join(blobs), "--precision", spec.precision]
            argv += ["--threads", str(request.threads), "--tensors", ",".join(tensors)]
            argv += ["--out", f"{target.workdir}/outputs.npz"]
            say(f"inference on {target.name} (Python runner)")
            call_json(target, argv, DETECT_TIMEOUT, "python")
            pulled = target.pull(f"{target.workdir}/outputs.npz", Path(tmp) / "outputs.npz")
            with np.load(pulled) as saved:
                raw = {key: saved[key] for key in saved.files}
        records: list[dict[str, Any]] = []
        for i, (path, image, transform) in enumerate(zip(request.images, images, transforms, strict=True)):
            outputs = {name: raw[f"{blob}__{i}"] for name, blob in spec.outputs.items()}
            found = detector.decode_outputs(outputs, transform)
            records.append(
                {"input": str(path), "width": image.shape[1], "height": image.shape[0],
                 "detections": detector.to_records(found)}
            )  # fmt: skip
        return _detections(target, "python", spec, detector.detected_layout, detector.class_names, records)
    finally:
        detector.close()
