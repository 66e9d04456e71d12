"""``edgekit convert``: ONNX -> checked, simplified ONNX -> verified ncnn fp32/fp16 builds + manifest."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from converters.cut import plan_cut
from converters.divergence import Divergence, locate_divergence
from converters.graph_repair import repair_known_gaps
from converters.int8_tuning import AUTO_MAX_KEPT
from converters.ncnn_graph_check import check_supported
from converters.ncnn_run import run_outputs
from converters.onnx_check import graph_outputs, load_onnx, resolve_input_shape
from converters.parity import (
    DEFAULT_VERIFY_IMAGES,
    THRESHOLDS,
    OutputAgreement,
    ParityInputs,
    compare,
    make_inputs,
    onnxruntime_session,
    summarise,
)
from converters.pnnx_runner import find_pnnx, pnnx_version, run_pnnx
from converters.preset_detect import detect_preset
from converters.simplify import simplify
from converters.zoo import source_weights
from edge.atomic import refuse_overwrite, staged_directory, write_json
from edge.checksums import sha256_file
from edge.decoders import settle_decoder
from edge.decoders.spec import DecoderSpec
from edge.errors import ParityError
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
    """Run the ncnn build on ``inputs`` and compare every output with onnxruntime's."""
    net = open_build_net(param, binf, precision, input_shapes={spec.ncnn_name: tuple(spec.shape[1:])})
    agreement = {o.name: OutputAgreement() for o in outputs}
    try:
        for tensor, ref in zip(inputs.tensors, references, strict=True):
            got = run_outputs(net, spec.ncnn_name, tensor, [o.ncnn_name for o in outputs])
            for out, r, g in zip(outputs, ref, got, strict=True):
                cos, err = compare(r, g)
                a = agreement[out.name]
                a.cosine, a.max_abs = min(a.cosine, cos), max(a.max_abs, err)
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
) -> ConvertResult:
    """Convert ``onnx_path`` into a verified build directory ``out_dir``; see the module doc."""
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    out_dir = Path(out_dir)
    refuse_overwrite(out_dir, force)
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
    timings["check_simplify"] = time.perf_counter() - clock

    onnx_outputs = graph_outputs(simplified)
    found, decoder, meanings = detect_preset(preset, onnx_outputs, shape)
    if cut is not None:
        cut.replaced_by = decoder.family if decoder is not None else None
    spec = _input_spec(input_name, shape, found)
    reference_session = onnxruntime_session(simplified)
    inputs = make_inputs(spec, verify_images, verify_num)
    say(f"checking parity on {inputs.describe()}")
    references = [reference_session.run(None, {input_name: t}) for t in inputs.tensors]
    outputs = [
        OutputSpec(name=o.name, ncnn_name=f"out{i}", shape=[int(d) for d in o.shape], meaning=meanings[i])
        for i, o in enumerate(onnx_outputs)
    ]
    onnx_ops = {n.op_type for n in simplified.graph.node}

    builds: dict[str, Artifact] = {}
    divergence = None
    with staged_directory(out_dir, force) as stage:
        work = stage / ".work"
        for precision in ("fp32", "fp16") if fp16 else ("fp32",):
            say(f"converting {precision} with pnnx")
            t0 = time.perf_counter()
            produced = run_pnnx(simplified, shape, work / precision, fp16=precision == "fp16")
            check_supported(produced.param, onnx_ops)
            param, binf = stage / f"model.{precision}.param", stage / f"model.{precision}.bin"
            shutil.move(produced.param, param)
            shutil.move(produced.bin, binf)
            timings[f"pnnx_{precision}"] = time.perf_counter() - t0
            say(f"verifying {precision} against onnxruntime")
            t0 = time.perf_counter()
            parity = measure_parity(param, binf, precision, spec, outputs, inputs, references)
            timings[f"verify_{precision}"] = time.perf_counter() - t0
            if not parity.passed and precision == "fp32":
                say("locating the first divergent layer")
                divergence = locate_divergence(simplified, input_name, shape, inputs, work / "bisect")
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
            worst = builds[failed[0]].parity
            where = f"; {divergence.describe()}" if divergence else ""
            raise ParityError(
                f"{failed[0]} build misses parity with onnxruntime: cosine {worst.cosine:.6f} "
                f"< {THRESHOLDS[failed[0]]}, max abs error {worst.max_abs:.4g}{where}"
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
            conversion={"cut": cut.to_dict()} if cut is not None else {},
            notes=repairs
            + ([cut.note()] if cut is not None else [])
            + ([GENERATED_WEIGHTS_NOTE] if weights and weights.startswith("generated") else [])
            + [f"{p} build misses parity (kept because of --no-verify)" for p in failed]
            + [b.details["speed_note"] for b in builds.values() if "speed_note" in b.details],
        )
        write_json(stage / MANIFEST_NAME, manifest_to_dict(manifest))
    timings["total"] = time.perf_counter() - clock
    return ConvertResult(out_dir / MANIFEST_NAME, manifest, timings, divergence, inputs.describe())
