"""``edgekit convert``: thin CLI over :func:`converters.convert.convert_onnx`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edge.decoders.registry import choices_help

console = Console(stderr=True)


def convert_command(
    model: Annotated[Path, typer.Argument(help="ONNX model to convert")],
    out: Annotated[Path, typer.Option("-o", "--out", help="build directory to create")],
    input_shape: Annotated[
        str | None, typer.Option("--input-shape", help="static input shape, e.g. 1,3,416,416")
    ] = None,
    preset: Annotated[str, typer.Option(help=choices_help("auto", "none"))] = "auto",
    fp16: Annotated[bool, typer.Option("--fp16/--no-fp16", help="also write an fp16 build")] = True,
    verify_images: Annotated[
        Path | None, typer.Option("--verify-images", help="images to check parity on (default: random)")
    ] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="fail on a parity miss")] = True,
    force: Annotated[bool, typer.Option("--force", help="replace an existing build directory")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary on stdout")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="also write an INT8 build (needs --calib)")] = False,
    calib: Annotated[Path | None, typer.Option("--calib", help="calibration images for --int8")] = None,
    method: Annotated[str, typer.Option(help="INT8 thresholds: kl | aciq | eq | search")] = "search",
    calib_num: Annotated[
        int | None, typer.Option("--calib-num", help="use at most N calibration images")
    ] = None,
    keep_float: Annotated[
        list[str] | None, typer.Option("--keep-float", help="keep this layer in fp16 (repeatable)")
    ] = None,
    auto_keep_float: Annotated[
        float,
        typer.Option(
            "--auto-keep-float",
            help="keep the fewest most sensitive layers in fp16 to reach this output cosine (0 = off)",
        ),
    ] = 0.999,
    float_depthwise: Annotated[
        bool, typer.Option("--float-depthwise", help="keep depthwise convs in fp16 (faster INT8 on x86)")
    ] = False,
    cut_outputs: Annotated[
        str | None,
        typer.Option(
            "--outputs",
            help="cut the graph at these tensors, NAME,... (default: a post-processing tail ncnn cannot run"
            " is cut at a known preset's raw outputs)",
        ),
    ] = None,
) -> None:
    """Convert an ONNX detector into verified ncnn fp32/fp16 builds with a manifest."""
    from edge.extras import require_extra

    require_extra("convert", "edgekit convert")
    from converters.convert import Int8Options, convert_onnx
    from converters.onnx_check import parse_shape
    from edge.errors import EdgekitError

    shape = parse_shape(input_shape) if input_shape else None
    if int8 and calib is None:
        raise EdgekitError("--int8 needs --calib DIR (calibration images)")
    if calib is not None and not int8:
        raise EdgekitError("--calib is only used with --int8")
    if not 0.0 <= auto_keep_float < 1.0:
        raise EdgekitError(f"--auto-keep-float takes a cosine target in [0, 1), got {auto_keep_float}")
    int8_options = (
        Int8Options(
            calib, method, calib_num, list(keep_float or []), auto_keep_float or False, float_depthwise
        )
        if int8
        else None
    )
    with console.status("converting", spinner="dots") as status:
        result = convert_onnx(
            model,
            out,
            input_shape=shape,
            preset=preset,
            fp16=fp16,
            verify_images=verify_images,
            verify=verify,
            force=force,
            int8=int8_options,
            progress=lambda msg: status.update(msg),
            cut_at=[n.strip() for n in cut_outputs.split(",") if n.strip()] if cut_outputs else None,
        )
    manifest = result.manifest
    build_dir = result.manifest_path.parent
    summary = {
        "manifest": str(result.manifest_path),
        "preset": manifest.decoder.preset if manifest.decoder else None,
        "builds": {
            name: {
                "param": str(build_dir / b.param),
                "bin": str(build_dir / b.bin),
                "size_bytes": b.size_bytes,
                "parity": {"cosine": b.parity.cosine, "max_abs": b.parity.max_abs, "passed": b.parity.passed}
                if b.parity
                else None,
                **({"details": b.details} if b.details else {}),
            }
            for name, b in manifest.builds.items()
        },
        "notes": manifest.notes,
        **({"conversion": manifest.conversion} if manifest.conversion else {}),
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
    }
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    table = Table(title=f"{build_dir}  (preset: {summary['preset'] or 'none'})")
    for col in ("build", "size", "cosine", "max abs", "parity"):
        table.add_column(col, justify="right" if col != "build" else "left")
    for name, b in manifest.builds.items():
        p = b.parity
        table.add_row(
            name,
            f"{b.size_bytes / 1e6:.2f} MB",
            f"{p.cosine:.7f}" if p else "-",
            f"{p.max_abs:.3g}" if p else "-",
            ("[green]ok[/]" if p.passed else "[red]MISS[/]") if p else "-",
        )
    out_console = Console()
    out_console.print(table)
    int8_details = manifest.builds["int8"].details if "int8" in manifest.builds else None
    if int8_details:
        kept = int8_details.get("kept_float", {})
        out_console.print(
            f"int8: method {int8_details.get('method')}, {int8_details.get('quantized_layers')} layers"
            f" quantized, {len(kept)} kept in fp16, {int8_details.get('equalized_blobs', 0)} blobs"
            f" equalized; table {int8_details.get('table')}"
        )
        if int8_details.get("speed_note"):
            out_console.print(f"int8: {int8_details['speed_note']}")
    for note in manifest.notes:
        out_console.print(f"note: {note}")
    out_console.print(f"manifest: {result.manifest_path}  ({result.timings['total']:.1f} s)")
