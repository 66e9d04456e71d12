"""The attack's fixtures: real models, a reference build, small media, a COCO subset, user trees.

Everything lives under one scratch root outside the checkout. :func:`build_fixtures` runs in a
forked child (it converts a model, so native code runs). Each case gets a fresh copy of a
*user tree* (files a user cares about: notes, a model, images, annotations, optionally a build)
as its working directory; :func:`check_tree` says which of them a case lost or altered.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from benchmarks.published.assets import shared_path

#: the real model converted for signal cases and the reference build (1.1 MB, ~1.5 s to convert)
REAL_ONNX = "models/onnx/nanodet-m-0.5x_320.onnx"
#: COCO images the mutated annotation files describe
COCO_IMAGES = 3
#: names a case may leave in its working directory without it being junk
LOG_NAMES = (".attack-stdout", ".attack-stderr")


def _small_image(src: Path, dst: Path, width: int) -> None:
    import cv2

    image = cv2.imread(str(src))
    height = max(8, round(image.shape[0] * width / image.shape[1]))
    cv2.imwrite(str(dst), cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))


def _video(dst: Path, frames: int = 8) -> None:
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    writer.release()


def _tiny_onnx(dst: Path) -> None:
    from tests.support.onnx_graphs import GraphBuilder, save

    g = GraphBuilder([1, 3, 32, 32], seed=7)
    x = g.op("Relu", [g.conv("images", 3, 8, stride=2)])[0]
    save(g.finish([g.op("Sigmoid", [g.conv(x, 8, 4, k=1)])[0]]), dst)


def _coco(dst: Path) -> None:
    subset = shared_path("data/coco-val2017-subset")
    data = json.loads((subset / "instances.json").read_text())
    images = data["images"][:COCO_IMAGES]
    ids = {im["id"] for im in images}
    (dst / "images").mkdir(parents=True)
    for im in images:
        shutil.copy(subset / "images" / im["file_name"], dst / "images" / im["file_name"])
    small = {
        "info": data.get("info", {}),
        "licenses": data.get("licenses", []),
        "images": images,
        "annotations": [a for a in data["annotations"] if a["image_id"] in ids],
        "categories": data["categories"],
    }
    (dst / "instances.json").write_text(json.dumps(small))


def build_fixtures(root: Path) -> dict[str, str]:
    """Make every fixture under ``root/fixtures`` and the user trees under ``root/pristine``.

    Returns the placeholders cases use in their argv (absolute paths as strings).
    """
    from converters.convert import convert_onnx

    fx = root / "fixtures"
    for sub in ("onnx", "media", "calib"):
        (fx / sub).mkdir(parents=True, exist_ok=True)
    real = fx / "onnx" / "real.onnx"
    shutil.copy(shared_path(REAL_ONNX), real)
    os.chmod(real, 0o644)
    tiny = fx / "onnx" / "tiny.onnx"
    _tiny_onnx(tiny)
    convert_onnx(real, fx / "build")
    convert_onnx(tiny, fx / "tinybuild", preset="none", fp16=False)
    images = shared_path("data/images")
    _small_image(images / "dog.jpg", fx / "media" / "a.jpg", 160)
    _small_image(images / "street.png", fx / "media" / "b.png", 120)
    _video(fx / "media" / "clip.avi")
    data = (fx / "media" / "clip.avi").read_bytes()
    (fx / "media" / "trunc.avi").write_bytes(data[: len(data) // 2])
    (fx / "media" / "text.jpg").write_text("not an image\n")
    (fx / "media" / "empty.jpg").write_bytes(b"")
    for i, src in enumerate(sorted(shared_path("data/coco128").glob("*.jpg"))[:3]):
        _small_image(src, fx / "calib" / f"c{i}.jpg", 128)
    _coco(fx / "coco")

    basic = root / "pristine" / "basic"
    (basic / "images").mkdir(parents=True)
    (basic / "notes.txt").write_text("my notes: do not lose me\n")
    shutil.copy(tiny, basic / "model.onnx")
    shutil.copy(fx / "media" / "a.jpg", basic / "images" / "a.jpg")
    shutil.copy(fx / "media" / "b.png", basic / "images" / "b.png")
    shutil.copy(fx / "coco" / "instances.json", basic / "data.json")
    with_build = root / "pristine" / "build"
    shutil.copytree(basic, with_build)
    shutil.copytree(fx / "build", with_build / "build")
    return placeholders(root)


def placeholders(root: Path) -> dict[str, str]:
    """Names cases use in argv, e.g. ``{build}``, mapped to fixture paths."""
    fx = root / "fixtures"
    return {
        "real_onnx": str(fx / "onnx" / "real.onnx"),
        "tiny_onnx": str(fx / "onnx" / "tiny.onnx"),
        "build": str(fx / "build"),
        "tinybuild": str(fx / "tinybuild"),
        "param": str(fx / "build" / "model.fp32.param"),
        "img": str(fx / "media" / "a.jpg"),
        "img2": str(fx / "media" / "b.png"),
        "video": str(fx / "media" / "clip.avi"),
        "trunc_video": str(fx / "media" / "trunc.avi"),
        "text_img": str(fx / "media" / "text.jpg"),
        "empty_img": str(fx / "media" / "empty.jpg"),
        "calib": str(fx / "calib"),
        "coco": str(fx / "coco" / "instances.json"),
        "coco_images": str(fx / "coco" / "images"),
        "fixtures": str(fx),
    }


def digest_tree(top: Path) -> dict[str, str]:
    """sha256 of every file under ``top`` by relative path (symlinks not followed)."""
    digests = {}
    for path in sorted(top.rglob("*")):
        if path.is_file() and not path.is_symlink():
            digests[str(path.relative_to(top))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def check_tree(top: Path, expected: dict[str, str]) -> list[str]:
    """User files under ``top`` that are missing or altered (``NAME (lost)``, ``NAME (altered)``)."""
    damage = []
    for rel, digest in expected.items():
        path = top / rel
        try:
            if path.is_symlink() or not path.is_file():
                damage.append(f"{rel} (lost)")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                damage.append(f"{rel} (altered)")
        except OSError:
            damage.append(f"{rel} (unreadable)")
    return damage


def junk(top: Path, expected: set[str]) -> list[str]:
    """Leftovers under ``top``: staging directories, ``.old-PID`` copies, hidden temp files.

    Anything hidden that was not in the user tree counts, and anything under ``tmp/``.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        for name in dirnames + filenames:
            rel = str((here / name).relative_to(top))
            if rel in LOG_NAMES or rel in expected:
                continue
            if name.startswith(".") or name.endswith(".partial") or ".old-" in name or rel.startswith("tmp/"):
                found.append(rel)
    return found
