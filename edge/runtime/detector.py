"""Detector: preprocess -> ncnn session -> decode -> boxes mapped back to the image."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.decoders import Detections, decode
from edge.preprocess import preprocess
from edge.runtime.resolve import ModelSpec, resolve_model
from edge.runtime.session import NcnnSession


@dataclass
class StageTimes:
    """Accumulated wall time per stage, in seconds, and the number of frames."""

    preprocess: float = 0.0
    inference: float = 0.0
    decode: float = 0.0
    frames: int = 0

    def per_frame_ms(self) -> dict[str, float]:
        n = max(self.frames, 1)
        return {k: 1000 * getattr(self, k) / n for k in ("preprocess", "inference", "decode")}


@dataclass
class Detector:
    """A model ready to detect: thresholds default to the model's decoder spec."""

    spec: ModelSpec
    session: NcnnSession
    layout: str = "auto"
    score_threshold: float | None = None
    nms_threshold: float | None = None
    max_detections: int | None = None
    class_names: tuple[str, ...] = ()
    times: StageTimes = field(default_factory=StageTimes)
    detected_layout: str | None = None

    @classmethod
    def open(
        cls,
        model: Path,
        *,
        precision: str | None = None,
        preset: str = "auto",
        size: int | tuple[int, int] | None = None,
        outputs: list[str] | None = None,
        threads: int = 1,
        layout: str = "auto",
        score_threshold: float | None = None,
        nms_threshold: float | None = None,
        max_detections: int | None = None,
    ) -> Detector:
        """Open a build directory or bare ``.param`` (see :func:`edge.runtime.session.resolve_model`)."""
        spec = resolve_model(model, precision=precision, preset=preset, size=size, outputs=outputs)
        session = NcnnSession(spec, threads=threads)
        names = tuple(spec.decoder.class_names) or tuple(str(i) for i in range(spec.decoder.num_classes))
        if layout == "auto":
            layout = spec.decoder.layout or "auto"  # the manifest may pin one
        return cls(spec, session, layout, score_threshold, nms_threshold, max_detections, names)

    @property
    def name(self) -> str:
        return self.spec.name

    def raw(self, image_bgr: np.ndarray) -> tuple[dict[str, np.ndarray], Any]:
        """Preprocess and run the network; returns raw outputs and the preprocessing transform."""
        t0 = time.perf_counter()
        tensor, transform = preprocess(image_bgr, self.spec.input)
        t1 = time.perf_counter()
        outputs = self.session.run(tensor)
        self.times.preprocess += t1 - t0
        self.times.inference += time.perf_counter() - t1
        return outputs, transform

    def detect(self, image_bgr: np.ndarray) -> Detections:
        """Detections in image pixels for one BGR image."""
        outputs, transform = self.raw(image_bgr)
        return self.decode_outputs(outputs, transform)

    def decode_outputs(self, outputs: dict[str, np.ndarray], transform: Any) -> Detections:
        """Decode raw outputs (from this session or a device's) into detections in image pixels."""
        t0 = time.perf_counter()
        layout, found = decode(
            outputs,
            self.spec.decoder,
            transform.input_width,
            transform.input_height,
            layout=self.detected_layout or self.layout,
            score_threshold=self.score_threshold,
            nms_threshold=self.nms_threshold,
            max_detections=self.max_detections,
        )
        self.detected_layout = layout
        found.boxes = transform.to_image(found.boxes)
        self.times.decode += time.perf_counter() - t0
        self.times.frames += 1
        return found

    def to_records(self, found: Detections) -> list[dict[str, Any]]:
        """JSON-ready records: ``class_id``, ``class_name``, ``score``, ``box`` [x1, y1, x2, y2]."""
        return [
            {
                "class_id": int(c),
                "class_name": self.class_names[c] if c < len(self.class_names) else str(c),
                "score": round(float(s), 5),
                "box": [round(float(v), 2) for v in b],
            }
            for b, s, c in zip(found.boxes, found.scores, found.class_ids, strict=True)
        ]

    def close(self) -> None:
        self.session.close()
