"""Open an ncnn build for one precision and run NCHW tensors through it (parity checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.ncnn.model import open_net, run_net


def load_net(
    param: Path, binf: Path, *, precision: str = "fp32", threads: int = 1, input_shapes: dict | None = None
) -> Any:
    """A validated net with ``precision``'s options: fp32 turns fp16 paths off, fp16 and int8 keep them.

    ``input_shapes`` (``{blob: (c, h, w)}``) lets validation check every blob's shape first.
    """
    fp16 = precision != "fp32"
    return open_net(
        param,
        binf,
        num_threads=threads,
        use_fp16_storage=fp16,
        use_fp16_arithmetic=fp16,
        use_int8_inference=precision == "int8",
        input_shapes=input_shapes,
    )


def run_outputs(net: Any, input_name: str, tensor: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
    """Run one batch-1 NCHW tensor and return ``outputs`` in order."""
    chw = tensor[0] if tensor.ndim == 4 else tensor
    blobs = run_net(net, {input_name: chw}, outputs)
    return [blobs[name].astype(np.float32, copy=False) for name in outputs]
