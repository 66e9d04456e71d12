"""The build manifest: what a build takes as input, what it outputs, how to decode it, its files.

``manifest.json`` sits in every build directory made by ``edgekit convert``. Everything that
runs a build (detect, eval, bench, calibrate, bundle) reads it through :func:`load_manifest`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.atomic import read_json
from edge.errors import EdgekitError

SCHEMA = "edgekit.manifest/1"
MANIFEST_NAME = "manifest.json"
PRECISIONS = ("fp32", "fp16", "int8")


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
class DecoderSpec:
    """Which decoder turns the outputs into boxes, with every parameter it needs."""

    preset: str  # e.g. "nanodet-plus", "nanodet-m", "ssd-resnet34"
    family: str  # "nanodet" or "ssd"
    strides: list[int] = field(default_factory=list)
    reg_max: int = 7
    num_classes: int = 80
    class_names: list[str] = field(default_factory=list)
    center_offset: float = 0.0
    score_threshold: float = 0.4
    nms_threshold: float = 0.5
    max_detections: int = 100
    layout: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Parity:
    """Agreement of one build with onnxruntime on the same inputs."""

    cosine: float
    max_abs: float
    inputs: str  # "images:<dir>" or "random:<seed>"
    samples: int
    passed: bool
    threshold: float
    per_output: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class BuildFiles:
    """One precision of a build: its files, size and checksums, and its parity."""

    param: str
    bin: str
    size_bytes: int
    param_sha256: str
    bin_sha256: str
    parity: Parity | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    """Everything a consumer of a build directory needs."""

    source: dict[str, Any]
    input: InputSpec
    outputs: list[OutputSpec]
    decoder: DecoderSpec | None
    builds: dict[str, BuildFiles]
    tools: dict[str, str]
    notes: list[str] = field(default_factory=list)
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def build(self, precision: str) -> BuildFiles:
        """The build of ``precision``, or a clear error naming the ones present."""
        if precision not in self.builds:
            have = ", ".join(self.builds) or "none"
            raise EdgekitError(f"this build has no {precision} model (it has: {have})")
        return self.builds[precision]


def manifest_from_dict(data: dict[str, Any]) -> Manifest:
    """Rebuild a :class:`Manifest` from its JSON form, checking the schema version."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise EdgekitError(f"not an edgekit manifest (schema {found!r}, expected {SCHEMA!r})")
    try:
        builds = {}
        for name, b in data["builds"].items():
            parity = Parity(**b["parity"]) if b.get("parity") else None
            builds[name] = BuildFiles(**{**b, "parity": parity})
        dec = data.get("decoder")
        return Manifest(
            source=data["source"],
            input=InputSpec(**data["input"]),
            outputs=[OutputSpec(**o) for o in data["outputs"]],
            decoder=DecoderSpec(**dec) if dec else None,
            builds=builds,
            tools=data.get("tools", {}),
            notes=data.get("notes", []),
            schema=data["schema"],
        )
    except (KeyError, TypeError) as exc:
        raise EdgekitError(f"manifest is missing or has a malformed field: {exc}") from None


def load_manifest(path: Path) -> Manifest:
    """Read ``manifest.json`` (or a build directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise EdgekitError(f"no manifest at {path}: is this a build directory made by 'edgekit convert'?")
    return manifest_from_dict(read_json(path, "manifest"))
