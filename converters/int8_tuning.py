"""INT8 accuracy work beyond ncnn2table: threshold search, bias correction, automatic keep-float.

- :meth:`Tuner.search_input_scales`: per layer, try candidate input scales and keep the one
  whose INT8 layer output (ncnn's own int8 kernel, run on the fp32 input of a few calibration
  images) has the highest cosine similarity with the fp32 output. ``cosine`` (eq) tries
  ncnn2table's eq range, 0.5x..2x of kl's scale; ``search`` (edgekit) adds absmax,
  percentile (99.9/99.99/99.999 %) and aciq candidates. (Scoring by relative squared error
  instead was measured worse on COCO mAP.)
- :func:`bias_corrections`: weight rounding shifts each output channel's mean by
  ``sum(dW * E[x])``; subtract it (E[x] = per-channel input means from calibration).
- :meth:`Tuner.auto_keep_float`: rank layers by the output similarity each gains when it alone
  goes back to float (every layer on 2 images, the best and the boundary layers again on all
  tuning images), then keep
  the most sensitive ones in fp16, each only if it raises the similarity, until the whole INT8
  model reaches the target cosine similarity with fp32 or the cap (``max_layers``) is hit.
"""

from __future__ import annotations

import contextlib
import copy
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ncnn
import numpy as np

from converters.calib_table import CalibrationTable
from converters.calibration import QUANTIZABLE_TYPES, CalibrationStats, iter_blob_arrays, load_tensors
from converters.int8_writer import dequantized_weight, write_int8_model
from converters.thresholds import aciq_gaussian_clip, percentile_threshold, threshold_to_scale
from edge.errors import EdgekitError
from edge.manifest import InputSpec
from edge.ncnn import param_ids
from edge.ncnn.model import Layer, NcnnModel
from edge.runtime.policy import ncnn_options, open_build_net

Progress = Callable[[str, int, int], None]
EQ_STEPS = 16  # candidate scales between 0.5x and 2x of kl's for eq
SEARCH_PERCENTILES = (0.999, 0.9999, 0.99999)
AUTO_MAX_KEPT = 16  # default cap: automatic keep-float keeps at most this many layers (--max-keep-float)
AUTO_MAX_BIN_RATIO = 0.54  # ... nor lets the INT8 .bin exceed this fraction of the fp16 .bin
RANK_IMAGES = 2  # tuning images the coarse sensitivity ranking runs on (then refined on all)
KEEP_ONLY_GAINS = True  # keep a shortlisted layer only if it raises the whole model's cosine
SAMPLE_CHUNK = 16  # layers whose fp32 inputs/outputs are held at once during a search


def bias_corrections(
    model: NcnnModel, table: CalibrationTable, stats: CalibrationStats
) -> dict[str, np.ndarray]:
    """Per-output bias deltas cancelling the mean shift that weight rounding causes."""
    deltas = {}
    for name in table.input_scales:
        layer = model.layer(name)
        mean = stats.blobs[name].channel_mean if name in stats.blobs else None
        if mean is None:
            continue
        weight = layer.weight("weight").array.astype(np.float32)
        error = dequantized_weight(weight, table.weight_scales[name]) - weight
        delta = _expected_output_shift(layer, error, mean)
        if delta is not None:
            deltas[name] = -delta.astype(np.float32)
    return deltas


