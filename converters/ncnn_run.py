"""Run NCHW tensors through a net opened with :func:`edge.runtime.policy.open_build_net` (parity checks)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.ncnn.net import run_net


def run_outputs(net: Any, input_name: str, tensor: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
    """Run one batch-1 NCHW tensor and return ``outputs`` in order."""
    chw = tensor[0] if tensor.ndim == 4 else tensor
    blobs = run_net(net, {input_name: chw}, outputs)
    return [blobs[name].astype(np.float32, copy=False) for name in outputs]
