"""One validator per kind of CLI value, shared by every command as Typer callbacks.

A bad value fails before any work with one line naming the option: ``--score -1``, ``--nms 5``,
``--max-det 0``, ``--size 0``, ``--threads 100000``, ``--input-shape 1,,3,320,320`` and the like.
Use them as ``typer.Option(callback=fraction)``; the text parsers (:func:`parse_int_list`,
:func:`parse_input_shape`) are also what the library layers call on the same kinds of text.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import typer

from edge.errors import EdgekitError, system_error_message
from edge.ncnn.net import MAX_THREADS
from edge.resources import machine_ram_bytes

#: longest file or folder name most file systems take, in bytes
NAME_MAX = 255
#: largest side of an input image edgekit accepts (a 16K frame); beyond it is a typo
MAX_SIDE = 16384
#: largest channel count of an image input
MAX_CHANNELS = 16384
#: largest count any option takes (loops, warm-ups, detections, images): beyond it is a typo
MAX_COUNT = 1_000_000
#: largest seed (numpy's generators take 0 to 2**32 - 1)
MAX_SEED = 2**32 - 1
#: fraction of the machine's RAM one input tensor (and the activations it implies) may need
_RAM_SHARE = 0.5
#: float32 values of activations per input value: the sum over every intermediate tensor of
#: NanoDet-Plus-m 416 is 69.8x its input (ONNX shape inference); convert keeps them all for parity
_ACTIVATION_FACTOR = 70


def option_name(param: typer.CallbackParam | None) -> str:
    """``--score`` for the option being checked (its longest spelling)."""
    if param is None:
        return "value"
    return max(param.opts, key=len) if param.opts else str(param.name)


def fraction(param: typer.CallbackParam, value: float | None) -> float | None:
    """A threshold in [0, 1] (score, NMS IoU, cosine); None passes (the default applies)."""
    if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise EdgekitError(f"{option_name(param)} takes a number from 0 to 1, got {value}")
    return value


def _count(param: typer.CallbackParam | None, value: int | None, minimum: int, maximum: int) -> int | None:
    """The one range check of whole numbers given as options; None passes (the default applies)."""
    if value is not None and not minimum <= value <= maximum:
        raise EdgekitError(
            f"{option_name(param)} takes a whole number from {minimum} to {maximum:,}, got {value}"
        )
    return value


def positive(param: typer.CallbackParam, value: int | None) -> int | None:
    """A count of 1 to :data:`MAX_COUNT` (``--max-det``, ``--limit``, ``--loops``); None passes."""
    return _count(param, value, 1, MAX_COUNT)


def non_negative(param: typer.CallbackParam, value: int | None) -> int | None:
    """A count of 0 to :data:`MAX_COUNT` (``--warmup``, ``--verify-num``: 0 means none or all)."""
    return _count(param, value, 0, MAX_COUNT)


def seed(param: typer.CallbackParam, value: int | None) -> int | None:
    """A random seed: 0 to :data:`MAX_SEED`; None passes."""
    return _count(param, value, 0, MAX_SEED)


def choice_list(text: str | None, what: str, choices: tuple[str, ...] | list[str] | None) -> list[str] | None:
    """``"fp32,fp16"`` -> ``["fp32", "fp16"]``, each one of ``choices`` (any name when None).

    An empty field (``fp32,,fp16``, ``fp16,``, ``""``) or an unknown or repeated name is refused.
    """
    if text is None:
        return None
    names = [n.strip() for n in str(text).split(",")]
    if any(not n for n in names):
        expected = f"a comma-separated subset of {','.join(choices)}" if choices else "NAME,NAME,..."
        raise EdgekitError(f"bad {what} {text!r}: empty fields; expected {expected}")
    unknown = [n for n in names if choices is not None and n not in choices]
    if unknown:
        raise EdgekitError(
            f"bad {what} {text!r}: unknown {unknown[0]!r} (expected {', '.join(choices or ())})"
        )
    if len(set(names)) != len(names):
        raise EdgekitError(f"bad {what} {text!r}: a name is repeated")
    return names


def check_choice(value: str, what: str, choices: tuple[str, ...] | list[str]) -> str:
    """``value`` if it is exactly one of ``choices`` (``--method``), else one line listing them."""
    if value not in choices:
        raise EdgekitError(f"{what} takes one of {', '.join(choices)}, got {value!r}")
    return value


def warn_ignored(option: str, why: str) -> None:
    """One warning line on stderr: ``option`` was given but has no effect here (``why``)."""
    from edge.console import output_console

    output_console(stderr=True).print(f"[bold yellow]warning:[/] {option} is ignored: {why}", highlight=False)


def warn_unused_run_options(builds: list[Path], target: str | None, runner: str, size: int | None) -> None:
    """detect/eval: warn about ``--runner`` without ``--target`` and ``--size`` on a build with a manifest."""
    if target is None and runner != "auto":
        warn_ignored("--runner", "it chooses what runs on a --target device; this run is local")
    if size is not None and any(Path(b).is_dir() for b in builds):
        warn_ignored("--size", "a build's manifest gives its input size (--size is for a bare .param)")


def target_option(help_text: str) -> Any:
    """The ``--target/-t`` option of the commands that run a model on a device (detect, eval)."""
    return typer.Option("--target", "-t", help=help_text)


def name_list(param: typer.CallbackParam, value: str | None) -> str | None:
    """Callback: ``NAME,NAME`` (``--outputs``) with no empty name; parsed again by the command."""
    choice_list(value, option_name(param), None)
    return value


def precision_list(param: typer.CallbackParam, value: str | None) -> str | None:
    """Callback: ``--precision`` as a subset of the manifest's precisions (parsed again by the command)."""
    from edge.manifest import PRECISIONS

    choice_list(value, option_name(param), PRECISIONS)
    return value


