"""Shape inference over an ncnn graph: catches branches that disagree before ncnn runs them.

ncnn segfaults at run time when, say, two branches of an Eltwise or Concat disagree in size;
:func:`infer_shapes` computes every blob's shape from the input shapes and the layer params
(the rules of :mod:`edge.ncnn.shape_rules`) and raises :class:`~edge.errors.ModelFormatError`
where they cannot agree.
"""

from __future__ import annotations

import math

from edge.errors import ModelFormatError
from edge.ncnn import param_ids as ids
from edge.ncnn.model import Layer, NcnnModel
from edge.ncnn.shape_rules import SHAPE_RULES, Outputs
from edge.ncnn.spatial_shapes import Shape, ShapeError

_MAX_BLOB_ELEMENTS = 1 << 28  # 1 GiB of float32: far above real detectors, far below int overflow
_NEEDS_NO_INPUTS = frozenset({"MemoryData"})  # rules that run without input shapes


def _input_shape(layer: Layer) -> Shape | None:
    """The ``(w, h, c)`` an Input layer declares (params 0=w 1=h 2=c), if it declares one."""
    w, h, c = (layer.get(key, 0) for key in (ids.Input.W, ids.Input.H, ids.Input.C))
    if not all(isinstance(v, int) and v >= 0 for v in (w, h, c)) or not w:
        return None
    if c:
        return (w, h or 1, c)
    return (w, h) if h else (w,)


def _layer_output_shapes(layer: Layer, shapes: list[Shape | None]) -> Outputs:
    unknown: Outputs = [None] * len(layer.outputs)
    rule = SHAPE_RULES.get(layer.type)
    if rule is None:
        return unknown
    known = [s for s in shapes if s is not None]
    if layer.type not in _NEEDS_NO_INPUTS and (not shapes or len(known) != len(shapes)):
        return unknown
    outputs = rule(layer, known)
    return unknown if outputs is None else outputs


def _too_big(shape: Shape | None) -> bool:
    return shape is not None and (min(shape) <= 0 or math.prod(shape) >= _MAX_BLOB_ELEMENTS)


def infer_shapes(model: NcnnModel, input_shapes: dict[str, Shape] | None = None) -> dict[str, Shape | None]:
    """Blob shapes in ncnn order ``(w, h, c)`` for the given (or declared) input shapes.

    ``input_shapes`` maps input blob names to CxHxW / HxW / W shapes as numpy sees them. Layers
    whose shape rules are not modelled give unknown (None) shapes; known inconsistencies that make
    ncnn read out of bounds (concat of mismatched branches, convolution weights not matching the
    input channels, ...) raise :class:`ModelFormatError`.
    """
    given = {name: tuple(reversed(shape)) for name, shape in (input_shapes or {}).items()}
    shapes: dict[str, Shape | None] = {}
    for layer in model.layers:
        where = f"{model.param_source}:{layer.line_no or '?'}: layer {layer.name!r} ({layer.type})"
        if layer.type == "Input":
            for blob in layer.outputs:
                shape = given.get(blob) or _input_shape(layer)
                if _too_big(shape):
                    raise ModelFormatError(
                        f"{where}: input shape {shape} (w, h, c) is empty or over 2^28 values"
                    )
                shapes[blob] = shape
            continue
        try:
            outs = _layer_output_shapes(layer, [shapes.get(blob) for blob in layer.inputs])
        except ShapeError as err:
            at = f" (at input shapes {input_shapes})" if input_shapes else ""
            raise ModelFormatError(f"{where}: {err}{at}") from None
        except TypeError:
            raise ModelFormatError(f"{where}: a shape param has the wrong type") from None
        for blob, shape in zip(layer.outputs, outs, strict=False):
            if _too_big(shape):
                raise ModelFormatError(
                    f"{where}: output {blob!r} would have the shape {shape} (w, h, c): empty or over 2^28 values"
                )
            shapes[blob] = shape
    return shapes
