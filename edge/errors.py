"""The one exception type users see: a one-line message, never a traceback."""

from __future__ import annotations


class EdgekitError(Exception):
    """A user-facing failure; the CLI prints ``str(err)`` on one line and exits non-zero."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class ModelFormatError(EdgekitError):
    """A .param/.bin file that is malformed or does not match its graph."""


class ParityError(EdgekitError):
    """A build that computes something other than the ONNX reference."""

    exit_code = 3
