"""Checks on a freshly converted ncnn graph: layer types ncnn knows and pnnx's blob naming."""

from __future__ import annotations

from pathlib import Path

import ncnn

from edge.errors import EdgekitError


def layer_types(param: Path) -> list[tuple[str, str]]:
    """(type, name) of every layer in a text .param written by pnnx."""
    lines = Path(param).read_text(encoding="utf-8", errors="replace").splitlines()
    return [(parts[0], parts[1]) for parts in (ln.split() for ln in lines[2:]) if len(parts) >= 2]


def check_supported(param: Path, onnx_ops: set[str]) -> None:
    """Raise when pnnx left a layer that ncnn cannot run (an op pnnx could not convert)."""
    unknown = [(t, n) for t, n in layer_types(param) if ncnn.layer_to_index(t) < 0]
    if unknown:
        kind, name = unknown[0]
        origin = f"ONNX op {kind}" if kind in onnx_ops else f"pnnx op {kind}"
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise EdgekitError(f"pnnx cannot convert {origin} (layer {name}){more}: ncnn has no such layer")
