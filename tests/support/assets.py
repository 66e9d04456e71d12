"""Shared test assets and tools: a missing one skips the test locally and fails it under CI (``CI=true``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from benchmarks.published.assets import CHECKOUT, shared_root

REPO_ROOT = CHECKOUT


def under_ci() -> bool:
    """True on CI, where every shared asset must be present."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> NoReturn:
    """Something a test needs is missing: skip it locally, fail it on CI."""
    if under_ci():
        pytest.fail(reason)
    pytest.skip(reason)


def require_asset(relative: str) -> Path:
    """Path of a shared asset; skip (locally) or fail (CI) when it is absent."""
    path = shared_root() / relative
    if not path.exists():
        skip_or_fail(f"shared asset missing: {path} (set EDGEKIT_SHARED)")
    return path
