"""ncnn .param/.bin reading, writing, weight layouts, validation and loading into the real ncnn."""

from __future__ import annotations

import ast
import ctypes
import graphlib
from pathlib import Path

import ncnn
import numpy as np
import pytest

import edge.ncnn
from edge.errors import ModelFormatError
from edge.ncnn.layouts import WEIGHTLESS_TYPES
from edge.ncnn.model import Layer, NcnnModel
from edge.ncnn.net import mat_to_array, open_net, run_net
from edge.ncnn.shapes import infer_shapes
from edge.ncnn.synth import synthesize_weights
from edge.ncnn.validate import validate_files, validate_model
from edge.ncnn.weights import Weight, align4
from tests.support.assets import require_asset
from tests.support.ncnn_graphs import TINY_TRANSFORMER

SHARED_MODELS = (
    "nanodet-m_320",
    "nanodet-m_416",
    "nanodet-plus-m-1.5x_416-int8",
    "nanodet-plus-m_320-clsdis",
    "nanodet-plus-m_416-clsdis",
    "nanodet-plus-m_416-int8",
    "nanodet-plus-m_416-pnnx",
)


def _model_paths(folder: Path) -> list[tuple[Path, Path | None]]:
    pairs = []
    for param in sorted(folder.glob("*.param")):
        weights = param.with_suffix(".bin")
        pairs.append((param, weights if weights.exists() else None))
    return pairs


@pytest.fixture(scope="module")
def bench() -> Path:
    return require_asset("models/ncnn-benchmark")


# ------------------------------------------------------------------ ncnn as the layout oracle
ctypes.pythonapi.PyCapsule_GetPointer.restype = ctypes.c_void_p
ctypes.pythonapi.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
ctypes.pythonapi.PyCapsule_GetName.restype = ctypes.c_char_p
ctypes.pythonapi.PyCapsule_GetName.argtypes = [ctypes.py_object]


class RecordingReader(ncnn.DataReader):
    """Serves ``data`` (or zeros) to ncnn's load_model and records the size of every read."""

    def __init__(self, data: bytes | None = None) -> None:
        super().__init__()
        self.data, self.pos, self.reads = data, 0, []

    def read(self, buf, size):
        pointer = ctypes.pythonapi.PyCapsule_GetPointer(buf, ctypes.pythonapi.PyCapsule_GetName(buf))
        if self.data is None:
            ctypes.memset(pointer, 0, size)
        else:
            chunk = self.data[self.pos : self.pos + size]
            ctypes.memmove(pointer, chunk, len(chunk))
            size = len(chunk)
        self.pos += size
        self.reads.append(size)
        return size

    def scan(self, fmt, p):
        return 0


def ncnn_reads(param_text: str, data: bytes | None) -> list[int]:
    net = ncnn.Net()
    opt = net.opt
    opt.use_vulkan_compute = False
    opt.num_threads = 1
    # plain layouts keep load_model's weight transforms cheap; the reads do not depend on them
    opt.use_packing_layout = opt.use_winograd_convolution = opt.use_sgemm_convolution = False
    opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = opt.use_bf16_storage = False
    assert net.load_param_mem(param_text) == 0
    reader = RecordingReader(data)
    net.load_model(reader)
    return reader.reads


def expected_reads(model: NcnnModel) -> list[int]:
    """The reads our layouts predict: 4-byte tag then body for tagged buffers, body otherwise."""
    reads: list[int] = []
    for layer in model.layers:
        if model.has_weights:
            for w in layer.weights:
                if w.storage == "untagged":
                    reads.append(w.count * 4)
                elif w.storage == "quantized_table":
                    reads += [4, 1024, align4(w.count)]
                else:
                    reads += [4, len(w.encode()) - 4]
        else:
            for spec in layer.layout():
                reads += [4, spec.count * 4] if spec.tagged else [spec.count * 4]
    return reads


