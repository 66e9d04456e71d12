"""The build manifest's records: input, outputs, decoder, artifacts per backend and precision."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.decoders.spec import DecoderSpec
from edge.errors import EdgekitError

SCHEMA = "edgekit.manifest/2"
MANIFEST_NAME = "manifest.json"
PRECISIONS = ("fp32", "fp16", "int8")
NCNN = "ncnn"
GENERATED_WEIGHTS_NOTE = (
    "weights are generated (edgekit zoo build), not trained: accuracy is not measurable "
    "without the official weights; speed, size and parity are"
)


@dataclass
class InputSpec:
    """The network input and the preprocessing that feeds it."""

    name: str  # ONNX name
    ncnn_name: str  # blob name in the ncnn graph
    shape: list[int]  # NCHW
    layout: str = "NCHW"
    color: str = "BGR"
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    norm: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    resize: str = "stretch"  # "stretch" or "letterbox"
    pad_multiple: int = 32  # letterbox pads to a multiple of this
    pad_value: float = 0.0  # letterbox padding grey level (0-255, before mean/norm)

    @property
    def width(self) -> int:
        return int(self.shape[3])

    @property
    def height(self) -> int:
        return int(self.shape[2])


@dataclass
class OutputSpec:
    """One network output: its ONNX and ncnn names, ONNX shape and what it holds."""

    name: str
    ncnn_name: str
    shape: list[int]
    meaning: str = ""


@dataclass
class Parity:
    """Agreement of one build with onnxruntime on the same inputs.

    ``inputs`` is ``"images:<folder name>"`` (the files in ``input_files``) or ``"random:<seed>"``.
    """

    cosine: float
    max_abs: float
    inputs: str
    samples: int
    passed: bool
    threshold: float
    per_output: dict[str, dict[str, Any]] = field(default_factory=dict)
    input_files: list[dict[str, str]] = field(default_factory=list)  # {"file": name, "sha256": hex}


@dataclass
class FileRecord:
    """One file of an artifact: path relative to the build directory, checksum, size."""

    path: str
    sha256: str
    bytes: int | None = None


@dataclass
class Artifact:
    """One precision of a build for one backend: its files by role, size, parity, details."""

    files: dict[str, FileRecord]  # ncnn: "param" and "bin"
    size_bytes: int
    parity: Parity | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def param(self) -> str:
        """The ncnn ``.param`` path (relative to the build directory)."""
        return self.files["param"].path

    @property
    def bin(self) -> str:
        """The ncnn ``.bin`` path (relative to the build directory)."""
        return self.files["bin"].path


@dataclass
class Manifest:
    """Everything a consumer of a build directory needs."""

    source: dict[str, Any]  # {"file": name, "sha256": hex, "bytes": int}
    input: InputSpec
    outputs: list[OutputSpec]
    decoder: DecoderSpec | None
    artifacts: dict[str, dict[str, Artifact]]  # backend -> precision -> artifact
    tools: dict[str, str]
    notes: list[str] = field(default_factory=list)
    schema: str = SCHEMA
    conversion: dict[str, Any] = field(default_factory=dict)  # e.g. {"cut": {...}}: graph surgery done

    @property
    def generated_weights(self) -> bool:
        """True when the source ONNX holds generated (untrained) weights: no accuracy to measure."""
        return str(self.source.get("weights", "")).startswith("generated")

    @property
    def builds(self) -> dict[str, Artifact]:
        """The ncnn artifacts by precision."""
        return self.artifacts.get(NCNN, {})

    def build(self, precision: str, backend: str = NCNN) -> Artifact:
        """The ``backend`` artifact of ``precision``, or a clear error naming the ones present."""
        held = self.artifacts.get(backend, {})
        if precision not in held:
            have = ", ".join(held) or "none"
            raise EdgekitError(f"this build has no {precision} model (it has: {have})")
        return held[precision]
