"""INT8 writer (ncnn2int8 semantics), INT8 builds end to end, and the calibrate command."""

from __future__ import annotations

import json

import ncnn
import numpy as np
import pytest
from test_calibration import SPEC, tiny_model, write_images, write_tiny
from typer.testing import CliRunner

from converters.calib_table import CalibrationTable, parse_table, read_table
from converters.int8_build import build_int8, calibrate
from converters.int8_tuning import bias_corrections, candidate_outputs
from converters.int8_writer import quantize_to_int8, write_int8_model
from edge.checksums import sha256_file
from edge.errors import EdgekitError
from edge.manifest import Artifact, FileRecord, InputSpec, Manifest, manifest_to_dict
from edge.manifest.model import OutputSpec
from edge.ncnn.model import Layer, NcnnModel
from edge.ncnn.net import open_net

# A table in ncnn2table's own layout (trailing spaces, weight lines first, '#' comments),
# written by hand for tiny_model(): every layer except 'head' quantized.
HAND_TABLE = """conv0_param_0 {conv0}
dw1_param_0 {dw1}
pw1_param_0 {pw1}
pw2_param_0 {pw2}
fc_param_0 {fc}
conv0 2.500000 \ndw1 30.000000 \npw1 20.000000 \npw2 30.000000 \n#head 10.0
fc 25.000000 \n"""


def _scales_text(model: NcnnModel, name: str) -> str:
    layer = model.layer(name)
    rows = layer.weight("weight").array.astype(np.float32)
    channels = int(layer.get(7, 1)) if layer.type == "ConvolutionDepthWise" else int(layer.get(0))
    absmax = np.abs(rows.reshape(channels, -1)).max(axis=1)
    return " ".join(f"{127 / a:f}" for a in absmax) + " "


def hand_table(model: NcnnModel) -> CalibrationTable:
    names = ("conv0", "dw1", "pw1", "pw2", "fc")
    return parse_table(HAND_TABLE.format(**{n: _scales_text(model, n) for n in names}))


def _run(param, binf, tensor, int8=True):
    net = open_net(param, binf, use_int8_inference=int8)
    try:
        mat = ncnn.Mat(tensor)
        ex = net.create_extractor()
        ex.input("data", mat)
        out = np.array(ex.extract("out")[1], copy=True)
        del ex, mat
        return out
    finally:
        net.clear()


def _cos(a, b):
    a, b = a.reshape(-1), b.reshape(-1)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# ---------------------------------------------------------------------------- writer
def test_writer_follows_ncnn2int8_and_runs_in_ncnn(tmp_path):
    model = tiny_model()
    table = hand_table(model)
    int8, report = write_int8_model(model, table)
    assert report.quantized == ["conv0", "dw1", "pw1", "pw2", "fc"]
    # conv0 -> Split -> (dw1, pw2): input scales differ (30 vs 30 -> equal) so it fuses; dw1 -> pw1 fuses.
    assert ("conv0", "dw1") in report.fused and ("dw1", "pw1") in report.fused
    terms = {layer.name: layer.get(8) for layer in int8.layers if layer.get(8) is not None}
    assert terms == {"conv0": 102, "dw1": 101, "pw1": 2, "pw2": 2, "fc": 2}
    conv0 = int8.layer("conv0")
    assert [w.role for w in conv0.weights] == [
        "weight",
        "bias",
        "weight_scales",
        "bottom_scales",
        "top_scales",
    ]
    assert conv0.weight("weight").storage == "int8"
    expect = quantize_to_int8(model.layer("conv0").weight("weight").array, table.weight_scales["conv0"])
    np.testing.assert_array_equal(conv0.weight("weight").array.reshape(-1), expect)
    assert conv0.weight("top_scales").array[0] == pytest.approx(30.0)
    assert int8.layer("head").weight("weight").storage == "fp16"  # commented out -> kept float, fp16
    assert int8.layer("head").get(8) is None

    param, binf = tmp_path / "i8.param", tmp_path / "i8.bin"
    int8.write(param, binf)
    fparam, fbin = write_tiny(tmp_path)
    x = np.random.default_rng(5).standard_normal((3, 32, 32)).astype(np.float32)
    ref, got = _run(fparam, fbin, x, int8=False), _run(param, binf, x)
    assert not np.array_equal(ref, got)  # really computed in int8
    assert _cos(ref, got) > 0.98