LAYOUT_CASES = [
    ("Convolution", "0=8 1=3 5=1 6=216"),
    ("Convolution", "0=8 1=3 6=216 8=1"),
    ("Convolution", "0=8 1=3 5=1 6=216 8=101"),
    ("Convolution", "0=8 1=3 11=1 6=72 19=1"),
    ("ConvolutionDepthWise", "0=8 1=3 5=1 6=72 7=8 8=1"),
    ("ConvolutionDepthWise", "0=8 1=3 5=1 6=72 7=8 8=2"),
    ("ConvolutionDepthWise", "0=8 1=3 5=1 6=72 7=8 8=101"),
    ("ConvolutionDepthWise", "0=8 1=3 6=72 7=8 8=102"),
    ("Convolution1D", "0=8 1=3 5=1 6=24"),
    ("ConvolutionDepthWise1D", "0=8 1=3 5=1 6=24 7=8"),
    ("Convolution3D", "0=8 1=3 5=1 6=216"),
    ("ConvolutionDepthWise3D", "0=8 1=3 5=1 6=216 7=8"),
    ("Deconvolution", "0=8 1=3 5=1 6=216"),
    ("Deconvolution", "0=8 1=3 5=1 6=216 28=1"),
    ("DeconvolutionDepthWise", "0=8 1=3 5=1 6=72 7=8"),
    ("Deconvolution1D", "0=8 1=3 5=1 6=24"),
    ("DeconvolutionDepthWise1D", "0=8 1=3 5=1 6=24 7=8"),
    ("Deconvolution3D", "0=8 1=3 5=1 6=216"),
    ("DeconvolutionDepthWise3D", "0=8 1=3 5=1 6=216 7=8"),
    ("DeformableConv2D", "0=8 1=3 5=1 6=216"),
    ("InnerProduct", "0=8 1=1 2=64"),
    ("InnerProduct", "0=8 1=1 2=64 8=1"),
    ("InnerProduct", "0=8 2=64 8=2"),
    ("InnerProduct", "0=8 1=1 2=64 8=101"),
    ("BatchNorm", "0=5"),
    ("Bias", "0=5"),
    ("Scale", "0=5 1=1"),
    ("Scale", "0=-233 1=0"),
    ("PReLU", "0=5"),
    ("Normalize", "3=5"),
    ("Padding", "6=5"),
    ("Padding", "0=1"),
    ("InstanceNorm", "0=5"),
    ("InstanceNorm", "0=5 2=0"),
    ("GroupNorm", "0=2 1=6"),
    ("GroupNorm", "0=2 1=6 3=0"),
    ("LayerNorm", "0=7"),
    ("LayerNorm", "0=7 2=0"),
    ("RMSNorm", "0=7"),
    ("MemoryData", "0=5"),
    ("MemoryData", "0=5 1=3"),
    ("MemoryData", "0=5 1=3 2=2"),
    ("MemoryData", "0=5 1=3 11=4 2=2"),
    ("MemoryData", "0=5 21=0"),
    ("Embed", "0=8 1=10 2=1 3=80"),
    ("Embed", "0=8 1=10 3=80 18=1"),
    ("MultiHeadAttention", "0=8 1=2 2=64"),
    ("MultiHeadAttention", "0=8 1=2 2=96 3=6 4=5"),
    ("MultiHeadAttention", "0=8 1=2 2=64 18=1"),
    ("Gemm", "4=1 7=3 9=5"),
    ("Gemm", "2=1 4=1 7=3 9=5 18=1"),
    ("Gemm", "3=1 5=1 8=4 9=5 18=1"),
    *[("Gemm", f"5=1 6=1 7=3 8=4 9=5 10={c}") for c in (-1, 0, 1, 2, 3, 4)],
    ("RNN", "0=4 1=24"),
    ("RNN", "0=4 1=48 2=2"),
    ("RNN", "0=4 1=24 8=1"),
    ("LSTM", "0=4 1=96"),
    ("LSTM", "0=4 1=192 2=2"),
    ("LSTM", "0=4 1=48 3=2"),
    ("LSTM", "0=4 1=96 8=1"),
    ("GRU", "0=4 1=72"),
    ("GRU", "0=4 1=144 2=2"),
    ("GRU", "0=4 1=72 8=1"),
    ("Quantize", "0=5"),
    ("Dequantize", "0=5 1=5"),
    ("Requantize", "0=5 1=1 2=5"),
]


