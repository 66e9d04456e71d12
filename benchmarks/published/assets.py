"""Where the shared assets (real models, COCO subset, images) are, for the published scripts and the tests.

``$EDGEKIT_SHARED`` when set, else ``../shared`` beside the checkout. The assets are not part of
the repository, and neither is this module part of the wheel.
"""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def shared_root() -> Path:
    """The shared assets directory (``models/``, ``data/``, ``docs/``)."""
    return Path(os.environ.get("EDGEKIT_SHARED", CHECKOUT.parent / "shared")).expanduser().resolve()


def shared_path(relative: str) -> Path:
    """``relative`` inside the shared assets directory (which may not exist)."""
    return shared_root() / relative
