"""``edgekit bundle``: builds copied into the Android demo's assets, verified, atomically.

Every test bundles a real converted build (nanodet-plus-m_416, fp32 + fp16) into a copy of
``android-demo/`` and checks the files, the index the app's C++ loader reads, and that bad input
is one clear line, a non-zero exit and an untouched assets tree (checksummed).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from edge.bundle.app import INDEX_SCHEMA
from edge.bundle.store import apk_bytes
from edge.checksums import sha256_file
from edge.manifest import load_manifest
from tests.support.cli import message_lines, run_edgekit

DEMO = Path(__file__).resolve().parents[1] / "android-demo"
ASSETS = Path("app/src/main/assets/edgekit")


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A copy of android-demo/ without any bundle (the checked-in index is empty)."""
    copy = tmp_path / "android-demo"
    shutil.copytree(DEMO, copy, ignore=shutil.ignore_patterns(".ncnn", "build", ".gradle", ".cxx"))
    for child in (copy / ASSETS).iterdir():
        if child.is_dir():
            shutil.rmtree(child)
    (copy / ASSETS / "index.json").write_text(json.dumps({"schema": INDEX_SCHEMA, "bundles": []}))
    return copy


def tree_digest(root: Path) -> str:
    """sha256 over every path, file content and mode under ``root`` (hidden files included)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(path.relative_to(root).as_posix().encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def index(app: Path) -> dict:
    return json.loads((app / ASSETS / "index.json").read_text())


def bundle(*args: str | Path):
    return run_edgekit("bundle", *args, timeout=300)


def test_bundle_copies_chosen_precisions_with_checked_manifest(app: Path, nanodet_plus_build: Path) -> None:
    res = bundle(nanodet_plus_build, "--app", app, "--name", "nanodet")
    assert res.returncode == 0, res.stderr
    target = app / ASSETS / "nanodet"
    # default: the phone precisions the build has (fp16; this build has no int8), not fp32
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "model.fp16.bin", "model.fp16.param"]
    source = load_manifest(nanodet_plus_build)
    bundled = load_manifest(target)  # schema-valid, loads like any build
    assert list(bundled.artifacts["ncnn"]) == ["fp16"]
    for role, record in source.artifacts["ncnn"]["fp16"].files.items():
        copied = target / record.path
        assert sha256_file(copied) == record.sha256 == bundled.artifacts["ncnn"]["fp16"].files[role].sha256
        assert copied.read_bytes() == (nanodet_plus_build / record.path).read_bytes()
    entry = index(app)["bundles"][0]
    assert entry["name"] == "nanodet" and entry["precisions"] == ["fp16"]
    assert entry["source"] == nanodet_plus_build.name and entry["manifest"] == "nanodet/manifest.json"
    for f in entry["files"]:
        assert sha256_file(app / ASSETS / f["path"]) == f["sha256"]
        assert (app / ASSETS / f["path"]).stat().st_size == f["bytes"]
    assert entry["bytes"] == sum(f["bytes"] for f in entry["files"])
    # APK estimate: the .bin stored, the rest deflated, plus zip entry headers
    assert entry["apk_bytes"] == sum(apk_bytes(app / ASSETS / f["path"], f["path"]) for f in entry["files"])
    bin_size = (target / "model.fp16.bin").stat().st_size
    assert bin_size < entry["apk_bytes"] < entry["bytes"]
    # it says what the app holds and the size added, in MB
    assert f"adds about {entry['apk_bytes'] / 1e6:.2f} MB to the APK" in res.stderr
    assert "nanodet" in res.stdout and f"{entry['apk_bytes'] / 1e6:.2f} MB" in res.stdout
    # nothing hidden left behind (no staging directory, no lock file)
    assert sorted(p.name for p in (app / ASSETS).iterdir()) == ["index.json", "nanodet"]


def test_list_force_and_remove(app: Path, nanodet_plus_build: Path) -> None:
    assert bundle(nanodet_plus_build, "--app", app, "--name", "a", "--precision", "fp32").returncode == 0
    assert bundle(nanodet_plus_build, "--app", app, "--name", "b").returncode == 0
    listed = bundle("--list", "--app", app)
    assert listed.returncode == 0 and "2 bundle(s)" in listed.stdout
    assert [b["name"] for b in index(app)["bundles"]] == ["a", "b"]

    again = bundle(nanodet_plus_build, "--app", app, "--name", "a", "--precision", "fp16")
    assert again.returncode != 0 and "--force" in message_lines(again.stderr)[-1]
    forced = bundle(nanodet_plus_build, "--app", app, "--name", "a", "--precision", "fp16", "--force")
    assert forced.returncode == 0, forced.stderr
    assert sorted(p.name for p in (app / ASSETS / "a").iterdir()) == [
        "manifest.json",
        "model.fp16.bin",
        "model.fp16.param",
    ]
    assert {b["name"]: b["precisions"] for b in index(app)["bundles"]} == {"a": ["fp16"], "b": ["fp16"]}

    removed = bundle("--remove", "b", "--app", app)
    assert removed.returncode == 0 and "removed bundle b" in removed.stderr
    assert not (app / ASSETS / "b").exists() and [b["name"] for b in index(app)["bundles"]] == ["a"]


def test_force_replaces_only_what_bundle_made(app: Path, nanodet_plus_build: Path) -> None:
    foreign = app / ASSETS / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not edgekit's")
    before = tree_digest(app / ASSETS)
    res = bundle(nanodet_plus_build, "--app", app, "--name", "mine", "--force")
    assert res.returncode != 0 and "not made by edgekit bundle" in message_lines(res.stderr)[-1]
    assert tree_digest(app / ASSETS) == before

    assert bundle(nanodet_plus_build, "--app", app, "--name", "kept").returncode == 0
    (app / ASSETS / "kept" / "extra.txt").write_text("added by hand")
    before = tree_digest(app / ASSETS)
    for args in (("--name", "kept", "--force"), ()):
        res = (
            bundle(nanodet_plus_build, "--app", app, *args)
            if args
            else bundle("--remove", "kept", "--app", app)
        )
        assert (
            res.returncode != 0
            and "extra.txt was not written by edgekit bundle" in message_lines(res.stderr)[-1]
        )
        assert tree_digest(app / ASSETS) == before


@pytest.mark.parametrize(
    "case",
    ["traversal", "slash", "dot", "hidden", "missing-precision", "unknown-precision", "not-a-build",
     "not-the-app", "tampered-bin", "two-builds-one-name", "remove-unknown"],
)  # fmt: skip
def test_bad_input_is_one_line_and_leaves_assets_unchanged(
    app: Path, nanodet_plus_build: Path, tmp_path: Path, case: str
) -> None:
    assert bundle(nanodet_plus_build, "--app", app, "--name", "existing").returncode == 0
    build = nanodet_plus_build
    args: list[str | Path] = [build, "--app", app]
    expected = {
        "traversal": "invalid bundle name '../escape'",
        "slash": "invalid bundle name 'a/b'",
        "dot": "invalid bundle name '..'",
        "hidden": "invalid bundle name '.hidden'",
        "missing-precision": "has no int8 model (it has fp32, fp16)",
        "unknown-precision": "unknown precision 'fp64'",
        "not-a-build": "is not a build directory (no manifest.json)",
        "not-the-app": "is not the edgekit Android demo (no edgekit-app.json)",
        "tampered-bin": "does not match its manifest (sha256 or size differs)",
        "two-builds-one-name": "--name names one bundle",
        "remove-unknown": "the app has no bundle 'nope' (bundles: existing)",
    }[case]
    if case in ("traversal", "slash", "dot", "hidden"):
        args += ["--name", {"traversal": "../escape", "slash": "a/b", "dot": "..", "hidden": ".hidden"}[case]]
    elif case == "missing-precision":
        args += ["--precision", "fp16,int8"]
    elif case == "unknown-precision":
        args += ["--precision", "fp64"]
    elif case == "not-a-build":
        args[0] = tmp_path
    elif case == "not-the-app":
        args[2] = tmp_path
    elif case == "tampered-bin":
        build = tmp_path / "tampered"
        shutil.copytree(nanodet_plus_build, build)
        data = bytearray((build / "model.fp16.bin").read_bytes())
        data[len(data) // 2] ^= 0xFF  # same size, different bytes
        (build / "model.fp16.bin").write_bytes(bytes(data))
        args = [build, "--app", app, "--precision", "fp32,fp16"]  # fp32 copies fine, then fp16 fails
    elif case == "two-builds-one-name":
        args = [build, build, "--app", app, "--name", "x"]
    elif case == "remove-unknown":
        args = ["--remove", "nope", "--app", app]
    before = tree_digest(app / ASSETS)
    res = bundle(*args)
    assert res.returncode != 0
    lines = message_lines(res.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert tree_digest(app / ASSETS) == before
    assert not (tmp_path / "escape").exists() and not (app / "app/src/main/assets/escape").exists()