def test_every_shared_model_round_trips_byte_identical(ncnn_models):
    checked = 0
    for folder in SHARED_MODELS:
        for param, weights in _model_paths(ncnn_models / folder):
            model = validate_files(param, weights)
            assert model.param_text().encode() == param.read_bytes(), param
            if weights is not None:
                assert model.bin_bytes() == weights.read_bytes(), weights
                assert model.weights_nbytes() == weights.stat().st_size
            checked += 1
    assert checked == 8


def test_weights_decode_with_their_stored_types(ncnn_models):
    fp16 = NcnnModel.read(
        ncnn_models / "nanodet-plus-m_416-clsdis/model.param",
        ncnn_models / "nanodet-plus-m_416-clsdis/model.bin",
    )
    conv = fp16.layers[1]
    assert [(w.role, w.storage, w.array.dtype) for w in conv.weights] == [
        ("weight", "fp16", np.float16),
        ("bias", "untagged", np.float32),
    ]
    assert conv.weight("weight").array.shape == (24, 3, 3, 3)
    int8 = NcnnModel.read(
        ncnn_models / "nanodet-plus-m_416-int8/model.param", ncnn_models / "nanodet-plus-m_416-int8/model.bin"
    )
    by_term = {}
    for layer in int8.layers:
        if layer.type in ("Convolution", "ConvolutionDepthWise") and layer.get(8):
            by_term.setdefault((layer.type, layer.get(8)), layer)
    dw = by_term[("ConvolutionDepthWise", 101)]
    assert [w.role for w in dw.weights] == ["weight", "bias", "weight_scales", "bottom_scales", "top_scales"]
    assert dw.weight("weight").array.dtype == np.int8
    assert dw.weight("weight_scales").count == dw.get(7)
    conv2 = by_term[("Convolution", 2)]
    assert [w.role for w in conv2.weights] == ["weight", "bias", "weight_scales", "bottom_scales"]
    assert np.all(conv2.weight("weight_scales").array > 0)


def test_layouts_match_the_reads_ncnn_makes(ncnn_models, bench):
    """Our per-type layouts predict every single read ncnn's load_model performs."""
    for folder in SHARED_MODELS:
        param, weights = ncnn_models / folder / "model.param", ncnn_models / folder / "model.bin"
        model = NcnnModel.read(param, weights)
        assert ncnn_reads(model.param_text(), weights.read_bytes()) == expected_reads(model), folder
    for param in sorted(bench.glob("*.param")):
        if param.stem in ("vgg16", "vgg16_int8", "alexnet", "vision_transformer"):
            continue  # hundreds of MB of zero weights; their layer types are covered below
        model = NcnnModel.read(param)
        assert ncnn_reads(model.param_text(), None) == expected_reads(model), param.name
    for layer_type, params in LAYOUT_CASES:
        text = f"7767517\n2 2\nInput in 0 1 in\n{layer_type} x 1 1 in out {params}\n"
        model = NcnnModel.parse(text)
        assert ncnn_reads(text, None) == expected_reads(model), (layer_type, params)


def test_vision_transformer_layouts_match_ncnn(bench):
    """Gemm constants, MultiHeadAttention, LayerNorm and MemoryData of a real graph, one layer each."""
    model = NcnnModel.read(bench / "vision_transformer.param")
    for kind in ("Gemm", "MultiHeadAttention", "LayerNorm", "MemoryData"):
        layer = next(layer for layer in model.layers if layer.type == kind)
        single = Layer(layer.type, layer.name, ["in"] * len(layer.inputs), ["out"], dict(layer.params))
        graph = NcnnModel([Layer("Input", "input", [], ["in"]), single], has_weights=False)
        assert ncnn_reads(graph.param_text(), None) == expected_reads(graph), kind


