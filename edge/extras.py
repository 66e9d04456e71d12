"""Optional parts of edgekit: a clear error when a command needs an extra that is not installed.

The slim install (``pip install edgekit``) runs ``detect`` and ``bench --target local``; conversion,
COCO evaluation and plotting need the extras declared in ``pyproject.toml`` (``convert``, ``eval``,
``plot``). The distributions of each extra are read from edgekit's installed metadata, so the
extras are declared once.
"""

from __future__ import annotations

import re
from importlib import metadata

from edge.errors import EdgekitError

DISTRIBUTION = "edgekit"
_EXTRA_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)[^;]*;.*\bextra\s*==\s*[\"']([^\"']+)[\"']")


def extra_distributions(extra: str) -> list[str]:
    """The distributions edgekit's metadata lists for ``extra`` (empty when edgekit is not installed)."""
    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    names = []
    for requirement in requirements:
        match = _EXTRA_REQUIREMENT.match(requirement)
        if match and match.group(2) == extra and match.group(1).lower() != DISTRIBUTION:
            names.append(match.group(1))
    return names


def missing_distributions(extra: str) -> list[str]:
    """The distributions of ``extra`` that are not installed."""
    missing = []
    for name in extra_distributions(extra):
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def require_extra(extra: str, what: str) -> None:
    """Raise one clear :class:`EdgekitError` line when ``what`` (e.g. ``edgekit convert``) lacks ``extra``."""
    if missing_distributions(extra):
        raise EdgekitError(f"{what} needs the '{extra}' extra: pip install 'edgekit[{extra}]'")
