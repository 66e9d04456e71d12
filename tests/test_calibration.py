"""Calibration statistics, threshold methods and the ncnn2table table format."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from converters.calib_table import CalibrationTable, parse_table, read_table, table_text, write_table
from converters.calibration import (
    BlobStats,
    collect_statistics,
    list_images,
    merge_bins,
    quant_targets,
)
from converters.int8_build import calibrate
from converters.thresholds import NUM_BINS, aciq_gaussian_clip, kl_threshold_bin, weight_scales
from edge.errors import EdgekitError
from edge.manifest import InputSpec
from edge.media import read_image
from edge.ncnn.model import Layer, NcnnModel
from edge.ncnn.net import open_net
from edge.ncnn.validate import validate_model
from edge.ncnn.weights import Weight

SPEC = InputSpec(
    name="data", ncnn_name="data", shape=[1, 3, 32, 32], norm=[1 / 64, 1 / 64, 1 / 64], mean=[128.0] * 3
)


def _conv(name, src, dst, cin, cout, k, stride=1, rng=None, dw=False, act=True):
    rng = rng or np.random.default_rng(0)
    per_out = (1 if dw else cin) * k * k
    weight = (rng.standard_normal(cout * per_out) / math.sqrt(per_out)).astype(np.float32)
    params = {0: cout, 1: k, 3: stride, 4: k // 2, 5: 1, 6: weight.size}
    if dw:
        params[7] = cout
    if act:
        params.update({9: 2, 10: [0.1]})
    weights = [
        Weight("weight", weight.reshape(cout, -1), "fp32"),
        Weight("bias", rng.standard_normal(cout).astype(np.float32) * 0.1, "untagged"),
    ]
    return Layer("ConvolutionDepthWise" if dw else "Convolution", name, [src], [dst], params, weights)


def tiny_model(seed: int = 0) -> NcnnModel:
    """Input 3x32x32 -> conv3x3/2 -> split -> (dw3x3 -> conv1x1) + conv1x1 -> concat -> conv1x1 -> fc."""
    rng = np.random.default_rng(seed)
    layers = [
        Layer("Input", "data", [], ["data"], {0: 32, 1: 32, 2: 3}),
        _conv("conv0", "data", "c0", 3, 8, 3, stride=2, rng=rng),
        Layer("Split", "split0", ["c0"], ["c0a", "c0b"]),
        _conv("dw1", "c0a", "d1", 8, 8, 3, rng=rng, dw=True),
        _conv("pw1", "d1", "p1", 8, 8, 1, rng=rng),
        _conv("pw2", "c0b", "p2", 8, 8, 1, rng=rng),
        Layer("Concat", "cat", ["p1", "p2"], ["cat"], {0: 0}),
        _conv("head", "cat", "h", 16, 6, 1, rng=rng, act=False),
        Layer("Pooling", "gap", ["h"], ["g"], {0: 1, 4: 1}),
    ]
    fc_w = (rng.standard_normal(4 * 6) / math.sqrt(6)).astype(np.float32)
    layers.append(
        Layer(
            "InnerProduct",
            "fc",
            ["g"],
            ["out"],
            {0: 4, 1: 1, 2: fc_w.size},
            [
                Weight("weight", fc_w.reshape(4, 6), "fp32"),
                Weight("bias", np.zeros(4, np.float32), "untagged"),
            ],
        )
    )
    return validate_model(NcnnModel(layers))


def write_tiny(directory: Path, seed: int = 0) -> tuple[Path, Path]:
    param, binf = directory / "tiny.param", directory / "tiny.bin"
    tiny_model(seed).write(param, binf)
    return param, binf


def write_images(directory: Path, count: int, seed: int = 1) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        image = cv2.GaussianBlur(rng.integers(0, 256, (40 + 3 * i, 48, 3), dtype=np.uint8), (5, 5), 0)
        cv2.imwrite(str(directory / f"img{i:02d}.png"), image)
    return directory


# ---------------------------------------------------------------------------- thresholds
def _kl_reference(hist: np.ndarray) -> int:
    """ncnn2table's KL loop, transcribed literally (slow; the tested code is vectorised)."""
    h = hist / hist.sum()
    best, best_t, eps = None, 128, 1e-4
    for t in range(128, NUM_BINS):
        clip = h[:t] + eps
        clip[t - 1] += h[t:].sum()
        npb = t / 128
        q = np.zeros(128)
        expand = np.full(t, eps)
        for j in range(128):
            start, end = j * npb, (t if j == 127 else (j + 1) * npb)
            lu, rl = math.ceil(start), math.floor(end)
            ls, rs = lu - start, end - rl
            total = (
                h[lu:rl].sum() + (ls * h[lu - 1] if ls > 0 else 0) + (rs * h[rl] if rs > 0 and rl < t else 0)
            )
            q[j] = total / (end - start)
            expand[lu:rl] += q[j]
            if ls > 0:
                expand[lu - 1] += ls * q[j]
            if rs > 0 and rl < t:
                expand[rl] += rs * q[j]
        kl = float((clip * np.log(clip / expand)).sum())
        if best is None or kl < best:
            best, best_t = kl, t
    return best_t


