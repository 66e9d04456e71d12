"""Run an ncnn model on NCHW tensors and return the named outputs as numpy arrays."""

from __future__ import annotations

from pathlib import Path

import ncnn
import numpy as np

from edge.errors import EdgekitError


def load_net(param: Path, binf: Path, *, fp16: bool, threads: int = 1) -> ncnn.Net:
    """Load a model; ``fp16`` enables ncnn's fp16 storage/arithmetic where the CPU has them."""
    net = ncnn.Net()
    net.opt.num_threads = threads
    net.opt.use_fp16_storage = fp16
    net.opt.use_fp16_packed = fp16
    net.opt.use_fp16_arithmetic = fp16
    net.opt.use_bf16_storage = False
    if net.load_param(str(param)) != 0:
        raise EdgekitError(f"ncnn could not load {param}")
    if net.load_model(str(binf)) != 0:
        raise EdgekitError(f"ncnn could not load {binf}")
    return net


def run_net(net: ncnn.Net, input_name: str, tensor: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
    """Run one NCHW (batch 1) tensor through ``net`` and extract ``outputs`` as float32 arrays."""
    chw = np.ascontiguousarray(tensor[0] if tensor.ndim == 4 else tensor, dtype=np.float32)
    mat = ncnn.Mat(chw)  # wraps chw's memory: chw must outlive the extraction below
    results = []
    with net.create_extractor() as ex:
        if ex.input(input_name, mat) != 0:
            raise EdgekitError(f"ncnn has no input blob {input_name!r}")
        for name in outputs:
            ret, out = ex.extract(name)
            if ret != 0:
                raise EdgekitError(f"ncnn could not compute blob {name!r}")
            results.append(np.array(out, dtype=np.float32, copy=True))
    del chw
    return results
