"""Activation statistics for INT8 calibration, gathered by running the fp32 build in ncnn.

For every Convolution, ConvolutionDepthWise and InnerProduct layer, the statistics of its
input blob over the calibration images: absolute maximum, a 2048-bin histogram of ``|x|``
over ``[0, absmax]`` (zeros skipped, as ``ncnn2table`` does), the element count of one image
(ACIQ) and per-channel means (bias correction). Two passes over the images (absmax, then
histograms) keep memory bounded by the number of layers, not images. Images are read in
sorted order, so the result is deterministic.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import ncnn
import numpy as np

from converters.thresholds import NUM_BINS
from edge.errors import EdgekitError
from edge.manifest import InputSpec
from edge.media import image_files, read_image
from edge.preprocess import preprocess
from edge.runtime.policy import INT8_LAYER_TYPES

QUANTIZABLE_TYPES = INT8_LAYER_TYPES  # what ncnn can run in INT8 is what we quantize

# progress(stage, done, total); a one-argument callback gets "stage done/total" instead
Progress = Callable[[str, int, int], None] | Callable[[str], None]


def as_progress(callback: Progress | None) -> Callable[[str, int, int], None] | None:
    """Accept ``f(stage, done, total)`` or a plain ``f(message)`` status callback."""
    if callback is None:
        return None
    try:
        params = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return callback  # type: ignore[return-value]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in params):
        return callback  # type: ignore[return-value]
    return lambda stage, done, total: callback(f"{stage} {done}/{total}")  # type: ignore[call-arg]


@dataclass(frozen=True)
class QuantTarget:
    """One quantizable layer and the blobs around it."""

    layer: str
    type: str
    input_blob: str
    output_blob: str


@dataclass
class BlobStats:
    """Statistics of one layer's input blob over the calibration images.

    ``histogram`` counts ``|x|`` (zeros skipped) in 2048 equal bins over ``[0, hist_range]``.
    ncnn2table makes two passes (absmax first, then histograms over ``[0, absmax]``); here one
    pass suffices: when an image exceeds the current range, the range grows by a power of two
    and the bins merge exactly, so ``absmax <= hist_range < 2 * absmax``.
    """

    absmax: float = 0.0
    hist_range: float = 0.0
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(NUM_BINS, dtype=np.int64))
    count: int = 0  # elements in one image's blob (ACIQ uses it as N)
    channel_sum: np.ndarray | None = None
    images: int = 0

    @property
    def channel_mean(self) -> np.ndarray | None:
        """Mean of each input channel (whole vector for a 1-D input), for bias correction."""
        if self.channel_sum is None or self.images == 0:
            return None
        return self.channel_sum / self.images

    def add(self, array: np.ndarray) -> None:
        """Fold one image's blob into the statistics."""
        self.images += 1
        self.count = int(array.size)
        if array.ndim == 3:
            means = array.sum(axis=(1, 2)).astype(np.float64) / (array.shape[1] * array.shape[2])
        else:
            means = array.reshape(-1).astype(np.float64)
        if self.channel_sum is None or self.channel_sum.shape != means.shape:
            self.channel_sum = np.zeros_like(means)
        self.channel_sum += means
        magnitude = np.abs(array, dtype=np.float32).reshape(-1, array.shape[-1] if array.ndim > 1 else 1)
        amax = float(cv2.minMaxLoc(magnitude)[1]) if magnitude.size else 0.0
        if amax <= 0:
            return
        self.absmax = max(self.absmax, amax)
        if self.hist_range <= 0:
            self.hist_range = amax
        elif amax > self.hist_range:
            factor = 2 ** math.ceil(math.log2(amax / self.hist_range))
            while self.hist_range * factor < amax:  # guard against rounding in log2
                factor *= 2
            self.histogram = merge_bins(self.histogram, factor)
            self.hist_range *= factor
        self.histogram += magnitude_histogram(magnitude, self.hist_range)


@dataclass
class CalibrationStats:
    """What :func:`collect_statistics` measured."""

    targets: list[QuantTarget]
    blobs: dict[str, BlobStats]  # keyed by layer name
    images: list[Path]
    seconds: float


def list_images(folder: Path, num_images: int | None = None) -> list[Path]:
    """Calibration images in ``folder`` (sorted by name), at most ``num_images`` of them."""
    if num_images is not None and num_images < 1:
        raise EdgekitError(f"--num must be at least 1 (got {num_images})")
    return image_files(folder, what="calibration image", limit=num_images)