def _expected_output_shift(layer: Layer, error: np.ndarray, mean: np.ndarray) -> np.ndarray | None:
    num_output = int(layer.get(param_ids.Convolution.NUM_OUTPUT, 0))  # InnerProduct's too
    if layer.type == "InnerProduct":
        rows = error.reshape(num_output, -1)
        return rows @ mean if mean.size == rows.shape[1] else None
    group = (
        int(layer.get(param_ids.ConvolutionDepthWise.GROUP, 1)) if layer.type == "ConvolutionDepthWise" else 1
    )
    channels = mean.size
    if channels % group or num_output % group:
        return None
    per_group = error.reshape(group, num_output // group, channels // group, -1).sum(axis=3)
    return np.einsum("goi,gi->go", per_group, mean.reshape(group, -1)).reshape(-1)


def _norm(a: np.ndarray) -> float:
    flat = a.reshape(-1)
    return math.sqrt(float(flat @ flat))


def _cosine(a: np.ndarray, b: np.ndarray, norm_a: float | None = None) -> float:
    """Cosine similarity, computed as ``1 - (|a-b|^2 - (|a|-|b|)^2) / (2|a||b|)`` in float32.

    The difference form keeps float32 dot products accurate to ~1e-8 where the direct
    ``a.b / (|a||b|)`` loses ~1e-5 on a million elements, and it runs ~7x faster than the
    float64 version (this is the inner loop of the threshold search). ``norm_a``: |a| when known.
    """
    a = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
    b = np.ascontiguousarray(b, dtype=np.float32).reshape(-1)
    na = _norm(a) if norm_a is None else norm_a
    nb = _norm(b)
    if na == 0.0 or nb == 0.0:
        return 1.0
    diff = a - b
    return 1.0 - (float(diff @ diff) - (na - nb) ** 2) / (2.0 * na * nb)


def candidate_outputs(
    layer: Layer,
    weight_scales: np.ndarray,
    input_scales: list[float],
    inputs: list[np.ndarray],
    threads: int = 1,
) -> list[list[np.ndarray]]:
    """``layer`` run by ncnn's own int8 kernel with each input scale: ``[scale][sample] -> output``.

    One small net holds a copy of the layer per candidate behind a Split, so every candidate
    sees the same fp32 input and is computed exactly as in the final INT8 model.
    """
    n = len(input_scales)
    layers = [Layer("Input", "in", [], ["in"], {})]
    sources = ["in"] if n == 1 else [f"in_{i}" for i in range(n)]
    if n > 1:
        layers.append(Layer("Split", "split", ["in"], sources, {}))
    table = CalibrationTable()
    for i, (source, scale) in enumerate(zip(sources, input_scales, strict=True)):
        name = f"cand{i}"
        layers.append(
            Layer(layer.type, name, [source], [f"out_{i}"], dict(layer.params), copy.deepcopy(layer.weights))
        )
        table.weight_scales[name] = np.asarray(weight_scales, dtype=np.float32)
        table.input_scales[name] = float(scale)
    mini, _ = write_int8_model(NcnnModel(layers), table, fuse_requantize=False)
    with tempfile.TemporaryDirectory(prefix="edgekit-cand-") as tmp:
        param, binf = Path(tmp) / "c.param", Path(tmp) / "c.bin"
        mini.write(param, binf)
        net = open_build_net(param, binf, "int8", threads=threads, lightmode=False)
    try:
        results: list[list[np.ndarray]] = [[] for _ in range(n)]
        for x in inputs:
            src = np.ascontiguousarray(x, dtype=np.float32)
            mat = ncnn.Mat(src)  # wraps src, which stays referenced until the extractor is gone
            ex = net.create_extractor()
            ex.input("in", mat)
            for i in range(n):
                ret, out = ex.extract(f"out_{i}")
                if ret != 0:
                    raise EdgekitError(f"ncnn's int8 {layer.type} failed on layer {layer.name!r}")
                results[i].append(np.array(out, copy=True))
            del ex, mat, src
        return results
    finally:
        net.clear()


@dataclass
class KeepFloatOutcome:
    """What :meth:`Tuner.auto_keep_float` achieved, and why it stopped where it did."""

    target: float
    start_cosine: float  # the all-INT8 model (after search and bias correction)
    cosine: float  # with the kept layers
    kept: int
    max_layers: int
    stopped_by: str | None = None  # None when the target was reached, else the reason

    @property
    def reached(self) -> bool:
        return self.cosine >= self.target

    def describe(self) -> str:
        """One line for the convert summary and the manifest."""
        head = f"auto keep-float: {self.kept} layer(s) kept in fp16, output cosine {self.cosine:.5f}"
        if self.reached:
            return f"{head} >= target {self.target}"
        return f"{head} < target {self.target}: target NOT reached ({self.stopped_by})"

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "reached": self.reached,
            "cosine": round(self.cosine, 6),
            "start_cosine": round(self.start_cosine, 6),
            "kept": self.kept,
            "max_layers": self.max_layers,
            "stopped_by": self.stopped_by,
        }


