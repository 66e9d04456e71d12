"""Load trained weights into a zoo network from an ONNX file of the same architecture.

Initializers are copied by name when every parameter of ours has a same-named, same-shaped one
there; otherwise by structure: each of our convolutions takes the next unused convolution of the
file with the same weight shape (execution order), each BatchNorm the next unused BatchNorm of
the same width. A file whose convolutions carry biases in place of BatchNorm (BN folded into the
convolution, as some exports do) is loaded too: the bias goes onto our convolution and our
BatchNorm becomes the identity. Anything else is one clear error.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from converters.onnx_check import load_onnx
from converters.zoo.graph import BN_EPSILON
from edge.errors import EdgekitError

BN_FIELDS = ("weight", "bias", "running_mean", "running_var")


def _arrays(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _set(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> None:
    for i, t in enumerate(model.graph.initializer):
        if t.name in values:
            model.graph.initializer[i].CopyFrom(
                numpy_helper.from_array(values[t.name].astype(np.float32), t.name)
            )


def _by_name(model: onnx.ModelProto, theirs: dict[str, np.ndarray]) -> int | None:
    ours = {k: v for k, v in _arrays(model).items() if v.dtype == np.float32}
    if not all(k in theirs and theirs[k].shape == v.shape for k, v in ours.items()):
        return None
    _set(model, {k: theirs[k] for k in ours})
    return len(ours)


def _convs(model: onnx.ModelProto, arrays: dict[str, np.ndarray]) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in arrays]


def _following_bn(model: onnx.ModelProto, conv: onnx.NodeProto) -> onnx.NodeProto | None:
    return next(
        (n for n in model.graph.node if n.op_type == "BatchNormalization" and n.input[0] == conv.output[0]),
        None,
    )


def _by_structure(model: onnx.ModelProto, source: onnx.ModelProto, path: Path) -> int:
    theirs = _arrays(source)
    ours = _arrays(model)
    free: dict[tuple[int, ...], list[onnx.NodeProto]] = defaultdict(list)
    for conv in _convs(source, theirs):
        free[theirs[conv.input[1]].shape].append(conv)
    free_bn: dict[int, list[onnx.NodeProto]] = defaultdict(list)
    for bn in (n for n in source.graph.node if n.op_type == "BatchNormalization"):
        if all(name in theirs for name in bn.input[1:5]):
            free_bn[theirs[bn.input[1]].shape[0]].append(bn)
    values: dict[str, np.ndarray] = {}
    copied = 0
    for conv in _convs(model, ours):
        shape = ours[conv.input[1]].shape
        if not free[shape]:
            raise EdgekitError(
                f"{path} does not match the architecture: no convolution left for {conv.name} "
                f"(weight {'x'.join(map(str, shape))})"
            )
        match = free[shape].pop(0)
        values[conv.input[1]] = theirs[match.input[1]]
        copied += 1
        their_bias = theirs.get(match.input[2]) if len(match.input) > 2 else None
        bn = _following_bn(model, conv)
        if len(conv.input) > 2:
            if their_bias is None:
                raise EdgekitError(
                    f"{path}: convolution {match.name} has no bias where {conv.name} needs one"
                )
            values[conv.input[2]] = their_bias
        elif bn is not None and free_bn[shape[0]]:
            their_bn = free_bn[shape[0]].pop(0)
            values.update(
                {
                    ours_name: theirs[t]
                    for ours_name, t in zip(bn.input[1:5], their_bn.input[1:5], strict=True)
                }
            )
        elif bn is not None and their_bias is not None:  # BatchNorm folded into the file's convolution
            bias = f"{conv.input[1].removesuffix('.weight')}.bias"
            model.graph.initializer.append(numpy_helper.from_array(their_bias.astype(np.float32), bias))
            conv.input.append(bias)
            width = shape[0]
            identity = [np.ones(width), np.zeros(width), np.zeros(width), np.full(width, 1.0 - BN_EPSILON)]
            values.update(dict(zip(bn.input[1:5], identity, strict=True)))
        else:
            raise EdgekitError(f"{path}: no BatchNorm or bias for {conv.name} ({match.name} has neither)")
    left = sum(len(v) for v in free.values())
    if left:
        raise EdgekitError(
            f"{path} does not match the architecture: {left} of its convolutions are left over"
        )
    _set(model, values)
    return copied


def load_weights(model: onnx.ModelProto, path: Path) -> str:
    """Copy the weights of the ONNX file ``path`` into ``model`` (in place); returns how it matched."""
    source = load_onnx(Path(path))
    theirs = _arrays(source)
    if not theirs:
        raise EdgekitError(f"{path} holds no initializers (weights stored as Constant nodes are not read)")
    count = _by_name(model, theirs)
    if count is not None:
        return f"{count} tensors matched by name"
    count = _by_structure(model, source, Path(path))
    return f"{count} convolutions matched by shape and order"
