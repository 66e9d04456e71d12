"""The Android demo app as ``edgekit bundle`` sees it: its marker, assets directory and index.

An app directory is the demo when it holds ``edgekit-app.json`` (``{"schema":
"edgekit.android-demo/1", "assets": "app/src/main/assets/edgekit"}``). Bundles live in
``<assets>/<name>/`` and are listed in ``<assets>/index.json``, which the app's C++ asset
loader reads (``android-demo/app/src/main/cpp/bundle_assets.cpp``). Paths in the index are
relative to the assets directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from edge.atomic import read_json, write_json
from edge.errors import EdgekitError

APP_MARKER = "edgekit-app.json"
APP_SCHEMA = "edgekit.android-demo/1"
INDEX_NAME = "index.json"
INDEX_SCHEMA = "edgekit.bundles/1"
#: a bundle name: a plain directory name, no separators, no leading dot (hidden from the APK)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class App:
    """The demo app: its root directory and the assets directory holding the bundles."""

    root: Path
    assets: Path

    @property
    def index_path(self) -> Path:
        return self.assets / INDEX_NAME


def open_app(root: Path) -> App:
    """The demo app at ``root``; a directory without the demo's marker is refused."""
    root = Path(root)
    if not root.is_dir():
        raise EdgekitError(f"--app {root}: no such directory")
    marker = root / APP_MARKER
    if not marker.is_file():
        raise EdgekitError(
            f"--app {root} is not the edgekit Android demo (no {APP_MARKER}); give the android-demo directory"
        )
    data = read_json(marker, "app marker")
    if (
        not isinstance(data, dict)
        or data.get("schema") != APP_SCHEMA
        or not isinstance(data.get("assets"), str)
    ):
        raise EdgekitError(f"{marker}: not an {APP_SCHEMA} marker")
    relative = PurePosixPath(data["assets"])
    if relative.is_absolute() or ".." in relative.parts:
        raise EdgekitError(f"{marker}: assets must be a path inside the app, not {data['assets']!r}")
    return App(root, root / relative)


def check_name(name: str) -> str:
    """``name`` if it is a safe bundle directory name (no traversal, separators or hidden names)."""
    if not NAME_PATTERN.fullmatch(name) or name in (".", "..") or name == INDEX_NAME:
        raise EdgekitError(
            f"invalid bundle name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (no '/', no '..')"
        )
    return name


def read_index(app: App) -> dict[str, Any]:
    """The app's bundle index (an empty one when no bundle was ever added)."""
    if not app.index_path.exists():
        return {"schema": INDEX_SCHEMA, "bundles": []}
    data = read_json(app.index_path, "bundle index")
    if (
        not isinstance(data, dict)
        or data.get("schema") != INDEX_SCHEMA
        or not isinstance(data.get("bundles"), list)
    ):
        raise EdgekitError(f"{app.index_path}: not an {INDEX_SCHEMA} index")
    return data


def write_index(app: App, index: dict[str, Any]) -> None:
    """Replace the index atomically; bundles sorted by name."""
    index["bundles"] = sorted(index["bundles"], key=lambda b: b["name"])
    write_json(app.index_path, index)


def find_bundle(index: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The index entry of bundle ``name``, if any."""
    return next((b for b in index["bundles"] if b.get("name") == name), None)
