"""``edgekit native build [--arch host|aarch64] [--jobs N]``: build ncnn (from the installed wheel's source
release) and the static ``edgekit-runner`` once per architecture, into edgekit's cache; print the runner's path."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from edge.console import output_console
from edge.errors import EdgekitError
from edge.native.build import ARCHES, build, check_arch

console = output_console(stderr=True)
ACTIONS = ("build",)


def native_command(
    action: Annotated[str, typer.Argument(help="build")],
    arch: Annotated[
        str, typer.Option(help=f"{' | '.join(ARCHES)} (aarch64: static, for ARM boards and phones)")
    ] = "host",
    jobs: Annotated[int | None, typer.Option(help="parallel compile jobs (default: the CPU count)")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="rebuild the runner even when it is up to date")
    ] = False,
) -> None:
    """The native (C++) runtime: build the static edgekit-runner for host or aarch64 (cached)."""
    if action not in ACTIONS:
        raise EdgekitError(f"unknown action {action!r} (expected: {', '.join(ACTIONS)})")
    check_arch(arch)
    if jobs is not None and jobs < 1:
        raise EdgekitError("--jobs must be at least 1")
    t0 = time.monotonic()
    path = build(arch, jobs=jobs, progress=lambda line: console.print(line, highlight=False), force=force)
    console.print(f"{arch}: edgekit-runner ready ({time.monotonic() - t0:.0f} s)", highlight=False)
    typer.echo(str(path))
