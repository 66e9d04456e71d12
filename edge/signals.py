"""Termination signals as exceptions, and child processes that die with edgekit.

``SIGTERM`` and ``SIGHUP`` normally end Python at once, skipping every ``finally``: staging
directories, temporary videos and running children (pnnx) would be left behind. Inside
:func:`terminate_as_exception` they raise :class:`Terminated` instead (once; a second signal during
the clean-up is ignored), so the clean-up code that already handles Ctrl-C runs;
:func:`exit_by_signal` then ends the process by the same signal, so callers still see it killed.

``kill -9`` cannot be caught: children started with :func:`child_command` and :func:`child_options`
are in their own process group (a terminal's Ctrl-C reaches only edgekit, which stops them) and get
``SIGKILL`` from the kernel when edgekit dies (``PR_SET_PDEATHSIG``, set by a tiny exec wrapper, not
a ``preexec_fn``: with one, Python runs its at-fork callbacks in the parent, and an exception the
handler raises there is discarded). Any :class:`Terminated` or ``KeyboardInterrupt`` Python
discards that way (at-fork callbacks of ``os.fork``, ``__del__``) is delivered again by re-sending
the signal, and :func:`pending_termination` lets the top level report a signal that reached it
disguised (an ``ImportError`` from a native module's interrupted initialisation).
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

CAUGHT = (signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1
#: the termination signal already raised as :class:`Terminated` (the clean-up is under way)
_fired: list[int] = []
#: run by a wrapper interpreter: die with the parent (argv[1] is its pid), then become argv[2:]
_DEATH_WRAPPER = (
    "import ctypes,os,sys\n"
    "ctypes.CDLL(None).prctl(1,9,0,0,0)\n"
    "os.getppid()==int(sys.argv[1]) or os._exit(1)\n"
    "os.execvp(sys.argv[2],sys.argv[2:])"
)


class Terminated(BaseException):
    """The process received SIGTERM or SIGHUP; raised where the main thread was."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread.

    Outside the main thread (where Python cannot install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _fired.clear()

    def handler(signum: int, _frame: Any) -> None:
        if _fired:  # already unwinding: let the clean-up finish
            return
        _fired.append(signum)
        raise Terminated(signum)

    def unraisable(hook_args: Any) -> None:
        exc = hook_args.exc_value
        if isinstance(exc, Terminated | KeyboardInterrupt):  # discarded by Python: deliver it again
            _fired.clear()
            signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
            # a moment later, from another thread: sent from here, the handler would run (and be
            # discarded) here again; should it still land in a callback, this repeats
            _thread.start_new_thread(_send_later, (signum,))
            return
        previous_hook(hook_args)

    previous = {}
    for signum in CAUGHT:
        with contextlib.suppress(OSError, ValueError):
            previous[signum] = signal.signal(signum, handler)
    previous_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for signum, old in previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(signum, old)


def _send_later(signum: int, delay: float = 0.005) -> None:
    time.sleep(delay)
    os.kill(os.getpid(), signum)


def pending_termination() -> int | None:
    """The SIGTERM/SIGHUP already raised as :class:`Terminated` (perhaps disguised on the way up), or None."""
    return _fired[0] if _fired else None


def exit_by_signal(signum: int) -> None:
    """End this process by ``signum`` with its default action (exit status 128 + signum)."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # only reached if the signal is blocked


def child_command(argv: list[str]) -> list[str]:
    """``argv`` run through a wrapper that makes it die with edgekit (Linux; elsewhere unchanged)."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [sys.executable, "-I", "-S", "-c", _DEATH_WRAPPER, str(os.getpid()), *map(str, argv)]


def child_options() -> dict[str, Any]:
    """``subprocess`` keyword arguments for a helper child: its own process group (no ``preexec_fn``)."""
    return {"start_new_session": True}
