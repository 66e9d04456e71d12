"""The one parser of ``EDGEKIT_*`` environment variables: a bad value is one clear line, not a traceback.

Every module reads its variables through these functions, so ``EDGEKIT_SSH_CONNECT_TIMEOUT=abc``
or ``EDGEKIT_ISOLATE=maybe`` fails with the variable's name and what it takes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

from edge.errors import EdgekitError

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    if value is not None and any(ord(c) < 32 and c not in "\t" for c in value):
        raise EdgekitError(f"{name} holds unprintable characters")
    return value


def env_str(name: str, default: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The variable's text (surrounding spaces removed); unset or empty gives ``default``."""
    value = _raw(name, environ)
    return value.strip() if value and value.strip() else default


def env_flag(name: str, default: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off``; unset gives ``default``."""
    value = _raw(name, environ)
    if value is None:
        return default
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise EdgekitError(f"{name}={value!r}: expected 1 or 0 (true/false, yes/no, on/off)")


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    """A finite number within [minimum, maximum]; unset or empty gives ``default``."""
    text = env_str(name, None, environ)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise EdgekitError(f"{name}={text!r}: expected a number") from None
    if (
        not math.isfinite(value)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        bounds = (
            f"{minimum if minimum is not None else '-inf'} to {maximum if maximum is not None else 'inf'}"
        )
        raise EdgekitError(f"{name}={text!r}: expected a number from {bounds}")
    return value


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """An integer within [minimum, maximum]; unset or empty gives ``default``."""
    text = env_str(name, None, environ)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise EdgekitError(f"{name}={text!r}: expected a whole number") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise EdgekitError(f"{name}={text!r}: expected a whole number from {minimum} to {maximum}")
    return value


def env_path(name: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """A path (``~`` expanded); unset or empty gives None. Existence is the caller's check."""
    text = env_str(name, None, environ)
    if text is None:
        return None
    if len(text.encode("utf-8", "surrogateescape")) > 4096:
        raise EdgekitError(f"{name}: the path is longer than 4096 bytes")
    return Path(text).expanduser()
