"""``edgekit bundle``: thin CLI over :mod:`edge.bundle.store`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from edge.bundle.app import App, open_app, read_index
from edge.console import output_console
from edge.errors import EdgekitError


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def print_holdings(app: App) -> None:
    """What the app holds now and what it adds to the APK."""
    console = output_console()
    bundles = read_index(app)["bundles"]
    if not bundles:
        console.print(f"the app holds no bundle ({app.assets})", highlight=False)
        return
    table = Table(title=f"bundles in {app.assets}")
    for column in ("name", "precisions", "from build", "files", "adds to APK"):
        table.add_column(column, justify="right" if column in ("files", "adds to APK") else "left")
    for b in bundles:
        table.add_row(b["name"], ",".join(b["precisions"]), b["source"], _mb(b["bytes"]), _mb(b["apk_bytes"]))
    console.print(table)
    total = sum(b["apk_bytes"] for b in bundles)
    console.print(
        f"{len(bundles)} bundle(s): about {_mb(total)} added to the APK (.bin stored uncompressed, rest deflated)",
        highlight=False,
    )


def bundle_command(
    builds: Annotated[
        list[Path] | None, typer.Argument(help="build directories (manifest.json) to bundle")
    ] = None,
    app: Annotated[Path, typer.Option("--app", help="the Android demo app directory (android-demo/)")] = Path(
        "android-demo"
    ),
    precision: Annotated[
        str | None,
        typer.Option(help="precisions to bundle, e.g. fp16,int8 (default: the build's fp16 and int8)"),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="bundle name (default: the build directory's name)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace a bundle of the same name")] = False,
    list_: Annotated[bool, typer.Option("--list", help="list the app's bundles")] = False,
    remove: Annotated[str | None, typer.Option("--remove", metavar="NAME", help="remove a bundle")] = None,
) -> None:
    """Copy builds into the Android demo's assets, verified against their manifests."""
    from edge.bundle.store import add_bundles, plan_bundles, remove_bundle

    actions = sum([bool(builds), list_, remove is not None])
    if actions != 1:
        raise EdgekitError("give BUILD... to bundle, or --list, or --remove NAME (one of them)")
    if (name or precision or force) and not builds:
        raise EdgekitError("--name, --precision and --force go with BUILD...")
    target = open_app(app)
    err = output_console(stderr=True)
    if remove is not None:
        entry: dict[str, Any] = remove_bundle(target, remove)
        err.print(
            f"removed bundle {entry['name']} ({_mb(entry['apk_bytes'])} less in the APK)", highlight=False
        )
    elif builds:
        precisions = tuple(p.strip() for p in precision.split(",") if p.strip()) if precision else None
        plans = plan_bundles(builds, [name] if name else None, precisions)
        for entry in add_bundles(target, plans, force):
            err.print(
                f"bundled {entry['source']} as {entry['name']} ({','.join(entry['precisions'])}): "
                f"{_mb(entry['bytes'])}, adds about {_mb(entry['apk_bytes'])} to the APK",
                highlight=False,
            )
    print_holdings(target)
