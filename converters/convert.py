"""``edgekit convert``: ONNX -> checked, simplified ONNX -> verified ncnn fp32/fp16 builds + manifest."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from converters.cut import plan_cut
from converters.divergence import Divergence, locate_divergence, refusal
from converters.float_build import simplification_check, write_float_build
from converters.fp16_repair import rescale_for_fp16
from converters.fp16_sensitive import fp32_twin, keep_sensitive_layers
from converters.graph_repair import repair_known_gaps
from converters.input_options import Preprocessing, apply_preprocessing, guessed_note
from converters.int8_tuning import AUTO_MAX_KEPT
from converters.ncnn_run import run_outputs
from converters.ncnn_tidy import user_terms
from converters.onnx_check import graph_outputs, load_onnx, resolve_input_shape, with_shapes
from converters.parity import (
    DEFAULT_VERIFY_IMAGES,
    OutputAgreement,
    ParityInputs,
    abs_error_notes,
    make_inputs,
    reference_outputs,
    summarise,
)
from converters.pnnx_runner import find_pnnx, pnnx_version
from converters.preset_detect import detect_preset
from converters.rank5 import rewrite_rank5
from converters.report import ConversionReport
from converters.simplify import simplify
from converters.zoo import source_weights
from edge.atomic import staged_directory, write_json
from edge.build_guard import check_build_target, check_replaceable
from edge.checksums import sha256_file
from edge.decoders import settle_decoder
from edge.decoders.spec import DecoderSpec
from edge.errors import ParityError
from edge.isolate import NativeCrash, run_isolated
from edge.manifest import (
    GENERATED_WEIGHTS_NOTE,
    MANIFEST_NAME,
    NCNN,
    Artifact,
    FileRecord,
    InputSpec,
    Manifest,
    OutputSpec,
    Parity,
    input_spec_from_preset,
    manifest_to_dict,
)
from edge.runtime.crash_locate import with_crashing_layer
from edge.runtime.policy import open_build_net

Progress = Callable[[str], None]
PNNX_INPUT = "in0"


@dataclass
class Int8Options:
    """How ``convert --int8`` calibrates and quantizes."""

    calib_images: Path
    method: str = "search"
    num_images: int | None = None
    keep_float: list[str] = field(default_factory=list)
    auto_keep_float: float | bool = True  # True: reach output cosine 0.999 with the fewest fp16 layers
    float_depthwise: bool = False  # keep depthwise convs in fp16 (faster INT8 on x86, slightly larger)
    max_keep_float: int = AUTO_MAX_KEPT  # cap of the automatic keep-float mode


@dataclass
class ConvertResult:
    """What convert produced: the manifest (and its path) plus step timings in seconds."""

    manifest_path: Path
    manifest: Manifest
    timings: dict[str, float] = field(default_factory=dict)
    divergence: Divergence | None = None
    parity_inputs: str = ""  # what parity was checked on, e.g. "all 6 images in images/"
    report: ConversionReport = field(default_factory=ConversionReport)


def _tool_versions(pnnx_exe: Path) -> dict[str, str]:
    import edge

    tools = {"edgekit": edge.__version__, "pnnx": pnnx_version(pnnx_exe)}
    for dist in ("ncnn", "onnx", "onnxsim", "onnxruntime", "numpy", "opencv-python-headless"):
        try:
            tools[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return tools


def _input_spec(name: str, shape: list[int], preset: str | None) -> InputSpec:
    if preset is None:  # generic CNN: pixels scaled to [0, 1]
        return InputSpec(name=name, ncnn_name=PNNX_INPUT, shape=shape, mean=[0.0] * 3, norm=[1 / 255] * 3)
    spec = input_spec_from_preset(preset, PNNX_INPUT, shape[3], shape[2])
    spec.name = name
    return spec


def measure_parity(
    param: Path,
    binf: Path,
    precision: str,
    spec: InputSpec,
    outputs: list[OutputSpec],
    inputs: ParityInputs,
    references: list[list[np.ndarray]],
) -> Parity:
    """Run the ncnn build on ``inputs`` and compare every output with onnxruntime's (in a child:
    a crash of ncnn is one clear line naming the build, see :func:`edge.isolate.run_isolated`)."""
    args = (param, binf, precision, spec, outputs, inputs, references)
    try:
        return run_isolated(f"ncnn (loading and running the {precision} build)", _measure_parity, *args)
    except NativeCrash as crash:
        tensor = inputs.tensors[0][0]
        raise with_crashing_layer(crash, param, binf, precision, spec.ncnn_name, tensor) from None


def _measure_parity(
    param: Path,
    binf: Path,
    precision: str,
    spec: InputSpec,
    outputs: list[OutputSpec],
    inputs: ParityInputs,
    references: list[list[np.ndarray]],
) -> Parity:
    net = open_build_net(param, binf, precision, input_shapes={spec.ncnn_name: tuple(spec.shape[1:])})
    agreement = {o.name: OutputAgreement() for o in outputs}
    try:
        for tensor, ref in zip(inputs.tensors, references, strict=True):
            got = run_outputs(net, spec.ncnn_name, tensor, [o.ncnn_name for o in outputs])
            for out, r, g in zip(outputs, ref, got, strict=True):
                agreement[out.name].add(r, g)
    finally:
        net.clear()
    return summarise(agreement, inputs, precision)


def _file_record(path: Path) -> FileRecord:
    return FileRecord(path=path.name, sha256=sha256_file(path), bytes=path.stat().st_size)


def _build_files(param: Path, binf: Path, parity: Parity | None) -> Artifact:
    files = {"param": _file_record(param), "bin": _file_record(binf)}
    return Artifact(files=files, size_bytes=sum(f.bytes for f in files.values()), parity=parity)


def settle_layout(
    param: Path,
    binf: Path,
    spec: InputSpec,
    outputs: list[OutputSpec],
    tensor: np.ndarray,
    decoder: DecoderSpec,
) -> DecoderSpec:
    """Run the fp32 build once and let the family's parsers settle the layout, roles and config."""
    net = open_build_net(param, binf, "fp32", input_shapes={spec.ncnn_name: tuple(spec.shape[1:])})
    try:
        got = run_outputs(net, spec.ncnn_name, tensor, [o.ncnn_name for o in outputs])
    finally:
        net.clear()
    return settle_decoder(
        {o.name: g for o, g in zip(outputs, got, strict=True)},
        decoder,
        spec.width,
        spec.height,
        {o.name: o.ncnn_name for o in outputs},
    )


