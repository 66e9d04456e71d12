"""Media inputs and outputs: images, folders of images, videos; atomic writes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.atomic import write_bytes
from edge.errors import EdgekitError
from edge.paths import native_path, require_utf8
from edge.quiet import last_words, native_output
from edge.resources import check_readable_whole
from edge.staging import staging_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
#: a decoded image can take this many times its (compressed) file's size, and more
IMAGE_EXPANSION = 20


@dataclass(frozen=True)
class MediaItem:
    """One input: an image or a video file."""

    path: Path
    kind: str  # "image" or "video"


def read_image(path: Path) -> np.ndarray:
    """A BGR image, or a one-line error if the file is missing or not a readable image."""
    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"image not found: {path}")
    check_readable_whole(path, "image", IMAGE_EXPANSION)
    data = np.fromfile(path, dtype=np.uint8)
    with native_output():  # libpng / libjpeg warnings
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise EdgekitError(f"cannot read image {path}: not a supported image file or corrupt")
    return image


def image_files(folder: Path, *, what: str = "image", limit: int | None = None) -> list[Path]:
    """Image files directly inside ``folder`` by extension, sorted, at most ``limit`` of them.

    ``what`` names the folder's purpose in errors (e.g. "calibration image").
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgekitError(f"{what} folder {folder} does not exist or is not a directory")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise EdgekitError(f"no images (.jpg, .png, ...) in {what} folder {folder}")
    return files[:limit] if limit else files


def collect_media(inputs: list[Path]) -> list[MediaItem]:
    """Expand files and folders (their images and videos, sorted, not recursive) into media items."""
    items: list[MediaItem] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = [p for p in sorted(path.iterdir()) if p.is_file() and _kind(p)]
            if not found:
                raise EdgekitError(f"no images or videos in folder {path}")
            items.extend(MediaItem(p, _kind(p)) for p in found)
        elif path.is_file():
            kind = _kind(path)
            if kind is None:
                raise EdgekitError(f"{path}: not an image or video (by its extension)")
            items.append(MediaItem(path, kind))
        else:
            raise EdgekitError(f"input not found: {path}")
    return items


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode ``image`` by ``path``'s extension and write it atomically."""
    ok, encoded = cv2.imencode(path.suffix or ".jpg", image)
    if not ok:
        raise EdgekitError(f"cannot encode an image as {path.suffix}")
    write_bytes(path, encoded.tobytes())


def video_frames(path: Path) -> tuple[Iterator[np.ndarray], float, int]:
    """An iterator over a video's BGR frames, its frame rate and frame count (estimate)."""
    with native_output() as said, native_path(path, "video") as name:  # FFmpeg's complaints
        capture = cv2.VideoCapture(name)
    if not capture.isOpened():
        raise EdgekitError(f"cannot open video {path}{last_words(said)}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                with native_output():
                    ok, frame = capture.read()
                if not ok:
                    return
                yield frame
        finally:
            capture.release()

    return frames(), fps, count


class AtomicVideoWriter:
    """Writes MPEG-4 frames to a temporary sibling file; :meth:`commit` renames it into place."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # .NAME.PID-TOKEN.partial.mp4: removed by the next run (edge.staging.sweep_stale) if we are killed
        self.tmp = staging_path(self.path, "partial", self.path.suffix)
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
        self.writer = cv2.VideoWriter(require_utf8(self.tmp, "video"), fourcc, fps, size)
        if not self.writer.isOpened():
            self.abort()
            raise EdgekitError(f"cannot write video {self.path} (no encoder for {self.path.suffix})")

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(frame)

    def commit(self) -> None:
        self.writer.release()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.writer.release()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()
