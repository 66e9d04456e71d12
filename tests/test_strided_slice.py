"""Strided Slice (YOLOX's Focus, ``x[..., ::2, ::2]``): pnnx has no ncnn layer for it; convert
rewrites it as 4-D Reshape + unit-step Slice + Reshape, which computes the same elements."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from converters.graph_repair import repair_known_gaps
from tests.support.cli import run_edgekit
from tests.support.onnx_graphs import GraphBuilder, save

BIG = 2**31 - 1


def _focus() -> GraphBuilder:
    g = GraphBuilder([1, 3, 32, 48])
    parts = []
    for sy, sx in ((0, 0), (1, 0), (0, 1), (1, 1)):
        ins = [np.array(v, np.int64) for v in ([sy, sx], [BIG, BIG], [2, 3], [2, 2])]
        parts.append(g.op("Slice", ["images", *(g.const(v) for v in ins)])[0])
    return g, g.conv(g.op("Concat", parts, axis=1)[0], 12, 8, 3)


def _single_slice(starts, ends, axes, steps) -> tuple:
    g = GraphBuilder([1, 6, 12, 12])
    ins = [np.array(v, np.int64) for v in (starts, ends, axes, steps)]
    return g, g.op("Slice", ["images", *(g.const(v) for v in ins)])[0]


CASES = {
    "focus": _focus,
    "step 3 from 1 to 10 on W, unit slice on C": lambda: _single_slice([1, 1], [10, 5], [3, 1], [3, 1]),
    "step 2 on channels, negative start": lambda: _single_slice([-5], [BIG], [1], [2]),
    "steps 2 and 3 with ends inside": lambda: _single_slice([2, 0], [9, 11], [2, 3], [2, 3]),
}


@pytest.mark.parametrize("case", CASES)
def test_rewrite_computes_the_same_elements(case):
    g, out = CASES[case]()
    model = g.finish([out])
    repaired, repairs = repair_known_gaps(model)
    assert len(repairs) == 1 and "Slice with steps > 1" in str(repairs[0])
    consts = {i.name: numpy_helper.to_array(i) for i in repaired.graph.initializer}
    for node in repaired.graph.node:  # no step other than 1 is left
        if node.op_type == "Slice" and len(node.input) > 4 and node.input[4]:
            assert np.all(consts[node.input[4]] == 1)
    x = np.random.default_rng(0).normal(size=[d.dim_value for d in g.input.type.tensor_type.shape.dim])
    x = x.astype(np.float32)
    runs = [
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"images": x}
        )[0]
        for m in (model, repaired)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_focus_converts_with_parity_and_says_so(tmp_path):
    g, out = _focus()
    path = save(g.finish([out]), tmp_path / "focus.onnx")
    run = run_edgekit("convert", path, "-o", tmp_path / "b", "--preset", "none", "--json")
    assert run.returncode == 0, run.stderr
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    builds = manifest["artifacts"]["ncnn"]
    assert builds["fp32"]["parity"]["cosine"] >= 0.99999 and builds["fp16"]["parity"]["cosine"] >= 0.9995
    assert any("Slice with steps > 1 rewritten" in note for note in manifest["notes"])
