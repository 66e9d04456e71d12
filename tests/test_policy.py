"""One runtime policy: every path that runs a build uses the same ncnn options, one ``is_int8`` and
one resolver for "a build directory or a bare .param".

The paths: sessions (detect/eval), parity and calibration/speed checks (``open_build_net``), the
standalone board runner (pushed to boards; its ``ncnn_options`` is the policy) and the bench harness.
On x86 ncnn gives the same outputs with fp16 storage on or off, so the options themselves are read
back from each path's ``ncnn.Net`` as well as the outputs compared.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import ncnn
import numpy as np
import pytest

from benchmarks.harness import BenchConfig, resolve_builds
from converters import calibration
from converters.convert import measure_parity
from converters.int8_build import build_int8
from converters.parity import ParityInputs
from edge.board import runner as board_runner
from edge.errors import EdgekitError
from edge.manifest import PRECISIONS, OutputSpec
from edge.media import image_files, read_image
from edge.ncnn.model import NcnnModel
from edge.preprocess import preprocess
from edge.runtime import policy
from edge.runtime.resolve import locate_model, read_param_graph, resolve_model
from edge.runtime.session import NcnnSession
from tests.support.assets import require_asset

RUNNER = Path(board_runner.__file__)
OPTIONS = (
    "num_threads",
    "use_vulkan_compute",
    "use_fp16_packed",
    "use_fp16_storage",
    "use_fp16_arithmetic",
    "use_bf16_storage",
    "use_int8_inference",
)


def _options(net) -> dict[str, object]:
    return {name: getattr(net.opt, name) for name in OPTIONS}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_session_parity_and_board_runner_open_nets_with_the_same_options(int8_param: Path, precision: str):
    spec = resolve_model(int8_param, precision=precision)
    session = NcnnSession(spec, threads=2)
    parity = policy.open_build_net(spec.param, spec.bin, precision, threads=2)
    args = argparse.Namespace(param=str(spec.param), bin=str(spec.bin), precision=precision)
    board, _ = board_runner.load_net(ncnn, args, 2)
    try:
        expected = {name: policy.ncnn_options(precision, 2)[name] for name in OPTIONS}
        assert _options(session.net) == _options(parity) == _options(board) == expected
        fp16 = precision != "fp32"  # the INT8 decision: float layers of an INT8 build run as in fp16 builds
        assert expected["use_fp16_storage"] is fp16 and expected["use_fp16_arithmetic"] is fp16
        assert expected["use_int8_inference"] is True and expected["num_threads"] == 2
    finally:
        session.close()
        parity.clear()
        board.clear()


def test_int8_outputs_identical_through_session_parity_and_runner(
    int8_param: Path, demo_images: Path, tmp_path: Path
):
    spec = resolve_model(int8_param)
    assert spec.precision == "int8"
    tensor = preprocess(read_image(image_files(demo_images, what="image", limit=1)[0]), spec.input)[0]
    session = NcnnSession(spec, threads=1)
    try:
        ours = session.run(tensor)
    finally:
        session.close()
    blobs = list(spec.outputs.values())

    # parity (convert's verification): the session's outputs as the reference agree exactly
    outputs = [OutputSpec(name, blob, list(ours[name].shape)) for name, blob in spec.outputs.items()]
    parity = measure_parity(
        spec.param, spec.bin, "int8", spec.input, outputs, ParityInputs([tensor[None]], "test"),
        [[ours[name] for name in spec.outputs]],
    )  # fmt: skip
    assert parity.max_abs == 0.0 and parity.cosine == pytest.approx(1.0, abs=1e-12)

    # the board runner (what bench and the ARM parity tests run), in its own process
    np.save(tmp_path / "t.npy", tensor)
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "infer", "--param", str(spec.param), "--bin", str(spec.bin),
         "--input", spec.input.ncnn_name, "--precision", "int8", "--outputs", ",".join(blobs),
         "--tensors", str(tmp_path / "t.npy"), "--out", str(tmp_path / "o.npz")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with np.load(tmp_path / "o.npz") as board:
        for name, blob in spec.outputs.items():
            np.testing.assert_array_equal(board[f"{blob}__0"], ours[name])


def test_one_is_int8_and_one_resolver(int8_param: Path, demo_images: Path, tmp_path: Path):
    assert calibration.QUANTIZABLE_TYPES is policy.INT8_LAYER_TYPES
    float_param = require_asset("models/ncnn/nanodet-plus-m_416-pnnx/model.param")
    for param, precisions in ((int8_param, ["int8"]), (float_param, ["fp32", "fp16"])):
        int8 = precisions == ["int8"]
        assert policy.is_int8(NcnnModel.read(param)) is int8 and read_param_graph(param).is_int8 is int8
        located = locate_model(param)
        assert located.precisions == precisions
        spec = resolve_model(param)  # what detect / eval run
        models, _ = resolve_builds([param], BenchConfig(shape=(3, 416, 416)), tmp_path)  # what bench runs
        assert [m.precision for m in models] == precisions and spec.precision == precisions[0]
        assert {(m.param, m.bin, m.input_name) for m in models} == {
            (spec.param, spec.bin, located.input_name)
        }
        assert spec.input.ncnn_name == located.input_name
    # calibration refuses an INT8 model by the same test
    with pytest.raises(EdgekitError, match="already INT8"):
        build_int8(
            int8_param, int8_param.with_suffix(".bin"), resolve_model(int8_param).input, demo_images,
            tmp_path / "q.param", tmp_path / "q.bin", tmp_path / "q.table",
        )  # fmt: skip


def test_the_resolver_reads_the_input_shape_hint_and_refuses_clearly(tmp_path: Path):
    graph_only = require_asset("models/ncnn-benchmark/blazeface.param")
    located = locate_model(graph_only)
    assert located.input_shape == (3, 128, 128) and located.files["fp32"] == (graph_only, None)
    hinted = tmp_path / "hinted.param"
    hinted.write_text("7767517\n2 2\nInput data 0 1 data -23330=4,3,40,30,3\nReLU r 1 1 data out\n")
    assert locate_model(hinted).input_shape == (3, 30, 40)
    two = tmp_path / "two.param"
    two.write_text("7767517\n3 3\nInput a 0 1 a\nInput b 0 1 b\nBinaryOp add 2 1 a b out\n")
    with pytest.raises(EdgekitError, match="expected one Input layer, found 2"):
        locate_model(two)
    with pytest.raises(EdgekitError, match="does not exist"):
        locate_model(tmp_path / "missing.param")
