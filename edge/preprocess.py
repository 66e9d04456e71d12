"""Image -> network input tensor, and the exact inverse transform for boxes.

Two resize policies, chosen by the manifest's ``input.resize``:

- ``stretch``: plain resize to the network input size (what NanoDet-Plus trains and
  evaluates with, ``keep_ratio: False``).
- ``letterbox``: keep the aspect ratio so the image fits the input size, then pad each side
  to a multiple of ``pad_multiple`` with the padding centred (as ncnn's demos do); the
  network then runs at that padded size, which may be smaller than the nominal input.
  ``pad_multiple <= 0`` pads to the full nominal input size instead.
  The padding is ``pad_value`` grey (0 by default; YOLOv8's is 114).

Both are one ``cv2.warpAffine`` with the matrix ``net = image * scale + pad``, the pixel
convention of NanoDet's own pipeline (``cv2.warpPerspective`` with that matrix in training and
evaluation); ``cv2.resize``'s half-pixel-centred sampling shifts the image by up to a pixel
against it and cost 0.015 mAP on the COCO subset. Boxes found in network-input pixels go back
to image pixels through the inverse matrix, :meth:`Transform.to_image`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.errors import EdgekitError
from edge.manifest import InputSpec


@dataclass(frozen=True)
class Transform:
    """How an image became the network input: ``net = image * scale + pad`` per axis."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    image_width: int
    image_height: int
    input_width: int
    input_height: int

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """Map ``(K, 4)`` xyxy boxes from network-input pixels to image pixels, clipped."""
        out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        out[:, 0::2] = (out[:, 0::2] - self.pad_x) / self.scale_x
        out[:, 1::2] = (out[:, 1::2] - self.pad_y) / self.scale_y
        np.clip(out[:, 0::2], 0, self.image_width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, self.image_height, out=out[:, 1::2])
        return out


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def letterbox_geometry(
    image_w: int, image_h: int, target_w: int, target_h: int, pad_multiple: int
) -> tuple[int, int, int, int, int, int]:
    """Resized size, padded (network) size and top-left padding of a letterbox.

    Returns ``(resized_w, resized_h, padded_w, padded_h, pad_left, pad_top)``.
    """
    scale = min(target_w / image_w, target_h / image_h)
    resized_w = max(1, round(image_w * scale))
    resized_h = max(1, round(image_h * scale))
    if pad_multiple > 0:
        padded_w = min(_round_up(resized_w, pad_multiple), max(target_w, resized_w))
        padded_h = min(_round_up(resized_h, pad_multiple), max(target_h, resized_h))
    else:
        padded_w, padded_h = target_w, target_h
    return resized_w, resized_h, padded_w, padded_h, (padded_w - resized_w) // 2, (padded_h - resized_h) // 2


def preprocess(image_bgr: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, Transform]:
    """Turn a BGR ``uint8`` HxWx3 image into a contiguous float32 CxHxW tensor per ``spec``."""
    if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.size == 0:
        shape = None if image_bgr is None else image_bgr.shape
        raise EdgekitError(f"expected a colour image (H x W x 3), got shape {shape}")
    image_h, image_w = image_bgr.shape[:2]
    target_w, target_h = spec.width, spec.height
    if spec.resize == "stretch":
        transform = Transform(
            target_w / image_w, target_h / image_h, 0.0, 0.0, image_w, image_h, target_w, target_h
        )
    elif spec.resize == "letterbox":
        rw, rh, pw, ph, left, top = letterbox_geometry(
            image_w, image_h, target_w, target_h, spec.pad_multiple
        )
        transform = Transform(rw / image_w, rh / image_h, float(left), float(top), image_w, image_h, pw, ph)
    else:
        raise EdgekitError(f"unknown resize policy {spec.resize!r} (expected 'stretch' or 'letterbox')")
    matrix = np.array(
        [[transform.scale_x, 0.0, transform.pad_x], [0.0, transform.scale_y, transform.pad_y]],
        dtype=np.float64,
    )
    net = cv2.warpAffine(
        image_bgr,
        matrix,
        (transform.input_width, transform.input_height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(spec.pad_value,) * 3,
    )
    if spec.color.upper() == "RGB":
        net = cv2.cvtColor(net, cv2.COLOR_BGR2RGB)
    elif spec.color.upper() != "BGR":
        raise EdgekitError(f"unknown colour order {spec.color!r} (expected 'BGR' or 'RGB')")
    planes = cv2.split(net)  # contiguous uint8 planes: one multiply-add each into the tensor
    tensor = np.empty((3, transform.input_height, transform.input_width), dtype=np.float32)
    for channel, plane in enumerate(planes):
        norm = np.float32(spec.norm[channel])
        np.multiply(plane, norm, out=tensor[channel])
        tensor[channel] -= np.float32(spec.mean[channel]) * norm
    return tensor, transform
