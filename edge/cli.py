"""The ``edgekit`` command line: a thin Typer layer over the library.

Each command lives beside the library it drives (``edge/commands``, ``converters/commands``,
``benchmarks/commands``) and is declared as an ``edgekit.commands`` entry point; :func:`main` adds
them to :data:`app`, so this module imports nothing from the layers above ``edge``.
Errors derived from :class:`edge.errors.EdgekitError` become one red line and a non-zero exit.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from edge.console import output_console
from edge.env import env_flag
from edge.errors import SYSTEM_EXIT_CODE, EdgekitError, system_error_message
from edge.signals import Terminated, exit_by_signal, pending_termination, terminate_as_exception


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


def _debug() -> bool:
    """``EDGEKIT_DEBUG=1``: tracebacks for internal errors (any value other than a clear "off" counts)."""
    try:
        return env_flag("EDGEKIT_DEBUG")
    except EdgekitError:
        return True


def _interrupted(exc: BaseException) -> bool:
    """True when ``exc`` was raised while handling a ``KeyboardInterrupt`` (its cause or context)."""
    seen: BaseException | None = exc
    for _ in range(8):
        seen = seen.__cause__ or seen.__context__ if seen is not None else None
        if seen is None:
            return False
        if isinstance(seen, KeyboardInterrupt):
            return True
    return False


def main() -> None:
    """Console-script entry point."""
    try:
        _register_commands()
        with terminate_as_exception():  # SIGTERM/SIGHUP unwind, so staging and children are cleaned up
            app(prog_name="edgekit")  # also under python -m edge
    except Terminated as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        exit_by_signal(exc.signum)
    except EdgekitError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[bold red]error:[/] interrupted")
        sys.exit(130)
    except SystemExit as exc:
        if _interrupted(exc):  # Typer turns Ctrl-C into a silent exit 130: say why
            err_console.print("[bold red]error:[/] interrupted")
        raise
    except Exception as exc:  # a bug, not bad input: still one line, the traceback on request
        signum = pending_termination()
        if signum is not None:  # a signal surfaced as another error (a native import it interrupted)
            err_console.print(f"[bold red]error:[/] {Terminated(signum)}", highlight=False)
            exit_by_signal(signum)
        if _debug():
            raise
        system = system_error_message(exc)  # disk full, permissions, memory, undecodable names
        if system is not None:
            err_console.print(f"[bold red]error:[/] {escape(system)}", highlight=False, soft_wrap=True)
            sys.exit(SYSTEM_EXIT_CODE)
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} (set EDGEKIT_DEBUG=1 for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(70)