def test_round_half_away_from_zero_and_clamp():
    q = quantize_to_int8(
        np.array([[0.5, -0.5, 1.49, 3.0], [-2.5, 2.5, 0.0, -9.0]], np.float32), np.array([1.0, 100.0])
    )
    np.testing.assert_array_equal(q, [1, -1, 1, 3, -127, 127, 0, -127])


def test_split_consumers_with_different_scales_are_not_fused():
    model = tiny_model()
    table = hand_table(model)
    table.input_scales["pw2"] = 31.0  # differs from dw1's 30
    int8, report = write_int8_model(model, table)
    assert ("conv0", "dw1") not in report.fused and int8.layer("conv0").get(8) == 2


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.input_scales.update(nosuch=1.0), "no layer named 'nosuch'"),
        (lambda t: t.weight_scales.update(pw1=np.ones(3, np.float32)), "needs 8 weight scales"),
        (lambda t: t.weight_scales.pop("fc"), "no fc_param_0"),
        (lambda t: t.input_scales.clear(), "quantizes no layer"),
    ],
)
def test_table_that_does_not_match_the_model(edit, message):
    model = tiny_model()
    table = hand_table(model)
    edit(table)
    with pytest.raises(EdgekitError, match=message):
        write_int8_model(model, table)


def test_already_int8_and_weightless_models_are_refused():
    model = tiny_model()
    int8, _ = write_int8_model(model, hand_table(model))
    with pytest.raises(EdgekitError, match="already INT8"):
        write_int8_model(int8, hand_table(model))
    relu = NcnnModel([Layer("Input", "data", [], ["data"], {}), Layer("ReLU", "r", ["data"], ["out"])])
    with pytest.raises(EdgekitError, match="no Convolution"):
        write_int8_model(relu, CalibrationTable(input_scales={"r": 1.0}))


def test_bias_correction_cancels_the_weight_rounding_mean_shift():
    model = tiny_model()
    table = hand_table(model)

    from types import SimpleNamespace

    from converters.calibration import BlobStats

    stats = SimpleNamespace(blobs={})
    for name, channels in (("pw1", 8), ("pw2", 8)):
        blob = BlobStats()
        blob.channel_sum, blob.images = np.linspace(0.5, 2.0, channels), 1
        stats.blobs[name] = blob
    deltas = bias_corrections(model, table, stats)
    assert set(deltas) == {"pw1", "pw2"}
    w = model.layer("pw1").weight("weight").array.reshape(8, 8)
    s = table.weight_scales["pw1"]
    wq = quantize_to_int8(w, s).reshape(8, 8) / s[:, None]
    np.testing.assert_allclose(deltas["pw1"], -(wq - w) @ np.linspace(0.5, 2.0, 8), rtol=1e-4, atol=1e-7)
    int8, _ = write_int8_model(model, table, bias_deltas=deltas)
    bias = int8.layer("pw1").weight("bias").array
    np.testing.assert_allclose(bias, model.layer("pw1").weight("bias").array + deltas["pw1"], rtol=1e-6)


def test_candidate_outputs_use_ncnns_int8_kernel():
    model = tiny_model()
    layer = model.layer("pw2")
    x = np.abs(np.random.default_rng(2).standard_normal((8, 16, 16))).astype(np.float32)
    scales = np.full(8, 127 / np.abs(layer.weight("weight").array).max(), np.float32)
    coarse, fine = candidate_outputs(layer, scales, [127 / 8.0, 127 / float(x.max())], [x])
    w = layer.weight("weight").array.reshape(8, 8)
    ref = np.einsum("oc,chw->ohw", w, x) + layer.weight("bias").array[:, None, None]
    ref = np.where(ref > 0, ref, 0.1 * ref)
    assert _cos(ref, fine[0]) > _cos(ref, coarse[0]) > 0.9


