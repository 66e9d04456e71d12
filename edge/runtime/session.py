"""An ncnn session: a resolved model loaded with the runtime policy; CxHxW float32 in, named outputs out."""

from __future__ import annotations

import numpy as np

from edge.errors import EdgekitError
from edge.isolate import NativeCrash, run_isolated
from edge.ncnn.net import run_net
from edge.runtime.crash_locate import with_crashing_layer
from edge.runtime.policy import open_build_net
from edge.runtime.resolve import ModelSpec


def _first_run(spec: ModelSpec, intermediate: bool, tensor: np.ndarray) -> None:
    """Load ``spec`` and run ``tensor`` once, on one thread (this runs in a forked child, where
    libgomp cannot use the parent's thread pool: a net loaded for several threads would hang)."""
    shapes = {spec.input.ncnn_name: tuple(tensor.shape)}
    lightmode = False if intermediate else None
    net = open_build_net(spec.param, spec.bin, spec.precision, lightmode=lightmode, input_shapes=shapes)
    run_net(net, {spec.input.ncnn_name: tensor}, spec.outputs.values())


class NcnnSession:
    """A loaded ncnn network; :meth:`run` maps a CxHxW float32 tensor to named numpy outputs."""

    def __init__(self, spec: ModelSpec, *, threads: int = 1) -> None:
        if threads < 1:
            raise EdgekitError(f"threads must be at least 1, got {threads}")
        self.spec = spec
        # Extracting a blob other layers consume after light mode has recycled it crashes ncnn.
        intermediate = any(blob in spec.consumed_blobs for blob in spec.outputs.values())
        param, weights = spec.load_paths()  # a build's verified files, open since its manifest was read
        try:
            self.net = open_build_net(
                param,
                weights,
                spec.precision,
                threads=threads,
                lightmode=False if intermediate else None,
                input_shapes={
                    spec.input.ncnn_name: (spec.input.shape[1], spec.input.height, spec.input.width)
                },
            )
        except EdgekitError as exc:
            if (param, weights) == (spec.param, spec.bin):
                raise
            message = str(exc)
            shown = {str(param): str(spec.param), str(weights): str(spec.bin)}
            for loaded in sorted(shown, key=len, reverse=True):  # /proc/self/fd/71 before /proc/self/fd/7
                message = message.replace(loaded, shown[loaded])
            raise type(exc)(message) from None
        if spec.pinned is None:  # a bare graph, never run by convert's checks: its first run in a child
            probe = np.zeros((spec.input.shape[1], spec.input.height, spec.input.width), np.float32)
            try:
                run_isolated(f"ncnn (first run of {spec.param.name})", _first_run, spec, intermediate, probe)
            except NativeCrash as crash:
                self.close()
                raise with_crashing_layer(
                    crash, param, weights, spec.precision, spec.input.ncnn_name, probe
                ) from None
            except BaseException:
                self.close()
                raise

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """Run one CxHxW float32 tensor; returns ``{output name: array}`` (copies, safe to keep)."""
        if tensor.ndim != 3:
            raise EdgekitError(f"expected a CxHxW tensor, got shape {tensor.shape}")
        blobs = run_net(self.net, {self.spec.input.ncnn_name: tensor}, self.spec.outputs.values())
        return {name: blobs[blob] for name, blob in self.spec.outputs.items()}

    def close(self) -> None:
        """Free the network."""
        self.net.clear()
