"""The native core decodes images to exactly the pixels ``cv2.imread`` gives the Python runtime.

JPEG goes through libjpeg-turbo (built by ``edgekit native build`` from the Debian source package)
with OpenCV's settings; the reference is OpenCV itself, in this process. ``edgekit-runner decode``
writes the decoded BGR bytes. Host runner directly, the static aarch64 runner under
``qemu-aarch64-static`` (NEON SIMD on ARM, plain C on x86: both must be bit-exact).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.native.locate import runner_path
from tests.support.assets import require_asset, skip_or_fail

pytestmark = [pytest.mark.slow, pytest.mark.native]


@pytest.fixture(scope="session", params=["host", "aarch64"])
def runner(request: pytest.FixtureRequest) -> list[str]:
    """The command prefix running ``edgekit-runner`` for an arch (aarch64: under QEMU user mode)."""
    if request.param == "host":
        return [str(runner_path("host"))]
    qemu = shutil.which("qemu-aarch64-static")
    if qemu is None:
        skip_or_fail("qemu-aarch64-static not installed (apt-get install qemu-user-static)")
    return [qemu, str(runner_path("aarch64"))]


def native_decode(runner: list[str], image: Path, out: Path) -> tuple[int, np.ndarray | None, dict]:
    proc = subprocess.run(
        [*runner, "decode", "--out", out, image], capture_output=True, text=True, timeout=300
    )
    info = json.loads(proc.stdout)
    if proc.returncode != 0:
        return proc.returncode, None, info
    pixels = np.fromfile(out, np.uint8).reshape(info["height"], info["width"], 3)
    return 0, pixels, info


def assert_same_pixels(runner: list[str], image: Path, tmp_path: Path) -> None:
    expected = cv2.imread(str(image), cv2.IMREAD_COLOR)
    assert expected is not None
    code, got, info = native_decode(runner, image, tmp_path / "pixels.bgr")
    assert code == 0, info
    assert got.shape == expected.shape, image.name
    diff = np.abs(got.astype(int) - expected.astype(int))
    assert diff.max() == 0, f"{image.name}: {int((diff > 0).sum())} values differ, by up to {diff.max()}"


def test_every_shared_image_decodes_like_opencv(runner, tmp_path):
    images = sorted(p for p in require_asset("data/images").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    assert sum(p.suffix.lower() == ".jpg" for p in images) >= 5
    for image in images:
        assert_same_pixels(runner, image, tmp_path)


def with_orientation(jpeg: bytes, orientation: int, little_endian: bool) -> bytes:
    """``jpeg`` with an APP1 Exif segment whose IFD0 holds only Orientation = ``orientation``."""
    order = "<" if little_endian else ">"
    tiff = (b"II" if little_endian else b"MM") + struct.pack(order + "HI", 42, 8)
    tiff += struct.pack(order + "H", 1) + struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff += struct.pack(order + "I", 0)
    payload = b"Exif\0\0" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A crop of a shared photo with an odd, non-square size (orientation and subsampling edges)."""
    return cv2.imread(str(require_asset("data/images/zidane.jpg")))[101:318, 203:540]


@pytest.mark.parametrize("little_endian", [True, False])
def test_exif_orientation_is_applied_like_opencv(runner, photo, tmp_path, little_endian):
    """IMREAD_COLOR honours the EXIF orientation (no IMREAD_IGNORE_ORIENTATION); so does the core."""
    ok, encoded = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    shapes = set()
    for orientation in range(1, 9):
        path = tmp_path / f"o{orientation}.jpg"
        path.write_bytes(with_orientation(encoded.tobytes(), orientation, little_endian))
        shapes.add(cv2.imread(str(path)).shape)
        assert_same_pixels(runner, path, tmp_path)
    assert len(shapes) == 2  # the reference really rotates (5..8 swap width and height)


@pytest.mark.parametrize(
    "params",
    [
        [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422],
        [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444],
        [cv2.IMWRITE_JPEG_PROGRESSIVE, 1],
        [cv2.IMWRITE_JPEG_RST_INTERVAL, 3, cv2.IMWRITE_JPEG_QUALITY, 40],
        ["gray"],
    ],
    ids=["422", "444", "progressive", "restarts", "gray"],
)
def test_jpeg_variants_decode_like_opencv(runner, photo, tmp_path, params):
    image = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY) if params == ["gray"] else photo
    ok, encoded = cv2.imencode(".jpg", image, [] if params == ["gray"] else params)
    assert ok
    path = tmp_path / "variant.jpg"
    path.write_bytes(encoded.tobytes())
    assert_same_pixels(runner, path, tmp_path)


def test_cmyk_jpeg_decodes_like_opencv(runner, photo, tmp_path):
    pil = pytest.importorskip("PIL.Image")
    path = tmp_path / "cmyk.jpg"
    pil.fromarray(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB)).convert("CMYK").save(path, quality=90)
    assert_same_pixels(runner, path, tmp_path)


def test_corrupt_jpeg_is_an_input_error(runner, tmp_path):
    good = (require_asset("data/images/dog.jpg")).read_bytes()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good[:2] + b"\xff\xc0\x00\x03" + good[200:400])  # a frame header cut short
    assert cv2.imread(str(broken)) is None
    code, _, info = native_decode(runner, broken, tmp_path / "x.bgr")
    assert (code, info["error"]) == (5, "input") and "broken.jpg" in info["message"]
    assert "\n" not in info["message"]