# ---------------------------------------------------------------------------- end to end
def test_build_int8_kl_manual_and_auto_keep_float(tmp_path):
    param, binf = write_tiny(tmp_path)
    images = write_images(tmp_path / "img", 4)
    out = tmp_path / "out"
    result = build_int8(
        param,
        binf,
        SPEC,
        images,
        out / "m.int8.param",
        out / "m.int8.bin",
        out / "m.table",
        keep_float=["conv0"],
    )
    assert result.kept_float == {"conv0": "requested (--keep-float)"}
    assert result.quantized_layers == 5 and result.images == 4
    assert read_table(result.table_path).kept_float == {"conv0": "requested (--keep-float)"}
    from converters.calibration import list_images
    from edge.media import read_image
    from edge.preprocess import preprocess

    x, _ = preprocess(read_image(list_images(images)[0]), SPEC)
    assert _cos(_run(param, binf, x, int8=False), _run(result.param, result.bin, x)) > 0.95

    auto = build_int8(
        param,
        binf,
        SPEC,
        images,
        out / "a.param",
        out / "a.bin",
        out / "a.table",
        method="search",
        auto_keep_float=0.99999,
        auto_max_bin_ratio=None,  # a toy model's scales alone outweigh any size budget
    )
    assert auto.kept_float and all(r.startswith("auto:") for r in auto.kept_float.values())
    assert auto.output_cosine is not None and auto.quantized_layers == 6 - len(auto.kept_float)

    fast = build_int8(
        param, binf, SPEC, images, out / "f.param", out / "f.bin", out / "f.table", float_depthwise=True
    )
    assert list(fast.kept_float) == ["dw1"] and "depthwise" in fast.kept_float["dw1"]
    assert NcnnModel.read(fast.param, fast.bin).layer("dw1").weight("weight").storage == "fp16"


def test_build_int8_errors(tmp_path):
    param, binf = write_tiny(tmp_path)
    images = write_images(tmp_path / "img", 2)
    args = (param, binf, SPEC, images, tmp_path / "o.param", tmp_path / "o.bin", tmp_path / "o.table")
    with pytest.raises(EdgekitError, match="unknown INT8 method"):
        build_int8(*args, method="magic")
    with pytest.raises(EdgekitError, match="no layer with that name"):
        build_int8(*args, keep_float=["nosuch"])
    with pytest.raises(EdgekitError, match="target"):
        build_int8(*args, auto_keep_float=1.5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgekitError, match="no images"):
        build_int8(*args[:3], tmp_path / "empty", *args[4:])


def test_eq_search_changes_scales_only_within_range(tmp_path):
    param, binf = write_tiny(tmp_path)
    images = write_images(tmp_path / "img", 3)
    kl = calibrate(param, binf, SPEC, images, method="kl")
    kl.close()
    eq = calibrate(param, binf, SPEC, images, method="eq")
    eq.close()
    for name, scale in eq.table.input_scales.items():
        assert 0.5 * kl.table.input_scales[name] - 1e-4 <= scale <= 2.0 * kl.table.input_scales[name] + 1e-4


