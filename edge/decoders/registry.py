"""The registry of model families: decoding, preset lookup, convert's recognition and CLI help.

Built-in families register on first use; so does every ``edgekit.families`` entry point (an
installed plug-in: ``name = "package.module:FAMILY"``) and every module named in the
``EDGEKIT_FAMILY_MODULES`` environment variable (comma-separated, importable module paths whose
import calls :func:`register_family` or that define ``FAMILY``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from importlib.metadata import entry_points

from edge.decoders.family import Family, OutputInfo, Preset, Recognised
from edge.errors import EdgekitError

ENTRY_POINT_GROUP = "edgekit.families"
MODULES_VARIABLE = "EDGEKIT_FAMILY_MODULES"
BUILTIN_MODULES = ("edge.decoders.nanodet", "edge.decoders.ssd", "edge.decoders.yolov8")

_families: dict[str, Family] = {}
_loaded = False


def register_family(family: Family) -> Family:
    """Add ``family`` (replacing one of the same name); its preset names must be new."""
    taken = {p.name: f.name for f in _families.values() if f.name != family.name for p in f.presets}
    clash = [p.name for p in family.presets if p.name in taken]
    if clash:
        raise EdgekitError(
            f"family {family.name!r}: preset {clash[0]!r} already belongs to {taken[clash[0]]!r}"
        )
    _families[family.name] = family
    return family


def _load_module(path: str, origin: str) -> None:
    try:
        module = importlib.import_module(path)
    except ImportError as exc:
        raise EdgekitError(f"cannot load model family module {path!r} ({origin}): {exc}") from None
    found = getattr(module, "FAMILY", None)
    if isinstance(found, Family) and found.name not in _families:
        register_family(found)


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for path in BUILTIN_MODULES:
        _load_module(path, "built-in")
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        found = entry.load()
        if not isinstance(found, Family):
            raise EdgekitError(f"entry point {entry.name!r} in {ENTRY_POINT_GROUP} is not a Family")
        register_family(found)
    for path in filter(None, (p.strip() for p in os.environ.get(MODULES_VARIABLE, "").split(","))):
        _load_module(path, MODULES_VARIABLE)


def families() -> list[Family]:
    """Every registered family: built-ins first (NanoDet, SSD), then plug-ins as registered."""
    _ensure_loaded()
    builtin = [m.rsplit(".", 1)[1] for m in BUILTIN_MODULES]
    return sorted(
        _families.values(), key=lambda f: builtin.index(f.name) if f.name in builtin else len(builtin)
    )


def get_family(name: str) -> Family:
    """The family called ``name``, or a clear error listing the known ones."""
    _ensure_loaded()
    if name not in _families:
        raise EdgekitError(f"no decoder for model family {name!r} (known: {', '.join(_families)})")
    return _families[name]


def preset_names() -> list[str]:
    """Every preset name, family by family."""
    return [p.name for f in families() for p in f.presets]


def layout_names() -> list[str]:
    """Every layout name, family by family, in the order ``auto`` tries them."""
    return [layout.name for f in families() for layout in f.layouts]


def find_preset(name: str) -> tuple[Family, Preset]:
    """The family and preset called ``name``, or a clear error listing the known presets."""
    for family in families():
        for preset in family.presets:
            if preset.name == name:
                return family, preset
    raise EdgekitError(f"unknown preset {name!r}; known presets: {', '.join(sorted(preset_names()))}")


def guess_preset(output_names: Sequence[str]) -> str | None:
    """Preset for a bare model from its output blob names: the first family that claims it, or
    None (no fallback: an unrecognised model is said to be one, see :func:`known_families`)."""
    for family in families():
        found = family.guess(list(output_names))
        if found is not None:
            return found
    return None


def known_families() -> str:
    """``"nanodet (nanodet-plus, nanodet-m), ssd (ssd-resnet34)"``: what edgekit can decode."""
    return ", ".join(f"{f.name} ({', '.join(p.name for p in f.presets)})" for f in families())


def recognise(
    outputs: Sequence[OutputInfo], input_width: int, input_height: int, only: str | None = None
) -> Recognised | None:
    """What convert's ``--preset auto`` (or ``only=<preset>``) finds in a graph's outputs."""
    for family in families():
        if only is not None and only not in {p.name for p in family.presets}:
            continue
        found = family.recognise(outputs, input_width, input_height)
        if found is not None and (only is None or found.preset == only):
            return found
    return None


def choices_help(*leading: str) -> str:
    """``"auto | nanodet-plus | ..."``: CLI help text listing every preset."""
    return " | ".join([*leading, *preset_names()])


def preset_help() -> str:
    """CLI help text of ``--preset`` for commands that decode (the default, auto, is shown by the CLI)."""
    return (
        f"decoder preset of a bare .param: {choices_help()}; auto takes the manifest's, else guesses from"
        " the output names"
    )


def layouts_help() -> str:
    """CLI help text listing every layout (the default, auto, is shown by the CLI)."""
    return "output layout: " + " | ".join(layout_names()) + "; auto takes the manifest's, else detects it"


def preset_defaults_help(attribute: str) -> str:
    """``"100 for nanodet-plus, nanodet-m; 200 for ssd-resnet34"``: a preset default, preset by preset."""
    by_value: dict[object, list[str]] = {}
    for family in families():
        for preset in family.presets:
            by_value.setdefault(getattr(preset, attribute), []).append(preset.name)
    return "; ".join(f"{value} for {', '.join(names)}" for value, names in by_value.items())
