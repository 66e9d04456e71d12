"""Progress of a long command as plain lines, for logs, pipes and CI (no terminal to animate).

``convert`` reports steps as messages; INT8 stages end in a counter (``"calibrating 12/128"``).
:class:`StepLines` prints one line when a step starts, with the time since the command began,
and a counter line at most every :data:`HEARTBEAT_S` seconds inside a long counted step, so a
log shows where the time goes without a line per image.
"""

from __future__ import annotations

import re
import sys
import time
from typing import TextIO

HEARTBEAT_S = 10.0
_COUNTER = re.compile(r"^(?P<stage>.*\S)\s+(?P<done>\d+)/(?P<total>\d+)$")


class StepLines:
    """A ``progress(message)`` callback printing one plain line per step to ``stream`` (stderr)."""

    def __init__(self, stream: TextIO | None = None, prefix: str = "edgekit") -> None:
        self.stream = stream
        self.prefix = prefix
        self.started = time.perf_counter()
        self._stage: str | None = None
        self._last_line = 0.0

    def __call__(self, message: str) -> None:
        match = _COUNTER.match(message)
        stage = match["stage"] if match else message
        now = time.perf_counter()
        if stage != self._stage:
            self._stage = stage
            total = f" ({match['total']})" if match else ""
            self._emit(f"{stage}{total}", now)
        elif match and now - self._last_line >= HEARTBEAT_S:
            self._emit(f"{stage} {match['done']}/{match['total']}", now)

    def _emit(self, text: str, now: float) -> None:
        self._last_line = now
        stream = self.stream or sys.stderr
        print(f"{self.prefix}: [{now - self.started:6.1f} s] {text}", file=stream, flush=True)