def _int8_build(
    stage: Path,
    spec: InputSpec,
    outputs: list[OutputSpec],
    inputs: ParityInputs,
    references: list[list[np.ndarray]],
    options: Int8Options,
    say: Progress,
) -> Artifact:
    """Calibrate the fp32 build, write the INT8 build and its table, verify it, time it here."""
    from converters.int8_build import build_int8
    from converters.speed_check import compare_int8_speed, int8_speed_note

    param, binf = stage / "model.int8.param", stage / "model.int8.bin"
    result = build_int8(
        stage / "model.fp32.param",
        stage / "model.fp32.bin",
        spec,
        options.calib_images,
        param,
        binf,
        stage / "calibration.table",
        method=options.method,
        num_images=options.num_images,
        keep_float=options.keep_float or None,
        auto_keep_float=options.auto_keep_float,
        max_keep_float=options.max_keep_float,
        float_depthwise=options.float_depthwise,
        progress=say,
    )
    say("verifying int8 against onnxruntime")
    parity = measure_parity(param, binf, "int8", spec, outputs, inputs, references)
    build = _build_files(param, binf, parity)
    say("timing int8 against fp16 on this machine (interleaved, 1 thread)")
    baseline = "fp16" if (stage / "model.fp16.param").is_file() else "fp32"
    speed = compare_int8_speed(
        {p: (stage / f"model.{p}.param", stage / f"model.{p}.bin") for p in (baseline, "int8")},
        baseline,
        spec.ncnn_name,
        spec.shape,
        [o.ncnn_name for o in outputs],
    )
    timed = {baseline: speed.base_ms, "int8": speed.int8_ms}
    build.details = {
        "table": result.table_path.name,
        "method": result.method,
        "calibration_images": result.images,
        "calibration_source": Path(options.calib_images).resolve().name,
        "quantized_layers": result.quantized_layers,
        "fused_requantize": result.fused_requantize,
        "kept_float": result.kept_float,
        "equalized_blobs": result.equalized_blobs,
        **({"auto_keep_float": result.auto_keep_float} if result.auto_keep_float else {}),
        **({"auto_keep_float_note": result.auto_keep_float_note} if result.auto_keep_float_note else {}),
        "latency_here_ms": {p: round(v, 2) for p, v in timed.items()},
        "latency_threads": speed.threads,
        "speed_here": speed.to_dict(),
    }
    build.details["speed_note"] = int8_speed_note(speed)
    return build


