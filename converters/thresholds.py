"""Scale choices for INT8: per-channel weight scales and activation thresholds (kl, aciq).

Semantics follow ncnn's ``ncnn2table``: weight scale ``127 / absmax`` per output channel (per
group for depthwise), ``31 / absmax`` for 3x3 stride-1 dilation-1 convolutions (int8
winograd needs 6-bit weights); activation scale ``127 / threshold`` where the threshold comes
from a 2048-bin histogram of ``|x|`` (kl) or from a Gaussian clip of the absmax (aciq).
The search-based methods (eq, edgekit's own) live in :mod:`converters.int8_tuning`.
"""

from __future__ import annotations

import math

import numpy as np

from edge.ncnn import param_ids

NUM_BINS = 2048
KL_TARGET_BINS = 128
KL_EPS = 1e-4
_ACIQ_ALPHA_GAUSSIAN = (
    0.0,
    1.71063519,
    2.15159277,
    2.55913646,
    2.93620062,
    3.28691474,
    3.6151146,
    3.92403714,
)


def uses_6bit_weights(layer_type: str, params: dict[int, object]) -> bool:
    """Whether ncnn2table quantizes this layer's weights to 6 bits (int8 winograd headroom)."""
    if layer_type != "Convolution":
        return False
    conv = param_ids.Convolution
    kw = int(params.get(conv.KERNEL_W, 0))
    kh = int(params.get(conv.KERNEL_H, kw))
    dw = int(params.get(conv.DILATION_W, 1))
    dh = int(params.get(conv.DILATION_H, dw))
    sw = int(params.get(conv.STRIDE_W, 1))
    sh = int(params.get(conv.STRIDE_H, sw))
    return kw == 3 and kh == 3 and dw == 1 and dh == 1 and sw == 1 and sh == 1


def aciq_gaussian_clip(absmax: float, count: int, bits: int = 8) -> float:
    """ACIQ's clipping threshold for ``count`` Gaussian-like values whose absmax is known."""
    gaussian_const = (0.5 * 0.35) * (1 + math.sqrt(math.pi * math.log(4)))
    std = (absmax * 2 * gaussian_const) / math.sqrt(2 * math.log(max(count, 2)))
    return _ACIQ_ALPHA_GAUSSIAN[bits - 1] * std


def weight_scales(
    weight: np.ndarray, channels: int, *, six_bit: bool = False, method: str = "kl"
) -> np.ndarray:
    """Per-channel scales of a flat weight buffer split into ``channels`` equal rows.

    An all-zero channel gets scale 1 (any scale represents it exactly; ncnn2table would
    write ``inf``, which no runtime can use).
    """
    rows = np.asarray(weight, dtype=np.float32).reshape(channels, -1)
    absmax = np.abs(rows).max(axis=1).astype(np.float64)
    qmax = 31.0 if six_bit else 127.0
    if method == "aciq":
        bits = 6 if six_bit else 8
        clip = np.array([aciq_gaussian_clip(a, rows.shape[1], bits) for a in absmax])
        absmax = clip
    with np.errstate(divide="ignore"):
        scales = np.where(absmax > 0, qmax / np.where(absmax > 0, absmax, 1.0), 1.0)
    return scales.astype(np.float32)


