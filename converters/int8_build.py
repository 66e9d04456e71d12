"""fp32 ncnn build + calibration images -> INT8 ncnn build and its table (``convert --int8``).

Methods: ``kl`` and ``aciq`` (ncnn2table's), ``eq`` (kl, then a per-layer input-scale search,
0.5x..2x, on layer-output cosine similarity; ncnn2table's eq also searches every weight
channel, which is not done here) and ``search`` (edgekit's: cross-layer activation
equalization of the graph, then eq's grid plus absmax, percentile and aciq candidates, then
bias correction). Any method can be combined with hand-picked
(``keep_float``), automatic (``auto_keep_float``) and all-depthwise (``float_depthwise``) fp16
layers.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from converters.calib_table import CalibrationTable, write_table
from converters.calibration import (
    Progress,
    as_progress,
    collect_statistics,
    list_images,
    quant_targets,
)
from converters.equalization import EQUALIZATION_IMAGES, channel_ranges, equalization_pairs, equalize
from converters.int8_tuning import AUTO_MAX_BIN_RATIO, AUTO_MAX_KEPT
from converters.int8_writer import write_int8_model
from converters.thresholds import (
    activation_threshold,
    layer_weight_scales,
    threshold_to_scale,
)
from edge.errors import EdgekitError
from edge.manifest import InputSpec
from edge.ncnn.model import NcnnModel
from edge.ncnn.validate import validate_files
from edge.runtime.policy import is_int8, open_build_net

METHODS = ("kl", "aciq", "eq", "search")
DEFAULT_AUTO_TARGET = 0.999  # output cosine similarity the automatic keep-float mode aims for
TUNING_IMAGES = 8  # images used for per-layer searches and sensitivity ranking


@dataclass
class Int8Result:
    """What :func:`build_int8` produced."""

    param: Path
    bin: Path
    table_path: Path
    method: str
    quantized_layers: int
    kept_float: dict[str, str] = field(default_factory=dict)  # layer -> reason
    fused_requantize: int = 0
    images: int = 0
    output_cosine: float | None = None  # INT8 vs fp32 on the tuning images (when measured)
    auto_keep_float: dict | None = None  # target, reached, cosine, kept, max_layers, stopped_by
    auto_keep_float_note: str | None = None  # one line: what the automatic keep-float reached
    equalized_blobs: int = 0  # blobs whose channel ranges were equalized before calibration
    timings: dict[str, float] = field(default_factory=dict)  # wall seconds per stage, and "total"
    cpu_timings: dict[str, float] = field(default_factory=dict)  # CPU seconds of this process, same keys


class Stopwatch:
    """Wall and CPU seconds per stage (CPU time shows the work when other jobs share the cores)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._start = self._last = (time.perf_counter(), time.process_time())

    def lap(self, stage: str) -> None:
        """Charge the time since the previous lap to ``stage``."""
        now = (time.perf_counter(), time.process_time())
        self.wall[stage] = self.wall.get(stage, 0.0) + now[0] - self._last[0]
        self.cpu[stage] = self.cpu.get(stage, 0.0) + now[1] - self._last[1]
        self._last = now

    def finish(self) -> None:
        """Record the totals since the stopwatch started."""
        self.wall["total"] = self._last[0] - self._start[0]
        self.cpu["total"] = self._last[1] - self._start[1]


def table_from_stats(model: NcnnModel, stats, method: str) -> CalibrationTable:
    """ncnn2table's table for ``method`` (kl or aciq; eq and search start from kl)."""
    base = "aciq" if method == "aciq" else "kl"
    table = CalibrationTable(comments=[f"edgekit INT8 table, method {method}, {len(stats.images)} images"])
    for target in stats.targets:
        layer = model.layer(target.layer)
        weight = layer.weight("weight").array
        table.weight_scales[layer.name] = layer_weight_scales(layer.type, layer.params, weight, base)
        blob = stats.blobs[layer.name]
        threshold = activation_threshold(base, blob.histogram, blob.hist_range, blob.absmax, blob.count)
        table.input_scales[layer.name] = threshold_to_scale(threshold)
    return table


