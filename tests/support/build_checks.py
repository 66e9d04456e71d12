"""Checks on build directories and processes shared by the reliability tests."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edge.build_guard import build_file_names
from edge.manifest import MANIFEST_NAME, load_manifest


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_complete_build(build: Path) -> None:
    """Every file the manifest names is there with its sha256 (hashed here), and nothing else."""
    manifest = load_manifest(build)
    assert set(os.listdir(build)) == build_file_names(manifest)
    for artifact in manifest.builds.values():
        for record in artifact.files.values():
            assert sha(build / record.path) == record.sha256, record.path


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes whose arguments contain ``text`` (e.g. a test's tmp dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(ln for ln in (entry / "status").read_text().splitlines() if ln.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if text in cmdline and "zombie" not in state:
            found.append(cmdline)
    return found


def no_process_left(text: str, grace_s: float = 0.5) -> list[str]:
    deadline = time.monotonic() + grace_s
    while (left := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def variant_of(onnx_path: Path, dest: Path) -> Path:
    """The same network with its first convolution's weights scaled: other weights, same graph."""
    model = onnx.load(str(onnx_path))
    first = next(i for i in model.graph.initializer if len(i.dims) == 4)
    first.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(first) * np.float32(0.8), first.name))
    onnx.save(model, str(dest))
    return dest


def other_build(build: Path, dest: Path) -> Path:
    """A copy of ``build`` with other fp32 weights, its manifest describing them."""
    shutil.copytree(build, dest)
    binf = dest / "model.fp32.bin"
    data = np.frombuffer(binf.read_bytes(), dtype=np.float32) * np.float32(0.5)
    binf.write_bytes(data.tobytes())
    doc = json.loads((dest / MANIFEST_NAME).read_text())
    doc["artifacts"]["ncnn"]["fp32"]["files"]["bin"]["sha256"] = sha(binf)
    (dest / MANIFEST_NAME).write_text(json.dumps(doc))
    return dest