class Tuner:
    """Search-based INT8 tuning on a few calibration images."""

    def __init__(
        self,
        model: NcnnModel,
        net: ncnn.Net,
        spec: InputSpec,
        images: list[Path],
        stats: CalibrationStats,
        *,
        threads: int = 1,
    ) -> None:
        self.model, self.net, self.spec, self.images, self.stats = model, net, spec, images, stats
        self.threads = threads
        self.tensors = load_tensors(spec, images)  # decoded once, reused by every trial
        self._reference: list[dict[str, np.ndarray]] | None = None
        self._reference_norms: list[dict[str, float]] = []
        self.last_bin_bytes = 0  # .bin size of the INT8 model measured last

    # ------------------------------------------------------------------ per-layer search
    def search_input_scales(
        self, table: CalibrationTable, *, objective: str, progress: Progress | None = None
    ) -> None:
        """Replace each layer's input scale by the best candidate on layer-output error."""
        targets = [t for t in self.stats.targets if t.layer in table.input_scales]
        total, done = len(targets), 0
        for first in range(0, total, SAMPLE_CHUNK):
            chunk = targets[first : first + SAMPLE_CHUNK]
            samples = self._layer_samples(chunk)
            for target in chunk:
                layer = self.model.layer(target.layer)
                candidates = self._candidates(target.layer, table.input_scales[target.layer], objective)
                pairs = samples.pop(target.layer)
                outputs = candidate_outputs(
                    layer, table.weight_scales[target.layer], candidates, [x for x, _ in pairs], self.threads
                )
                norms = [_norm(y) for _, y in pairs]
                best, best_score = table.input_scales[target.layer], None
                for scale, outs in zip(candidates, outputs, strict=True):
                    score = 0.0
                    for (_, y), norm, out in zip(pairs, norms, outs, strict=True):
                        score -= _cosine(y, out, norm)
                    if best_score is None or score < best_score - 1e-12:
                        best, best_score = scale, score
                table.input_scales[target.layer] = float(best)
                done += 1
                if progress:
                    progress(f"searching ({objective})", done, total)

    def _candidates(self, layer: str, kl_scale: float, objective: str) -> list[float]:
        if objective == "cosine":
            return [kl_scale * f for f in np.linspace(0.5, 2.0, EQ_STEPS)]
        blob = self.stats.blobs[layer]
        thresholds = [127.0 / kl_scale, blob.absmax]
        thresholds += [
            percentile_threshold(blob.histogram, blob.hist_range, blob.absmax, p) for p in SEARCH_PERCENTILES
        ]
        if blob.absmax > 0:
            thresholds.append(min(aciq_gaussian_clip(blob.absmax, blob.count), blob.absmax))
        thresholds += [127.0 / kl_scale * f for f in (0.8, 0.9, 1.1, 1.25)]
        unique = sorted({round(threshold_to_scale(t), 6) for t in thresholds if t > 0})
        return [kl_scale, *[s for s in unique if s != round(kl_scale, 6)]]

    def _layer_samples(self, targets: list) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
        """fp32 (input, output) of each target layer on the tuning images, one pass for all."""
        blobs = list(dict.fromkeys(b for t in targets for b in (t.input_blob, t.output_blob)))
        found: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {t.layer: [] for t in targets}
        with contextlib.closing(iter_blob_arrays(self.net, self.spec, self.tensors, blobs)) as items:
            for _, arrays in items:
                by_name = dict(zip(blobs, arrays, strict=True))
                for t in targets:
                    found[t.layer].append((np.array(by_name[t.input_blob]), np.array(by_name[t.output_blob])))
        return found

    # ------------------------------------------------------------------ whole-model similarity
    def _outputs(self, net: ncnn.Net, probe: list[int] | None = None) -> list[dict[str, np.ndarray]]:
        names = list(net.output_names())
        tensors = self.tensors if probe is None else [self.tensors[i] for i in probe]
        with contextlib.closing(iter_blob_arrays(net, self.spec, tensors, names)) as items:
            return [
                {n: np.array(a, copy=True) for n, a in zip(names, arrays, strict=True)} for _, arrays in items
            ]

    def reference(self) -> list[dict[str, np.ndarray]]:
        if self._reference is None:
            self._reference = self._outputs(self.net)
            self._reference_norms = [{n: _norm(a) for n, a in ref.items()} for ref in self._reference]
        return self._reference

    def image_similarities(
        self,
        table: CalibrationTable,
        bias_deltas: dict[str, np.ndarray] | None = None,
        *,
        probe: list[int] | None = None,
        max_bin_bytes: float = math.inf,
    ) -> list[float] | None:
        """Per tuning image (those in ``probe``, default all), the mean output cosine of the
        INT8 model (this table) with fp32; None, without running it, when its .bin is larger
        than ``max_bin_bytes``."""
        reference = self.reference()
        indices = list(range(len(reference))) if probe is None else probe
        int8_model, _ = write_int8_model(self.model, table, bias_deltas=bias_deltas)
        weights = int8_model.bin_bytes()
        self.last_bin_bytes = len(weights)
        if len(weights) > max_bin_bytes:
            return None
        with tempfile.TemporaryDirectory(prefix="edgekit-int8-") as tmp:
            net = _load_trial_net(int8_model.param_text(), weights, Path(tmp), self.threads)
        try:
            outputs = self._outputs(net, indices)
        finally:
            net.clear()
        return [
            float(np.mean([_cosine(reference[i][n], out[n], self._reference_norms[i][n]) for n in out]))
            for i, out in zip(indices, outputs, strict=True)
        ]

    def similarity(
        self,
        table: CalibrationTable,
        bias_deltas: dict[str, np.ndarray] | None = None,
        *,
        probe: list[int] | None = None,
        max_bin_bytes: float = math.inf,
    ) -> float | None:
        """Mean output cosine similarity of the INT8 model (this table) with fp32 (None: too big)."""
        sims = self.image_similarities(table, bias_deltas, probe=probe, max_bin_bytes=max_bin_bytes)
        return None if sims is None else float(np.mean(sims))

    def auto_keep_float(
        self,
        table: CalibrationTable,
        target: float,
        *,
        bias_deltas: dict[str, np.ndarray] | None = None,
        max_layers: int = AUTO_MAX_KEPT,
        max_bin_ratio: float | None = AUTO_MAX_BIN_RATIO,
        progress: Progress | None = None,
    ) -> KeepFloatOutcome:
        """Keep the fewest most sensitive layers float until output cosine >= ``target``.

        Sensitivity of a layer = output similarity gained when only that layer goes back to
        float in the otherwise INT8 model (:meth:`rank_sensitivity`). Its shortlist (the
        ``2 * max_layers``, at least 16, most sensitive plus the boundary layers) is tried in
        that order, each re-measured on top of the ones kept so far and kept only if the
        similarity rises, up to ``max_layers`` and while
        the .bin stays under ``max_bin_ratio`` of the fp16 one (each kept layer costs speed and
        size; None: no size limit). Reasons land in ``table.kept_float``; the outcome says
        whether the target was reached and, if not, why.
        """
        current = self.similarity(table, bias_deltas)
        outcome = KeepFloatOutcome(target, current, current, 0, max_layers)
        if current >= target:
            return outcome
        if max_layers <= 0:
            outcome.stopped_by = "automatic keep-float allows 0 layers (--max-keep-float 0)"
            return outcome
        budget = math.inf if max_bin_ratio is None else max_bin_ratio * fp16_bin_bytes(self.model)
        ranked, shortlist, too_big = self.rank_sensitivity(
            table, bias_deltas, progress, refine=max(2 * max_layers, AUTO_MAX_KEPT), max_bin_bytes=budget
        )
        ranked = ranked[:shortlist]
        tried, no_gain = len(ranked) + too_big, 0
        for name, gain in ranked:
            if current >= target or outcome.kept >= max_layers or len(table.input_scales) <= 1:
                break
            trial = copy.deepcopy(table)
            trial.keep_float(
                name,
                f"auto: rank {outcome.kept + 1} by sensitivity; float alone lifts output cosine by"
                f" {gain:.2e} (INT8 model {outcome.start_cosine:.5f}, target {target})",
            )
            similarity = self.similarity(trial, bias_deltas, max_bin_bytes=budget)
            if similarity is None:
                too_big += 1
                continue  # too big to keep: INT8 must stay well under the fp16 size
            if KEEP_ONLY_GAINS and similarity <= current:
                no_gain += 1
                continue  # layers interact: float alone helped, on top of the kept ones it does not
            table.keep_float(name, trial.kept_float[name])
            current, outcome.kept = similarity, outcome.kept + 1
            if progress:
                progress(f"keeping sensitive layers float (cosine {current:.5f})", outcome.kept, max_layers)
        outcome.cosine = current
        if current < target:
            if outcome.kept >= max_layers:
                outcome.stopped_by = (
                    f"stopped at the cap of {max_layers} layers; raise it with --max-keep-float"
                )
            else:
                why = [f"tried the {tried} most sensitive layers"]
                if too_big:
                    why.append(f"{too_big} would push the INT8 .bin over {max_bin_ratio} of the fp16 one")
                if no_gain:
                    why.append(f"{no_gain} did not raise the cosine further")
                outcome.stopped_by = "; ".join(why)
        return outcome

    def rank_sensitivity(
        self,
        table: CalibrationTable,
        bias_deltas: dict[str, np.ndarray] | None = None,
        progress: Progress | None = None,
        *,
        refine: int = 2 * AUTO_MAX_KEPT,
        max_bin_bytes: float = math.inf,
    ) -> tuple[list[tuple[str, float]], int, int]:
        """Quantized layers, most sensitive first, with the output cosine each gains when only
        it goes back to float; how many of them lead the list as the refined shortlist; and
        how many shortlisted layers were dropped because floating them alone already makes the
        .bin larger than ``max_bin_bytes`` (they could never be kept).

        Two stages: every layer on the first :data:`RANK_IMAGES` tuning images (one trial INT8
        model each, the bulk of the work), then on all tuning images the ``refine`` best of
        them plus the boundary layers (:func:`boundary_layers`: the first convolutions and the
        head's last ones, the usual INT8 troublemakers, whose harm a couple of images can
        hide); those lead, in their refined order.
        """
        layers = list(table.input_scales)
        everything = list(range(len(self.tensors)))
        two_stage = len(everything) > RANK_IMAGES
        boundary = [n for n in boundary_layers(self.model) if n in table.input_scales] if two_stage else []
        total = len(layers) + (min(refine, len(layers)) + len(boundary) if two_stage else 0)
        done = 0

        def gains_on(names: list[str], probe: list[int], limit: float = math.inf) -> list[tuple[str, float]]:
            nonlocal done
            base = self.similarity(table, bias_deltas, probe=probe)
            found = []
            for name in names:
                trial = copy.deepcopy(table)
                trial.keep_float(name, "trial")
                similarity = self.similarity(trial, bias_deltas, probe=probe, max_bin_bytes=limit)
                if similarity is not None:
                    found.append((name, similarity - base))
                done += 1
                if progress:
                    progress("ranking layer sensitivity", done, total)
            return sorted(found, key=lambda item: item[1], reverse=True)

        if not two_stage:
            ranked = gains_on(layers, everything)
            return ranked, min(refine, len(ranked)), 0
        ranked = gains_on(layers, everything[:RANK_IMAGES])
        shortlist = list(dict.fromkeys([n for n, _ in ranked[:refine]] + boundary))
        fine = gains_on(shortlist, everything, max_bin_bytes)
        rest = [item for item in ranked if item[0] not in shortlist]
        return fine + rest, len(fine), len(shortlist) - len(fine)


