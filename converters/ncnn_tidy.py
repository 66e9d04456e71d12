"""Tidy what pnnx writes where it is merely untidy, and word errors about it in the user's terms.

pnnx runs its ``insert_split`` pass twice with a fresh counter, so a graph can hold two ``Split``
layers named ``splitncnn_0``. ncnn loads and runs such a graph (layer names only serve
``find_layer_index_by_name``), so it is repaired by renaming, never refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from edge.errors import EdgekitError
from edge.ncnn.model import NcnnModel


def rename_duplicate_layers(param: Path) -> list[tuple[str, str]]:
    """Give every layer of ``param`` a unique name (in place); returns ``(old, new)`` per rename."""
    model = NcnnModel.read(param)
    taken = {layer.name for layer in model.layers}
    seen: set[str] = set()
    renamed: list[tuple[str, str]] = []
    for layer in model.layers:
        if layer.name not in seen:
            seen.add(layer.name)
            continue
        k = 1
        while f"{layer.name}_{k}" in taken:
            k += 1
        new = f"{layer.name}_{k}"
        renamed.append((layer.name, new))
        taken.add(new)
        seen.add(new)
        layer.name = new
    if renamed:
        model.write(param)
    return renamed


def rename_note(renamed: list[tuple[str, str]]) -> str:
    """One manifest note for the renames of one build."""
    shown = ", ".join(f"{old} -> {new}" for old, new in renamed[:5])
    more = f" and {len(renamed) - 5} more" if len(renamed) > 5 else ""
    return f"repaired: duplicate ncnn layer names written by pnnx renamed ({shown}{more})"


@contextlib.contextmanager
def user_terms(stage: Path, source: Path) -> Iterator[None]:
    """Re-word errors that name files inside ``stage`` (gone once convert fails) by the user's file."""
    try:
        yield
    except EdgekitError as exc:
        text = str(exc)
        if str(stage) not in text:
            raise
        for path in sorted(stage.rglob("*"), key=lambda p: -len(str(p))):
            if str(path) in text:
                text = text.replace(str(path), f"{source.name} (pnnx's {path.name})")
        text = text.replace(str(stage), f"{source.name} (pnnx's output)")
        raise type(exc)(text) from None
