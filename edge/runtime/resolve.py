"""Resolve a model (build directory or bare .param/.bin) into a :class:`ModelSpec`.

A *build directory* (``edgekit convert``) carries everything in its manifest: the input blob,
preprocessing, output blobs and decoder. A *bare* ``.param`` (with its ``.bin`` beside it) gets
the same from a preset, its graph (input = ``Input`` layer, outputs = blobs nothing consumes)
and an input size (``size``, else a ``_<digits>`` in the file or folder name, else the
``Input`` layer's shape).

:func:`locate_model` is the one place that tells the two apart and finds the files per precision
and the input blob and shape; sessions, ``edgekit bench`` and ``edgekit calibrate`` all go through it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from edge.decoders.registry import find_preset
from edge.errors import EdgekitError
from edge.manifest import (
    MANIFEST_NAME,
    PRECISIONS,
    Artifact,
    DecoderSpec,
    InputSpec,
    Manifest,
    decoder_spec_from_preset,
    input_spec_from_preset,
    load_manifest,
)
from edge.ncnn import param_ids
from edge.ncnn.model import Layer, NcnnModel
from edge.runtime.pinned import PinnedBuild, pin_build
from edge.runtime.policy import is_int8
from edge.runtime.recognise_bare import recognise_bare, unrecognised


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
    pinned: PinnedBuild | None = None  # a build's files, open and verified (edge.runtime.pinned)

    def load_paths(self) -> tuple[Path, Path]:
        """The (.param, .bin) to load: a build's pinned, verified files, else :attr:`param`, :attr:`bin`."""
        if self.pinned is not None:
            return self.pinned.param.load_path, self.pinned.bin.load_path
        return self.param, self.bin


@dataclass(frozen=True)
class ParamGraph:
    """The few facts about a .param that running it needs."""

    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    consumed_blobs: frozenset[str]
    input_shape: tuple[int, int, int] | None  # C, H, W of the single Input layer, if the graph says
    is_int8: bool


def read_param_graph(param: Path) -> ParamGraph:
    """Inputs, outputs, consumed blobs, input shape and INT8-ness of a text .param."""
    return graph_facts(NcnnModel.read(param))


def graph_facts(model: NcnnModel) -> ParamGraph:
    """The :class:`ParamGraph` of a parsed model."""
    inputs = [layer for layer in model.layers if layer.type == "Input"]
    return ParamGraph(
        input_names=tuple(model.input_names()),
        output_names=tuple(model.output_names()),
        consumed_blobs=frozenset(blob for layer in model.layers for blob in layer.inputs),
        input_shape=input_chw(inputs[0]) if len(inputs) == 1 else None,
        is_int8=is_int8(model),
    )


def input_chw(layer: Layer) -> tuple[int, int, int] | None:
    """C, H, W an ``Input`` layer declares (``0=w 1=h 2=c``, else its ``-23330`` shape hint), or None."""
    w, h, c = (layer.get(k, 0) for k in (param_ids.Input.W, param_ids.Input.H, param_ids.Input.C))
    hint = layer.get(param_ids.AnyLayer.SHAPE_HINTS)
    if not _positive(w, h, c) and isinstance(hint, list) and len(hint) == 4:
        _, w, h, c = hint
    return (c, h, w) if _positive(w, h, c) else None


def _positive(*values: object) -> bool:
    return all(isinstance(v, int) and v > 0 for v in values)


@dataclass(frozen=True)
class LocatedModel:
    """A build directory or a bare ``.param``, located: its files per precision and its input.

    A bare float graph runs at fp32 and fp16 (the same files, other runtime options), an INT8 graph
    at int8; its ``.bin`` is None when there is none beside it (benchmarks generate weights).
    """

    name: str  # a label: the build directory, or the .param's stem (its folder for model/net.param)
    files: dict[str, tuple[Path, Path | None]]  # precision -> (.param, .bin)
    input_name: str
    input_shape: tuple[int, int, int] | None  # C, H, W; None when a bare graph does not say
    manifest: Manifest | None = None
    graph: ParamGraph | None = None  # a bare .param's facts

    @property
    def precisions(self) -> list[str]:
        return list(self.files)

    def files_for(self, precision: str) -> tuple[Path, Path | None]:
        """The (.param, .bin) of ``precision``, or a clear error naming the precisions held."""
        if precision not in self.files:
            raise EdgekitError(
                f"{self.name}: this build has no {precision} model (it has: {', '.join(self.files)})"
            )
        return self.files[precision]


def locate_model(model: Path) -> LocatedModel:
    """Locate ``model``: a build directory (its manifest) or a bare ``.param`` (its graph).

    A folder holding no manifest but exactly one ``.param`` counts as that ``.param``.
    """
    model = Path(model)
    if is_build_dir(model):
        return _located_build(model, load_manifest(model))
    param = _bare_param(model)
    graph = read_param_graph(param)
    if len(graph.input_names) != 1:
        names = ", ".join(graph.input_names) or "none"
        raise EdgekitError(f"{param}: expected one Input layer, found {len(graph.input_names)} ({names})")
    weights = param.with_suffix(".bin")
    precisions = ("int8",) if graph.is_int8 else ("fp32", "fp16")
    return LocatedModel(
        name=param.parent.name if param.stem in ("model", "net") else param.stem,
        files={p: (param, weights if weights.is_file() else None) for p in precisions},
        input_name=graph.input_names[0],
        input_shape=graph.input_shape,
        graph=graph,
    )


def is_build_dir(model: Path) -> bool:
    """True when ``model`` is a build directory (it holds a manifest)."""
    return model.is_dir() and (model / MANIFEST_NAME).is_file()