def test_weightless_types_read_nothing():
    for layer_type in sorted(WEIGHTLESS_TYPES):
        if ncnn.layer_to_index(layer_type) < 0:
            continue  # not built into this ncnn
        text = f"7767517\n2 2\nInput in 0 1 in\n{layer_type} x 1 1 in out\n"
        net = ncnn.Net()
        if net.load_param_mem(text) != 0:
            continue  # needs params to load at all; such layers appear in the graph tests
        reader = RecordingReader()
        net.load_model(reader)
        assert reader.reads == [], layer_type


def test_every_benchmark_graph_parses_and_writes_back_identically(bench):
    graphs = sorted(bench.glob("*.param"))
    assert len(graphs) == 35
    for param in graphs:
        model = validate_files(param, None)
        assert model.param_text().encode() == param.read_bytes(), param.name
        assert model.input_names() and model.output_names()
        assert not model.has_weights
    nanodet = NcnnModel.read(bench / "nanodet_m.param")
    assert len(nanodet.layers) == 179 and "ncnn ignores them" in nanodet.warnings[0]


def test_shape_inference_agrees_with_the_shape_hints_in_benchmark_graphs(bench):
    compared = 0
    for param in sorted(bench.glob("*.param")):
        model = NcnnModel.read(param)
        shapes = infer_shapes(model)
        for layer in model.layers:
            hint = layer.get(30)
            if isinstance(hint, list) and len(layer.outputs) == 1 and shapes.get(layer.outputs[0]):
                assert shapes[layer.outputs[0]] == tuple(hint[1 : 1 + hint[0]]), (param.name, layer.name)
                compared += 1
    assert compared > 1500


def test_shape_inference_agrees_with_ncnn(ncnn_models):
    folder = ncnn_models / "nanodet-plus-m_320-clsdis"
    model = NcnnModel.read(folder / "model.param", folder / "model.bin")
    shapes = infer_shapes(model, {"data": (3, 192, 256)})
    net = open_net(folder / "model.param", folder / "model.bin", input_shapes={"data": (3, 192, 256)})
    outs = run_net(net, {"data": np.zeros((3, 192, 256), np.float32)}, ["cls8", "cls16", "cls32", "cls64"])
    for name, array in outs.items():
        assert shapes[name] == tuple(reversed(array.shape)), name


# ------------------------------------------------------------------ synthesised weights in ncnn


@pytest.mark.parametrize("graph", ["squeezenet_int8", "mobilenet_yolo", "nanodet_m", "shufflenet_v2", "tiny"])
def test_synthesized_weights_load_and_run_in_ncnn(graph, bench, tmp_path):
    model = NcnnModel.parse(TINY_TRANSFORMER) if graph == "tiny" else NcnnModel.read(bench / f"{graph}.param")
    built = synthesize_weights(model, seed=0)
    assert all(w.storage in ("fp32", "untagged") for layer in built.layers for w in layer.weights)
    assert sum(bool(layer.layout()) for layer in built.layers) == len(built.weighted_layers())
    param, weights = tmp_path / "m.param", tmp_path / "m.bin"
    built.write(param, weights)
    assert NcnnModel.read(param, weights).bin_bytes() == weights.read_bytes()
    first = model.layers[0]
    shape = tuple(v for v in (first.get(2, 0), first.get(1, 0), first.get(0, 0)) if v)
    net = open_net(param, weights, num_threads=1, input_shapes={model.input_names()[0]: shape})
    data = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    outs = run_net(net, {model.input_names()[0]: data}, model.output_names())
    inferred = infer_shapes(model, {model.input_names()[0]: shape})
    for name, array in outs.items():
        assert array.size > 0 and np.isfinite(array).all(), name
        if inferred[name] is not None:
            assert inferred[name] == tuple(reversed(array.shape)), name
    assert synthesize_weights(model, seed=0).bin_bytes() == built.bin_bytes()  # seeded: reproducible
    assert synthesize_weights(model, seed=1).bin_bytes() != built.bin_bytes()
    constant = synthesize_weights(model, seed=None)
    assert len(constant.bin_bytes()) == len(built.bin_bytes())


