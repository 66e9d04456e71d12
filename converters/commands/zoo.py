"""``edgekit zoo``: list the model zoo, or build a model to ONNX (thin CLI over converters.zoo)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from edge.console import output_console
from edge.options import output_file, side, warn_ignored
from edge.options import seed as seed_value

ACTIONS = ("build", "list")


def zoo_command(
    action: Annotated[str, typer.Argument(help="build | list")],
    name: Annotated[str | None, typer.Argument(help="zoo model to build, e.g. ssd-resnet34-1200")] = None,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", callback=output_file, help="ONNX file to write")
    ] = None,
    weights: Annotated[
        str, typer.Option(help="'generated' (seeded) or an ONNX file with the official weights")
    ] = "generated",
    with_postprocess: Annotated[
        bool,
        typer.Option("--with-postprocess", help="append the original file's decode + NMS/TopK tail"),
    ] = False,
    input_size: Annotated[
        int | None,
        typer.Option(
            "--input-size", callback=side, help="square input size (default: the model's; smaller for tests)"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(callback=seed_value, help="seed of the generated weights")] = 0,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary on stdout")] = False,
) -> None:
    """Build reference models (architecture-faithful ONNX with generated or official weights)."""
    from edge.errors import EdgekitError
    from edge.extras import require_extra

    if action not in ACTIONS:
        raise EdgekitError(f"unknown zoo action {action!r} (expected {' | '.join(ACTIONS)})")
    from converters.zoo import MODELS, zoo_model

    console = output_console()
    if action == "list":
        given = {"-o": out, "--input-size": input_size, "--with-postprocess": with_postprocess or None}
        for option in (o for o, v in given.items() if v is not None):
            warn_ignored(option, "zoo list only lists the models")
        for m in MODELS.values():
            console.print(f"{m.name}: {m.summary}; decoder preset {m.preset}", highlight=False)
        return
    if name is None:
        raise EdgekitError("zoo build needs a model name (see 'edgekit zoo list')")
    found = zoo_model(name)
    if out is None:
        raise EdgekitError("zoo build needs -o FILE.onnx")
    if out.exists() and not force:
        raise EdgekitError(f"{out} exists; pass --force to overwrite it")
    require_extra("convert", "edgekit zoo build")
    from converters.zoo.build import build_zoo_model

    with Console(stderr=True).status(f"building {name}", spinner="dots"):
        built = build_zoo_model(
            name, out, weights=weights, with_postprocess=with_postprocess, input_size=input_size, seed=seed
        )
    checks = built.checks()
    if as_json:
        print(
            json.dumps(
                {
                    "model": name,
                    "onnx": str(built.path),
                    "input_size": built.input_size,
                    "gflops": round(built.size.gflops, 2),
                    "mparams": round(built.size.mparams, 3),
                    "weights": built.weights,
                    "with_postprocess": built.with_postprocess,
                    "weights_from": list(found.weights_from),
                },
                indent=2,
            )
        )
        return
    console.print(f"wrote {built.path} (input {built.input_size}x{built.input_size})", highlight=False)
    for figure, got, expected, ok in checks:
        against = f" (notes: {expected}, within 1 %)" if expected is not None else " (reduced input)"
        console.print(
            f"  {figure}: {got:.2f}{against}" if ok else f"  {figure}: {got:.2f} MISMATCH", highlight=False
        )
    console.print(f"  weights: {built.weights}", highlight=False)
    if weights == "generated":
        console.print("  accuracy: not measurable with generated weights; official weights come from:")
        for where in found.weights_from:
            console.print(f"    - {where}", highlight=False, soft_wrap=True)
        console.print(
            f"  load them with: edgekit zoo build {name} -o FILE.onnx --weights OFFICIAL.onnx",
            highlight=False,
            soft_wrap=True,
        )