# ---------------------------------------------------------------------------- real model
def test_real_nanodet_int8_is_small_and_close(tmp_path, ncnn_models, demo_images):
    src = ncnn_models / "nanodet-plus-m_416-pnnx"
    spec = InputSpec(
        name="data",
        ncnn_name="in0",
        shape=[1, 3, 416, 416],
        mean=[103.53, 116.28, 123.675],
        norm=[1 / 57.375, 1 / 57.12, 1 / 58.395],
    )
    result = build_int8(
        src / "model.param",
        src / "model.bin",
        spec,
        demo_images,
        tmp_path / "i.param",
        tmp_path / "i.bin",
        tmp_path / "i.table",
        num_images=3,
    )
    assert result.quantized_layers > 100
    assert result.bin.stat().st_size <= 0.55 * (src / "model.bin").stat().st_size  # source is fp16
    from converters.calibration import list_images
    from edge.media import read_image
    from edge.preprocess import preprocess

    tensor, _ = preprocess(read_image(list_images(demo_images)[0]), spec)
    outs = []
    for param, binf in ((src / "model.param", src / "model.bin"), (result.param, result.bin)):
        net = open_net(param, binf, use_int8_inference=True)
        mat = ncnn.Mat(tensor)
        ex = net.create_extractor()
        ex.input("in0", mat)
        outs.append(np.array(ex.extract("231")[1], copy=True))
        del ex, mat
        net.clear()
    assert _cos(outs[0], outs[1]) > 0.98


