"""Test fixtures shared by every test module.

Real models and images live outside the repository, in ``$EDGEKIT_SHARED`` (default
``../shared`` beside the checkout; see :mod:`tests.support.assets`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.assets import require_asset


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared assets directory (models/, data/, docs/)."""
    return require_asset(".")


@pytest.fixture(scope="session")
def demo_images() -> Path:
    return require_asset("data/images")


@pytest.fixture(scope="session")
def onnx_models() -> Path:
    return require_asset("models/onnx")


@pytest.fixture(scope="session")
def ncnn_models() -> Path:
    return require_asset("models/ncnn")


@pytest.fixture(scope="session")
def nanodet_plus_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nanodet-plus-m_416.onnx converted once per session (fp32 + fp16 build directory)."""
    from converters.convert import convert_onnx

    onnx = require_asset("models/onnx/nanodet-plus-m_416.onnx")
    return convert_onnx(
        onnx, tmp_path_factory.mktemp("builds") / "nanodet-plus-m_416-build"
    ).manifest_path.parent


@pytest.fixture(scope="session")
def int8_param() -> Path:
    """The shared stock-INT8 NanoDet-Plus-m 416 model (made with ncnn2int8)."""
    return require_asset("models/ncnn/nanodet-plus-m_416-int8/model.param")
