"""Manifest JSON: write v2, read v2 (validated against the shipped JSON Schema) or v1 (migrated)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge.atomic import read_json
from edge.decoders.registry import get_family
from edge.decoders.spec import DecoderSpec, config_from_dict, config_to_dict
from edge.errors import EdgekitError
from edge.json_schema import check_against
from edge.manifest.migrate import V1_SCHEMA, migrate_v1
from edge.manifest.model import (
    MANIFEST_NAME,
    SCHEMA,
    Artifact,
    FileRecord,
    InputSpec,
    Manifest,
    OutputSpec,
    Parity,
)

SCHEMA_FILE = Path(__file__).with_name("edgekit.manifest-2.schema.json")


def validate(data: Any) -> None:
    """Check a v2 manifest dict against the schema; the first problem is one line naming its field."""
    check_against(SCHEMA_FILE, data, "manifest")


def decoder_to_dict(decoder: DecoderSpec) -> dict[str, Any]:
    """The manifest's ``decoder`` object."""
    return {
        "family": decoder.family,
        "preset": decoder.preset,
        "layout": decoder.layout,
        "roles": dict(decoder.roles),
        "class_names": list(decoder.class_names),
        "category_ids": list(decoder.category_ids),
        "score_threshold": decoder.score_threshold,
        "nms_threshold": decoder.nms_threshold,
        "max_detections": decoder.max_detections,
        "config": config_to_dict(decoder.config),
    }


def manifest_to_dict(manifest: Manifest) -> dict[str, Any]:
    """The JSON form of ``manifest`` (schema v2)."""
    return {
        "schema": SCHEMA,
        "source": dict(manifest.source),
        "input": asdict(manifest.input),
        "outputs": [asdict(o) for o in manifest.outputs],
        "decoder": decoder_to_dict(manifest.decoder) if manifest.decoder else None,
        "artifacts": {
            backend: {precision: asdict(a) for precision, a in held.items()}
            for backend, held in manifest.artifacts.items()
        },
        "tools": dict(manifest.tools),
        "notes": list(manifest.notes),
    } | ({"conversion": dict(manifest.conversion)} if manifest.conversion else {})


def _decoder(data: dict[str, Any] | None) -> DecoderSpec | None:
    if data is None:
        return None
    family = get_family(data["family"])
    return DecoderSpec(
        family=family.name,
        preset=data["preset"],
        config=config_from_dict(family.config_type, data["config"], "manifest field decoder.config"),
        class_names=list(data["class_names"]),
        category_ids=list(data["category_ids"]),
        layout=data["layout"],
        roles=dict(data["roles"]),
        score_threshold=float(data["score_threshold"]),
        nms_threshold=float(data["nms_threshold"]),
        max_detections=int(data["max_detections"]),
    )


def _artifact(data: dict[str, Any]) -> Artifact:
    return Artifact(
        files={role: FileRecord(**f) for role, f in data["files"].items()},
        size_bytes=data["size_bytes"],
        parity=Parity(**data["parity"]) if data["parity"] else None,
        details=data["details"],
    )


def manifest_from_dict(data: Any) -> Manifest:
    """Rebuild a :class:`Manifest` from JSON: v2 validated, v1 migrated first."""
    found = data.get("schema") if isinstance(data, dict) else type(data).__name__
    if found == V1_SCHEMA:
        data = migrate_v1(data)
    elif found != SCHEMA:
        raise EdgekitError(
            f"not an edgekit manifest (schema {found!r}, expected {SCHEMA!r} or {V1_SCHEMA!r})"
        )
    validate(data)
    decoder = _decoder(data["decoder"])
    if decoder is not None and decoder.category_ids and len(decoder.category_ids) != decoder.num_classes:
        raise EdgekitError(
            f"manifest field decoder.category_ids: {len(decoder.category_ids)} ids for {decoder.num_classes} classes"
        )
    return Manifest(
        source=data["source"],
        input=InputSpec(**data["input"]),
        outputs=[OutputSpec(**o) for o in data["outputs"]],
        decoder=decoder,
        artifacts={b: {p: _artifact(a) for p, a in held.items()} for b, held in data["artifacts"].items()},
        tools=data["tools"],
        notes=data["notes"],
        conversion=data.get("conversion", {}),
    )


def load_manifest(path: Path) -> Manifest:
    """Read ``manifest.json`` (or a build directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise EdgekitError(f"no manifest at {path}: is this a build directory made by 'edgekit convert'?")
    return manifest_from_dict(read_json(path, "manifest"))
