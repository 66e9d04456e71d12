"""The ``edgekit`` command line: a thin Typer layer over the library.

Each command lives beside the library it drives (``edge/commands``, ``converters/commands``,
``benchmarks/commands``) and is declared as an ``edgekit.commands`` entry point; :func:`main` adds
them to :data:`app`, so this module imports nothing from the layers above ``edge``.
Errors derived from :class:`edge.errors.EdgekitError` become one red line and a non-zero exit.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points

import typer
from rich.console import Console
from rich.markup import escape

from edge.errors import EdgekitError

app = typer.Typer(
    name="edgekit",
    help="ONNX detectors to fast, small, verified ncnn builds for ARM edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """ONNX detectors to fast, small, verified ncnn builds for ARM edge devices."""


COMMAND_GROUP = "edgekit.commands"


def _register_commands() -> None:
    """Add every command the installed layers declare under the ``edgekit.commands`` entry points."""
    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        if entry.name not in {c.name for c in app.registered_commands}:
            app.command(entry.name)(entry.load())


def main() -> None:
    """Console-script entry point."""
    try:
        _register_commands()
        app()
    except EdgekitError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[bold red]error:[/] interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug, not bad input: still one line, the traceback on request
        if os.environ.get("EDGEKIT_DEBUG"):
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} (set EDGEKIT_DEBUG=1 for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(70)