def convert_onnx(
    onnx_path: Path,
    out_dir: Path,
    *,
    input_shape: list[int] | None = None,
    preset: str = "auto",
    fp16: bool = True,
    verify_images: Path | None = None,
    verify_num: int | None = DEFAULT_VERIFY_IMAGES,
    verify: bool = True,
    force: bool = False,
    int8: Int8Options | None = None,
    progress: Progress | None = None,
    cut_at: list[str] | None = None,
    preprocessing: Preprocessing | None = None,
) -> ConvertResult:
    """Convert ``onnx_path`` into a verified build directory ``out_dir``; see the module doc."""
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    out_dir = Path(out_dir)
    # inputs of this run that --force must never delete with the directory it replaces
    protected = [Path(p) for p in (onnx_path, verify_images, int8.calib_images if int8 else None) if p]
    check_build_target(out_dir, force, protected)
    pnnx_exe = find_pnnx()
    if int8 is not None:  # an empty or missing calibration folder fails now, not after the float builds
        from converters.calibration import list_images

        list_images(Path(int8.calib_images), int8.num_images)

    say("checking ONNX")
    model = load_onnx(Path(onnx_path))
    input_name, shape = resolve_input_shape(model, input_shape)
    weights = source_weights(model)
    model, cut = plan_cut(model, input_name, shape, preset, cut_at)
    say("simplifying with onnxsim")
    simplified = simplify(model, input_name, shape)
    simplified, repairs = repair_known_gaps(simplified)
    simplified, rewritten = rewrite_rank5(simplified)
    report = ConversionReport(repairs=repairs + rewritten)
    timings["check_simplify"] = time.perf_counter() - clock

    # output shapes as the user's file really gives them (declared dims may be names, -1, 0 or absent)
    probe = reference_outputs(model, input_name, [np.zeros(shape, np.float32)])[0]
    onnx_outputs = with_shapes(graph_outputs(simplified), [p.shape for p in probe])
    found, decoder, meanings = detect_preset(preset, onnx_outputs, shape)
    if cut is not None:
        cut.replaced_by = decoder.family if decoder is not None else None
    spec, report.preprocessing = apply_preprocessing(
        _input_spec(input_name, shape, found), preprocessing, found is not None
    )
    inputs = make_inputs(spec, verify_images, verify_num)
    say(f"checking parity on {inputs.describe()}")
    # the reference is the user's own graph (after a cut), never edgekit's simplified one
    references = reference_outputs(model, input_name, inputs.tensors)
    outputs = [
        OutputSpec(name=o.name, ncnn_name=f"out{i}", shape=[int(d) for d in o.shape], meaning=meanings[i])
        for i, o in enumerate(onnx_outputs)
    ]
    fp16_graph, rescaled = rescale_for_fp16(simplified) if fp16 else (simplified, [])
    report.repairs += rescaled

    builds: dict[str, Artifact] = {}
    divergence = None  # of the first build that misses parity and where one is found
    with staged_directory(out_dir, force, lambda target: check_replaceable(target, protected)) as stage:
        work = stage / ".work"
        for precision in ("fp32", "fp16") if fp16 else ("fp32",):
            say(f"converting {precision} with pnnx")
            t0 = time.perf_counter()
            graph = fp16_graph if precision == "fp16" else simplified
            param, binf = write_float_build(graph, shape, stage, precision, Path(onnx_path), report)
            timings[f"pnnx_{precision}"] = time.perf_counter() - t0
            say(f"verifying {precision} against onnxruntime")
            t0 = time.perf_counter()
            with user_terms(stage, Path(onnx_path)):
                parity = measure_parity(param, binf, precision, spec, outputs, inputs, references)
            timings[f"verify_{precision}"] = time.perf_counter() - t0
            fp32_build = stage / "model.fp32.param", stage / "model.fp32.bin"
            if not parity.passed and precision == "fp16":
                say("keeping the fp16 build's most rounding-sensitive layers in fp32 storage")
                fp32_build = fp32_twin(graph, shape, stage, work, bool(rescaled))
                parity, kept = keep_sensitive_layers(
                    (param, binf),
                    fp32_build,
                    parity,
                    (spec.ncnn_name, [o.ncnn_name for o in outputs]),
                    inputs,
                    references,
                    partial(measure_parity, param, binf, "fp16", spec, outputs, inputs, references),
                    work / "fp16_keep",
                )
                report.kept_precision += kept
            if not parity.passed and divergence is None:
                say(f"locating the first divergent layer of the {precision} build")
                divergence = locate_divergence(
                    graph, input_name, shape, inputs, work / "bisect", precision, fp32_build
                )
            builds[precision] = _build_files(param, binf, parity)
            if decoder is not None and precision == "fp32":
                decoder = settle_layout(param, binf, spec, outputs, inputs.tensors[0], decoder)
        if int8 is not None:
            t0 = time.perf_counter()
            builds["int8"] = _int8_build(stage, spec, outputs, inputs, references, int8, say)
            timings["int8"] = time.perf_counter() - t0
        shutil.rmtree(work, ignore_errors=True)

        failed = [p for p, b in builds.items() if not b.parity.passed]
        if failed and verify:
            raise ParityError(
                refusal({p: builds[p].parity for p in failed}, divergence)
                + simplification_check(references, simplified, input_name, inputs.tensors)
            )
        source = _file_record(Path(onnx_path))
        manifest = Manifest(
            source={"file": source.path, "sha256": source.sha256, "bytes": source.bytes}
            | ({"weights": weights} if weights else {}),
            input=spec,
            outputs=outputs,
            decoder=decoder,
            artifacts={NCNN: builds},
            tools=_tool_versions(pnnx_exe),
            conversion=({"cut": cut.to_dict()} if cut is not None else {}) | {"report": report.to_dict()},
            notes=report.notes()
            + ([note] if (note := guessed_note(spec, report.preprocessing)) else [])
            + ([cut.note()] if cut is not None else [])
            + ([GENERATED_WEIGHTS_NOTE] if weights and weights.startswith("generated") else [])
            + [note for p, b in builds.items() for note in abs_error_notes(b.parity, p)]
            + [f"{p} build misses parity (kept because of --no-verify)" for p in failed]
            + [b.details["speed_note"] for b in builds.values() if "speed_note" in b.details],
        )
        write_json(stage / MANIFEST_NAME, manifest_to_dict(manifest))
    timings["total"] = time.perf_counter() - clock
    return ConvertResult(out_dir / MANIFEST_NAME, manifest, timings, divergence, inputs.describe(), report)
