"""An ncnn session: a resolved model loaded with the runtime policy; CxHxW float32 in, named outputs out."""

from __future__ import annotations

import numpy as np

from edge.errors import EdgekitError
from edge.ncnn.net import run_net
from edge.runtime.policy import open_build_net
from edge.runtime.resolve import ModelSpec


class NcnnSession:
    """A loaded ncnn network; :meth:`run` maps a CxHxW float32 tensor to named numpy outputs."""

    def __init__(self, spec: ModelSpec, *, threads: int = 1) -> None:
        if threads < 1:
            raise EdgekitError(f"threads must be at least 1, got {threads}")
        self.spec = spec
        # Extracting a blob other layers consume after light mode has recycled it crashes ncnn.
        intermediate = any(blob in spec.consumed_blobs for blob in spec.outputs.values())
        self.net = open_build_net(
            spec.param,
            spec.bin,
            spec.precision,
            threads=threads,
            lightmode=False if intermediate else None,
            input_shapes={spec.input.ncnn_name: (spec.input.shape[1], spec.input.height, spec.input.width)},
        )

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """Run one CxHxW float32 tensor; returns ``{output name: array}`` (copies, safe to keep)."""
        if tensor.ndim != 3:
            raise EdgekitError(f"expected a CxHxW tensor, got shape {tensor.shape}")
        blobs = run_net(self.net, {self.spec.input.ncnn_name: tensor}, self.spec.outputs.values())
        return {name: blobs[blob] for name, blob in self.spec.outputs.items()}

    def close(self) -> None:
        """Free the network."""
        self.net.clear()