def boundary_layers(model: NcnnModel) -> list[str]:
    """Quantizable layers reading a network input, or with no quantizable layer after them."""
    quantizable = {layer.name for layer in model.layers if layer.type in QUANTIZABLE_TYPES}
    inputs = set(model.input_names())
    readers: dict[str, list[Layer]] = {}
    for layer in model.layers:
        for blob in layer.inputs:
            readers.setdefault(blob, []).append(layer)
    leads_to_quantized: dict[str, bool] = {}
    for layer in reversed(model.layers):  # ncnn graphs are stored in topological order
        after = [r for blob in layer.outputs for r in readers.get(blob, [])]
        leads_to_quantized[layer.name] = any(
            r.name in quantizable or leads_to_quantized.get(r.name, False) for r in after
        )
    return [
        layer.name
        for layer in model.layers
        if layer.name in quantizable
        and (any(blob in inputs for blob in layer.inputs) or not leads_to_quantized[layer.name])
    ]


def _load_trial_net(param_text: str, weights: bytes, folder: Path, threads: int) -> ncnn.Net:
    """Load an INT8 trial model (validated by its writer) into ncnn with the runtime policy."""
    param, binf = folder / "m.param", folder / "m.bin"
    param.write_text(param_text, encoding="utf-8")  # scratch files: no fsync, no re-validation
    binf.write_bytes(weights)
    net = ncnn.Net()
    for option, value in ncnn_options("int8", threads).items():
        setattr(net.opt, option, value)
    if net.load_param(str(param)) != 0 or net.load_model(str(binf)) != 0:
        net.clear()
        raise EdgekitError("ncnn could not load an INT8 trial model (see its log above)")
    return net


def fp16_bin_bytes(model: NcnnModel) -> int:
    """Size of the model's .bin with every tagged weight buffer stored as fp16."""
    total = 0
    for layer in model.layers:
        for weight in layer.weights:
            if weight.storage == "untagged":
                total += 4 * weight.count
            else:
                total += 4 + (2 * weight.count + 3) // 4 * 4
    return total
