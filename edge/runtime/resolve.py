"""Resolve a model (build directory or bare .param/.bin) into a :class:`ModelSpec`.

A *build directory* (``edgekit convert``) carries everything in its manifest: the input blob,
preprocessing, output blobs and decoder. A *bare* ``.param`` (with its ``.bin`` beside it) gets
the same from a preset, its graph (input = ``Input`` layer, outputs = blobs nothing consumes)
and an input size (``size``, else a ``_<digits>`` in the file or folder name, else the
``Input`` layer's shape).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import EdgekitError
from edge.manifest import MANIFEST_NAME, PRECISIONS, DecoderSpec, InputSpec, load_manifest
from edge.ncnn.model import NcnnModel
from edge.presets import decoder_spec_from_preset, get_preset, input_spec_from_preset


@dataclass
class ModelSpec:
    """One runnable model: its files, precision, input, the blobs to extract and its decoder."""

    name: str
    precision: str
    param: Path
    bin: Path
    input: InputSpec
    outputs: dict[str, str]  # output name the decoder sees -> ncnn blob name
    decoder: DecoderSpec
    consumed_blobs: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class ParamGraph:
    """The few facts about a .param that running it needs."""

    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    consumed_blobs: frozenset[str]
    input_shape: tuple[int, int, int] | None  # (w, h, c) from the Input layer, if written
    is_int8: bool


INT8_LAYER_TYPES = ("Convolution", "ConvolutionDepthWise", "InnerProduct")


def read_param_graph(param: Path) -> ParamGraph:
    """Inputs, outputs, consumed blobs, input shape and INT8-ness of a text .param."""
    model = NcnnModel.read(param)
    input_shape = None
    for layer in model.layers:
        if layer.type == "Input":
            dims = tuple(int(layer.get(k, 0) or 0) for k in (0, 1, 2))
            if dims[0] > 0 and dims[1] > 0:
                input_shape = dims
    return ParamGraph(
        input_names=tuple(model.input_names()),
        output_names=tuple(model.output_names()),
        consumed_blobs=frozenset(blob for layer in model.layers for blob in layer.inputs),
        input_shape=input_shape,
        is_int8=any(layer.type in INT8_LAYER_TYPES and layer.get(8, 0) for layer in model.layers),
    )


def guess_preset(output_names: tuple[str, ...] | list[str]) -> str:
    """Preset for ``preset="auto"`` on a bare model, from its output blob names."""
    if any(n.startswith("cls_pred_stride_") for n in output_names):
        return "nanodet-m"
    if {"loc", "conf"} <= set(output_names):
        return "ssd-resnet34"
    return "nanodet-plus"


def _size_from_name(path: Path) -> int | None:
    for part in (path.stem, path.parent.name):
        found = re.findall(r"[_-](\d{3,4})(?=$|[_\-.])", part)
        if found:
            return int(found[-1])
    return None


def build_precisions(model: Path) -> list[str]:
    """Precisions a model path holds: those in a build's manifest, or one for a bare .param."""
    model = Path(model)
    if model.is_dir() and (model / MANIFEST_NAME).is_file():
        manifest = load_manifest(model)
        return [p for p in PRECISIONS if p in manifest.builds]
    param = _bare_param(model)
    return ["int8" if read_param_graph(param).is_int8 else "fp32"]


def _bare_param(model: Path) -> Path:
    if model.is_dir():
        params = sorted(model.glob("*.param"))
        if MANIFEST_NAME not in {p.name for p in model.iterdir()} and len(params) == 1:
            return params[0]
        raise EdgekitError(
            f"{model} is neither a build directory (no {MANIFEST_NAME}) nor a folder with one .param"
        )
    if not model.exists():
        raise EdgekitError(f"model not found: {model}")
    if model.suffix != ".param":
        raise EdgekitError(f"{model}: expected a build directory or a .param file")
    return model


def resolve_model(
    model: Path,
    *,
    precision: str | None = None,
    preset: str = "auto",
    size: int | tuple[int, int] | None = None,
    outputs: list[str] | None = None,
) -> ModelSpec:
    """Describe how to run ``model`` (a build directory or a ``.param`` with its ``.bin`` beside it).

    ``precision`` picks a build's files (default: fp32 if present, else the first it has); for a bare
    model it only selects runtime options. ``preset`` replaces a build's decoder and preprocessing
    (``"auto"`` keeps them; for bare models it guesses from output names). ``outputs`` names the ncnn
    blobs to extract instead of the graph outputs (e.g. per-stride blobs before a final concat).
    """
    model = Path(model)
    if precision is not None and precision not in PRECISIONS:
        raise EdgekitError(f"unknown precision {precision!r} (expected one of {', '.join(PRECISIONS)})")
    if model.is_dir() and (model / MANIFEST_NAME).is_file():
        spec = _resolve_build(model, precision, preset)
    else:
        spec = _resolve_bare(_bare_param(model), precision, preset, size)
    if outputs:
        spec.outputs = {name: name for name in outputs}
    for path in (spec.param, spec.bin):
        if not path.is_file():
            raise EdgekitError(f"model file missing: {path}")
    return spec


def _resolve_build(build_dir: Path, precision: str | None, preset: str) -> ModelSpec:
    manifest = load_manifest(build_dir)
    if precision is None:
        precision = "fp32" if "fp32" in manifest.builds else next(iter(manifest.builds), "fp32")
    files = manifest.build(precision)
    decoder = manifest.decoder
    input_spec = manifest.input
    if preset != "auto":
        chosen = get_preset(preset)
        decoder = decoder_spec_from_preset(chosen)
        input_spec = input_spec_from_preset(chosen, input_spec.ncnn_name, input_spec.width, input_spec.height)
    if decoder is None:
        raise EdgekitError(f"{build_dir} has no decoder in its manifest; pass --preset")
    param = build_dir / files.param
    graph = read_param_graph(param) if param.is_file() else None
    return ModelSpec(
        name=build_dir.name,
        precision=precision,
        param=param,
        bin=build_dir / files.bin,
        input=input_spec,
        outputs={o.name: o.ncnn_name for o in manifest.outputs},
        decoder=decoder,
        consumed_blobs=graph.consumed_blobs if graph else frozenset(),
    )


def _resolve_bare(
    param: Path, precision: str | None, preset: str, size: int | tuple[int, int] | None
) -> ModelSpec:
    bin_path = param.with_suffix(".bin")
    if not bin_path.is_file():
        raise EdgekitError(f"weights missing: expected {bin_path} beside {param}")
    graph = read_param_graph(param)
    if len(graph.input_names) != 1:
        raise EdgekitError(f"{param}: expected one Input layer, found {len(graph.input_names)}")
    chosen = get_preset(guess_preset(graph.output_names) if preset == "auto" else preset)
    if isinstance(size, tuple):
        width, height = size
    elif size:
        width = height = int(size)
    elif (named := _size_from_name(param)) is not None:
        width = height = named
    elif graph.input_shape is not None:
        width, height = graph.input_shape[0], graph.input_shape[1]
    else:
        raise EdgekitError(f"cannot tell the input size of {param}; pass --size")
    return ModelSpec(
        name=param.parent.name if param.stem == "model" else param.stem,
        precision=precision or ("int8" if graph.is_int8 else "fp32"),
        param=param,
        bin=bin_path,
        input=input_spec_from_preset(chosen, graph.input_names[0], width, height),
        outputs={name: name for name in graph.output_names},
        decoder=decoder_spec_from_preset(chosen),
        consumed_blobs=graph.consumed_blobs,
    )
