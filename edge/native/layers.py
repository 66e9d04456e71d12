"""The ncnn layer types compiled into the native runtime, and the CMake options that keep only them.

Derived from what pnnx (and ncnn's own converters) emit for the models edgekit builds: the
shared NanoDet / SSD models, YOLOv8-style detectors and common CNN classifiers, plus the layers
ncnn creates internally (Packing, Cast, Quantize/Dequantize/Requantize, Padding, Flatten, Gemm...).
Dropping the rest (RNNs, 3-D and 1-D convolutions, spectrograms, ...) roughly halves the build.
A model needing a type outside this list is refused by the core with an error naming the type.
"""

from __future__ import annotations

import re
from pathlib import Path

#: ncnn layer class names kept (the names written in .param files)
KEPT_LAYERS: tuple[str, ...] = (
    # structure and data movement
    "Input",
    "Split",
    "Concat",
    "Slice",
    "Crop",
    "Reshape",
    "Flatten",
    "Permute",
    "Squeeze",
    "ExpandDims",
    "Padding",
    "Interp",
    "ShuffleChannel",
    "Reorg",
    "MemoryData",
    "Noop",
    "Dropout",
    "Packing",
    "Cast",
    "Tile",
    # convolution / matrix products
    "Convolution",
    "ConvolutionDepthWise",
    "Deconvolution",
    "DeconvolutionDepthWise",
    "InnerProduct",
    "Gemm",
    "MatMul",
    "MultiHeadAttention",
    # pooling, normalisation, element-wise
    "Pooling",
    "BatchNorm",
    "Scale",
    "Bias",
    "LayerNorm",
    "Normalize",
    "LRN",
    "Reduction",
    "BinaryOp",
    "UnaryOp",
    "Eltwise",
    "Softmax",
    "Power",
    "Exp",
    "Log",
    "AbsVal",
    # activations
    "ReLU",
    "PReLU",
    "Sigmoid",
    "Swish",
    "HardSwish",
    "HardSigmoid",
    "Mish",
    "GELU",
    "TanH",
    "Clip",
    "ELU",
    # int8
    "Quantize",
    "Dequantize",
    "Requantize",
    # detection heads ncnn implements itself
    "PriorBox",
    "DetectionOutput",
    "YoloDetectionOutput",
    "Yolov3DetectionOutput",
)

_ADD_LAYER = re.compile(r"^\s*ncnn_add_layer\((\w+)", re.MULTILINE)


def all_layers(ncnn_source: Path) -> list[str]:
    """Every layer type the ncnn source tree declares (``ncnn_add_layer(Name)`` in src/CMakeLists.txt)."""
    return _ADD_LAYER.findall((Path(ncnn_source) / "src" / "CMakeLists.txt").read_text())


def layer_options(ncnn_source: Path, kept: tuple[str, ...] = KEPT_LAYERS) -> list[str]:
    """``-DWITH_LAYER_<name>=ON|OFF`` for every layer of the source tree."""
    keep = set(kept)
    return [
        f"-DWITH_LAYER_{name.lower()}={'ON' if name in keep else 'OFF'}" for name in all_layers(ncnn_source)
    ]