def test_synthesize_refuses_unknown_weighted_types():
    model = NcnnModel.parse("7767517\n2 2\nInput in 0 1 in\nFrobnicate f 1 1 in out 0=3\n")
    with pytest.raises(ModelFormatError, match="unknown layer type 'Frobnicate'"):
        synthesize_weights(model)


# ------------------------------------------------------------------ editing and re-serialising
def _first_conv_model(ncnn_models: Path) -> NcnnModel:
    folder = ncnn_models / "nanodet-plus-m_416-clsdis"
    model = NcnnModel.read(folder / "model.param", folder / "model.bin")
    model.layers = model.layers[:2]  # Input + the first (fp16) convolution
    conv = model.layers[1]
    conv.remove(9)  # drop the fused leaky ReLU: the conv becomes linear
    conv.remove(10)
    return model


def _run(model: NcnnModel, tmp_path: Path, name: str, data: np.ndarray) -> np.ndarray:
    param, weights = tmp_path / f"{name}.param", tmp_path / f"{name}.bin"
    model.write(param, weights)
    net = open_net(param, weights, use_fp16_storage=False, use_fp16_arithmetic=False)
    out = model.output_names()[0]
    return run_net(net, {"data": data}, [out])[out]


def test_modified_weights_round_trip_through_ncnn(ncnn_models, tmp_path):
    data = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32)).astype(np.float32)
    model = _first_conv_model(ncnn_models)
    base = _run(model, tmp_path, "base", data)
    conv = model.layers[1]
    assert "9=" not in conv.param_line() and conv.param_line().startswith("Convolution")

    bias = conv.weight("bias")
    original_bias = bias.array.copy()
    shifted = bias.array.copy()
    shifted[5] += 0.75
    bias.replace(shifted)
    moved = _run(model, tmp_path, "bias", data)
    np.testing.assert_allclose(moved[5] - base[5], 0.75, atol=1e-4)
    np.testing.assert_array_equal(np.delete(moved, 5, axis=0), np.delete(base, 5, axis=0))

    weight = conv.weight("weight")
    fp16_size = model.weights_nbytes()
    weight.replace(weight.array.astype(np.float32) * 2, "fp32")
    assert model.weights_nbytes() == fp16_size + weight.count * 2
    doubled = _run(model, tmp_path, "double", data)
    # conv(x) = W x + b: base = W x + b0, so now 2 W x + b1 = 2 (base - b0) + b1
    expected = 2 * (base - original_bias.reshape(-1, 1, 1)) + shifted.reshape(-1, 1, 1)
    np.testing.assert_allclose(doubled, expected, rtol=1e-4, atol=1e-3)

    reread = NcnnModel.read(tmp_path / "double.param", tmp_path / "double.bin")
    assert reread.layers[1].weight("weight").storage == "fp32"
    np.testing.assert_array_equal(reread.layers[1].weight("weight").array, weight.array)


def test_in_place_array_edits_are_written(ncnn_models):
    folder = ncnn_models / "nanodet-m_320"
    model = NcnnModel.read(folder / "model.param", folder / "model.bin")
    original = model.bin_bytes()
    model.weighted_layers()[0].weights[0].array[0, 0, 0, 0] += np.float16(1)
    assert model.bin_bytes() != original and len(model.bin_bytes()) == len(original)
    reread = NcnnModel.parse(model.param_text(), model.bin_bytes())
    assert (
        reread.weighted_layers()[0].weights[0].array[0, 0, 0, 0]
        == model.weighted_layers()[0].weights[0].array[0, 0, 0, 0]
    )


