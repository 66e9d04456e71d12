"""Name the layer that killed ncnn: bisect the graph in forked children after a native crash.

A crash inside ncnn says nothing about where. Running the layers up to ``k`` (extracting each one's
output in graph order, in a child) crashes for every ``k`` at or past the first bad layer, so a
binary search over ``k`` finds it in about log2(layers) children (8 for NanoDet's 200 layers).
It runs only after a crash, so it costs nothing on the normal path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.isolate import NativeCrash, run_isolated
from edge.ncnn.model import NcnnModel
from edge.ncnn.net import run_net
from edge.runtime.policy import open_build_net


def first_crash(count: int, runs_up_to: Callable[[int], object], step: str = "probe") -> int | None:
    """The smallest ``k`` in ``[0, count)`` for which ``runs_up_to(k)`` dies in a child, or None.

    ``runs_up_to`` must be monotonic: once it crashes at ``k`` it crashes for every larger ``k``.
    A Python error in a child counts as "ran" (it is not the crash being looked for).
    """

    def crashes(k: int) -> bool:
        try:
            run_isolated(step, runs_up_to, k)
        except NativeCrash:
            return True
        except Exception:  # a Python-level failure at k: not the crash being looked for
            return False
        return False

    if count <= 0 or not crashes(count - 1):
        return None
    lo, hi = 0, count - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if crashes(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def crashing_layer(
    param: Path, weights: Path, precision: str, input_name: str, tensor: np.ndarray
) -> str | None:
    """``layer 'name' (Type)`` of the first layer whose run kills ncnn on ``tensor`` (CxHxW), or None."""
    layers = [layer for layer in NcnnModel.read(param).layers if layer.type != "Input" and layer.outputs]
    shapes = {input_name: tuple(tensor.shape)}

    def runs_up_to(k: int) -> None:
        net = open_build_net(param, weights, precision, lightmode=False, input_shapes=shapes)
        run_net(net, {input_name: tensor}, [layer.outputs[0] for layer in layers[: k + 1]])

    index = first_crash(len(layers), runs_up_to, "ncnn (locating the crash)")
    return None if index is None else f"layer {layers[index].name!r} ({layers[index].type})"


def with_crashing_layer(
    crash: NativeCrash, param: Path, weights: Path, precision: str, input_name: str, tensor: np.ndarray
) -> NativeCrash:
    """``crash`` with the layer that caused it appended, when the bisection finds one."""
    where = crashing_layer(param, weights, precision, input_name, tensor)
    return NativeCrash(f"{crash}; first crashing {where}") if where else crash
