"""What the TF.js box detectors (kinds "centernet", "nanodet") share: the weights file, the person-class runner
of ``estimators.tfjs`` (boxes (M, 4) xyxy image px and scores (M,) per frame, score threshold and box NMS inside),
batching over frames. Each kind is a subclass naming its model and runner."""
from __future__ import annotations

import os
from collections.abc import Sequence

from tracker.sources import Frame

from .base import Detections, DetectorError, PersonDetector, WeightsNotFoundError, frame_image


class TfjsBoxDetector(PersonDetector):
    """weights: the ``<model>.json`` (None = the fetched copy in the weights cache). score_threshold: on the
    person class score. nms_iou: IoU of the box NMS (None = none). batch_size: frames per forward. device: torch
    device. Subclasses set ``kind`` (the config kind), ``model_name`` (the weights-cache name) and ``runner``."""

    kind: str
    model_name: str

    def runner(self, path: str | os.PathLike, device: str):
        """The person-box model: ``(images list of (H, W, 3) uint8 BGR, score_threshold, nms_iou)`` ->
        per image (boxes (M, 4) float32 xyxy px, scores (M,))."""
        raise NotImplementedError

    def __init__(self, weights: str | os.PathLike | None = None, score_threshold: float = 0.3,
                 nms_iou: float | None = 0.5, batch_size: int = 1, device: str = "cpu"):
        from estimators.tfjs.fetch import model_json

        if batch_size < 1:
            raise DetectorError(f"detector {self.kind}: batch_size must be >= 1, got {batch_size}")
        if weights is None:
            try:
                path = model_json(self.model_name)
            except OSError as exc:
                raise WeightsNotFoundError(f"detector {self.kind}: {exc}") from None
        else:
            path = weights
            if not os.path.isfile(path):
                raise WeightsNotFoundError(
                    f"detector {self.kind}: weights file {path} not found (detector.weights: a {self.model_name}.json "
                    f"with its {self.model_name}.bin beside it)")
        self.model = self.runner(path, device)
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
        return (f"{type(self).__name__}(score_threshold={self.score_threshold}, nms_iou={self.nms_iou}, "
                f"batch_size={self.batch_size})")
