"""Parity of an ncnn build with onnxruntime: same inputs, cosine and max abs error per output."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edge.checksums import sha256_file
from edge.errors import EdgekitError
from edge.manifest import InputSpec, Parity
from edge.media import image_files, read_image
from edge.preprocess import preprocess

#: Parity thresholds (minimum cosine similarity) per build precision.
THRESHOLDS = {"fp32": 0.99999, "fp16": 0.9995, "int8": 0.98}
#: images ``--verify-images`` checks by default: the first ones by name (``--verify-num`` changes it)
DEFAULT_VERIFY_IMAGES = 16
#: seeded random inputs checked without ``--verify-images``
RANDOM_SAMPLES = 4


@dataclass
class ParityInputs:
    """The NCHW float32 tensors both runtimes see, and where they came from."""

    tensors: list[np.ndarray]
    origin: str  # "images:<folder name>" or "random:<seed>"
    files: list[Path] = field(default_factory=list)
    available: int = 0  # images in the folder (``files`` may be the first of them)

    def describe(self) -> str:
        """``all 6 images in images/``, ``16 of 128 images in coco128/ ...`` or ``4 random inputs``."""
        if not self.files:
            return f"{len(self.tensors)} seeded random inputs"
        folder = self.origin.split(":", 1)[1]
        if len(self.files) >= self.available:
            return f"all {len(self.files)} images in {folder}/"
        return (
            f"the first {len(self.files)} of {self.available} images in {folder}/"
            " (--verify-num N to change, 0 = all)"
        )


@dataclass
class OutputAgreement:
    """Worst-case agreement of one output over all samples."""

    cosine: float = 1.0
    max_abs: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def make_inputs(
    spec: InputSpec, images: Path | None, count: int | None = DEFAULT_VERIFY_IMAGES, seed: int = 0
) -> ParityInputs:
    """Tensors from real images (the first ``count`` by name, None or 0 = all) or seeded random pixels."""
    channels = spec.shape[1]
    if images is not None and channels == 3:
        every = image_files(images, what="verification image")
        files = every[:count] if count else every
        fixed = dataclasses.replace(spec, resize="stretch")  # parity needs the exact input shape
        tensors = []
        for path in files:
            tensors.append(preprocess(read_image(path), fixed)[0][None])
        return ParityInputs(tensors, f"images:{Path(images).resolve().name}", list(files), len(every))
    rng = np.random.default_rng(seed)
    tensors = []
    for _ in range(RANDOM_SAMPLES):
        pixels = rng.uniform(0, 255, size=spec.shape).astype(np.float32)
        mean = np.asarray(spec.mean[:channels] + [0.0] * max(0, channels - 3), np.float32)
        norm = np.asarray(spec.norm[:channels] + [1.0] * max(0, channels - 3), np.float32)
        tensors.append(((pixels - mean[None, :, None, None]) * norm[None, :, None, None]).astype(np.float32))
    return ParityInputs(tensors, f"random:{seed}")


def onnxruntime_session(model: onnx.ModelProto) -> ort.InferenceSession:
    """A CPU onnxruntime session over an in-memory model (the reference)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EdgekitError(f"onnxruntime cannot run the model: {first[:300]}") from None


def compare(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """Cosine similarity and max absolute error; tensors of different sizes do not agree at all."""
    a = np.asarray(reference, np.float64).ravel()
    b = np.asarray(candidate, np.float64).ravel()
    if a.size != b.size or not np.all(np.isfinite(b)):
        return 0.0, float("inf")
    max_abs = float(np.max(np.abs(a - b))) if a.size else 0.0
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0.0 and nb == 0.0:
        return 1.0, max_abs
    if na == 0.0 or nb == 0.0:
        return 0.0, max_abs
    return float(np.dot(a, b) / (na * nb)), max_abs


def summarise(per_output: dict[str, OutputAgreement], inputs: ParityInputs, precision: str) -> Parity:
    """Fold per-output agreement into the manifest's :class:`Parity` record."""
    threshold = THRESHOLDS[precision]
    cosine = min((o.cosine for o in per_output.values()), default=1.0)
    max_abs = max((o.max_abs for o in per_output.values()), default=0.0)
    return Parity(
        cosine=cosine,
        max_abs=max_abs,
        inputs=inputs.origin,
        samples=len(inputs.tensors),
        passed=cosine >= threshold,
        threshold=threshold,
        per_output={k: {"cosine": v.cosine, "max_abs": v.max_abs} for k, v in per_output.items()},
        input_files=[{"file": p.name, "sha256": sha256_file(p)} for p in inputs.files],
    )