def side(param: typer.CallbackParam, value: int | None) -> int | None:
    """An image side in pixels (``--size``): 1 to :data:`MAX_SIDE`; None passes."""
    if value is not None and not 1 <= value <= MAX_SIDE:
        raise EdgekitError(f"{option_name(param)} takes a size in pixels from 1 to {MAX_SIDE}, got {value}")
    return value


def thread_count(param: typer.CallbackParam, value: int | None) -> int | None:
    """ncnn threads: 1 to :data:`edge.ncnn.net.MAX_THREADS`; None passes."""
    if value is not None and not 1 <= value <= MAX_THREADS:
        raise EdgekitError(f"{option_name(param)} takes 1 to {MAX_THREADS} threads, got {value}")
    return value


def thread_list(param: typer.CallbackParam, value: str | None) -> str | None:
    """``1,2,4``: each 1 to :data:`MAX_THREADS` (checked here, parsed again by the command)."""
    if value is not None:
        parse_int_list(value, option_name(param), minimum=1, maximum=MAX_THREADS)
    return value


def parse_int_list(
    text: str, what: str, *, minimum: int = 1, maximum: int | None = None, length: int | None = None
) -> tuple[int, ...]:
    """``"1,2,4"`` -> ``(1, 2, 4)``; an empty field, a non-integer or a value out of range is refused."""
    fields = [f.strip() for f in str(text).replace("x", ",").strip("[]() ").split(",")]
    if not fields or any(not f for f in fields):
        raise EdgekitError(f"bad {what} {text!r}: empty fields; expected comma-separated whole numbers")
    try:
        values = tuple(int(f) for f in fields)
    except ValueError:
        raise EdgekitError(f"bad {what} {text!r}: expected comma-separated whole numbers") from None
    bad = [v for v in values if v < minimum or (maximum is not None and v > maximum)]
    if bad:
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of {minimum} or more"
        raise EdgekitError(f"bad {what} {text!r}: {bad[0]} is out of range (numbers {bounds})")
    if length is not None and len(values) != length:
        raise EdgekitError(f"bad {what} {text!r}: expected {length} numbers, got {len(values)}")
    return values


def check_tensor_fits(shape: tuple[int, ...] | list[int], what: str) -> None:
    """Refuse an input shape whose float32 tensor and activations cannot fit in this machine's RAM."""
    elements = math.prod(int(d) for d in shape)
    need = elements * 4 * _ACTIVATION_FACTOR
    ram = machine_ram_bytes()
    if ram is not None and need > ram * _RAM_SHARE:
        raise EdgekitError(
            f"{what} {'x'.join(map(str, shape))} needs about {need / 2**30:.1f} GiB to run"
            f" ({elements:,} input values), more than this machine's {ram / 2**30:.1f} GiB allows"
        )