@pytest.mark.parametrize("seed", [0, 1])
def test_kl_threshold_matches_ncnn2table_loop(seed):
    rng = np.random.default_rng(seed)
    values = np.abs(rng.standard_t(3 + seed, 100_000))
    hist = np.bincount(
        np.minimum((values / values.max() * NUM_BINS).astype(int), NUM_BINS - 1), minlength=NUM_BINS
    )
    assert kl_threshold_bin(hist) == _kl_reference(hist.astype(np.float64))


def test_weight_scales_per_channel_6bit_and_aciq():
    w = np.array([[0.5, -1.0], [0.25, 0.1], [0.0, 0.0]], np.float32)
    np.testing.assert_allclose(weight_scales(w, 3), [127.0, 508.0, 1.0])
    np.testing.assert_allclose(weight_scales(w, 3, six_bit=True), [31.0, 124.0, 1.0])
    aciq = weight_scales(w, 3, method="aciq")
    assert aciq[0] == pytest.approx(127.0 / aciq_gaussian_clip(1.0, 2))


# ---------------------------------------------------------------------------- histograms
def test_single_pass_histogram_matches_two_pass_and_conserves_counts():
    rng = np.random.default_rng(3)
    blobs = [rng.standard_normal((4, 8, 8)).astype(np.float32) * s for s in (1.0, 3.0, 0.5)]
    for b in blobs:
        b[0, 0, :3] = 0.0
    stats = BlobStats()
    for b in blobs:
        stats.add(b)
    nonzero = sum(int(np.count_nonzero(b)) for b in blobs)
    assert stats.histogram.sum() == nonzero
    assert stats.absmax == pytest.approx(max(float(np.abs(b).max()) for b in blobs))
    assert stats.absmax <= stats.hist_range < 2 * stats.absmax
    # The last blob after growth is binned exactly as ncnn2table bins over the final range.
    single = BlobStats()
    single.add(blobs[1])
    mag = np.abs(blobs[1]).reshape(-1)
    mag = mag[mag != 0]
    expect = np.bincount(
        np.minimum((mag / single.hist_range * NUM_BINS).astype(int), NUM_BINS - 1), minlength=NUM_BINS
    )
    np.testing.assert_array_equal(single.histogram, expect)
    np.testing.assert_allclose(
        stats.channel_mean, np.mean([b.mean(axis=(1, 2)) for b in blobs], axis=0), rtol=1e-5
    )


