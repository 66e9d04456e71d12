"""What this machine can hold: RAM, and whether a file can be read whole before reading it."""

from __future__ import annotations

import os
from pathlib import Path

from edge.errors import EdgekitError

#: Python objects parsed from a JSON file take about this many times the file's size
JSON_EXPANSION = 10


def machine_ram_bytes() -> int | None:
    """Physical memory of this machine, or None where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_ram_bytes() -> int | None:
    """Memory available to a new allocation now (``MemAvailable``), else physical RAM, else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return machine_ram_bytes()


def check_readable_whole(path: Path, what: str, expansion: int = 1) -> int:
    """The size of ``path``; refuse a file whose contents (times ``expansion`` once parsed) cannot fit."""
    size = Path(path).stat().st_size
    free = available_ram_bytes()
    if free is not None and size * expansion > free:
        raise EdgekitError(
            f"{what} {path} is too large to read: {size / 2**20:.0f} MiB needs about"
            f" {size * expansion / 2**30:.1f} GiB of memory, {free / 2**30:.1f} GiB is available"
        )
    return size
