"""What third-party ONNX exports bring to convert (issue 13): each failure class reproduced with a
small ONNX graph, then converted for real (onnxsim, pnnx, ncnn, onnxruntime as the reference)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from converters.convert import convert_onnx
from converters.ncnn_run import run_outputs
from converters.ncnn_tidy import user_terms
from converters.parity import compare
from converters.pnnx_runner import run_pnnx
from edge.decoders.registry import families
from edge.errors import EdgekitError, ModelFormatError, ParityError
from edge.manifest import load_manifest
from edge.ncnn.model import NcnnModel
from edge.ncnn.validate import validate_files
from edge.runtime.policy import open_build_net
from tests.support.cli import message_lines, run_edgekit
from tests.support.onnx_graphs import GraphBuilder, save


def _layer_names(param: Path) -> list[str]:
    return [layer.name for layer in NcnnModel.read(param).layers]


def _ncnn_vs_onnxruntime(model: onnx.ModelProto, param: Path, binf: Path, n_out: int) -> float:
    """Worst cosine of an ncnn graph's outputs against onnxruntime on one random input."""
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(3).uniform(0, 1, shape).astype(np.float32)
    refs = ort.InferenceSession(model.SerializeToString()).run(None, {model.graph.input[0].name: x})
    net = open_build_net(param, binf, "fp32")
    try:
        got = run_outputs(net, "in0", x, [f"out{i}" for i in range(n_out)])
    finally:
        net.clear()
    return min(compare(r, g)[0] for r, g in zip(refs, got, strict=True))


# --- duplicate layer names --------------------------------------------------------------------


def _shared_constant_graph() -> onnx.ModelProto:
    """Two branches reading one constant: pnnx's second insert_split pass names a Split splitncnn_0 again."""
    g = GraphBuilder([1, 3, 16, 16])
    x = g.conv("images", 3, 3)
    relu, sig = g.op("Relu", [x])[0], g.op("Sigmoid", [x])[0]
    c = g.const(np.random.default_rng(1).normal(size=(1, 3, 16, 16)).astype(np.float32))
    return g.finish([g.op("Add", [relu, c])[0], g.op("Mul", [sig, c])[0]])


def test_duplicate_layer_names_from_pnnx_load_and_are_renamed(tmp_path):
    model = _shared_constant_graph()
    raw = run_pnnx(model, [1, 3, 16, 16], tmp_path / "raw", fp16=False)
    names = _layer_names(raw.param)
    assert names.count("splitncnn_0") == 2  # the untidy graph pnnx really writes
    # ncnn loads and computes it correctly, so the validator must accept it (a warning, not an error)
    checked = validate_files(raw.param, raw.bin)
    assert any("splitncnn_0" in w and "already exists" in w for w in checked.warnings)
    assert _ncnn_vs_onnxruntime(model, raw.param, raw.bin, 2) >= 0.99999

    result = convert_onnx(save(model, tmp_path / "m.onnx"), tmp_path / "b")
    build = tmp_path / "b"
    for b in result.manifest.builds.values():
        assert b.parity.passed
        names = _layer_names(build / b.param)
        assert len(names) == len(set(names)) and "splitncnn_0_1" in names
    repairs = result.manifest.conversion["report"]["repairs"]
    assert repairs == [
        {
            "repair": "duplicate ncnn layer names written by pnnx renamed",
            "where": ["splitncnn_0 -> splitncnn_0_1"],
            "builds": "all",
        }
    ]
    assert any(n.startswith("repaired: duplicate ncnn layer names") for n in result.manifest.notes)
    assert load_manifest(build) == result.manifest  # the schema accepts the report


def test_errors_about_staged_files_name_the_users_file(tmp_path):
    stage = tmp_path / ".b.abc.partial"
    stage.mkdir()
    param = stage / "model.fp32.param"
    param.write_text("7767517\n2 3\nInput in0 0 1 in0\nReLU relu 1 1 missing out0\n")
    with pytest.raises(ModelFormatError) as err, user_terms(stage, Path("/data/user_model.onnx")):
        validate_files(param, None)
    message = str(err.value)
    assert str(stage) not in message and ".partial" not in message
    assert message.startswith("user_model.onnx (pnnx's model.fp32.param)")
    assert "'missing' is never produced" in message


# --- every ONNX dimension form ----------------------------------------------------------------


