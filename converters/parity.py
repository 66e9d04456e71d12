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
from edge.isolate import run_isolated
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
    """One output's agreement with the reference on each sample: (cosine, max abs error, reference peak)."""

    samples: list[tuple[float, float, float]] = field(default_factory=list)

    def add(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        cosine, max_abs = compare(reference, candidate)
        self.samples.append(
            (cosine, max_abs, float(np.max(np.abs(reference))) if np.size(reference) else 0.0)
        )


#: a sample whose reference peak is below this fraction of the output's peak over all samples
#: carries no signal on that output: its cosine compares rounding noise, so it is judged by
#: absolute error instead (see :func:`judge`)
NEGLIGIBLE_PEAK = 1e-3


@dataclass
class Verdict:
    """How one output fared: worst cosine over the samples that carry signal, worst max abs error
    over all, the reference peak over all samples, and the samples judged by absolute error."""

    cosine: float
    max_abs: float
    peak: float
    passed: bool
    by_abs_error: list[dict] = field(default_factory=list)


def judge(agreement: OutputAgreement, threshold: float, labels: list[str]) -> Verdict:
    """Cosine gate per sample, except where the output carries no signal.

    A sample whose reference peak is below ``NEGLIGIBLE_PEAK`` of the output's peak over all samples
    (e.g. a text detector's probability map on an image without text) passes when its max abs error
    is at most ``(1 - threshold)`` of that global peak (fp32 1e-5, fp16 5e-4, int8 0.02); every
    other sample must reach ``threshold`` cosine, as documented.
    """
    peak = max((p for _c, _e, p in agreement.samples), default=0.0)
    tolerance = (1.0 - threshold) * peak
    cosine, max_abs, passed, by_abs = 1.0, 0.0, True, []
    for i, (c, e, p) in enumerate(agreement.samples):
        max_abs = max(max_abs, e)
        if peak > 0.0 and p < NEGLIGIBLE_PEAK * peak:
            by_abs.append(
                {"sample": labels[i], "cosine": c, "max_abs": e, "reference_peak": p, "tolerance": tolerance}
            )
            passed = passed and e <= tolerance
        else:
            cosine = min(cosine, c)
    return Verdict(cosine, max_abs, peak, passed and cosine >= threshold, by_abs)


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


def _onnxruntime_failed(exc: Exception) -> EdgekitError:
    """One clear line for an onnxruntime failure: the first line of its message."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return EdgekitError(f"onnxruntime cannot run the model: {first[:300]}")


def onnxruntime_session(model: onnx.ModelProto) -> ort.InferenceSession:
    """A CPU onnxruntime session over an in-memory model (the reference)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise _onnxruntime_failed(exc) from None


def _run_reference(
    model: onnx.ModelProto, input_name: str, tensors: list[np.ndarray]
) -> list[list[np.ndarray]]:
    session = onnxruntime_session(model)
    try:
        return [session.run(None, {input_name: t}) for t in tensors]
    except Exception as exc:
        raise _onnxruntime_failed(exc) from None


def reference_outputs(
    model: onnx.ModelProto, input_name: str, tensors: list[np.ndarray]
) -> list[list[np.ndarray]]:
    """onnxruntime's outputs for each tensor (the parity reference), computed in a forked child."""
    return run_isolated("onnxruntime (the parity reference)", _run_reference, model, input_name, tensors)


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


def sample_labels(inputs: ParityInputs) -> list[str]:
    """``bus.jpg`` per image, ``random #0`` per seeded random input."""
    return [p.name for p in inputs.files] or [f"random #{i}" for i in range(len(inputs.tensors))]


def summarise(per_output: dict[str, OutputAgreement], inputs: ParityInputs, precision: str) -> Parity:
    """Judge every output (:func:`judge`) and fold them into the manifest's :class:`Parity` record."""
    threshold = THRESHOLDS[precision]
    labels = sample_labels(inputs)
    verdicts = {name: judge(a, threshold, labels) for name, a in per_output.items()}
    record = {}
    for name, v in verdicts.items():
        record[name] = {"cosine": v.cosine, "max_abs": v.max_abs, "reference_peak": v.peak}
        if v.by_abs_error:
            record[name]["judged_by_abs_error"] = v.by_abs_error
    return Parity(
        cosine=min((v.cosine for v in verdicts.values()), default=1.0),
        max_abs=max((v.max_abs for v in verdicts.values()), default=0.0),
        inputs=inputs.origin,
        samples=len(inputs.tensors),
        passed=all(v.passed for v in verdicts.values()),
        threshold=threshold,
        per_output=record,
        input_files=[{"file": p.name, "sha256": sha256_file(p)} for p in inputs.files],
    )


def _abs_judged(parity: Parity) -> list[tuple[str, dict]]:
    return [(name, s) for name, o in parity.per_output.items() for s in o.get("judged_by_abs_error", [])]


def judged_by_abs_error(parity: Parity) -> dict[str, dict[str, list[dict]]]:
    """``{"judged_by_abs_error": {output: [sample, ...]}}`` for a summary, or ``{}`` when none were."""
    judged = {
        n: o["judged_by_abs_error"] for n, o in parity.per_output.items() if o.get("judged_by_abs_error")
    }
    return {"judged_by_abs_error": judged} if judged else {}


def abs_error_notes(parity: Parity, precision: str) -> list[str]:
    """One note per output whose samples without signal were judged by absolute error."""
    notes = []
    for name, o in parity.per_output.items():
        judged = o.get("judged_by_abs_error", [])
        if judged:
            each = ", ".join(
                f"{s['sample']} (peak {s['reference_peak']:.3g}, max abs error {s['max_abs']:.3g})"
                for s in judged
            )
            notes.append(
                f"{precision} parity: output {name!r} carries no signal on {len(judged)} sample(s) (reference"
                f" peak < {NEGLIGIBLE_PEAK:g} of its peak {o['reference_peak']:.4g}), judged by absolute error"
                f" <= {judged[0]['tolerance']:.3g} instead of cosine: {each}"
            )
    return notes


def parity_miss(precision: str, parity: Parity) -> str:
    """``fp16 build misses parity with onnxruntime: ...``: the worst cosine, or the sample without
    signal whose absolute error is too large."""
    head = f"{precision} build misses parity with onnxruntime: "
    if parity.cosine < parity.threshold:
        return f"{head}cosine {parity.cosine:.6f} < {parity.threshold}, max abs error {parity.max_abs:.4g}"
    name, s = next((n, s) for n, s in _abs_judged(parity) if s["max_abs"] > s["tolerance"])
    return (
        f"{head}output {name!r} on {s['sample']}, where it carries no signal (reference peak"
        f" {s['reference_peak']:.3g}), max abs error {s['max_abs']:.4g} > {s['tolerance']:.3g}"
        f" ({1 - parity.threshold:.0e} of its peak over all samples)"
    )