def quant_targets(net: ncnn.Net) -> list[QuantTarget]:
    """The quantizable layers of a loaded net, in graph order."""
    blobs = net.blobs()
    targets = []
    for layer in net.layers():
        if layer.type in QUANTIZABLE_TYPES:
            bottoms, tops = list(layer.bottoms), list(layer.tops)
            targets.append(QuantTarget(layer.name, layer.type, blobs[bottoms[0]].name, blobs[tops[0]].name))
    return targets


def load_tensors(spec: InputSpec, images: list[Path]) -> list[np.ndarray]:
    """The preprocessed network input of each image (decode and resize once, reuse many times)."""
    return [preprocess(read_image(path), spec)[0] for path in images]


def iter_blob_arrays(
    net: ncnn.Net, spec: InputSpec, images: Sequence[Path | np.ndarray], blob_names: list[str]
) -> Iterator[tuple[int, list[np.ndarray]]]:
    """For each image (a path, or a tensor from :func:`load_tensors`), the values of ``blob_names``.

    The arrays are views valid until the next item. The extractor lives inside the generator:
    close it (``contextlib.closing``) before the net is cleared, or ncnn frees blobs of a net
    that no longer exists.
    """
    for index, item in enumerate(images):
        if isinstance(item, np.ndarray):
            tensor, label = np.ascontiguousarray(item, dtype=np.float32), f"image {index + 1}"
        else:
            tensor, label = preprocess(read_image(item), spec)[0], item.name
        mat_in = ncnn.Mat(tensor)  # wraps tensor's memory: tensor stays referenced below
        ex = net.create_extractor()
        ex.set_light_mode(False)
        if ex.input(spec.ncnn_name, mat_in) != 0:
            raise EdgekitError(f"the model has no input blob {spec.ncnn_name!r}")
        mats, arrays = [], []
        for name in blob_names:
            ret, mat = ex.extract(name)
            if ret != 0:
                raise EdgekitError(f"ncnn could not compute blob {name!r} on {label}")
            mats.append(mat)
            arrays.append(np.asarray(mat))
        yield index, arrays
        del mats, arrays, ex, mat_in, tensor


def collect_statistics(
    net: ncnn.Net,
    spec: InputSpec,
    images: list[Path],
    *,
    targets: list[QuantTarget] | None = None,
    progress: Progress | None = None,
) -> CalibrationStats:
    """Run ``net`` (fp32) once over ``images``, folding each quantizable input into histograms."""
    start = time.perf_counter()
    progress = as_progress(progress)
    targets = quant_targets(net) if targets is None else targets
    if not targets:
        raise EdgekitError(
            "the model has no Convolution, ConvolutionDepthWise or InnerProduct layer to quantize"
        )
    # Several layers may read the same blob: gather each blob once.
    blob_names = list(dict.fromkeys(t.input_blob for t in targets))
    per_blob = {name: BlobStats() for name in blob_names}
    total = len(images)
    with contextlib.closing(iter_blob_arrays(net, spec, images, blob_names)) as per_image:
        for index, arrays in per_image:
            for name, array in zip(blob_names, arrays, strict=True):
                per_blob[name].add(array)
            if progress:
                progress("calibrating", index + 1, total)
    return CalibrationStats(
        targets=targets,
        blobs={t.layer: per_blob[t.input_blob] for t in targets},
        images=list(images),
        seconds=time.perf_counter() - start,
    )


def merge_bins(histogram: np.ndarray, factor: int) -> np.ndarray:
    """The same counts over a range ``factor`` (a power of two) times wider."""
    merged = np.zeros_like(histogram)
    if factor >= histogram.size:
        merged[0] = histogram.sum()
        return merged
    merged[: histogram.size // factor] = histogram.reshape(-1, factor).sum(axis=1)
    return merged


def magnitude_histogram(magnitude: np.ndarray, hist_range: float) -> np.ndarray:
    """2048-bin histogram of non-negative ``magnitude`` (2-D float32, overwritten) over ``[0, hist_range]``.

    Bin ``min(int(v / range * 2048), 2047)`` as ncnn2table; zeros are not counted.
    """
    zeros = magnitude.size - cv2.countNonZero(magnitude)
    scaled = np.multiply(magnitude, np.float32(NUM_BINS / hist_range), out=magnitude)  # magnitude is scratch
    np.minimum(scaled, np.float32(NUM_BINS - 1), out=scaled)
    bins = scaled.astype(np.uint16)
    hist = cv2.calcHist([bins], [0], None, [NUM_BINS], [0, NUM_BINS]).reshape(-1)
    counts = np.rint(hist).astype(np.int64)
    counts[0] -= zeros
    return counts