def _dims_graph(tmp_path: Path) -> Path:
    """Outputs declared with -1, a symbolic name, 0, an unknown dim and no dims; input batch -1."""
    g = GraphBuilder([1, 3, 16, 16])
    x = g.conv("images", 3, 4)
    outs = [g.op(op, [x])[0] for op in ("Relu", "Sigmoid", "Tanh", "Abs", "Neg")]
    model = g.finish(outs)
    forms: list[list[int | str | None]] = [
        [1, -1, 16, 16],
        [1, "n", 16, 16],
        [1, 0, 16, 16],
        [1, 4, None, 16],
        [],
    ]
    for out, dims in zip(model.graph.output, forms, strict=True):
        del out.type.tensor_type.shape.dim[:]
        for d in dims:
            dim = out.type.tensor_type.shape.dim.add()
            if isinstance(d, int):
                dim.dim_value = d
            elif isinstance(d, str):
                dim.dim_param = d
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1
    onnx.checker.check_model(model)
    return save(model, tmp_path / "dims.onnx")


def test_every_dimension_form_converts(tmp_path):
    src = _dims_graph(tmp_path)
    run = run_edgekit("convert", src, "-o", tmp_path / "b", "--preset", "none", "--json")
    assert (
        run.returncode == 2 and "--input-shape" in message_lines(run.stderr)[-1]
    )  # batch -1: say what to pass
    assert "Traceback" not in run.stderr
    result = convert_onnx(src, tmp_path / "b", input_shape=[1, 3, 16, 16], preset="none")
    assert [o.shape for o in result.manifest.outputs] == [[1, 4, 16, 16]] * 5
    assert all(b.parity.passed for b in result.manifest.builds.values())


# --- fp16 ---------------------------------------------------------------------------------------


def _tiny_conv(g: GraphBuilder, x: str, cin: int, cout: int, scale: float) -> str:
    out = g.conv(x, cin, cout)
    for name in g.nodes[-1].input[1:]:
        init = next(i for i in g.inits if i.name == name)
        init.CopyFrom(numpy_helper.from_array((numpy_helper.to_array(init) * scale).astype(np.float32), name))
    return out


def _underflow_compensated(tmp_path: Path, constant_node: bool = False) -> Path:
    """conv weights ~1e-6 (below fp16's smallest normal), a Mul by 1e6 taking the scale back;
    ``constant_node``: the weights come from a Constant node (as in PaddleOCR's exports)."""
    g = GraphBuilder([1, 3, 32, 32])
    x = g.op("Relu", [_tiny_conv(g, "images", 3, 16, 1e-6)])[0]
    if constant_node:
        conv = g.nodes[-2]
        init = next(i for i in g.inits if i.name == conv.input[1])
        g.inits.remove(init)
        g.nodes.insert(0, onnx.helper.make_node("Constant", [], [init.name], name="Constant_w", value=init))
    x = g.op("Mul", [x, g.const(np.float32(1e6))])[0]
    return save(g.finish([g.op("Relu", [g.conv(x, 16, 8)])[0]]), tmp_path / "under.onnx")


def test_fp16_underflow_is_named_by_the_divergence_search(tmp_path, monkeypatch):
    from converters import fp16_repair

    monkeypatch.setattr(fp16_repair, "ENABLED", False)  # what convert did before the repairs
    with pytest.raises(ParityError) as err:
        convert_onnx(_underflow_compensated(tmp_path), tmp_path / "b", preset="none")
    message = str(err.value)
    assert message.startswith("fp16 build misses parity")
    assert "first divergence at ONNX node 'Conv_4' (Conv" in message and "fp16 cosine" in message
    assert "cause: 100.0 % of Conv_4's weights underflow fp16" in message


@pytest.mark.parametrize("constant_node", [False, True])
def test_fp16_underflow_is_rescaled_into_the_consumer(constant_node, tmp_path):
    result = convert_onnx(_underflow_compensated(tmp_path, constant_node), tmp_path / "b", preset="none")
    fp16 = result.manifest.builds["fp16"]
    assert fp16.parity.passed and fp16.parity.cosine >= 0.9995
    (repair,) = result.manifest.conversion["report"]["repairs"]
    assert repair["builds"] == "fp16" and repair["where"] == ["Conv_4"]
    assert (
        repair["repair"].startswith("weights rescaled by 2^") and "takes the factor back" in repair["repair"]
    )
    assert repair["detail"].startswith("100.0 % of Conv_4's weights underflow fp16")
    # the fp16 .bin holds normal fp16 weights (without the repair all were flushed to 0), no layer
    # needed fp32 storage
    model = NcnnModel.read(tmp_path / "b" / fp16.param, tmp_path / "b" / fp16.bin)
    first = model.weighted_layers()[0].weight("weight")
    assert first.storage == "fp16" and np.count_nonzero(first.array) >= 0.99 * first.count  # unrepaired: 0
    assert result.manifest.conversion["report"]["higher_precision"] == []


