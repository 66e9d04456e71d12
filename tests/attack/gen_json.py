"""Malformed JSON inputs by mutation: build manifests (guided by the manifest's JSON Schema) and COCO files.

Every JSON path of a valid document gets mutations: deleted, wrong types, boundary numbers,
hostile strings, short/long/empty arrays, and schema violations (values outside an ``enum``,
below a ``minimum``, fewer than ``minItems``); whole files get truncated, emptied, nested
100,000 deep, made invalid UTF-8 or sparse 64 GB.
"""

from __future__ import annotations

import json
import os
import random
from functools import partial
from pathlib import Path
from typing import Any

from tests.attack.case import Case

SCHEMA = Path(__file__).resolve().parents[2] / "edge" / "manifest" / "edgekit.manifest-2.schema.json"
DELETE = object()
WRONG_TYPES: list[Any] = [
    None,
    True,
    0,
    -1,
    1e308,
    "x",
    "",
    [],
    {},
    [[[[]]]],
    "../notes.txt",
    "/proc/self/status",
]
BUILD_FILES = ("model.fp32.param", "model.fp32.bin", "model.fp16.param", "model.fp16.bin")
Path_ = tuple[Any, ...]


def walk(doc: Any, path: Path_ = ()) -> list[Path_]:
    """Every path into ``doc`` (keys and indices), the root included."""
    paths = [path]
    if isinstance(doc, dict):
        for key, value in doc.items():
            paths += walk(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            paths += walk(value, (*path, i))
    return paths


def get(doc: Any, path: Path_) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def put(doc: Any, path: Path_, value: Any) -> Any:
    """``doc`` with ``path`` set to ``value`` (removed for :data:`DELETE`); copies only the containers on the path."""
    if not path:
        return value
    head = dict(doc) if isinstance(doc, dict) else list(doc)
    key = path[0]
    if len(path) > 1:
        head[key] = put(doc[key], path[1:], value)
    elif value is DELETE:
        del head[key]
    else:
        head[key] = value
    return head


def schema_node(schema: dict[str, Any], path: Path_) -> dict[str, Any]:
    """The schema describing ``path`` (follows properties, items, additionalProperties, $ref, oneOf)."""
    node = schema
    for key in path:
        node = _resolve(schema, node)
        if isinstance(key, int):
            node = node.get("items", {})
        elif key in node.get("properties", {}):
            node = node["properties"][key]
        else:
            node = (
                node.get("additionalProperties", {})
                if isinstance(node.get("additionalProperties"), dict)
                else {}
            )
    return _resolve(schema, node)


def _resolve(schema: dict[str, Any], node: Any) -> dict[str, Any]:
    if not isinstance(node, dict):
        return {}
    if "$ref" in node:
        ref = node["$ref"].split("/")[-1]
        return _resolve(schema, schema.get("$defs", {}).get(ref, {}))
    for key in ("oneOf", "anyOf"):
        if key in node:
            objects = [n for n in node[key] if isinstance(n, dict) and n.get("type") != "null"]
            return _resolve(schema, objects[0]) if objects else {}
    return node


def mutations(value: Any, node: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, new value) for one place in a document."""
    out: list[tuple[str, Any]] = [("delete", DELETE)]
    out += [(f"type {json.dumps(v)[:20]}", v) for v in WRONG_TYPES if type(v) is not type(value)]
    if isinstance(value, bool):
        out.append(("flip", not value))
    elif isinstance(value, (int, float)):
        out += [
            ("-1", -1),
            ("0", 0),
            ("huge", 1e308),
            ("2^63", 2**63),
            ("half", 0.5),
            ("NaN", float("nan")),
            ("inf", float("inf")),
        ]
    elif isinstance(value, str):
        out += [
            ("empty", ""),
            ("long", "x" * 10000),
            ("traversal", "../user/notes.txt"),
            ("absolute", "/proc/self/status"),
            ("nul", "a\u0000b"),
            ("nan", "nan"),
        ]
    elif isinstance(value, list):
        out += [
            ("empty list", []),
            ("first only", value[:1]),
            ("tripled", value * 3),
            ("nulls", [None] * len(value)),
            ("reversed", value[::-1]),
            ("strings", ["x"] * len(value)),
        ]
    elif isinstance(value, dict):
        out += [("empty object", {}), ("unknown key", {**value, "bogus": 1})]
    if "enum" in node:
        out.append(("off enum", "not-" + str(node["enum"][0])))
    if "minimum" in node:
        out.append(("below minimum", node["minimum"] - 1))
    if "maximum" in node:
        out.append(("above maximum", node["maximum"] + 1))
    if "minItems" in node and isinstance(value, list):
        out.append(("below minItems", value[: max(0, node["minItems"] - 1)]))
    if "const" in node:
        out.append(("off const", str(node["const"]) + "x"))
    return out


#: whole-file corruptions: (label, bytes made from the valid text)
def file_mutations(text: str) -> list[tuple[str, Any]]:
    return [
        ("empty file", b""),
        ("null", b"null"),
        ("list", b"[]"),
        ("truncated", text[: len(text) // 2].encode()),
        ("truncated at 1", text[:1].encode()),
        ("BOM", b"\xef\xbb\xbf" + text.encode()),
        ("invalid UTF-8", text.encode().replace(b'"', b'"\xff', 3)),
        ("nested 100000", b"[" * 100000 + b"]" * 100000),
        ("nested objects 50000", b'{"a":' * 50000 + b"1" + b"}" * 50000),
        ("duplicate keys", b'{"schema": 1, ' + text.encode()[1:]),
        ("NaN literal", text.replace("0.", "NaN0.", 1).encode()),
        ("sparse 64 GB", 64 << 30),
        ("directory", "DIR"),
    ]


def _dump(doc: Any) -> bytes:
    return json.dumps(doc).encode("utf-8", "surrogatepass")


def _write(target: Path, content: Any) -> None:
    if content == "DIR":
        target.mkdir()
    elif isinstance(content, int):
        with open(target, "wb") as handle:
            handle.truncate(content)
    else:
        target.write_bytes(content)


def _manifest_build(build: str, content: Any, ws: Path) -> None:
    """Child: a build directory ``ws/user/mb`` holding the fixture's model files and a bad manifest."""
    mb = ws / "user" / "mb"
    mb.mkdir()
    for name in BUILD_FILES:
        os.link(Path(build) / name, mb / name)
    _write(mb / "manifest.json", content)


def _coco_file(content: Any, ws: Path) -> None:
    _write(ws / "user" / "ann.json", content)


MANIFEST_CALLS = [
    (["detect", "mb", "images/a.jpg", "-o", "out"], 10),
    (["bench", "mb", "--loops", "1", "--warmup", "0", "--threads", "1", "--precision", "fp32"], 3),
    (["eval", "mb", "--coco", "{coco}", "--images", "{coco_images}", "--limit", "1"], 3),
    (["calibrate", "mb", "--images", "{calib}", "-o", "t.table", "--calib-num", "1"], 1),
]


def _candidates(doc: Any, paths: list[Path_], schema: dict[str, Any] | None) -> list[tuple[str, Path_, Any]]:
    """(label, path, new value) for every mutation of every path (documents are made only when picked)."""
    out = []
    for path in paths:
        node = schema_node(schema, path) if schema else {}
        for label, value in mutations(get(doc, path), node):
            if path or value is not DELETE:
                out.append((f"{'/'.join(map(str, path)) or '(root)'}: {label}", path, value))
    return out


def _pick(
    rng: random.Random, doc: Any, candidates: list[tuple[str, Path_, Any]], budget: int
) -> list[tuple[str, bytes]]:
    picked = candidates if budget >= len(candidates) else rng.sample(candidates, max(0, budget))
    return [(label, _dump(put(doc, path, value))) for label, path, value in picked]


def manifest_cases(rng: random.Random, places: dict[str, str], budget: int) -> list[Case]:
    """``budget`` mutated manifests of the fixture build, through detect / bench / eval / calibrate."""
    build = places["build"]
    text = (Path(build) / "manifest.json").read_text()
    schema = json.loads(SCHEMA.read_text())
    doc = json.loads(text)
    files = file_mutations(text)
    picked = files + _pick(rng, doc, _candidates(doc, walk(doc), schema), budget - len(files))
    calls, weights = zip(*MANIFEST_CALLS, strict=True)
    cases = []
    for label, content in picked:
        argv = list(rng.choices(calls, weights)[0])
        cases.append(
            Case(
                "manifest",
                f"{argv[0]}: {label}",
                argv,
                prepare=partial(_manifest_build, build, content),
                timeout=60,
            )
        )
    return cases


def _semantic_coco(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    """Valid JSON, nonsense content: a careful user expects a refusal or a warning."""
    images, anns = doc["images"], doc["annotations"]
    return [
        ("no annotations", {**doc, "annotations": []}),
        ("no images", {**doc, "images": []}),
        ("no categories", {**doc, "categories": []}),
        ("duplicate image records", {**doc, "images": images + images}),
        ("duplicate annotation ids", {**doc, "annotations": anns + anns}),
        ("annotation of unknown image", {**doc, "annotations": [{**anns[0], "image_id": 987654321}]}),
        ("annotation of unknown category", {**doc, "annotations": [{**anns[0], "category_id": 987654}]}),
        ("negative bbox", {**doc, "annotations": [{**anns[0], "bbox": [-10, -10, -5, -5]}]}),
        ("huge bbox", {**doc, "annotations": [{**anns[0], "bbox": [0, 0, 1e300, 1e300]}]}),
        ("file_name traversal", {**doc, "images": [{**images[0], "file_name": "../../user/notes.txt"}]}),
        ("file_name absolute", {**doc, "images": [{**images[0], "file_name": "/proc/self/status"}]}),
        ("missing image file", {**doc, "images": [{**images[0], "file_name": "nope.jpg"}]}),
        ("string ids", {**doc, "images": [{**im, "id": str(im["id"])} for im in images]}),
        ("huge ids", {**doc, "images": [{**images[0], "id": 2**64}]}),
        ("iscrowd 2", {**doc, "annotations": [{**a, "iscrowd": 2} for a in anns]}),
    ]


#: COCO files a careful user expects to be refused (or warned about), not evaluated to a number
MUST_REFUSE = tuple(
    f"semantic: {x}" for x in ("no annotations", "no images", "no categories", "duplicate image records")
)


def coco_cases(rng: random.Random, places: dict[str, str], budget: int) -> list[Case]:
    """``budget`` mutated COCO annotation files (structure first, then random leaves) through eval."""
    text = Path(places["coco"]).read_text()
    doc = json.loads(text)
    paths = walk(doc)
    structural = [p for p in paths if len(p) <= 3 and "segmentation" not in p]
    deep = [p for p in paths if len(p) > 3 or "segmentation" in p]
    picked = [(f"semantic: {label}", _dump(value)) for label, value in _semantic_coco(doc)] + file_mutations(
        text
    )
    candidates = _candidates(doc, structural + rng.sample(deep, min(len(deep), 200)), None)
    picked += _pick(rng, doc, candidates, budget - len(picked))
    argv = ["eval", "{build}", "--coco", "ann.json", "--images", "{coco_images}", "--limit", "2"]
    return [
        Case(
            "coco",
            label,
            list(argv),
            prepare=partial(_coco_file, content),
            timeout=60,
            expect="error" if label.startswith(MUST_REFUSE) else "any",
        )
        for label, content in picked
    ]
