"""The model zoo's SSD-ResNet34 builder: structure and size of the full model (graph only), sane
generated activations, weight loading, and the ``edgekit zoo`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from converters.zoo.build import build_zoo_model
from converters.zoo.ssd_resnet34 import build_network
from converters.zoo.stats import graph_size, initializer_arrays
from converters.zoo.weights import load_weights
from edge.decoders.ssd import resnet34_feature_sizes
from edge.errors import EdgekitError
from tests.support.assets import require_asset
from tests.support.cli import run_edgekit

SMALL = 416  # the smallest convenient input the architecture allows (extra5 needs a 3x3 map)


@pytest.fixture(scope="module")
def full_graph() -> onnx.ModelProto:
    return onnx.shape_inference.infer_shapes(build_network(1200).model)


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    values = [*model.graph.value_info, *model.graph.output]
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}


def test_full_model_size_matches_the_notes(full_graph):
    size = graph_size(full_graph)
    assert size.gflops == pytest.approx(432.8, rel=0.01)
    assert size.mparams == pytest.approx(19.97, rel=0.01)
    # independent count from the notes' table: backbone convs + BN affine, extras, heads
    backbone = (
        9408 + 6 * 36864 + (73728 + 147456 + 8192 + 6 * 147456) + (294912 + 589824 + 32768 + 10 * 589824)
    )
    bn = 2 * (64 + 6 * 64 + 9 * 128 + 13 * 256)
    extras = sum(cin * mid + mid + 9 * mid * cout + cout for cin, mid, cout in
                 [(256, 256, 512), (512, 256, 512), (512, 128, 256), (256, 128, 256), (256, 128, 256)])  # fmt: skip
    heads = sum(
        9 * c * nd * 85 + nd * 85
        for c, nd in zip((256, 512, 512, 256, 256, 256), (4, 6, 6, 6, 4, 4), strict=True)
    )
    assert size.params == backbone + bn + extras + heads


def test_full_model_structure_follows_the_notes(full_graph):
    shapes = _shapes(full_graph)
    assert shapes["loc"] == [1, 4, 15130] and shapes["conf"] == [1, 81, 15130]
    assert shapes["backbone.maxpool"] == [1, 64, 300, 300]
    assert shapes["backbone.layer1.2.relu2"] == [1, 64, 300, 300]
    assert shapes["backbone.layer2.3.relu2"] == [1, 128, 150, 150]
    assert shapes["backbone.layer3.5.relu2"] == [1, 256, 150, 150]  # layer3 keeps stride 1
    assert shapes["backbone.layer3.0.downsample.0"] == [1, 256, 150, 150]
    sources = [shapes[f"extra{i}.relu1"][2] for i in range(1, 6)]
    assert sources == [75, 38, 19, 9, 7]
    heads = [shapes[f"loc.{level}"][2] for level in range(6)]
    assert tuple(heads) == resnet34_feature_sizes(1200) == (50, 25, 13, 7, 3, 3)
    assert [shapes[f"conf.{level}"][1] for level in range(6)] == [nd * 81 for nd in (4, 6, 6, 6, 4, 4)]
    ops = [n.op_type for n in full_graph.graph.node]
    assert ops.count("BatchNormalization") == 1 + 6 + 9 + 13 and "layer4" not in " ".join(
        n.name for n in full_graph.graph.node
    )
    heads = [n for n in full_graph.graph.node if n.op_type == "Conv" and n.name.startswith(("loc.", "conf."))]
    attrs = [{a.name: list(onnx.helper.get_attribute_value(a)) for a in n.attribute} for n in heads]
    assert len(heads) == 12 and all(a["strides"] == [3, 3] and a["pads"] == [1] * 4 for a in attrs)
    assert [n.name for n in full_graph.graph.node if n.op_type == "Concat"] == ["Concat_470", "Concat_471"]


@pytest.mark.parametrize("size", [416, 448, 512, 600])
def test_head_sizes_rule_matches_the_written_network(size):
    shapes = _shapes(onnx.shape_inference.infer_shapes(build_network(size).model))
    assert tuple(shapes[f"conf.{level}"][2] for level in range(6)) == resnet34_feature_sizes(size)


def _stage_outputs(model: onnx.ModelProto, names: list[str], tensor: np.ndarray) -> dict[str, np.ndarray]:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for name in names:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"image": tensor})
    return dict(zip([o.name for o in model.graph.output], outputs, strict=True))


def _image_tensor(demo_images: Path, size: int) -> np.ndarray:
    import cv2

    image = cv2.imread(str(demo_images / "bus.jpg"))[:, :, ::-1]
    x = (cv2.resize(image, (size, size)).astype(np.float32) - [123.675, 116.28, 103.53]) / [
        58.395,
        57.12,
        57.375,
    ]
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def test_generated_activations_neither_vanish_nor_explode(demo_images):
    """On a real image, every stage's output keeps a standard deviation between 0.3 and 3."""
    stages = ["backbone.relu", *[f"backbone.layer{i}.{b}.relu2" for i, b in ((1, 2), (2, 3), (3, 5))]]
    stages += [f"extra{i}.relu1" for i in range(1, 6)]
    found = _stage_outputs(build_network(SMALL).model, stages, _image_tensor(demo_images, SMALL))
    stds = {name: float(found[name].std()) for name in [*stages, "loc", "conf"]}
    assert all(0.3 < s < 3.0 for s in stds.values()), stds
    logits = found["conf"][0]
    probs = np.exp(logits - logits.max(0))
    probs /= probs.sum(0)
    assert (probs[1:] > 0.05).any()  # the decoder has something to keep