def test_storage_encodings_round_trip():
    values = np.array([0.5, -1.25, 3.0, 0.5, 7.0], dtype=np.float32)
    for storage, expected_len in (
        ("fp32", 24),
        ("raw_fp32", 24),
        ("fp16", 16),
        ("quantized_table", 4 + 1024 + 8),
    ):
        weight = Weight("weight", np.zeros(5, np.float32), "fp32")
        weight.replace(values, storage)
        encoded = weight.encode()
        assert len(encoded) == expected_len, storage
        text = "7767517\n2 2\nInput in 0 1 in\nInnerProduct fc 1 1 in out 0=1 2=5\n"
        decoded = NcnnModel.parse(text, encoded).layers[1].weight("weight")
        assert decoded.storage == storage
        np.testing.assert_array_equal(decoded.array.astype(np.float32).reshape(-1), values)
        assert decoded.encode() == encoded
    int8 = Weight("weight", np.zeros(5, np.float32), "fp32")
    int8.replace(np.array([1, -2, 3, 127, -127], np.int8), "int8")
    assert len(int8.encode()) == 4 + 8
    with pytest.raises(ModelFormatError, match="needs an int8 array"):
        int8.replace(values, "int8")
    with pytest.raises(ModelFormatError, match="untagged"):
        Weight("bias", values, "untagged").replace(values, "fp16")


def test_layers_can_be_inserted_removed_and_renamed(ncnn_models, tmp_path):
    folder = ncnn_models / "nanodet-plus-m_416-pnnx"
    model = NcnnModel.read(folder / "model.param", folder / "model.bin")
    first_conv = model.layers[1]
    relu = Layer("ReLU", "extra_relu", [first_conv.outputs[0]], ["extra_out"])
    for consumer in model.consumers(first_conv.outputs[0]):
        consumer.inputs = ["extra_out" if b == first_conv.outputs[0] else b for b in consumer.inputs]
    model.insert_layer(2, relu)
    model.rename_layer("convrelu_0", "stem")
    model.rename_blob("in0", "image")
    assert model.producer("extra_out") is relu and model.consumers("extra_out")
    text = model.param_text()
    assert text.splitlines()[1] == f"{len(model.layers)} {len(model.blob_names())}"
    model.write(tmp_path / "e.param", tmp_path / "e.bin")
    again = validate_files(tmp_path / "e.param", tmp_path / "e.bin")
    assert again.input_names() == ["image"] and again.layer("stem").type == "Convolution"
    net = open_net(tmp_path / "e.param", tmp_path / "e.bin")
    out = run_net(net, {"image": np.zeros((3, 64, 64), np.float32)}, again.output_names())
    assert all(np.isfinite(v).all() for v in out.values())
    removed = again.remove_layer("extra_relu")
    assert removed.type == "ReLU"
    with pytest.raises(ModelFormatError, match="'extra_out' is never produced"):
        validate_model(again)


# ------------------------------------------------------------------ validation messages
def _write(tmp_path: Path, text: str, data: bytes | None = None) -> tuple[Path, Path]:
    param, weights = tmp_path / "bad.param", tmp_path / "bad.bin"
    param.write_text(text)
    if data is not None:
        weights.write_bytes(data)
    return param, weights


def _error(param: Path, weights: Path | None) -> str:
    """The one-line message validating these files gives (it must name the file)."""
    with pytest.raises(ModelFormatError) as info:
        validate_files(param, weights)
    message = str(info.value)
    assert "\n" not in message and str(param.parent) in message
    return message


@pytest.fixture()
def small(ncnn_models) -> tuple[str, bytes]:
    folder = ncnn_models / "nanodet-plus-m_416-int8"
    model = NcnnModel.read(folder / "model.param", folder / "model.bin")
    model.layers = model.layers[:10]  # up to the first Concat
    return model.param_text(), model.bin_bytes()