def apply_keep_float(model: NcnnModel, table: CalibrationTable, layers: list[str], reason: str) -> None:
    """Keep ``layers`` in floating point; unknown or unquantizable names are errors."""
    known = {layer.name: layer.type for layer in model.layers}
    for name in layers:
        if name not in known:
            raise EdgekitError(f"--keep-float {name}: the model has no layer with that name")
        if name not in table.input_scales and name not in table.kept_float:
            raise EdgekitError(f"--keep-float {name}: a {known[name]} layer is not quantized anyway")
        table.keep_float(name, reason)


@dataclass
class Calibration:
    """A table and the statistics behind it (the fp32 net stays loaded for tuning)."""

    model: NcnnModel
    net: object  # ncnn.Net of the fp32 model
    table: CalibrationTable
    stats: object  # converters.calibration.CalibrationStats
    images: list[Path]
    clock: Stopwatch
    equalized_blobs: int = 0

    @property
    def timings(self) -> dict[str, float]:
        """Wall seconds per stage so far."""
        return self.clock.wall

    def close(self) -> None:
        self.net.clear()


def calibrate(
    fp32_param: Path,
    fp32_bin: Path,
    input_spec: InputSpec,
    images: Path,
    *,
    method: str = "kl",
    num_images: int | None = None,
    equalize_channels: bool = False,
    threads: int = 1,
    progress: Progress | None = None,
) -> Calibration:
    """Run the fp32 model over the images and choose scales by ``method``.

    ``equalize_channels`` first rewrites the graph by cross-layer activation equalization
    (:mod:`converters.equalization`); the table then describes that graph, which
    :attr:`Calibration.model` holds, not the file it was read from.
    """
    from converters import int8_tuning

    if method not in METHODS:
        raise EdgekitError(f"unknown INT8 method {method!r} (expected one of {', '.join(METHODS)})")
    progress = as_progress(progress)
    clock = Stopwatch()
    image_paths = list_images(Path(images), num_images)
    model = validate_files(fp32_param, fp32_bin)
    if is_int8(model):
        raise EdgekitError(f"{fp32_param} is already INT8; calibrate the fp32 model")
    net = open_build_net(fp32_param, fp32_bin, "fp32", threads=threads)
    try:
        targets = quant_targets(net)
        if not targets:
            raise EdgekitError(
                f"{fp32_param} has no Convolution, ConvolutionDepthWise or InnerProduct layer to quantize"
            )
        equalized = 0
        if equalize_channels:
            if progress:
                progress("equalizing channel ranges", 0, min(EQUALIZATION_IMAGES, len(image_paths)))
            model, net, equalized = _equalized(model, net, input_spec, image_paths, threads)
            targets = quant_targets(net)
            clock.lap("equalization")
        stats = collect_statistics(net, input_spec, image_paths, targets=targets, progress=progress)
        clock.lap("statistics")
        table = table_from_stats(model, stats, method)
        clock.lap("thresholds")
        if method in ("eq", "search"):
            tuner = int8_tuning.Tuner(
                model, net, input_spec, image_paths[:TUNING_IMAGES], stats, threads=threads
            )
            tuner.search_input_scales(
                table, objective="cosine" if method == "eq" else "search", progress=progress
            )
            clock.lap("search")
    except BaseException:
        net.clear()
        raise
    if equalized:
        table.comments.append(
            f"scales of the channel-equalized graph ({equalized} blobs rescaled): use with this INT8 build,"
            " not with the unequalized fp32 model"
        )
    return Calibration(model, net, table, stats, image_paths, clock, equalized)


def _equalized(
    model: NcnnModel, net: object, spec: InputSpec, images: list[Path], threads: int
) -> tuple[NcnnModel, object, int]:
    """The equalized model and a net running it (the old net is cleared), and the blob count."""
    pairs = equalization_pairs(model)
    if not pairs:
        return model, net, 0
    blobs = [source.outputs[0] for source, _ in pairs]
    ranges = channel_ranges(net, spec, images[:EQUALIZATION_IMAGES], blobs)
    equalized_model, count = equalize(model, ranges)
    if not count:
        return model, net, 0
    with tempfile.TemporaryDirectory(prefix="edgekit-equalized-") as tmp:
        param, binf = Path(tmp) / "model.param", Path(tmp) / "model.bin"
        equalized_model.write(param, binf)
        equalized_net = open_build_net(param, binf, "fp32", threads=threads)
    net.clear()
    return equalized_model, equalized_net, count


