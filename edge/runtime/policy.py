"""edgekit's one runtime policy: ncnn options per precision, which graphs are INT8, opening a net.

The options themselves live in the standalone board runner (:func:`edge.board.runner.ncnn_options`),
which is pushed alone to boards; this module re-uses that function so sessions, parity, calibration,
speed checks and the bench harness run every build with the same kernels as the boards do.

INT8 decision: fp16 storage/arithmetic ON for an INT8 build's float layers, as for fp16 builds.
Measured on edgekit's NanoDet-Plus-m 416 INT8 build (``convert --int8``, 13 layers kept float) and
the shared ncnn2int8 model; 4-8 COCO images, output cosine against the fp32 build:

* x86-64: outputs bit-identical with fp16 on or off (ncnn's x86 kernels only move data in fp16,
  Concat/Slice/Reshape/Permute); latency the same within noise.
* ARM without fp16 arithmetic (QEMU ``cortex-a72``, a Raspberry Pi 4 class core): no layer takes
  fp16 storage; outputs identical either way (and to ARMv8.2 with fp16 off).
* ARMv8.2+ (QEMU ``max``): ncnn runs 212 of 220 layers with its fp16 kernels (the int8 convolutions
  dequantize to fp16); mean cosine 0.99695 -> 0.99684 (min 0.99490 -> 0.99423). That 1e-4 is a
  thirtieth of INT8's own loss and the size of what every fp16 build already accepts there
  (fp16 build: 0.99985), and it buys ncnn's fast fp16 path for the float layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.board.runner import PRECISIONS, configure, ncnn_options
from edge.ncnn import param_ids
from edge.ncnn.model import NcnnModel
from edge.ncnn.net import open_net

__all__ = ["INT8_LAYER_TYPES", "PRECISIONS", "configure", "is_int8", "ncnn_options", "open_build_net"]

#: Layer types ncnn runs in INT8 when their ``int8_scale_term`` is set.
INT8_LAYER_TYPES = ("Convolution", "ConvolutionDepthWise", "InnerProduct")


def is_int8(model: NcnnModel) -> bool:
    """True when any layer of ``model`` carries INT8 scales (an INT8 build)."""
    term = param_ids.Convolution.INT8_SCALE_TERM  # the same id in ConvolutionDepthWise and InnerProduct
    return any(layer.type in INT8_LAYER_TYPES and int(layer.get(term, 0) or 0) for layer in model.layers)


def open_build_net(
    param: str | Path,
    weights: str | Path,
    precision: str,
    *,
    threads: int = 1,
    lightmode: bool | None = None,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
) -> Any:
    """A validated ``ncnn.Net`` with the policy's options for ``precision`` and ``threads``.

    ``lightmode=False`` keeps intermediate blobs (needed to extract a blob other layers consume);
    ``input_shapes`` (``{blob: (c, h, w)}``) lets validation check every blob shape first.
    """
    return open_net(
        param,
        weights,
        num_threads=threads,
        lightmode=lightmode,
        input_shapes=input_shapes,
        options=ncnn_options(precision, threads),
    )