def test_writer_reproduces_ncnn2int8_output(ncnn_models):
    """The table hidden in ncnn2int8's own NanoDet output, re-applied to its fp16 source."""
    stock = NcnnModel.read(
        ncnn_models / "nanodet-plus-m_416-int8/model.param", ncnn_models / "nanodet-plus-m_416-int8/model.bin"
    )
    source = ncnn_models / "nanodet-plus-m_416-clsdis"
    fp16 = NcnnModel.read(source / "model.param", source / "model.bin")
    lines = []
    for layer in stock.layers:
        if layer.get(8):
            scales = layer.weight("weight_scales").array
            lines.append(f"{layer.name}_param_0 " + " ".join(f"{v:f}" for v in scales) + " ")
    lines += [f"{ly.name} {ly.weight('bottom_scales').array[0]:.9g} " for ly in stock.layers if ly.get(8)]
    table = parse_table("\n".join(lines) + "\n")  # ncnn2table's text, including 'inf' scales
    ours, report = write_int8_model(fp16, table)
    assert len(report.fused) == 59
    assert len(ours.bin_bytes()) == len(stock.bin_bytes())
    differing = total = 0
    for a, b in zip(ours.layers, stock.layers, strict=True):
        assert (a.name, a.type, a.get(8)) == (b.name, b.type, b.get(8))
        assert {k: v for k, v in a.params.items() if k in b.params} == b.params
        assert [(w.role, w.storage) for w in a.weights] == [(w.role, w.storage) for w in b.weights]
        for wa, wb in zip(a.weights, b.weights, strict=True):
            if wa.storage != "int8":
                np.testing.assert_allclose(
                    wa.array.astype(np.float32), wb.array.astype(np.float32), rtol=1e-6
                )
                continue
            scales = table.weight_scales[a.name]
            finite = np.repeat(np.isfinite(scales), wa.array.size // scales.size)
            diff = np.abs(wa.array.reshape(-1).astype(int) - wb.array.reshape(-1).astype(int))[finite]
            assert diff.max(initial=0) <= 1  # fp16 source vs ncnn2int8's fp32 source: rounding only
            differing, total = differing + int((diff > 0).sum()), total + diff.size
    assert differing / total < 0.03


# ---------------------------------------------------------------------------- CLI
def _build_dir(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    param, binf = write_tiny(build)
    files = {
        role: FileRecord(f.name, sha256_file(f), f.stat().st_size)
        for role, f in (("param", param), ("bin", binf))
    }
    fp32 = Artifact(files=files, size_bytes=sum(f.bytes for f in files.values()))
    source = {"file": "tiny.onnx", "sha256": files["bin"].sha256}
    manifest = Manifest(
        source=source,
        input=SPEC,
        outputs=[OutputSpec("out", "out", [1, 10])],
        decoder=None,
        artifacts={"ncnn": {"fp32": fp32}},
        tools={},
    )
    (build / "manifest.json").write_text(json.dumps(manifest_to_dict(manifest)))
    return build


def test_calibrate_command(tmp_path):
    from edge.cli import _register_commands, app

    _register_commands()
    build = _build_dir(tmp_path)
    images = write_images(tmp_path / "img", 2)
    runner = CliRunner()
    table = tmp_path / "t.table"
    args = ["calibrate", str(build), "--images", str(images), "-o", str(table), "--method", "aciq"]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert set(read_table(table).input_scales) == {"conv0", "dw1", "pw1", "pw2", "head", "fc"}
    again = runner.invoke(app, args)
    assert again.exit_code != 0 and "already exists" in str(again.exception)
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    (tmp_path / "none").mkdir()
    empty = runner.invoke(
        app, ["calibrate", str(build), "--images", str(tmp_path / "none"), "-o", str(tmp_path / "x")]
    )
    assert isinstance(empty.exception, EdgekitError) and "no images" in str(empty.exception)


# ---------------------------------------------------------------------------- issue 15: speed, cap, progress
def test_float32_cosine_matches_float64_to_1e8():
    from converters.int8_tuning import _cosine

    rng = np.random.default_rng(3)
    a = np.maximum(rng.standard_normal(1_000_000).astype(np.float32) * 3 + 1, 0)
    for noise in (1e-3, 1e-2, 1e-1):
        b = (a + rng.standard_normal(a.size).astype(np.float32) * noise).astype(np.float32)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        exact = float(a64 @ b64 / np.sqrt((a64 @ a64) * (b64 @ b64)))
        assert abs(_cosine(a, b) - exact) < 1e-8
        assert abs(_cosine(a, b, float(np.sqrt(a64 @ a64))) - exact) < 1e-8
    assert _cosine(np.zeros(4, np.float32), np.ones(4, np.float32)) == 1.0  # as before: no direction


def test_int8_writer_leaves_the_float_model_untouched():
    model = tiny_model()
    before = {(ly.name, w.role): (w.storage, w.array.copy()) for ly in model.layers for w in ly.weights}
    params = {ly.name: dict(ly.params) for ly in model.layers}
    int8, report = write_int8_model(model, hand_table(model))
    assert report.quantized and int8.layer("conv0").weight("weight").storage == "int8"
    for ly in model.layers:
        assert ly.params == params[ly.name]
        for w in ly.weights:
            storage, array = before[(ly.name, w.role)]
            assert w.storage == storage and np.array_equal(w.array, array)
    assert model.param_text() != int8.param_text()


def _auto_build(tmp_path, name: str, cap: int, target: float = 0.9999999):
    param, binf = write_tiny(tmp_path)
    images = write_images(tmp_path / "img", 3)
    out = tmp_path / name
    return build_int8(
        param, binf, SPEC, images, out / "m.param", out / "m.bin", out / "m.table",
        method="kl", auto_keep_float=target, max_keep_float=cap, auto_max_bin_ratio=None,
    )  # fmt: skip


def test_auto_keep_float_says_when_the_cap_stops_it_short(tmp_path):
    capped = _auto_build(tmp_path, "capped", cap=1)
    info = capped.auto_keep_float
    assert len(capped.kept_float) == 1 and info["kept"] == 1 and info["max_layers"] == 1
    assert not info["reached"] and info["cosine"] < info["target"]
    assert "cap of 1 layers" in info["stopped_by"] and "--max-keep-float" in info["stopped_by"]
    assert "NOT reached" in capped.auto_keep_float_note and "1 layer(s) kept" in capped.auto_keep_float_note
    # a larger cap keeps more layers; 0 keeps none and says so
    wider = _auto_build(tmp_path, "wider", cap=4)
    assert len(wider.kept_float) == 4 and wider.auto_keep_float["max_layers"] == 4
    none = _auto_build(tmp_path, "none", cap=0)
    assert none.kept_float == {} and "0 layers" in none.auto_keep_float["stopped_by"]
    reached = _auto_build(tmp_path, "easy", cap=1, target=0.5)
    assert reached.auto_keep_float["reached"] and reached.auto_keep_float["stopped_by"] is None
    assert "NOT" not in reached.auto_keep_float_note
    with pytest.raises(EdgekitError, match="max-keep-float"):
        _auto_build(tmp_path, "bad", cap=-1)


def test_sensitivity_ranking_refines_the_best_on_all_images(tmp_path):
    from converters import int8_tuning

    param, binf = write_tiny(tmp_path)
    images = write_images(tmp_path / "img", 4)
    cal = calibrate(param, binf, SPEC, images, method="kl")
    try:
        tuner = int8_tuning.Tuner(cal.model, cal.net, SPEC, cal.images, cal.stats)
        ranked, refined, too_big = tuner.rank_sensitivity(cal.table, refine=2)
        assert too_big == 0  # no size limit given
        assert sorted(n for n, _ in ranked) == sorted(cal.table.input_scales)
        # the best 2 of the coarse pass plus the boundary layers (first conv, last layers)
        boundary = int8_tuning.boundary_layers(cal.model)
        assert boundary == ["conv0", "fc"]  # head feeds the fc: not a boundary
        assert 2 <= refined <= 4 and {"conv0", "fc"} <= {n for n, _ in ranked[:refined]}
        # the shortlist is re-measured on all 4 images: its gains are the all-image ones
        for name, gain in ranked[:refined]:
            trial = cal.table.__class__(dict(cal.table.weight_scales), dict(cal.table.input_scales))
            trial.keep_float(name, "check")
            assert gain == pytest.approx(tuner.similarity(trial) - tuner.similarity(cal.table), abs=1e-9)
        assert ranked[0][1] >= ranked[1][1]
    finally:
        cal.close()


def test_step_lines_print_one_line_per_step():
    import io

    from converters.progress import StepLines

    out = io.StringIO()
    say = StepLines(out)
    say("checking ONNX")
    for i in range(1, 129):
        say(f"calibrating {i}/128")
    say("ranking layer sensitivity 1/10")
    say("writing")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert lines[1].endswith("calibrating (128)") and lines[2].endswith("ranking layer sensitivity (10)")
    assert all(line.startswith("edgekit: [") for line in lines)


def test_convert_int8_progress_and_cap_in_summary_and_manifest(demo_images, tmp_path):
    from tests.support.cli import run_edgekit
    from tests.support.onnx_graphs import GRAPHS, save

    src = save(GRAPHS["classifier"](), tmp_path / "m.onnx")
    args = ["convert", src, "-o", tmp_path / "b", "--int8", "--calib", demo_images, "--method", "kl"]
    proc = run_edgekit(*args, "--auto-keep-float", "0.9999999", "--max-keep-float", "1")
    assert proc.returncode == 0, proc.stderr
    said = " ".join(proc.stdout.split())
    # a toy model's scales outweigh the size budget: the summary names that reason
    assert "output cosine" in said and "< target 0.9999999: target NOT reached (" in said, said
    assert "would push the INT8 .bin over 0.54 of the fp16 one" in said, said
    progress = [line for line in proc.stderr.splitlines() if line.startswith("edgekit: [")]
    assert any("calibrating" in line for line in progress), proc.stderr  # stderr is a pipe here
    assert any("ranking layer sensitivity" in line for line in progress), proc.stderr
    details = json.loads((tmp_path / "b" / "manifest.json").read_text())["artifacts"]["ncnn"]["int8"]
    info = details["details"]["auto_keep_float"]
    assert info["max_layers"] == 1 and info["target"] == 0.9999999 and not info["reached"]
    assert info["stopped_by"] in details["details"]["auto_keep_float_note"]
    bad = run_edgekit(*args, "--force", "--max-keep-float", "-2")
    assert bad.returncode != 0 and "--max-keep-float" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_cap_default_is_the_library_default():
    import inspect

    from converters.commands.convert import convert_command
    from converters.int8_tuning import AUTO_MAX_KEPT

    assert inspect.signature(convert_command).parameters["max_keep_float"].default == AUTO_MAX_KEPT