def test_truncated_and_oversized_bins_name_the_layer(small, tmp_path):
    text, data = small
    model = NcnnModel.parse(text, data)
    last = model.weighted_layers()[-1]
    msg = _error(*_write(tmp_path, text, data[:-10]))
    assert f"runs short at layer #{model.index_of(last.name)} {last.name!r} (Convolution)" in msg
    assert "bad.bin" in msg
    msg = _error(*_write(tmp_path, text, data + b"\0" * 12))
    assert "12 bytes left over after the last weighted layer" in msg
    msg = _error(*_write(tmp_path, text, b""))
    assert "runs short at layer #1 'convrelu_0'" in msg


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("7767517", "7767518", 1), ":1: first line must be the magic 7767517"),
        (lambda t: t.replace("\n10 11\n", "\n11 11\n", 1), "declares 11 layers but has only 10"),
        (lambda t: t.replace("\n10 11\n", "\n10 12\n", 1), "header declares 12 blobs but the layers use 11"),
        (lambda t: t.replace("Pooling", "Frobnicate", 1), "unknown layer type 'Frobnicate'"),
        (lambda t: t.replace("0=24 1=3", "0=24.5 1=3", 1), "param 0 must be an integer"),
        (lambda t: t.replace("0=24 1=3", "40=24 1=3", 1), "param key 40 is outside"),
        (
            lambda t: t.replace(" 1 2 2 3 4", " 1 2 ghost 3 4", 1).replace("\n10 11\n", "\n10 12\n", 1),
            "input blob 'ghost' is never produced",
        ),
        (
            lambda t: t.replace(" 0 1 data", " 0 2 data 1", 1),
            "an Input layer takes 0 inputs and gives 1 output",
        ),
        (
            lambda t: t.replace("-23310=1,1.000000e-01", "-23310=2,1.000000e-01", 1),
            "array declares 2 values but has 1",
        ),
        (lambda t: t.replace("0=24 1=3", "0=2147483648 1=3", 1), "out of int32 range"),
        (
            lambda t: t.replace(
                "Pooling                  maxpool2d_158            1 1",
                "Pooling                  maxpool2d_158            1 x",
                1,
            ),
            "output count 'x' is not an integer",
        ),
    ],
)
def test_garbled_params_give_one_clear_line(small, tmp_path, edit, expected):
    text, data = small
    garbled = edit(text)
    assert garbled != text
    msg = _error(*_write(tmp_path, garbled, data))
    assert expected in msg
    assert "bad.param" in msg


def test_miswired_graphs_are_refused(small, tmp_path):
    text, data = small
    lines = text.split("\n")
    swapped = "\n".join([*lines[:3], lines[4], lines[3], *lines[5:]])
    assert "is produced only by a later layer" in _error(*_write(tmp_path, swapped, data))
    model = NcnnModel.parse(text, data)
    model.layers[2].outputs = list(model.layers[1].outputs)
    with pytest.raises(ModelFormatError, match="already produced by layer 'convrelu_0'"):
        validate_model(model)
    no_input = NcnnModel.parse(text, data)
    no_input.layers[0].inputs = ["x"]
    with pytest.raises(ModelFormatError, match="takes 0 inputs"):
        validate_model(no_input)


def test_shape_mismatches_are_refused_before_ncnn_runs(small, tmp_path):
    text, data = small
    model = NcnnModel.parse(text, data)
    dw = next(layer for layer in model.layers if layer.type == "ConvolutionDepthWise")
    dw.set(3, 9)  # a stride that makes this branch disagree with its sibling at the Concat
    param, weights = tmp_path / "s.param", tmp_path / "s.bin"
    model.write(param, weights)  # no input size known: nothing to compare yet
    with pytest.raises(ModelFormatError, match=r"differ outside the concat axis"):
        validate_files(param, weights, {"data": (3, 64, 64)})
    with pytest.raises(ModelFormatError, match=r"differ outside the concat axis"):
        open_net(param, weights, input_shapes={"data": (3, 64, 64)})
    with pytest.raises(ModelFormatError, match="need weight_data_size 864, the layer has 648"):
        infer_shapes(model, {"data": (4, 64, 64)})