def test_fp16_underflow_without_a_consumer_keeps_fp32_storage(tmp_path):
    g = GraphBuilder([1, 3, 32, 32])
    out = g.op("Relu", [_tiny_conv(g, "images", 3, 16, 1e-6)])[0]  # a graph output: nothing to rescale
    src = save(g.finish([out]), tmp_path / "under_out.onnx")
    result = convert_onnx(src, tmp_path / "b", preset="none")
    fp16 = result.manifest.builds["fp16"]
    assert fp16.parity.passed and fp16.parity.cosine >= 0.9995
    (kept,) = result.manifest.conversion["report"]["higher_precision"]
    layer = kept["layer"]
    assert kept["build"] == "fp16" and kept["kept"] == "fp32 weight storage"
    assert kept["reason"].startswith(f"100.0 % of {layer}'s weights underflow fp16")
    model = NcnnModel.read(tmp_path / "b" / fp16.param, tmp_path / "b" / fp16.bin)
    assert model.layer(layer).weight("weight").storage == "fp32"
    assert any(f"fp16 build: {layer} keeps fp32 weight storage" in n for n in result.manifest.notes)


# --- 5-D attention reshapes -------------------------------------------------------------------


def _attention(select: str, *, extra_op: bool = False) -> onnx.ModelProto:
    """qkv (1,N,3C) -> Reshape (1,N,3,heads,d) -> Transpose (2,0,3,1,4) -> q, k, v -> attention."""
    g = GraphBuilder([1, 3, 8, 8])
    n, c, heads = 64, 8, 2
    d = c // heads
    x = g.conv("images", 3, 3 * c, k=1)
    x = g.op("Reshape", [x, g.const(np.array([1, 3 * c, n], np.int64))])[0]
    x = g.op("Transpose", [x], perm=[0, 2, 1])[0]
    x = g.op("Reshape", [x, g.const(np.array([1, n, 3, heads, d], np.int64))])[0]
    t = g.op("Transpose", [x], perm=[2, 0, 3, 1, 4])[0]
    if extra_op:
        t = g.op("Mul", [t, g.const(np.float32(2.0))])[0]
    if select == "gather":
        q, k, v = (g.op("Gather", [t, g.const(np.array(i, np.int64))], axis=0)[0] for i in range(3))
    elif select == "slice":  # PaddleOCR's SVTR export (PP-OCRv4 rec): Slice [i:i+1] + Squeeze per part
        one = g.const(np.array([1], np.int64))
        q, k, v = (
            g.op(
                "Squeeze",
                [
                    g.op(
                        "Slice",
                        [
                            t,
                            g.const(np.array([i], np.int64)),
                            g.const(np.array([i + 1], np.int64)),
                            g.const(np.array([0], np.int64)),
                            one,
                        ],
                    )[0],
                    g.const(np.array([0], np.int64)),
                ],
            )[0]
            for i in range(3)
        )
    else:
        parts = g.op("Split", [t, g.const(np.array([1, 1, 1], np.int64))], n_out=3, axis=0)
        q, k, v = (g.op("Squeeze", [p, g.const(np.array([0], np.int64))])[0] for p in parts)
    a = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])[0]])[0]
    a = g.op("Softmax", [g.op("Mul", [a, g.const(np.float32(d**-0.5))])[0]], axis=-1)[0]
    o = g.op("Transpose", [g.op("MatMul", [a, v])[0]], perm=[0, 2, 1, 3])[0]
    return g.finish([g.op("Reshape", [o, g.const(np.array([1, n, c], np.int64))])[0]])


@pytest.mark.parametrize("select", ["gather", "split", "slice"])
def test_5d_attention_is_rewritten_and_converts_with_parity(select, tmp_path, monkeypatch):
    src = save(_attention(select), tmp_path / "attn.onnx")
    if select != "split":  # pnnx alone leaves a 5-D Tensor.reshape ncnn cannot run
        import converters.convert as convert_module

        with monkeypatch.context() as patch:
            patch.setattr(convert_module, "rewrite_rank5", lambda m: (m, []))
            with pytest.raises(EdgekitError) as err:
                convert_onnx(src, tmp_path / "raw", preset="none")
        assert "'Reshape_" in str(err.value) and "no 5-D reshape" in str(err.value)
        assert str(err.value).endswith("knows no 4-D rewrite of this pattern")  # no pnnx layer names
    result = convert_onnx(src, tmp_path / "b", preset="none")
    for precision, b in result.manifest.builds.items():
        assert b.parity.passed, precision
        assert not [
            t for t in (layer.type for layer in NcnnModel.read(tmp_path / "b" / b.param).layers) if "." in t
        ]
    (repair,) = result.manifest.conversion["report"]["repairs"]
    assert repair["repair"].startswith("5-D Reshape/Transpose/select rewritten") and repair["where"][
        0
    ].startswith("Reshape_")


