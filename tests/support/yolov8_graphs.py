"""A small YOLOv8-style detector built with onnx.helper, in each ultralytics output layout.

The body is a few seeded strided convolutions with SiLU (as YOLOv8's), giving stride 8, 16 and
32 feature maps; each level has a ``4 * 16`` DFL box branch and a class branch (1x1 convs).
Layouts:

- ``dfl``: ``1 x (64 + C) x N``, the raw head (ultralytics' ``x_cat``);
- ``decoded``: ``1 x (4 + C) x N``, the decode in the graph as ultralytics' ``Detect`` exports it
  (DFL softmax + 1x1 conv with weights 0..15, ``dist2bbox`` to ``cx, cy, w, h``, times the
  strides; sigmoid scores);
- ``decoded-transposed``: the same, transposed to ``1 x N x (4 + C)``.
"""

from __future__ import annotations

import numpy as np
import onnx

from tests.support.onnx_graphs import GraphBuilder

REG_MAX = 16
STRIDES = (8, 16, 32)
LAYOUTS = ("dfl", "decoded", "decoded-transposed")
SHORT_SIDES = np.tile(-1.5 * np.arange(REG_MAX, dtype=np.float32), 4).reshape(1, 4 * REG_MAX, 1, 1)


def _silu(g: GraphBuilder, x: str) -> str:
    return g.op("Mul", [x, g.op("Sigmoid", [x])[0]])[0]


def _anchors(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(1, 2, N)`` anchor centres (grid cells) and ``(1, 1, N)`` strides, as make_anchors."""
    points, strides = [], []
    for s in STRIDES:
        cells = size // s
        ys, xs = np.meshgrid(np.arange(cells) + 0.5, np.arange(cells) + 0.5, indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()]))
        strides.append(np.full(cells * cells, s))
    return (
        np.concatenate(points, axis=1)[None].astype(np.float32),
        np.concatenate(strides)[None, None].astype(np.float32),
    )


def yolov8_head(layout: str, size: int = 128, classes: int = 3, seed: int = 0) -> onnx.ModelProto:
    """The model (input ``images`` 1x3xSIZExSIZE, one output ``output0``) in ``layout``."""
    if layout not in LAYOUTS:
        raise ValueError(layout)
    g = GraphBuilder([1, 3, size, size], seed=seed)
    x = _silu(g, g.conv("images", 3, 16, 3, 2))
    x = _silu(g, g.conv(x, 16, 16, 3, 2))
    levels = []
    channels = 16
    for _ in STRIDES:
        x = _silu(g, g.conv(x, channels, 32, 3, 2))
        channels = 32
        box = g.op("Mul", [g.conv(x, 32, 4 * REG_MAX, 1), g.const(np.float32(20.0))])[0]  # peaky bins
        box = g.op("Add", [box, g.const(SHORT_SIDES)])[0]  # favour near bins: boxes of a few cells
        cls = g.conv(x, 32, classes, 1)
        cls = g.op("Add", [g.op("Mul", [cls, g.const(np.float32(12.0))])[0], g.const(np.float32(-3.0))])[0]
        cat = g.op("Concat", [box, cls], axis=1)[0]
        levels.append(g.op("Reshape", [cat, g.const(np.array([1, 4 * REG_MAX + classes, -1], np.int64))])[0])
    x_cat = g.op("Concat", levels, axis=2)[0]
    if layout == "dfl":
        out = g.op("Identity", [x_cat])[0]
        return _named(g.finish([out]), out)
    n = sum((size // s) ** 2 for s in STRIDES)
    split = g.const(np.array([4 * REG_MAX, classes], np.int64))
    box, cls = g.op("Split", [x_cat, split], n_out=2, axis=1)
    dist = g.op("Reshape", [box, g.const(np.array([1, 4, REG_MAX, n], np.int64))])[0]
    dist = g.op("Softmax", [g.op("Transpose", [dist], perm=[0, 2, 1, 3])[0]], axis=1)[0]
    bins = g.const(np.arange(REG_MAX, dtype=np.float32).reshape(1, REG_MAX, 1, 1))
    dist = g.op("Reshape", [g.op("Conv", [dist, bins])[0], g.const(np.array([1, 4, n], np.int64))])[0]
    lt, rb = g.op("Split", [dist, g.const(np.array([2, 2], np.int64))], n_out=2, axis=1)
    anchors, strides = _anchors(size)
    x1y1 = g.op("Sub", [g.const(anchors), lt])[0]
    x2y2 = g.op("Add", [g.const(anchors), rb])[0]
    centre = g.op("Div", [g.op("Add", [x1y1, x2y2])[0], g.const(np.float32(2.0))])[0]
    wh = g.op("Sub", [x2y2, x1y1])[0]
    dbox = g.op("Mul", [g.op("Concat", [centre, wh], axis=1)[0], g.const(strides)])[0]
    out = g.op("Concat", [dbox, g.op("Sigmoid", [cls])[0]], axis=1)[0]
    if layout == "decoded-transposed":
        out = g.op("Transpose", [out], perm=[0, 2, 1])[0]
    return _named(g.finish([out]), out)


def _named(model: onnx.ModelProto, old: str, new: str = "output0") -> onnx.ModelProto:
    """Rename the output ``old`` to ultralytics' ``output0``."""
    for node in model.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
    model.graph.output[0].name = new
    return model
