"""Cross-layer activation equalization: which pairs, fp32 unchanged, INT8 more accurate."""

from __future__ import annotations

import numpy as np
from test_calibration import SPEC, tiny_model, write_images
from test_int8 import _cos, _run

from converters.calibration import list_images
from converters.equalization import RANGE_FLOOR, channel_ranges, equalization_pairs, equalize
from converters.int8_build import build_int8
from edge.media import read_image
from edge.ncnn.model import NcnnModel
from edge.ncnn.net import open_net
from edge.preprocess import preprocess

LOUD = 100.0  # dw1's first four output channels are this much larger than the rest


def imbalanced_model() -> NcnnModel:
    """tiny_model with the same fp32 function, but dw1's channels 0-3 spanning 100x the range of
    channels 4-7 (pw1 reads them 100x weaker): what BN folding often leaves behind."""
    model = tiny_model()
    dw, pw = model.layer("dw1"), model.layer("pw1")
    factor = np.where(np.arange(8) < 4, LOUD, 1.0).astype(np.float32)
    dw.weight("weight").replace(
        dw.weight("weight").array * factor.reshape((8,) + (1,) * (dw.weight("weight").array.ndim - 1))
    )
    dw.weight("bias").replace(dw.weight("bias").array * factor)
    w = pw.weight("weight").array
    pw.weight("weight").replace((w.reshape(8, 8, -1) / factor[None, :, None]).reshape(w.shape))
    return model


def _ranges(model: NcnnModel, tmp_path, images) -> dict[str, np.ndarray]:
    model.write(tmp_path / "r.param", tmp_path / "r.bin")
    net = open_net(tmp_path / "r.param", tmp_path / "r.bin", use_int8_inference=False)
    try:
        return channel_ranges(net, SPEC, list_images(images), ["d1"])
    finally:
        net.clear()


def test_pairs_are_single_reader_convolutions_with_homogeneous_activations():
    model = tiny_model()
    assert [(p.name, c.name) for p, c in equalization_pairs(model)] == [("dw1", "pw1")]
    model.layer("dw1").params[9] = 4  # sigmoid: scaling does not commute with it
    assert equalization_pairs(model) == []
    # conv0 feeds a Split (two readers), pw1/pw2 feed a Concat: never paired


def test_equalized_graph_keeps_fp32_outputs_and_levels_the_channels(tmp_path):
    images = write_images(tmp_path / "img", 3)
    model = imbalanced_model()
    before = _ranges(model, tmp_path, images)["d1"]
    assert before[:4].min() > 10 * before[4:].max()
    equalized, count = equalize(model, {"d1": before})
    assert count == 1
    after = _ranges(equalized, tmp_path, images)["d1"]
    # every channel now spans the blob's range, except those too quiet to lift all the way
    assert before.max() / before.min() > 1000 and after.max() / after.min() <= 1.001 / RANGE_FLOOR
    lifted = before >= RANGE_FLOOR * before.max()
    assert lifted.sum() >= 4
    np.testing.assert_allclose(after[lifted], after.max(), rtol=1e-3)

    x, _ = preprocess(read_image(list_images(images)[0]), SPEC)
    model.write(tmp_path / "a.param", tmp_path / "a.bin")
    equalized.write(tmp_path / "b.param", tmp_path / "b.bin")
    a = _run(tmp_path / "a.param", tmp_path / "a.bin", x, int8=False)
    b = _run(tmp_path / "b.param", tmp_path / "b.bin", x, int8=False)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(a).max())


def test_equalization_rescues_int8_accuracy_of_an_imbalanced_blob(tmp_path):
    images = write_images(tmp_path / "img", 4)
    param, binf = tmp_path / "m.param", tmp_path / "m.bin"
    imbalanced_model().write(param, binf)
    x, _ = preprocess(read_image(list_images(images)[0]), SPEC)
    reference = _run(param, binf, x, int8=False)
    cosines = {}
    for equalize_channels in (False, True):
        out = tmp_path / str(equalize_channels)
        result = build_int8(
            param, binf, SPEC, images, out / "i.param", out / "i.bin", out / "i.table",
            method="kl", equalize_channels=equalize_channels,
        )  # fmt: skip
        assert result.equalized_blobs == (1 if equalize_channels else 0)
        cosines[equalize_channels] = _cos(reference, _run(result.param, result.bin, x))
    assert cosines[True] > 0.99 and 1 - cosines[True] < 0.5 * (1 - cosines[False]), cosines
    table_text = (tmp_path / "True" / "i.table").read_text()
    assert "channel-equalized graph (1 blobs rescaled)" in table_text.splitlines()[1]