def test_weights_are_seeded():
    a, b = (
        initializer_arrays(build_network(SMALL, seed=3).model),
        initializer_arrays(build_network(SMALL, seed=3).model),
    )
    c = initializer_arrays(build_network(SMALL, seed=4).model)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["backbone.conv1.weight"], c["backbone.conv1.weight"])


def _fold_batchnorm(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same network with every BatchNorm folded into its convolution (as some exports ship it),
    tensors renamed so only the structure can match."""
    arrays = initializer_arrays(model)
    nodes, inits, rename = [], {}, {}
    by_input = {n.input[0]: n for n in model.graph.node if n.op_type == "BatchNormalization"}
    for i, node in enumerate(model.graph.node):
        if node.op_type == "BatchNormalization":
            continue
        node = onnx.NodeProto.FromString(node.SerializeToString())
        node.input[:] = [rename.get(x, x) for x in node.input]
        if node.op_type == "Conv":
            w = arrays[node.input[1]]
            b = arrays[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            bn = by_input.get(node.output[0])
            if bn is not None:
                gamma, beta, mean, var = (arrays[x] for x in bn.input[1:5])
                scale = gamma / np.sqrt(var + 1e-5)
                w, b = w * scale[:, None, None, None], (b - mean) * scale + beta
                rename[bn.output[0]] = node.output[0]
            inits[f"w{i}"], inits[f"b{i}"] = w.astype(np.float32), b.astype(np.float32)
            node.input[1:] = [f"w{i}", f"b{i}"]
        else:
            for x in node.input:
                if x in arrays and x not in inits:
                    inits[x] = arrays[x]
        nodes.append(node)
    graph = onnx.helper.make_graph(
        nodes, "folded", list(model.graph.input), list(model.graph.output),
        [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()],
    )  # fmt: skip
    return onnx.helper.make_model(graph, opset_imports=list(model.opset_import))


def test_official_weights_load_by_name_and_by_structure(tmp_path, demo_images):
    trained = build_network(SMALL, seed=7).model
    onnx.save(trained, tmp_path / "same.onnx")
    onnx.save(_fold_batchnorm(trained), tmp_path / "folded.onnx")
    tensor = _image_tensor(demo_images, SMALL)
    reference = _stage_outputs(trained, [], tensor)

    by_name = build_network(SMALL, seed=0).model
    assert "matched by name" in load_weights(by_name, tmp_path / "same.onnx")
    ours, theirs = initializer_arrays(by_name), initializer_arrays(trained)
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)

    folded = build_network(SMALL, seed=0).model
    assert "matched by shape and order" in load_weights(folded, tmp_path / "folded.onnx")
    got = _stage_outputs(folded, [], tensor)
    for name in ("loc", "conf"):
        np.testing.assert_allclose(got[name], reference[name], rtol=1e-3, atol=1e-3)


def test_loading_weights_of_another_model_is_a_clear_error():
    other = require_asset("models/onnx/nanodet-plus-m_416.onnx")
    with pytest.raises(EdgekitError, match="does not match the architecture"):
        load_weights(build_network(SMALL).model, other)


def test_build_writes_metadata_and_checks_size(tmp_path):
    built = build_zoo_model("ssd-resnet34-1200", tmp_path / "m.onnx", input_size=SMALL, with_postprocess=True)
    model = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta == {"edgekit.zoo": "ssd-resnet34-1200", "edgekit.weights": "generated (seed 0)"}
    assert [o.name for o in model.graph.output] == ["bboxes", "labels", "scores"]
    assert {"NonMaxSuppression", "TopK", "Softmax", "GatherND"} <= {n.op_type for n in model.graph.node}
    assert built.size.mparams == pytest.approx(19.97, rel=0.01)
    assert [c[2] for c in built.checks()] == [None, 19.97]  # FLOPs only compare at full size


def test_zoo_command(tmp_path):
    listed = run_edgekit("zoo", "list")
    assert listed.returncode == 0 and "ssd-resnet34-1200" in listed.stdout
    out = tmp_path / "ssd.onnx"
    run = run_edgekit("zoo", "build", "ssd-resnet34-1200", "-o", out, "--input-size", SMALL)
    assert run.returncode == 0, run.stderr
    assert "M parameters: 19.97 (notes: 19.97" in run.stdout
    assert "mlcommons/inference" in run.stdout and "ssd-resnet34-1200-onnx" in run.stdout
    assert "accuracy: not measurable" in run.stdout
    again = run_edgekit("zoo", "build", "ssd-resnet34-1200", "-o", out, "--json", "--force", "--weights", out)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["weights"].startswith("loaded from ssd.onnx")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["zoo", "build", "yolo"], "unknown zoo model 'yolo'"),
        (["zoo", "fetch"], "unknown zoo action 'fetch'"),
        (["zoo", "build", "ssd-resnet34-1200"], "needs -o"),
        (["zoo", "build", "ssd-resnet34-1200", "-o", "{tmp}/x.onnx", "--input-size", "300"], "at least 400"),
        (
            ["zoo", "build", "ssd-resnet34-1200", "-o", "{tmp}/x.onnx", "--weights", "{tmp}/nope.onnx"],
            "not found",
        ),
    ],
)
def test_zoo_command_errors_are_one_line(tmp_path, args, message):
    run = run_edgekit(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert run.returncode != 0 and message in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) <= 2