def kl_threshold_bin(histogram: np.ndarray, max_bin: int = NUM_BINS) -> int:
    """ncnn2table's KL search: the bin count ``t`` (128..2047) minimising KL(P_t || Q_t).

    ``P_t`` is the normalised histogram clipped at ``t`` (tail folded into bin ``t - 1``);
    ``Q_t`` averages the histogram over 128 equal slices of ``[0, t)`` (fractional bin edges)
    and expands each slice back over its bins; both get ``1e-4`` per bin. Evaluated for every
    ``t`` at once in O(128) per candidate: inside a slice ``Q`` is constant, so only the bins
    that straddle a slice edge need their own term. Candidates stop at ``max_bin``.
    """
    hist = np.asarray(histogram, dtype=np.float64)
    total = hist.sum()
    if total <= 0:
        return NUM_BINS - 1
    hist = hist / total
    n = hist.size
    stop = max(KL_TARGET_BINS + 1, min(n, max_bin))
    t = np.arange(KL_TARGET_BINS, stop)
    npb = (t / KL_TARGET_BINS)[:, None]
    cum = np.concatenate([[0.0], np.cumsum(hist)])  # cum[i] = sum(hist[:i])
    hist_pad = np.concatenate([hist, [0.0]])
    tail = cum[-1] - cum[t]  # mass at or beyond bin t

    edges = np.arange(KL_TARGET_BINS + 1)[None, :] * npb
    edges[:, -1] = t
    lo = np.floor(edges).astype(np.int64)
    frac = edges - lo
    smooth_cum = cum[lo] + frac * hist_pad[lo]
    quant = np.diff(smooth_cum, axis=1) / npb  # (T, 128) mean density per slice
    log_q = np.log(quant + KL_EPS)

    # sum(P log P): every bin below t - 1 as is, the last one with the tail folded in.
    plogp = (hist + KL_EPS) * np.log(hist + KL_EPS)
    plogp_cum = np.concatenate([[0.0], np.cumsum(plogp)])
    last = hist[t - 1] + KL_EPS + tail
    entropy = plogp_cum[t - 1] + last * np.log(last)

    # sum(P log Q) over bins lying wholly inside one slice (Q = quant + eps there).
    p_cum = cum + KL_EPS * np.arange(n + 1)  # sum(hist[:i] + eps)
    first_full = np.ceil(edges[:, :-1]).astype(np.int64)
    end_full = lo[:, 1:]
    cross = ((p_cum[end_full] - p_cum[first_full]) * log_q).sum(axis=1) + tail * log_q[:, -1]

    # Bins straddling an interior slice edge mix two slices' densities.
    inner, k = edges[:, 1:-1], lo[:, 1:-1]
    right = k + 1 - inner
    straddle = frac[:, 1:-1] > 0
    q_mix = KL_EPS + (inner - k) * quant[:, :-1] + right * quant[:, 1:]
    cross += np.where(straddle, (hist[np.minimum(k, n - 1)] + KL_EPS) * np.log(q_mix), 0.0).sum(axis=1)

    kl = entropy - cross
    return int(t[int(np.argmin(kl))])


def kl_threshold(histogram: np.ndarray, hist_range: float, absmax: float | None = None) -> float:
    """KL threshold in activation units: ``(bin + 0.5) * range / 2048`` (ncnn2table), <= absmax."""
    absmax = hist_range if absmax is None else absmax
    if hist_range <= 0 or absmax <= 0:
        return 0.0
    max_bin = math.ceil(absmax / hist_range * NUM_BINS)
    return min((kl_threshold_bin(histogram, max_bin) + 0.5) * hist_range / NUM_BINS, absmax)


def threshold_to_scale(threshold: float) -> float:
    """Activation scale ``127 / threshold``; an all-zero input gets scale 1."""
    return 127.0 / threshold if threshold > 0 else 1.0


def percentile_threshold(histogram: np.ndarray, hist_range: float, absmax: float, fraction: float) -> float:
    """Smallest histogram edge below which ``fraction`` of the non-zero values fall (<= absmax)."""
    hist = np.asarray(histogram, dtype=np.float64)
    total = hist.sum()
    if total <= 0 or absmax <= 0:
        return absmax
    cdf = np.cumsum(hist) / total
    index = int(np.searchsorted(cdf, fraction))
    return min((min(index, NUM_BINS - 1) + 1) * hist_range / NUM_BINS, absmax)


BASE_METHODS = ("kl", "aciq")


def layer_weight_scales(
    layer_type: str, params: dict[int, object], weight: np.ndarray, method: str
) -> np.ndarray:
    """Per-channel weight scales of one quantizable layer, as ncnn2table computes them."""
    if layer_type == "ConvolutionDepthWise":
        channels = int(params.get(param_ids.ConvolutionDepthWise.GROUP, 1))
    else:
        channels = int(params.get(param_ids.Convolution.NUM_OUTPUT, 0))  # InnerProduct's too
    return weight_scales(weight, channels, six_bit=uses_6bit_weights(layer_type, params), method=method)


def activation_threshold(
    method: str, histogram: np.ndarray, hist_range: float, absmax: float, count: int
) -> float:
    """The clipping threshold of one input blob by ``method`` (kl or aciq)."""
    if method == "kl":
        return kl_threshold(histogram, hist_range, absmax)
    if method == "aciq":
        return aciq_gaussian_clip(absmax, count) if absmax > 0 else 0.0
    raise ValueError(f"unknown threshold method {method!r}")
