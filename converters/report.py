"""The conversion report: graph repairs convert applied, layers kept in higher precision, and
where the preprocessing came from. Written to the manifest (``conversion.report``) and ``--json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_BUILDS = "all"


@dataclass(frozen=True)
class Repair:
    """One kind of rewrite applied to the graph: what, where (ONNX nodes or ncnn layers), for which builds."""

    what: str
    where: tuple[str, ...]
    builds: str = ALL_BUILDS  # "all" or one precision ("fp16")
    detail: str = ""

    def note(self) -> str:
        """The manifest note: ``repaired: <what> (<first five places>...)``."""
        shown = ", ".join(self.where[:5]) + ("..." if len(self.where) > 5 else "")
        scope = "" if self.builds == ALL_BUILDS else f" in the {self.builds} build"
        extra = f"; {self.detail}" if self.detail else ""
        return f"repaired: {self.what}{scope} ({shown}){extra}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"repair": self.what, "where": list(self.where), "builds": self.builds}
        return out | ({"detail": self.detail} if self.detail else {})


@dataclass(frozen=True)
class KeptPrecision:
    """A layer of a reduced-precision build kept in higher precision, and why."""

    build: str  # "fp16"
    layer: str  # ncnn layer name
    kept: str  # e.g. "fp32 weight storage"
    reason: str  # e.g. "94.8 % of convrelu_0's weights underflow fp16"

    def note(self) -> str:
        return f"{self.build} build: {self.layer} keeps {self.kept}: {self.reason}"

    def to_dict(self) -> dict[str, str]:
        return {"build": self.build, "layer": self.layer, "kept": self.kept, "reason": self.reason}


@dataclass
class ConversionReport:
    """Everything convert changed or decided on the user's behalf, per model."""

    repairs: list[Repair] = field(default_factory=list)
    kept_precision: list[KeptPrecision] = field(default_factory=list)
    #: where each preprocessing field came from: "option" (convert's flags), "preset", or "guess"
    preprocessing: dict[str, str] = field(default_factory=dict)

    @property
    def guessed(self) -> list[str]:
        """Preprocessing fields nobody gave (generic defaults: BGR, no mean, /255, stretch)."""
        return [k for k, v in self.preprocessing.items() if v == "guess"]

    def notes(self) -> list[str]:
        """Manifest notes for the repairs and kept layers (in that order)."""
        return [r.note() for r in self.repairs] + [k.note() for k in self.kept_precision]

    def to_dict(self) -> dict[str, Any]:
        return {
            "repairs": [r.to_dict() for r in self.repairs],
            "higher_precision": [k.to_dict() for k in self.kept_precision],
            "preprocessing": dict(self.preprocessing),
        }
