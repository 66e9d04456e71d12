"""``edgekit convert``: thin CLI over :func:`converters.convert.convert_onnx`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edge.console import output_console
from edge.decoders.registry import choices_help
from edge.options import check_choice, input_shape, name_list, non_negative, output_path, positive

console = output_console(stderr=True)
#: images parity is checked on by default (converters.parity.DEFAULT_VERIFY_IMAGES; not imported
#: here, so the CLI starts without the 'convert' extra)
DEFAULT_VERIFY_IMAGES = 16


def convert_command(
    model: Annotated[Path, typer.Argument(help="ONNX model to convert")],
    out: Annotated[Path, typer.Option("-o", "--out", callback=output_path, help="build directory to create")],
    input_shape: Annotated[
        str | None,
        typer.Option("--input-shape", callback=input_shape, help="static input shape, e.g. 1,3,416,416"),
    ] = None,
    preset: Annotated[
        str,
        typer.Option(
            help="decoder preset: auto (recognised from the graph), none (no decoder) or one of: "
            + choices_help()
        ),
    ] = "auto",
    fp16: Annotated[bool, typer.Option("--fp16/--no-fp16", help="also write an fp16 build")] = True,
    verify_images: Annotated[
        Path | None,
        typer.Option(
            "--verify-images",
            help="folder of images to check parity on (default: seeded random pixels, which say little"
            " about INT8 on real images)",
        ),
    ] = None,
    verify_num: Annotated[
        int,
        typer.Option(
            "--verify-num",
            callback=non_negative,
            help="check parity on the first N images of --verify-images by name (0 = all)",
        ),
    ] = DEFAULT_VERIFY_IMAGES,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="fail on a parity miss")] = True,
    force: Annotated[bool, typer.Option("--force", help="replace an existing build directory")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary on stdout")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="also write an INT8 build (needs --calib)")] = False,
    calib: Annotated[Path | None, typer.Option("--calib", help="calibration images for --int8")] = None,
    method: Annotated[str, typer.Option(help="INT8 thresholds: kl | aciq | eq | search")] = "search",
    calib_num: Annotated[
        int | None,
        typer.Option(
            "--calib-num", callback=positive, help="use the first N calibration images by name (default: all)"
        ),
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
    max_keep_float: Annotated[
        int,
        typer.Option(
            "--max-keep-float",
            callback=non_negative,
            help="--auto-keep-float keeps at most N layers in fp16; the summary says when the target is"
            " not reached",
        ),
    ] = 16,  # converters.int8_tuning.AUTO_MAX_KEPT (not imported: the CLI starts without the extra)
    float_depthwise: Annotated[
        bool, typer.Option("--float-depthwise", help="keep depthwise convs in fp16 (faster INT8 on x86)")
    ] = False,
    color: Annotated[
        str | None, typer.Option("--color", help="channel order the model expects: rgb | bgr")
    ] = None,
    mean: Annotated[
        str | None,
        typer.Option(
            "--mean", help="per-channel mean subtracted from 0..255 pixels, e.g. 123.675,116.28,103.53"
        ),
    ] = None,
    norm: Annotated[
        str | None,
        typer.Option("--norm", help="per-channel factor applied after the mean, e.g. 0.017,0.0175,0.0174"),
    ] = None,
    std: Annotated[
        str | None,
        typer.Option("--std", help="per-channel std in 0..255 units instead of --norm (norm = 1/std)"),
    ] = None,
    resize: Annotated[
        str | None,
        typer.Option("--resize", help="how images reach the input size: stretch | letterbox"),
    ] = None,
    cut_outputs: Annotated[
        str | None,
        typer.Option(
            "--outputs",
            callback=name_list,
            help="cut the graph at these tensors, NAME,... (default: a post-processing tail ncnn cannot run"
            " is cut at a known preset's raw outputs)",
        ),
    ] = None,
) -> None:
    """Convert an ONNX detector into verified ncnn fp32/fp16 builds with a manifest."""
    from edge.extras import require_extra

    require_extra("convert", "edgekit convert")
    from converters.convert import Int8Options, convert_onnx
    from converters.input_options import parse_preprocessing
    from converters.int8_build import METHODS
    from converters.onnx_check import parse_shape
    from converters.parity import judged_by_abs_error
    from converters.progress import StepLines
    from edge.decoders.registry import find_preset
    from edge.errors import EdgekitError

    check_choice(method, "--method", METHODS)  # also without --int8: a typo is a typo
    shape = parse_shape(input_shape) if input_shape else None
    preprocessing = parse_preprocessing(color, mean, norm, std, resize)
    if preset not in ("auto", "none"):
        find_preset(preset)  # an unknown name fails here, before any work
    if not model.is_file():
        raise EdgekitError(f"ONNX file not found: {model}")
    if verify_num < 0:
        raise EdgekitError(f"--verify-num takes a number of images (0 = all), got {verify_num}")
    if int8 and calib is None:
        raise EdgekitError("--int8 needs --calib DIR (calibration images)")
    if calib is not None and not int8:
        raise EdgekitError("--calib is only used with --int8")
    if not 0.0 <= auto_keep_float < 1.0:
        raise EdgekitError(f"--auto-keep-float takes a cosine target in [0, 1), got {auto_keep_float}")
    if max_keep_float < 0:
        raise EdgekitError(f"--max-keep-float takes a number of layers (0 or more), got {max_keep_float}")
    int8_options = (
        Int8Options(
            calib,
            method,
            calib_num,
            list(keep_float or []),
            auto_keep_float or False,
            float_depthwise,
            max_keep_float,
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
            verify_num=verify_num,
            verify=verify,
            force=force,
            int8=int8_options,
            progress=status.update if console.is_terminal else StepLines(),
            cut_at=[n.strip() for n in cut_outputs.split(",") if n.strip()] if cut_outputs else None,
            preprocessing=preprocessing,
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
                | judged_by_abs_error(b.parity)
                if b.parity
                else None,
                **({"details": b.details} if b.details else {}),
            }
            for name, b in manifest.builds.items()
        },
        "notes": manifest.notes,
        "parity_inputs": result.parity_inputs,
        **({"conversion": manifest.conversion} if manifest.conversion else {}),
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
    }
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    table = Table()
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
    out_console = output_console()
    out_console.print(f"{build_dir}  (preset: {summary['preset'] or 'none'})", highlight=False)
    out_console.print(table)
    out_console.print(f"parity checked on {result.parity_inputs}", highlight=False)
    if "int8" in manifest.builds and verify_images is None:
        out_console.print(
            "note: INT8 parity was checked on random pixels only; --verify-images DIR checks it on real images",
            highlight=False,
        )
    int8_details = manifest.builds["int8"].details if "int8" in manifest.builds else None
    if int8_details:
        kept = int8_details.get("kept_float", {})
        out_console.print(
            f"int8: method {int8_details.get('method')}, {int8_details.get('quantized_layers')} layers"
            f" quantized, {len(kept)} kept in fp16, {int8_details.get('equalized_blobs', 0)} blobs"
            f" equalized; table {int8_details.get('table')}"
        )
        if int8_details.get("auto_keep_float_note"):
            out_console.print(f"int8 {int8_details['auto_keep_float_note']}", highlight=False)
        if int8_details.get("speed_note"):
            out_console.print(f"int8 speed: {int8_details['speed_note']}", highlight=False)
    speed_note = int8_details.get("speed_note") if int8_details else None
    for note in manifest.notes:
        if note != speed_note:  # printed once, above
            out_console.print(f"note: {note}", highlight=False)
    out_console.print(f"manifest: {result.manifest_path}  ({result.timings['total']:.1f} s)", highlight=False)
