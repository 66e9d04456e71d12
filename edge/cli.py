"""The ``edgekit`` command line: a thin Typer layer over the library.

Each command lives beside the library it drives (``edge/commands``, ``converters/commands``,
``benchmarks/commands``) and is declared as an ``edgekit.commands`` entry point; :func:`main` adds
them to :data:`app`, so this module imports nothing from the layers above ``edge``.
Errors derived from :class:`edge.errors.EdgekitError` become one red line and a non-zero exit.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from edge.console import output_console
from edge.errors import EdgekitError


def _tidy(params: list[Any]) -> list[Any]:
    """No value type after a flag (not ``<bool>``); arguments named in capitals (not ``{model}``)."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""  # a flag takes no value
        elif isinstance(param, TyperArgument) and param.metavar is None and param.name:
            param.metavar = param.name.upper()
    return params


class EdgekitGroup(TyperGroup):
    """The ``edgekit`` group, with :func:`_tidy` help."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        return _tidy(super().get_params(ctx))


class EdgekitCommand(TyperCommand):
    """A command whose help reads like the rest of the CLI: ``edgekit convert [OPTIONS] MODEL``."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        return _tidy(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = (param.metavar or "") + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces


app = typer.Typer(
    name="edgekit",
    help="ONNX detectors to fast, small, verified ncnn builds for ARM edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=EdgekitGroup,
)
err_console = output_console(stderr=True)


def edgekit_version() -> str:
    """The installed edgekit's version."""
    try:
        return version("edgekit")
    except PackageNotFoundError:
        import edge

        return getattr(edge, "__version__", "unknown")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"edgekit {edgekit_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print edgekit's version and exit"
        ),
    ] = False,
) -> None:
    """ONNX detectors to fast, small, verified ncnn builds for ARM edge devices."""


COMMAND_GROUP = "edgekit.commands"


def _register_commands() -> None:
    """Add every command the installed layers declare under the ``edgekit.commands`` entry points."""
    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        if entry.name not in {c.name for c in app.registered_commands}:
            app.command(entry.name, cls=EdgekitCommand)(entry.load())


def main() -> None:
    """Console-script entry point."""
    try:
        _register_commands()
        app(prog_name="edgekit")  # also under python -m edge
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