def build_int8(
    fp32_param: Path,
    fp32_bin: Path,
    input_spec: InputSpec,
    images: Path,
    out_param: Path,
    out_bin: Path,
    table_path: Path,
    *,
    method: str = "kl",
    num_images: int | None = None,
    keep_float: list[str] | None = None,
    auto_keep_float: bool | float = False,
    max_keep_float: int = AUTO_MAX_KEPT,
    float_depthwise: bool = False,
    auto_max_bin_ratio: float | None = AUTO_MAX_BIN_RATIO,
    bias_correction: bool | None = None,
    equalize_channels: bool | None = None,
    threads: int = 1,
    progress: Progress | None = None,
) -> Int8Result:
    """Calibrate ``fp32_param``/``fp32_bin`` on ``images`` and write the INT8 model and its table.

    ``auto_keep_float``: True (target cosine 0.999) or a target in (0, 1): keep the fewest most
    sensitive layers in fp16 so the outputs reach that cosine similarity with fp32 on the
    tuning images, at most ``max_keep_float`` layers and keeping the INT8 .bin under
    ``auto_max_bin_ratio`` of the fp16 one (the result says when the target was not reached).
    ``float_depthwise`` keeps every ConvolutionDepthWise float: ncnn's int8
    depthwise kernels are far slower than fp32 on x86, so this is the faster INT8 graph there
    (at a slightly larger .bin). ``bias_correction`` and ``equalize_channels`` (cross-layer
    activation equalization) default to on for ``search``, off otherwise.
    """
    from converters import int8_tuning

    target = _auto_target(auto_keep_float)
    if max_keep_float < 0:
        raise EdgekitError(f"--max-keep-float must be 0 or more, got {max_keep_float}")
    progress = as_progress(progress)
    cal = calibrate(
        fp32_param,
        fp32_bin,
        input_spec,
        images,
        method=method,
        num_images=num_images,
        equalize_channels=(method == "search") if equalize_channels is None else equalize_channels,
        threads=threads,
        progress=progress,
    )
    model, table, clock = cal.model, cal.table, cal.clock
    try:
        if keep_float:
            apply_keep_float(model, table, keep_float, "requested (--keep-float)")
        if float_depthwise:
            depthwise = [
                ly.name
                for ly in model.layers
                if ly.type == "ConvolutionDepthWise" and ly.name in table.input_scales
            ]
            apply_keep_float(
                model, table, depthwise, "depthwise kept float (ncnn's int8 depthwise is slow on x86)"
            )
        use_bias = (method == "search") if bias_correction is None else bias_correction
        deltas = int8_tuning.bias_corrections(model, table, cal.stats) if use_bias else None
        clock.lap("bias_correction")
        outcome = None
        if target is not None:
            tuner = int8_tuning.Tuner(
                model, cal.net, input_spec, cal.images[:TUNING_IMAGES], cal.stats, threads=threads
            )
            outcome = tuner.auto_keep_float(
                table,
                target,
                bias_deltas=deltas,
                max_layers=max_keep_float,
                max_bin_ratio=auto_max_bin_ratio,
                progress=progress,
            )
            clock.lap("keep_float")
    finally:
        cal.close()
    int8_model, report = write_int8_model(model, table, bias_deltas=deltas)
    int8_model.write(out_param, out_bin)
    write_table(table, table_path)
    check = open_build_net(out_param, out_bin, "int8")
    check.clear()
    clock.lap("write")
    clock.finish()
    return Int8Result(
        param=Path(out_param),
        bin=Path(out_bin),
        table_path=Path(table_path),
        method=method,
        quantized_layers=len(report.quantized),
        kept_float=dict(table.kept_float),
        fused_requantize=len(report.fused),
        images=len(cal.images),
        output_cosine=outcome.cosine if outcome else None,
        auto_keep_float=outcome.to_dict() if outcome else None,
        auto_keep_float_note=outcome.describe() if outcome else None,
        equalized_blobs=cal.equalized_blobs,
        timings=clock.wall,
        cpu_timings=clock.cpu,
    )


def _auto_target(auto_keep_float: bool | float) -> float | None:
    if auto_keep_float is False or auto_keep_float is None:
        return None
    if auto_keep_float is True:
        return DEFAULT_AUTO_TARGET
    target = float(auto_keep_float)
    if not 0.0 < target < 1.0:
        raise EdgekitError(f"automatic keep-float target must be a cosine similarity in (0, 1), got {target}")
    return target