def test_unusable_files_are_refused(tmp_path, ncnn_models):
    binary = tmp_path / "m.param.bin"
    binary.write_bytes((7767517).to_bytes(4, "little") + b"\x01\x00\x00\x00" * 4)
    with pytest.raises(ModelFormatError, match=r"binary .param.bin \(ncnn2mem\) is not supported"):
        NcnnModel.read(binary)
    garbage = tmp_path / "g.param"
    garbage.write_bytes(b"7767517\n1 1\nInput \xff\xfe 0 1 a\n")
    with pytest.raises(ModelFormatError, match=r"not a text \.param"):
        NcnnModel.read(garbage)
    with pytest.raises(ModelFormatError, match="file not found"):
        NcnnModel.read(tmp_path / "missing.param")
    folder = ncnn_models / "nanodet-m_320"
    with pytest.raises(ModelFormatError, match="file not found"):
        open_net(folder / "model.param", tmp_path / "missing.bin")
    with pytest.raises(ModelFormatError, match="graph only"):
        NcnnModel.read(folder / "model.param").bin_bytes()


def test_open_net_runs_a_real_int8_model(ncnn_models):
    folder = ncnn_models / "nanodet-plus-m_416-int8"
    net = open_net(
        folder / "model.param",
        folder / "model.bin",
        num_threads=1,
        use_int8_inference=True,
        input_shapes={"data": (3, 320, 320)},
    )
    outs = run_net(net, {"data": np.random.default_rng(0).uniform(-2, 2, (3, 320, 320))}, ["cls8", "dis8"])
    assert outs["cls8"].shape == (80, 40, 40) and outs["dis8"].shape[-1] == 32
    assert np.isfinite(outs["cls8"]).all() and outs["cls8"].min() >= 0 and outs["cls8"].max() <= 1


def test_empty_mats_convert_without_crashing():
    assert mat_to_array(ncnn.Mat()).shape == (0,)


def test_every_storage_computes_the_same_in_ncnn(tmp_path):
    """fp32, raw fp32, fp16 and lookup-table weights decode in ncnn to the values we decode."""
    text = "7767517\n2 2\nInput in 0 1 in 0=6\nInnerProduct fc 1 1 in out 0=3 1=1 2=18\n"
    values = np.array([0.5, -1.25, 3.0, 0.25, 2.0, -0.5] * 3, dtype=np.float32).reshape(3, 6)
    data = np.linspace(-1, 1, 6, dtype=np.float32)
    results = {}
    for storage in ("fp32", "raw_fp32", "fp16", "quantized_table"):
        model = synthesize_weights(NcnnModel.parse(text), seed=3)
        model.layers[1].weight("weight").replace(values, storage)
        param, weights = tmp_path / f"{storage}.param", tmp_path / f"{storage}.bin"
        model.write(param, weights)
        assert NcnnModel.read(param, weights).layers[1].weight("weight").storage == storage
        net = open_net(param, weights, use_fp16_storage=False, use_fp16_arithmetic=False)
        results[storage] = run_net(net, {"in": data}, ["out"])["out"]
    bias = synthesize_weights(NcnnModel.parse(text), seed=3).layers[1].weight("bias").array
    for storage, out in results.items():
        np.testing.assert_allclose(out, values @ data + bias, rtol=1e-5, atol=1e-5, err_msg=storage)


def test_synthesize_refuses_absurd_weight_sizes_before_allocating():
    model = NcnnModel.parse("7767517\n2 2\nInput in 0 1 in\nInnerProduct fc 1 1 in out 0=8 2=2000000000\n")
    with pytest.raises(ModelFormatError, match="weights would exceed 1048576 bytes"):
        synthesize_weights(model, max_bytes=1 << 20)


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at top level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_ncnn_core_imports_point_one_way():
    """No import cycle inside edge.ncnn (lazy imports included), and nothing from the layers above."""
    folder = Path(edge.ncnn.__file__).parent
    modules = {f"edge.ncnn.{path.stem}": path for path in folder.glob("*.py") if path.stem != "__init__"}
    graph = {name: _imported_modules(path) & modules.keys() for name, path in modules.items()}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError on a cycle
    for name, path in modules.items():
        above = {m for m in _imported_modules(path) if m.split(".")[0] in ("converters", "benchmarks")}
        assert not above, f"{name} imports {sorted(above)}"
