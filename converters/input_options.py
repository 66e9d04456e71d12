"""convert's preprocessing options (``--color``, ``--mean``, ``--norm``/``--std``, ``--resize``).

They override what a recognised preset implies; without a preset and without options the generic
defaults (BGR, no mean, /255, stretch) are a guess, and the conversion report says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edge.errors import EdgekitError
from edge.manifest import InputSpec

FIELDS = ("color", "mean", "norm", "resize")


@dataclass(frozen=True)
class Preprocessing:
    """Preprocessing the user gave (None: not given). ``mean`` and ``norm`` are per channel, for
    pixels in 0..255: the network sees ``(pixel - mean) * norm``."""

    color: str | None = None  # "RGB" or "BGR"
    mean: tuple[float, ...] | None = None
    norm: tuple[float, ...] | None = None
    resize: str | None = None  # "stretch" or "letterbox"


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise EdgekitError(
            f"bad {option} {text!r}; expected 1 or 3 numbers, e.g. 123.675,116.28,103.53"
        ) from None
    if len(values) not in (1, 3):
        raise EdgekitError(f"bad {option} {text!r}; expected 1 or 3 numbers, got {len(values)}")
    return values * 3 if len(values) == 1 else values


def parse_preprocessing(
    color: str | None, mean: str | None, norm: str | None, std: str | None, resize: str | None
) -> Preprocessing:
    """Check the CLI's strings; every mistake is one clear line."""
    if color is not None and color.lower() not in ("rgb", "bgr"):
        raise EdgekitError(f"--color takes rgb or bgr, got {color!r}")
    if resize is not None and resize.lower() not in ("stretch", "letterbox"):
        raise EdgekitError(f"--resize takes stretch or letterbox, got {resize!r}")
    if norm is not None and std is not None:
        raise EdgekitError("--norm and --std say the same thing twice; pass one (--norm = 1 / --std)")
    scale = _floats(norm, "--norm") if norm is not None else None
    if std is not None:
        spread = _floats(std, "--std")
        if any(s <= 0 for s in spread):
            raise EdgekitError(f"--std takes positive numbers, got {std!r}")
        scale = tuple(1.0 / s for s in spread)
    return Preprocessing(
        color=color.upper() if color else None,
        mean=_floats(mean, "--mean") if mean is not None else None,
        norm=scale,
        resize=resize.lower() if resize else None,
    )


def apply_preprocessing(
    spec: InputSpec, given: Preprocessing | None, from_preset: bool
) -> tuple[InputSpec, dict[str, str]]:
    """``spec`` with the given fields replaced, and where each field came from
    (``option``, ``preset`` or ``guess``)."""
    given = given or Preprocessing()
    changes = {
        f: list(v) if isinstance(v, tuple) else v for f in FIELDS if (v := getattr(given, f)) is not None
    }
    sources = {f: "option" if f in changes else ("preset" if from_preset else "guess") for f in FIELDS}
    return dataclasses.replace(spec, **changes), sources


def guessed_note(spec: InputSpec, sources: dict[str, str]) -> str | None:
    """The manifest/summary note when some preprocessing was guessed, naming the options to pass."""
    guessed = [f for f in FIELDS if sources.get(f) == "guess"]
    if not guessed:
        return None
    shown = ", ".join(f"{f} {_show(getattr(spec, f))}" for f in guessed)
    flags = ", ".join(f"--{f}" for f in guessed)
    return (
        f"preprocessing not given and no preset recognised, so it is a guess ({shown}); "
        f"pass {flags} with what the model was trained on"
    )


def _show(value: object) -> str:
    if isinstance(value, list | tuple):
        return ",".join(f"{float(v):.6g}" for v in value)
    return str(value)