def _located_build(model: Path, manifest: Manifest) -> LocatedModel:
    builds = manifest.builds
    shape = [int(d) for d in manifest.input.shape][-3:]
    return LocatedModel(
        name=model.name,
        files={p: (model / builds[p].param, model / builds[p].bin) for p in PRECISIONS if p in builds},
        input_name=manifest.input.ncnn_name,
        input_shape=(shape[0], shape[1], shape[2]) if len(shape) == 3 and _positive(*shape) else None,
        manifest=manifest,
    )


def _default_precision(located: LocatedModel, precision: str | None) -> str:
    if precision is None:
        return "fp32" if "fp32" in located.files else next(iter(located.files), "fp32")
    located.files_for(precision)  # a precision the build lacks: one clear line
    return precision


def _pin(model: Path, precision: str | None) -> tuple[LocatedModel, PinnedBuild]:
    """Locate a build directory and pin ``precision``'s files (see :mod:`edge.runtime.pinned`)."""
    located: list[LocatedModel] = []

    def choose(manifest: Manifest) -> tuple[str, Artifact]:
        located[:] = [_located_build(model, manifest)]
        chosen = _default_precision(located[0], precision)
        return chosen, manifest.builds[chosen]

    pinned = pin_build(model, choose)
    return located[0], pinned


def _size_from_name(path: Path) -> int | None:
    for part in (path.stem, path.parent.name):
        found = re.findall(r"[_-](\d{3,4})(?=$|[_\-.])", part)
        if found:
            return int(found[-1])
    return None


def build_precisions(model: Path) -> list[str]:
    """Precisions a model path holds: those in a build's manifest, or its default for a bare .param."""
    located = locate_model(model)
    return located.precisions if located.manifest else located.precisions[:1]


def _bare_param(model: Path) -> Path:
    if model.is_dir():
        params = sorted(model.glob("*.param"))
        if MANIFEST_NAME not in {p.name for p in model.iterdir()} and len(params) == 1:
            return params[0]
        raise EdgekitError(
            f"{model} is neither a build directory (no {MANIFEST_NAME}) nor a folder with one .param"
        )
    if not model.exists():
        raise EdgekitError(f"model not found: {model} does not exist")
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
    if is_build_dir(model):
        located, pinned = _pin(model, precision)
        assert located.manifest is not None  # a build directory is located with its manifest
        spec = _resolve_build(located, located.manifest, pinned, preset)
    else:
        located = locate_model(model)
        spec = _resolve_bare(located, precision, preset, size)
    if outputs:
        spec.outputs = {name: name for name in outputs}
        spec.decoder = dataclasses.replace(spec.decoder, layout="auto", roles={})  # other blobs: re-parse
    for path in (spec.param, spec.bin) if spec.pinned is None else ():
        if not path.is_file():
            raise EdgekitError(f"model file missing: {path}")
    return spec


def _resolve_build(located: LocatedModel, manifest: Manifest, pinned: PinnedBuild, preset: str) -> ModelSpec:
    precision = pinned.precision
    param, weights = located.files_for(precision)
    decoder = manifest.decoder
    input_spec = manifest.input
    if preset != "auto":
        decoder = decoder_spec_from_preset(preset)
        input_spec = input_spec_from_preset(preset, input_spec.ncnn_name, input_spec.width, input_spec.height)
    if decoder is None:
        raise unrecognised(f"{located.name} (its manifest has no decoder: convert did not recognise it)")
    graph = _graph_of(pinned)
    return ModelSpec(
        name=located.name,
        precision=precision,
        param=param,
        bin=weights or param.with_suffix(".bin"),
        input=input_spec,
        outputs={o.name: o.ncnn_name for o in manifest.outputs},
        decoder=decoder,
        consumed_blobs=graph.consumed_blobs,
        pinned=pinned,
    )


def _graph_of(pinned: PinnedBuild) -> ParamGraph:
    """The pinned .param's facts (errors name the build's file, not ``/proc/self/fd``)."""
    data = os.pread(pinned.param.fd, os.fstat(pinned.param.fd).st_size, 0)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise EdgekitError(
            f"{pinned.param.shown}: not a text .param (byte {err.start} is not UTF-8)"
        ) from None
    return graph_facts(NcnnModel.parse(text, None, param_name=str(pinned.param.shown)))


def _resolve_bare(
    located: LocatedModel, precision: str | None, preset: str, size: int | tuple[int, int] | None
) -> ModelSpec:
    param, bin_path = located.files_for(located.precisions[0])
    if bin_path is None:
        raise EdgekitError(f"weights missing: expected {param.with_suffix('.bin')} beside {param}")
    graph = located.graph
    assert graph is not None  # a bare .param is always located with its graph
    if isinstance(size, tuple):
        width, height = size
    elif size:
        width = height = int(size)
    elif (named := _size_from_name(param)) is not None:
        width = height = named
    elif located.input_shape is not None:
        height, width = located.input_shape[1:]
    else:
        raise EdgekitError(f"cannot tell the input size of {param}; pass --size")
    channels = located.input_shape[0] if located.input_shape is not None else 3
    chw = (channels, height, width)
    chosen = find_preset(
        recognise_bare(param, graph.output_names, graph.input_names[0], chw) if preset == "auto" else preset
    )[1].name
    return ModelSpec(
        name=located.name,
        precision=precision or located.precisions[0],
        param=param,
        bin=bin_path,
        input=input_spec_from_preset(chosen, graph.input_names[0], width, height),
        outputs={name: name for name in graph.output_names},
        decoder=decoder_spec_from_preset(chosen),
        consumed_blobs=graph.consumed_blobs,
    )
