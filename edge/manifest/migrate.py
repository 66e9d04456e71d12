"""Manifest v1 (``edgekit.manifest/1``) -> v2, in memory.

v1 knew two families, kept their parameters flat (plus a free-form ``extra``), left the layout
at ``auto``, listed ncnn builds only and stored absolute paths; v2 keeps file and folder names.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from edge.decoders.coco import COCO_CATEGORY_IDS, coco_class_names
from edge.errors import EdgekitError

V1_SCHEMA = "edgekit.manifest/1"
SSD_V1_KEYS = ("image_size", "feature_sizes", "scales", "aspect_ratios", "variances", "candidates_per_class")


def _name(path: str) -> str:
    """Last component of a POSIX or Windows path."""
    return PurePath(path.replace("\\", "/")).name


def _nanodet_config(dec: dict[str, Any]) -> dict[str, Any]:
    extra = dec.get("extra") or {}
    return {
        "strides": dec["strides"],
        "reg_max": dec.get("reg_max", 7),
        "center_offset": dec.get("center_offset", 0.0),
        "class_scores": extra.get("class_scores"),
        "distances": extra.get("integrated_distances"),
    }


def _ssd_config(dec: dict[str, Any]) -> dict[str, Any]:
    extra = dict(dec.get("extra") or {})
    if "steps" in extra and "feature_sizes" not in extra:
        size = int(extra.get("image_size", 1200))
        extra["feature_sizes"] = [size // s for s in extra["steps"]]
    return {k: extra[k] for k in SSD_V1_KEYS if k in extra}


V1_CONFIGS = {"nanodet": _nanodet_config, "ssd": _ssd_config}


def _decoder(dec: dict[str, Any] | None) -> dict[str, Any] | None:
    if not dec:
        return None
    family = dec.get("family")
    if family not in V1_CONFIGS:
        raise EdgekitError(f"manifest field decoder.family: {family!r} is not a v1 family")
    names = list(dec.get("class_names") or [])
    if not names:
        names = [f"class{i}" for i in range(int(dec.get("num_classes", 80)))]
    coco = tuple(names) == coco_class_names()
    return {
        "family": family,
        "preset": dec["preset"],
        "layout": dec.get("layout") or "auto",
        "roles": {},
        "class_names": names,
        "category_ids": list(COCO_CATEGORY_IDS) if coco else [],
        "score_threshold": dec.get("score_threshold", 0.4),
        "nms_threshold": dec.get("nms_threshold", 0.5),
        "max_detections": dec.get("max_detections", 100),
        "config": V1_CONFIGS[family](dec),
    }


def _parity(parity: dict[str, Any] | None) -> dict[str, Any] | None:
    if not parity:
        return None
    kind, _, where = str(parity.get("inputs", "random:0")).partition(":")
    inputs = f"images:{_name(where)}" if kind == "images" else f"{kind}:{where}"
    return {**parity, "inputs": inputs, "input_files": []}


def _artifact(build: dict[str, Any]) -> dict[str, Any]:
    return {
        "files": {
            "param": {"path": build["param"], "sha256": build["param_sha256"]},
            "bin": {"path": build["bin"], "sha256": build["bin_sha256"]},
        },
        "size_bytes": build["size_bytes"],
        "parity": _parity(build.get("parity")),
        "details": build.get("extra") or {},
    }


def migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """The v2 form of a v1 manifest dict."""
    try:
        source = data["source"]
        return {
            "schema": "edgekit.manifest/2",
            "source": {"file": _name(source["path"]), "sha256": source["sha256"]},
            "input": data["input"],
            "outputs": data["outputs"],
            "decoder": _decoder(data.get("decoder")),
            "artifacts": {"ncnn": {p: _artifact(b) for p, b in data["builds"].items()}},
            "tools": data.get("tools", {}),
            "notes": data.get("notes", []),
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise EdgekitError(f"v1 manifest is missing or has a malformed field: {exc}") from None