def test_merge_bins_keeps_counts():
    hist = np.arange(NUM_BINS, dtype=np.int64)
    merged = merge_bins(hist, 4)
    assert merged.sum() == hist.sum() and merged[0] == 0 + 1 + 2 + 3 and merged[NUM_BINS // 4 :].sum() == 0
    assert merge_bins(hist, 4096)[0] == hist.sum()


# ---------------------------------------------------------------------------- images
def test_image_folder_errors(tmp_path):
    with pytest.raises(EdgekitError, match="does not exist"):
        list_images(tmp_path / "missing")
    with pytest.raises(EdgekitError, match="no images"):
        list_images(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(EdgekitError, match="no images"):
        list_images(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    (broken,) = list_images(tmp_path)
    with pytest.raises(EdgekitError, match="cannot read image"):
        read_image(broken)


def test_list_images_sorted_and_limited(tmp_path):
    write_images(tmp_path, 5)
    assert [p.name for p in list_images(tmp_path, 3)] == ["img00.png", "img01.png", "img02.png"]


# ---------------------------------------------------------------------------- statistics
def test_statistics_match_the_blobs_and_are_deterministic(tmp_path):
    param, binf = write_tiny(tmp_path)
    images = list_images(write_images(tmp_path / "img", 4))
    net = open_net(param, binf)
    try:
        targets = quant_targets(net)
        assert [t.layer for t in targets] == ["conv0", "dw1", "pw1", "pw2", "head", "fc"]
        seen = []
        stats = collect_statistics(net, SPEC, images, progress=lambda s, d, t: seen.append((d, t)))
        assert seen[-1] == (4, 4)
        import ncnn

        from edge.preprocess import preprocess

        absmax = 0.0
        for path in images:
            tensor, _ = preprocess(read_image(path), SPEC)
            mat = ncnn.Mat(tensor)
            ex = net.create_extractor()
            ex.input("data", mat)
            absmax = max(absmax, float(np.abs(np.array(ex.extract("d1")[1])).max()))
            del ex  # an extractor must not outlive net.clear()
        assert stats.blobs["pw1"].absmax == pytest.approx(absmax, rel=1e-6)
        again = collect_statistics(net, SPEC, images)
        for name, blob in stats.blobs.items():
            np.testing.assert_array_equal(blob.histogram, again.blobs[name].histogram)
    finally:
        net.clear()


def test_calibrate_writes_a_parseable_deterministic_table(tmp_path):
    param, binf = write_tiny(tmp_path)
    images = write_images(tmp_path / "img", 3)
    texts = []
    for method in ("kl", "kl", "aciq"):
        cal = calibrate(param, binf, SPEC, images, method=method)
        cal.close()
        write_table(cal.table, tmp_path / f"{method}.table")
        texts.append((tmp_path / f"{method}.table").read_text())
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]
    lines = [ln for ln in texts[0].splitlines() if not ln.startswith("#")]
    weight_lines = [i for i, ln in enumerate(lines) if ln.split()[0].endswith("_param_0")]
    assert weight_lines == list(range(6)), "weight lines come first"
    assert "" not in texts[0].splitlines(), "ncnn2int8 stops reading at an empty line"
    table = read_table(tmp_path / "kl.table")
    assert set(table.input_scales) == {"conv0", "dw1", "pw1", "pw2", "head", "fc"}
    assert table.weight_scales["dw1"].size == 8 and table.weight_scales["fc"].size == 4


def test_no_quantizable_layer_is_a_clear_error(tmp_path):
    model = NcnnModel(
        [Layer("Input", "data", [], ["data"], {0: 32, 1: 32, 2: 3}), Layer("ReLU", "relu", ["data"], ["out"])]
    )
    model.write(tmp_path / "r.param", tmp_path / "r.bin")
    with pytest.raises(EdgekitError, match="no Convolution"):
        calibrate(tmp_path / "r.param", tmp_path / "r.bin", SPEC, write_images(tmp_path / "img", 1))


# ---------------------------------------------------------------------------- table format
NCNN2TABLE_TEXT = """conv0_param_0 127.000000 63.500000 \nfc_param_0 10.0 20.0 30.0 40.0 \n# a comment line\nconv0 12.345600 \n#fc 3.0\n"""


def test_parse_ncnn2table_text():
    table = parse_table(NCNN2TABLE_TEXT)
    np.testing.assert_allclose(table.weight_scales["conv0"], [127.0, 63.5])
    assert table.input_scales == {"conv0": pytest.approx(12.3456)}
    assert "fc" not in table.input_scales  # commented out = kept float


def test_table_round_trip_and_kept_float_comment():
    table = CalibrationTable(
        weight_scales={"a": np.array([1.5, 2.0], np.float32), "b": np.array([3.0], np.float32)},
        input_scales={"a": 7.25, "b": 0.000123},
    )
    table.keep_float("b", "sensitive")
    text = table_text(table)
    back = parse_table(text)
    assert back.input_scales == {"a": pytest.approx(7.25)}
    assert back.kept_float == {"b": "sensitive"}
    assert text.index("a_param_0") < text.index("\na ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no entries"),
        ("conv0_param_0 1.0 abc\n", "not a number"),
        ("conv0 1.0 2.0\n", "must be one value"),
        ("conv0 -1\n", "positive"),
        ("conv0\n", "no scale values"),
        ("conv0_param_1 1.0\n", "only <layer>_param_0"),
    ],
)
def test_bad_tables_are_clear_errors(text, message):
    with pytest.raises(EdgekitError, match=message):
        parse_table(text)
