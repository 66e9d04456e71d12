"""edgekit convert end to end: real onnxsim, real pnnx, real ncnn, onnxruntime as reference."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from converters.convert import convert_onnx
from edge.checksums import sha256_file
from edge.errors import EdgekitError, ParityError
from edge.manifest import load_manifest
from tests.support.cli import message_lines, run_edgekit
from tests.support.onnx_graphs import GRAPHS, GraphBuilder, save

SHARED_ONNX = [
    "nanodet-plus-m_416.onnx",
    "nanodet-plus-m_320.onnx",
    "nanodet-plus-m-1.5x_416-from-int8.onnx",
    "nanodet-m_320.onnx",
    "nanodet-m_416.onnx",
    "nanodet-m-0.5x_320.onnx",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", SHARED_ONNX)
def test_shared_nanodet_onnx_converts_with_parity(name, onnx_models, demo_images, tmp_path):
    result = convert_onnx(onnx_models / name, tmp_path / "build", verify_images=demo_images)
    m = result.manifest
    fp32, fp16 = m.builds["fp32"], m.builds["fp16"]
    assert fp32.parity.cosine >= 0.99999 and fp32.parity.passed
    assert fp16.parity.cosine >= 0.9995 and fp16.parity.passed
    assert fp32.parity.inputs == f"images:{demo_images.name}" and fp32.parity.samples >= 4
    build = tmp_path / "build"
    assert (build / fp16.bin).stat().st_size <= 0.52 * (build / fp32.bin).stat().st_size
    expected = "nanodet-plus" if "plus" in name else "nanodet-m"
    assert m.decoder.preset == expected and m.decoder.family == "nanodet"
    assert m.decoder.config.strides == ((8, 16, 32, 64) if expected == "nanodet-plus" else (8, 16, 32))
    assert m.decoder.config.center_offset == (0.0 if expected == "nanodet-plus" else 0.5)
    assert len(m.decoder.class_names) == 80 and m.decoder.class_names[0] == "person"
    assert m.decoder.category_ids[:2] == [1, 2] and m.decoder.category_ids[-1] == 90
    # convert settled the layout once: the official exports give sigmoid scores
    assert m.decoder.layout == ("nanodet-single" if expected == "nanodet-plus" else "nanodet-legacy")
    assert m.decoder.config.class_scores == "sigmoid"
    assert set(m.decoder.roles.values()) <= {o.ncnn_name for o in m.outputs} and m.decoder.roles
    assert fp32.parity.input_files and fp32.parity.input_files[0]["file"] in {
        p.name for p in demo_images.iterdir()
    }
    assert m.input.mean == [103.53, 116.28, 123.675] and m.input.color == "BGR"
    onnx_model = onnx.load(str(onnx_models / name))
    assert [o.name for o in m.outputs] == [o.name for o in onnx_model.graph.output]
    assert m.source["sha256"] == sha256_file(onnx_models / name)


def test_manifest_describes_files_exactly(onnx_models, tmp_path):
    result = convert_onnx(onnx_models / "nanodet-plus-m_416.onnx", tmp_path / "b")
    loaded = load_manifest(tmp_path / "b")
    assert loaded == result.manifest
    assert loaded.schema == "edgekit.manifest/2"
    assert loaded.source == {
        "file": "nanodet-plus-m_416.onnx",
        "sha256": sha256_file(onnx_models / "nanodet-plus-m_416.onnx"),
        "bytes": (onnx_models / "nanodet-plus-m_416.onnx").stat().st_size,
    }
    assert loaded.decoder.layout == "nanodet-single" and loaded.decoder.roles == {"head": "out0"}
    assert str(tmp_path) not in (tmp_path / "b" / "manifest.json").read_text()
    assert str(onnx_models) not in (tmp_path / "b" / "manifest.json").read_text()
    assert loaded.input.name == "data" and loaded.input.ncnn_name == "in0"
    assert loaded.input.shape == [1, 3, 416, 416]
    assert loaded.outputs[0].shape == [1, 3598, 112] and loaded.outputs[0].ncnn_name == "out0"
    assert loaded.builds["fp32"].parity.inputs == "random:0"
    assert set(loaded.artifacts) == {"ncnn"} and set(loaded.builds) == {"fp32", "fp16"}
    for b in loaded.builds.values():
        assert set(b.files) == {"param", "bin"}
        for f in b.files.values():
            assert f.sha256 == sha256_file(tmp_path / "b" / f.path)
            assert f.bytes == (tmp_path / "b" / f.path).stat().st_size
        assert b.size_bytes == sum(f.bytes for f in b.files.values())
    assert {"pnnx", "ncnn", "onnx", "onnxsim", "onnxruntime", "edgekit"} <= set(loaded.tools)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "manifest.json",
        "model.fp16.bin",
        "model.fp16.param",
        "model.fp32.bin",
        "model.fp32.param",
    ]


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_generic_graphs_convert_with_parity(graph, tmp_path):
    model = GRAPHS[graph]()
    result = convert_onnx(save(model, tmp_path / "m.onnx"), tmp_path / "b", preset="auto")
    m = result.manifest
    assert m.decoder is None  # not a detector family: converted generically
    assert m.builds["fp32"].parity.cosine >= 0.99999
    assert m.builds["fp16"].parity.cosine >= 0.9995
    assert [o.name for o in m.outputs] == [o.name for o in model.graph.output]
    assert [n for n in m.notes if not n.startswith("preprocessing not given")] == []  # only the guess


def _softmax_opset11(g: GraphBuilder) -> str:
    return g.op("Softmax", [g.conv("images", 3, 4)], axis=1)[0]


def _gemm_alpha_beta(g: GraphBuilder) -> str:
    pooled = g.op("Flatten", [g.op("GlobalAveragePool", [g.conv("images", 3, 4)])[0]])[0]
    w = g.const(g.rng.normal(0, 1, (5, 4)).astype(np.float32))
    return g.op("Gemm", [pooled, w, g.const(np.ones(5, np.float32))], transB=1, alpha=0.5, beta=2.0)[0]


def _resize_asymmetric(g: GraphBuilder) -> str:
    scales = g.const(np.array([1, 1, 2, 2], np.float32))
    return g.op(
        "Resize",
        [g.conv("images", 3, 4), "", scales],
        mode="linear",
        coordinate_transformation_mode="asymmetric",
    )[0]


@pytest.mark.parametrize(
    ("builder", "opset", "note"),
    [
        (_softmax_opset11, 11, "Softmax"),
        (_gemm_alpha_beta, 14, "Gemm"),
        (_resize_asymmetric, 14, "Resize"),
    ],
)
def test_known_pnnx_gaps_are_repaired(builder, opset, note, tmp_path):
    g = GraphBuilder([1, 3, 16, 16])
    model = g.finish([builder(g)], opset=opset)
    src = save(model, tmp_path / "m.onnx")
    # without the repair pnnx's output is wrong: prove the gap is real on the raw graph
    from converters import graph_repair

    saved = dict(graph_repair.REPAIRS)
    graph_repair.REPAIRS.clear()
    try:
        with pytest.raises(ParityError, match="first divergence at ONNX node"):
            convert_onnx(src, tmp_path / "raw", fp16=False)
    finally:
        graph_repair.REPAIRS.update(saved)
    result = convert_onnx(src, tmp_path / "b")
    assert result.manifest.builds["fp32"].parity.cosine >= 0.99999
    assert any(note in n and n.startswith("repaired:") for n in result.manifest.notes)


def _space_to_depth_graph(tmp_path: Path) -> Path:
    g = GraphBuilder([1, 3, 16, 16])
    x = g.op("Relu", [g.conv("images", 3, 4)])[0]
    s2d = g.op("SpaceToDepth", [x], blocksize=2)[0]
    return save(g.finish([g.op("Sigmoid", [g.conv(s2d, 16, 8, k=1)])[0]]), tmp_path / "s2d.onnx")


def test_parity_miss_names_first_divergent_node(tmp_path):
    src = _space_to_depth_graph(tmp_path)
    with pytest.raises(ParityError) as err:
        convert_onnx(src, tmp_path / "b")
    message = str(err.value)
    assert "fp32 build misses parity" in message
    assert "SpaceToDepth" in message and "Reorg" in message
    assert not (tmp_path / "b").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".b.")]  # no staging leftovers


def test_no_verify_keeps_build_and_records_the_miss(tmp_path):
    result = convert_onnx(_space_to_depth_graph(tmp_path), tmp_path / "b", verify=False)
    assert not result.manifest.builds["fp32"].parity.passed
    assert result.divergence is not None and result.divergence.op_type == "SpaceToDepth"
    assert any("misses parity" in n for n in result.manifest.notes)


def test_new_ir_version_is_accepted(tmp_path):
    model = GRAPHS["classifier"]()
    model.ir_version = 11  # newer than pnnx's embedded onnxruntime reads (it crashes on IR 14)
    result = convert_onnx(save(model, tmp_path / "m.onnx"), tmp_path / "b", fp16=False)
    assert result.manifest.builds["fp32"].parity.passed


def test_refuses_to_overwrite_without_force(onnx_models, tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(EdgekitError, match="--force"):
        convert_onnx(onnx_models / "nanodet-m-0.5x_320.onnx", out)
    assert (out / "keep.txt").read_text() == "user data"
    with pytest.raises(EdgekitError, match="refusing to replace"):  # --force replaces only a build
        convert_onnx(onnx_models / "nanodet-m-0.5x_320.onnx", out, force=True)
    assert (out / "keep.txt").read_text() == "user data"


def test_cli_json_summary(onnx_models, demo_images, tmp_path):
    proc = run_edgekit(
        "convert", str(onnx_models / "nanodet-plus-m_320.onnx"), "-o", str(tmp_path / "b"),
        "--verify-images", str(demo_images), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert Path(summary["manifest"]).is_file()
    assert set(summary["builds"]) == {"fp32", "fp16"}
    for b in summary["builds"].values():
        assert Path(b["param"]).is_file() and Path(b["bin"]).is_file()
        assert b["size_bytes"] > 1_000_000
        assert b["parity"]["cosine"] >= 0.9995 and b["parity"]["max_abs"] >= 0.0


def _dynamic_model(tmp_path: Path) -> Path:
    model = GRAPHS["classifier"]()
    dim = model.graph.input[0].type.tensor_type.shape.dim
    dim[2].dim_param, dim[3].dim_param = "height", "width"
    return save(model, tmp_path / "dynamic.onnx")


def _unsupported_op_model(tmp_path: Path) -> Path:
    g = GraphBuilder([1, 3, 16, 16])
    out = g.op("DepthToSpace", [g.conv("images", 3, 8)], blocksize=2, mode="DCR")[0]
    return save(g.finish([out]), tmp_path / "d2s.onnx")


@pytest.mark.parametrize(
    ("make_input", "extra", "message"),
    [
        (lambda p: p / "missing.onnx", [], "ONNX file not found"),
        (
            lambda p: (p / "junk.onnx").write_bytes(b"\x00garbage\xff" * 50) and p / "junk.onnx",
            [],
            "not an ONNX model",
        ),
        (lambda p: (p / "text.onnx").write_text("hello") and p / "text.onnx", [], "not an ONNX model"),
        (_dynamic_model, [], "dynamic shape .* pass --input-shape"),
        (_unsupported_op_model, [], "pnnx cannot convert ONNX op DepthToSpace"),
        (
            lambda p: save(GRAPHS["classifier"](), p / "c.onnx"),
            ["--input-shape", "1,3,64"],
            "--input-shape has 3 dims",
        ),
        (lambda p: save(GRAPHS["classifier"](), p / "c.onnx"), ["--input-shape", "a,b"], "bad --input-shape"),
        (
            lambda p: save(GRAPHS["classifier"](), p / "c.onnx"),
            ["--preset", "nanodet-m"],
            "do not match preset",
        ),
        (lambda p: save(GRAPHS["classifier"](), p / "c.onnx"), ["--preset", "yolo"], "unknown preset"),
    ],
)
def test_bad_input_is_one_clear_line(make_input, extra, message, tmp_path):
    src = make_input(tmp_path)
    proc = run_edgekit("convert", str(src), "-o", str(tmp_path / "out"), *extra)
    assert proc.returncode != 0
    lines = message_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()


def test_dynamic_model_converts_with_input_shape(tmp_path):
    result = convert_onnx(_dynamic_model(tmp_path), tmp_path / "b", input_shape=[1, 3, 48, 40], fp16=False)
    assert result.manifest.input.shape == [1, 3, 48, 40]
    assert result.manifest.builds["fp32"].parity.passed


@pytest.mark.slow
def test_int8_build_is_calibrated_verified_and_timed(demo_images, tmp_path):
    src = save(GRAPHS["backbone_ops"](), tmp_path / "m.onnx")
    proc = run_edgekit(
        "convert", str(src), "-o", str(tmp_path / "b"), "--int8", "--calib", str(demo_images),
        "--method", "kl", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    int8 = summary["builds"]["int8"]
    assert Path(int8["param"]).is_file() and int8["parity"]["passed"]
    details = int8["details"]
    assert details["method"] == "kl" and details["quantized_layers"] >= 3
    assert details["equalized_blobs"] == 0  # ncnn2table's methods leave the graph as it is
    assert details["calibration_images"] == len(list(demo_images.iterdir()))
    assert set(details["latency_here_ms"]) == {"fp16", "int8"}
    assert ("SLOWER" in details["speed_note"]) == (details["speed_here"]["ratio_max"] < 1)  # every round
    table = (tmp_path / "b" / details["table"]).read_text().splitlines()
    weight_lines = [i for i, line in enumerate(table) if "_param_0 " in line]
    input_lines = [
        i for i, line in enumerate(table) if line and not line.startswith("#") and "_param_0 " not in line
    ]
    assert weight_lines and input_lines and max(weight_lines) < min(input_lines)  # ncnn2table order
    manifest = load_manifest(tmp_path / "b")
    assert manifest.builds["int8"].details["table"] == "calibration.table"
    assert manifest.builds["int8"].details["calibration_source"] == demo_images.name
    assert "int8" in manifest.builds["int8"].param
    human = run_edgekit(
        "convert", str(src), "-o", str(tmp_path / "b"), "--int8", "--calib", str(demo_images), "--force",
    )  # fmt: skip
    assert human.returncode == 0, human.stderr
    assert "int8: method search" in human.stdout and "blobs equalized" in human.stdout
    said = [line for line in human.stdout.splitlines() if "fp16" in line and "interleaved rounds" in line]
    assert len(said) == 1, human.stdout  # one line, printed once (not wrapped in a pipe)
    assert re.match(r"int8 speed: INT8 (is SLOWER than|runs [0-9.]+x the speed of|and) fp16", said[0]), said


def test_int8_keep_float_is_recorded(demo_images, tmp_path):
    src = save(GRAPHS["classifier"](), tmp_path / "m.onnx")
    first = convert_onnx(src, tmp_path / "probe", fp16=False)
    from edge.ncnn.model import NcnnModel

    model = NcnnModel.read(tmp_path / "probe" / "model.fp32.param")
    conv = next(layer.name for layer in model.layers if layer.type == "Convolution")
    from converters.convert import Int8Options

    result = convert_onnx(src, tmp_path / "b", int8=Int8Options(demo_images, method="kl", keep_float=[conv]))
    kept = result.manifest.builds["int8"].details["kept_float"]
    assert conv in kept and "keep-float" in kept[conv]
    assert first.manifest.builds["fp32"].parity.passed


def test_int8_needs_calibration_images(tmp_path):
    src = save(GRAPHS["classifier"](), tmp_path / "m.onnx")
    proc = run_edgekit("convert", str(src), "-o", str(tmp_path / "b"), "--int8")
    assert proc.returncode != 0 and "--int8 needs --calib" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_edgekit("convert", str(src), "-o", str(tmp_path / "b"), "--int8", "--calib", str(empty))
    assert proc.returncode != 0 and len(message_lines(proc.stderr)) == 1, proc.stderr
    assert not (tmp_path / "b").exists()
