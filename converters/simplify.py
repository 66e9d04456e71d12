"""Simplify an ONNX graph at a fixed input shape with onnxsim (in a child: a crash is one clear line)."""

from __future__ import annotations

import onnx
import onnxsim

from edge.errors import EdgekitError
from edge.isolate import run_isolated


def _simplify_here(model: onnx.ModelProto, input_name: str, shape: list[int]) -> onnx.ModelProto:
    try:
        simplified, ok = onnxsim.simplify(model, overwrite_input_shapes={input_name: shape})
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EdgekitError(f"onnxsim could not simplify the model: {first}") from None
    if not ok:
        raise EdgekitError("onnxsim's check failed: the simplified model differs from the original")
    return simplified


def simplify(model: onnx.ModelProto, input_name: str, shape: list[int]) -> onnx.ModelProto:
    """Fold constants and fix shapes; the result is checked by onnxsim against the original.

    onnxsim runs in a forked child (:func:`edge.isolate.run_isolated`): attributes the checks of
    :mod:`converters.onnx_attrs` do not know can still make its C++ divide by zero.
    """
    return run_isolated("the ONNX simplifier (onnxsim)", _simplify_here, model, input_name, shape)