def test_5d_refusal_names_the_onnx_nodes_and_the_reason(tmp_path):
    src = save(_attention("gather", extra_op=True), tmp_path / "attn5.onnx")
    run = run_edgekit("convert", src, "-o", tmp_path / "b", "--preset", "none")
    line = message_lines(run.stderr)[-1]
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "ONNX node(s) 'Reshape_" in line and "(Reshape to 1x64x3x2x4)" in line and "Transpose_" in line
    assert "ncnn has no tensors of more than 4 dimensions (no 5-D reshape)" in line
    assert not line.startswith("error: pnnx cannot convert pnnx op")
    assert line.endswith("edgekit knows no 4-D rewrite of this pattern") and "pnnx" not in line


# --- preprocessing ------------------------------------------------------------------------------


def _small_classifier(tmp_path: Path) -> Path:
    g = GraphBuilder([1, 3, 32, 32])
    x = g.op("GlobalAveragePool", [g.op("Relu", [g.conv("images", 3, 8, stride=2)])[0]])[0]
    w = g.const(np.random.default_rng(0).normal(size=(10, 8)).astype(np.float32))
    y = g.op("Gemm", [g.op("Flatten", [x])[0], w, g.const(np.zeros(10, np.float32))], transB=1)[0]
    return save(g.finish([g.op("Softmax", [y], axis=1)[0]]), tmp_path / "cls.onnx")


def test_preprocessing_options_are_recorded(tmp_path):
    src = _small_classifier(tmp_path)
    args = ["--preset", "none", "--no-fp16", "--json", "--color", "rgb", "--mean", "123.675,116.28,103.53"]
    run = run_edgekit(
        "convert", src, "-o", tmp_path / "b", *args, "--std", "58.395,57.12,57.375", "--resize", "letterbox"
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["conversion"]["report"]["preprocessing"] == dict.fromkeys(
        ("color", "mean", "norm", "resize"), "option"
    )
    assert not [n for n in summary["notes"] if "guess" in n]
    spec = load_manifest(tmp_path / "b").input
    assert spec.color == "RGB" and spec.resize == "letterbox" and spec.mean == [123.675, 116.28, 103.53]
    assert np.allclose(spec.norm, [1 / 58.395, 1 / 57.12, 1 / 57.375])

    plain = run_edgekit("convert", src, "-o", tmp_path / "c", "--preset", "none", "--no-fp16")
    assert plain.returncode == 0
    assert (
        "note: preprocessing not given and no preset recognised, so it is a guess (color BGR" in plain.stdout
    )
    assert load_manifest(tmp_path / "c").conversion["report"]["preprocessing"]["color"] == "guess"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--color", "hsv"], "--color takes rgb or bgr"),
        (["--norm", "1", "--std", "2"], "--norm and --std say the same thing twice"),
        (["--mean", "1,2"], "expected 1 or 3 numbers, got 2"),
        (["--std", "0"], "--std takes positive numbers"),
        (["--resize", "crop"], "--resize takes stretch or letterbox"),
    ],
)
def test_bad_preprocessing_options_are_one_line(args, message, tmp_path):
    run = run_edgekit("convert", tmp_path / "missing.onnx", "-o", tmp_path / "b", *args)
    lines = message_lines(run.stderr)
    assert run.returncode != 0 and len(lines) == 1 and message in lines[0]


# --- parity against the original file ----------------------------------------------------------


def test_parity_is_measured_against_the_original_file(tmp_path, monkeypatch):
    """A simplification bug (here: onnxsim's output with one weight changed) must be caught."""
    import converters.convert as convert_module
    from converters.simplify import simplify as real_simplify

    def buggy_simplify(model, input_name, shape):
        out = real_simplify(model, input_name, shape)
        init = out.graph.initializer[0]
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * -1.0, init.name))
        return out

    monkeypatch.setattr(convert_module, "simplify", buggy_simplify)
    with pytest.raises(ParityError) as err:
        convert_onnx(_small_classifier(tmp_path), tmp_path / "b", preset="none", fp16=False)
    assert "edgekit's simplified graph already differs from the original file" in str(err.value)


# --- detect on a model it does not recognise -----------------------------------------------------


def test_detect_auto_says_it_does_not_recognise_the_model(tmp_path, demo_images):
    build = tmp_path / "b"
    convert_onnx(_small_classifier(tmp_path), build, preset="none", fp16=False)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "cls.param").write_bytes((build / "model.fp32.param").read_bytes())
    (bare / "cls.bin").write_bytes((build / "model.fp32.bin").read_bytes())
    image = sorted(demo_images.iterdir())[0]
    known = [f.name for f in families()]
    for model, extra in ((build, []), (bare / "cls.param", ["--size", "32"])):
        run = run_edgekit("detect", model, image, "-o", tmp_path / "out", *extra)
        (line,) = message_lines(run.stderr)
        assert run.returncode != 0 and "is not a detector edgekit recognises" in line, line
        assert all(name in line for name in known) and "nanodet-plus" in line and "--preset" in line
        assert "do not match preset 'nanodet-plus'" not in line
