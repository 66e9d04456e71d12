"""ONNX nodes pnnx cannot convert are refused before pnnx runs, naming the ONNX node and why:
an ONNX LSTM, GRU or RNN (pnnx writes it without weights; an LSTM is in ddddocr's OCR model) and a contrib op of
onnxruntime's ``com.microsoft`` domain (pnnx crashes; ddddocr's ``common_old.onnx``)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.support.cli import message_lines, run_edgekit


def _model(nodes, inits, out_shape, opsets=(("", 14),)) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "refusal",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 1, 16, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _recurrent(op: str) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    hidden, width, steps, gates = 8, 16, 10, GATES[op]
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.2, (2, gates * hidden, width)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.normal(0, 0.2, (2, gates * hidden, hidden)).astype(np.float32), "R"),
        numpy_helper.from_array(rng.normal(0, 0.2, (2, 2 * gates * hidden)).astype(np.float32), "B"),
        numpy_helper.from_array(np.array([1, width, steps], np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("Reshape", ["images", "shape"], ["r"]),
        helper.make_node("Transpose", ["r"], ["seq"], perm=[2, 0, 1]),
        helper.make_node(
            op, ["seq", "W", "R", "B"], ["y"], hidden_size=hidden, direction="bidirectional", name="rnn_7"
        ),
    ]
    return _model(nodes, inits, [steps, 2, 1, hidden])


def _contrib() -> onnx.ModelProto:
    node = helper.make_node(
        "QuickGelu", ["images"], ["y"], domain="com.microsoft", name="gelu_3", alpha=1.702
    )
    return _model([node], [], [1, 1, 16, 10], opsets=(("", 14), ("com.microsoft", 1)))


def _refusal(model: onnx.ModelProto, tmp_path) -> str:
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    run = run_edgekit("convert", path, "-o", tmp_path / "b", "--preset", "none")
    assert run.returncode == 2 and not (tmp_path / "b").exists()
    (line,) = message_lines(run.stderr)
    return line


@pytest.mark.parametrize("op", GATES)
def test_onnx_recurrent_layer_is_refused_naming_the_node(tmp_path, op):
    line = _refusal(_recurrent(op), tmp_path)
    assert line.startswith(f"error: cannot convert ONNX node(s) 'rnn_7' ({op}): pnnx's ONNX import")
    assert "without its weights" in line


def test_contrib_domain_op_is_refused_naming_the_node(tmp_path):
    line = _refusal(_contrib(), tmp_path)
    assert "cannot convert ONNX node(s) 'gelu_3' (com.microsoft::QuickGelu)" in line
    assert "outside the standard ONNX domain" in line and "crashed" not in line