def parse_input_shape(text: str, what: str = "--input-shape") -> list[int]:
    """``1,3,416,416`` (or ``1x3x416x416``): positive sizes that fit in memory.

    The number of dims and the batch are checked against the model (``resolve_input_shape``).
    """
    shape = list(parse_int_list(text, what, minimum=1))
    check_input_shape(shape, what)
    return shape


def check_input_shape(shape: list[int] | tuple[int, ...], what: str) -> None:
    """Refuse an N,C,H,W shape (given, or declared by a model) out of range or too big for this machine."""
    if len(shape) >= 2 and (shape[1] > MAX_CHANNELS or max(shape[2:], default=1) > MAX_SIDE):
        raise EdgekitError(
            f"bad {what} {'x'.join(map(str, shape))}: out of range"
            f" (at most {MAX_CHANNELS} channels and {MAX_SIDE} pixels a side)"
        )
    check_tensor_fits(shape, what)


def input_shape(param: typer.CallbackParam, value: str | None) -> str | None:
    """Callback form of :func:`parse_input_shape` (the command parses the text again)."""
    if value is not None:
        parse_input_shape(value, option_name(param))
    return value


def chw_shape(param: typer.CallbackParam, value: str | None) -> str | None:
    """``C,H,W`` or ``1,C,H,W`` with sane sides (``bench --shape``); None passes."""
    if value is not None:
        what = option_name(param)
        shape = parse_int_list(value, what, minimum=1)
        if len(shape) == 4 and shape[0] == 1:
            shape = shape[1:]
        if len(shape) != 3 or shape[0] > MAX_CHANNELS or max(shape[1:]) > MAX_SIDE:
            raise EdgekitError(
                f"{what} takes C,H,W (or 1,C,H,W) with at most {MAX_CHANNELS} channels and"
                f" {MAX_SIDE} pixels a side, got {value!r}"
            )
        check_tensor_fits(shape, what)
    return value


def check_output_path(path: Path, what: str) -> None:
    """Refuse, before any long work, an output path that cannot be created.

    Every name in it fits the file system's limit, it holds no NUL or newline, and the nearest
    existing folder on the way is a folder this process can create files in (probed with a real,
    immediately removed file: permission bits say nothing for root or on read-only mounts).
    """
    path = Path(path)
    raw = os.fsencode(path)
    if not raw.strip() or b"\n" in raw or b"\r" in raw:
        raise EdgekitError(f"{what}: {str(path)!r} is not a usable path (empty or holds a line break)")
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise EdgekitError(f"{what}: the name {part[:40]!r}... is longer than {NAME_MAX} bytes")
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        if folder.is_symlink():  # a dangling link: creating through it fails later
            break
        folder = folder.parent
    if not folder.is_dir():
        raise EdgekitError(f"{what}: cannot create {path}: {folder} is not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".edgekit-probe-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        reason = system_error_message(exc) or str(exc)
        raise EdgekitError(f"{what}: cannot write into {folder} ({reason.split(':')[0]})") from None


def check_output_file(path: Path, what: str) -> None:
    """:func:`check_output_path` for a file: the path must also name a file, not a folder."""
    check_output_path(path, what)
    text = os.fsdecode(os.fspath(path))
    if Path(path).name in ("", ".", "..") or text.endswith(os.sep) or Path(path).is_dir():
        raise EdgekitError(f"{what}: {text or repr(text)} is a folder; give a file name")


def output_file(param: typer.CallbackParam, value: Path | None) -> Path | None:
    """Callback form of :func:`check_output_file` (``--csv``, calibrate ``-o``, zoo ``-o``)."""
    if value is not None:
        check_output_file(value, option_name(param))
    return value


def output_path(param: typer.CallbackParam, value: Path | None) -> Path | None:
    """Callback form of :func:`check_output_path` for ``-o`` / ``--csv`` / ``--plot``; None passes."""
    if value is not None:
        check_output_path(value, option_name(param))
    return value
