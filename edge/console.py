"""The CLI's consoles: fit a terminal, never wrap a line for a pipe or a file.

On a terminal, rich wraps text and fits tables to the terminal's width. Anywhere else (a pipe,
a file, a CI log) text is printed as one line however long (``soft_wrap``), so a path or a
machine-readable line is never cut in the middle, and tables get their natural width, unless
``COLUMNS`` asks for a width (rich honours it).
"""

from __future__ import annotations

import os
import sys

from rich.console import Console

#: width given to a console that is not a terminal and has no ``COLUMNS``: wide enough for any table
UNLIMITED_WIDTH = 1000


def output_console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr) that wraps only on a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else UNLIMITED_WIDTH
    return Console(stderr=stderr, soft_wrap=True, width=width)
