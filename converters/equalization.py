"""Cross-layer activation equalization before INT8 calibration.

ncnn quantizes a layer's input with one scale for the whole blob, so a blob whose channels span
very different ranges loses its small channels to rounding. Where a convolution P feeds only
a convolution C through a positively homogeneous activation (none, ReLU, leaky ReLU), output
channel ``c`` of P can be divided by ``s_c`` and C's weights reading channel ``c`` multiplied
by ``s_c`` without changing the fp32 result (Nagel et al., "Data-Free Quantization", 2019).
With ``s_c = r_c / max(r)`` (``r_c``: channel ``c``'s absolute maximum on calibration images)
every channel of the blob spans the same range. P's weights and C's depthwise weights are
quantized per output channel, which absorbs the rescaling exactly; a full convolution C moves
the channel ranges into its weight columns.

The rewritten fp32 graph is only an intermediate of the INT8 build: a table computed on it
describes the equalized graph, not the build's ``model.fp32``.
"""

from __future__ import annotations

import contextlib
import copy
from collections import Counter
from pathlib import Path

import ncnn
import numpy as np

from converters.calibration import iter_blob_arrays
from edge.manifest import InputSpec
from edge.ncnn import param_ids
from edge.ncnn.model import Layer, NcnnModel

CONV_TYPES = ("Convolution", "ConvolutionDepthWise")
HOMOGENEOUS_ACTIVATIONS = (0, 1, 2)  # ncnn activation_type: none, ReLU, leaky ReLU
RANGE_FLOOR = 1e-2  # channels below this fraction of the blob's range are scaled as if at it
EQUALIZATION_IMAGES = 32  # calibration images whose channel ranges set the scales


def equalization_pairs(model: NcnnModel) -> list[tuple[Layer, Layer]]:
    """(producer, consumer) convolutions joined by a blob nothing else reads."""
    readers = Counter(blob for layer in model.layers for blob in layer.inputs)
    producer = {blob: layer for layer in model.layers for blob in layer.outputs}
    pairs = []
    for consumer in model.layers:
        if consumer.type not in CONV_TYPES or len(consumer.inputs) != 1 or not _per_channel(consumer):
            continue
        source = producer.get(consumer.inputs[0])
        if (
            source is not None
            and source.type in CONV_TYPES
            and len(source.outputs) == 1
            and readers[consumer.inputs[0]] == 1
            and int(source.get(param_ids.Convolution.ACTIVATION_TYPE, 0)) in HOMOGENEOUS_ACTIVATIONS
            and _per_channel(source)
            and _has_float_weight(source)
            and _has_float_weight(consumer)
        ):
            pairs.append((source, consumer))
    return pairs


def _per_channel(layer: Layer) -> bool:
    """Plain convolutions and true depthwise ones (group == channels); not grouped convolutions."""
    if layer.type == "ConvolutionDepthWise":
        dw = param_ids.ConvolutionDepthWise
        return int(layer.get(dw.GROUP, 1)) == int(layer.get(dw.NUM_OUTPUT, 0))
    return True


def _has_float_weight(layer: Layer) -> bool:
    try:
        return layer.weight("weight").array.dtype.kind == "f"
    except KeyError:
        return False


def channel_ranges(
    net: ncnn.Net, spec: InputSpec, images: list[Path], blobs: list[str]
) -> dict[str, np.ndarray]:
    """Per-channel absolute maximum of each blob over ``images`` (fp32 inference)."""
    ranges: dict[str, np.ndarray] = {}
    with contextlib.closing(iter_blob_arrays(net, spec, images, blobs)) as items:
        for _, arrays in items:
            for name, array in zip(blobs, arrays, strict=True):
                values = np.abs(np.asarray(array, dtype=np.float32).reshape(array.shape[0], -1)).max(axis=1)
                ranges[name] = np.maximum(ranges[name], values) if name in ranges else values
    return ranges


def equalize(model: NcnnModel, ranges: dict[str, np.ndarray]) -> tuple[NcnnModel, int]:
    """A copy of ``model`` with every equalizable blob's channel ranges made equal.

    Returns the new model and how many blobs were equalized. The fp32 outputs are unchanged
    (up to float rounding).
    """
    model = copy.deepcopy(model)
    done = 0
    for source, consumer in equalization_pairs(model):
        r = ranges.get(source.outputs[0])
        if (
            r is None
            or r.size != int(source.get(param_ids.Convolution.NUM_OUTPUT, 0))
            or not np.isfinite(r).all()
            or r.max() <= 0
        ):
            continue
        scale = np.maximum(r.astype(np.float64), r.max() * RANGE_FLOOR) / r.max()
        if not _rescale(source, consumer, scale):
            continue
        done += 1
    return model, done


def _rescale(source: Layer, consumer: Layer, scale: np.ndarray) -> bool:
    """Divide ``source``'s output channels by ``scale``; multiply ``consumer``'s reads by it."""
    channels = scale.size
    source_weight = source.weight("weight")
    consumer_weight = consumer.weight("weight")
    if source_weight.array.size % channels or consumer_weight.array.size % channels:
        return False
    if consumer.type == "ConvolutionDepthWise":
        consumer_factor = scale[:, None]
        consumer_shape: tuple[int, ...] = (channels, -1)
    else:
        outputs = int(consumer.get(param_ids.Convolution.NUM_OUTPUT, 0))
        if outputs <= 0 or consumer_weight.array.size % (outputs * channels):
            return False
        consumer_factor = scale[None, :, None]
        consumer_shape = (outputs, channels, -1)
    _scale_buffer(source_weight, (channels, -1), 1.0 / scale[:, None])
    with contextlib.suppress(KeyError):
        _scale_buffer(source.weight("bias"), (channels,), 1.0 / scale)
    _scale_buffer(consumer_weight, consumer_shape, consumer_factor)
    return True


def _scale_buffer(weight, shape: tuple[int, ...], factor: np.ndarray) -> None:
    array = weight.array
    scaled = array.astype(np.float64).reshape(shape) * factor
    weight.replace(scaled.reshape(array.shape).astype(array.dtype))
