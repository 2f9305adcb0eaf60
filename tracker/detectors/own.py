"""Detector kind ``own``: the person subnet of a one-pass estimator (MultiPoseNet's RetinaNet head).

A one-pass estimator gives person boxes and keypoints from one network pass per frame. It offers
``detect(image, *, score_threshold, max_detections) -> (boxes (M, 4) float32 xyxy image px, scores (M,))``
beside the estimator contract, and keeps the last frame's network outputs, so the pipeline's
``detector.detect([frame])`` followed by ``estimator.estimate(frame.image, boxes, ...)`` (on the detected and the
flow-propagated boxes) runs the network once. This adapter only turns that into :class:`Detections`; it holds
no model of its own, so the pipeline does not know which mode is in use.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tracker.sources import Frame

from .base import Detections, DetectorError, PersonDetector, frame_image


class OwnPersonDetector(PersonDetector):
    """model: the one-pass estimator (the object the tracker estimates with); score_threshold: minimum person
    score in (0, 1]; max_detections: boxes kept per frame (best-scoring)."""

    def __init__(self, model: Any, *, score_threshold: float, max_detections: int) -> None:
        if model is None or not callable(getattr(model, "detect", None)):
            raise DetectorError("detector kind 'own' needs a one-pass estimator with a person subnet "
                                f"(estimator.kind=multiposenet); got {type(model).__name__}")
        if not 0.0 < score_threshold <= 1.0:
            raise DetectorError(f"detector.score_threshold: expected a number in (0, 1], got {score_threshold}")
        if max_detections < 1:
            raise DetectorError(f"detector.max_detections: expected >= 1, got {max_detections}")
        self.model = model
        self.score_threshold = float(score_threshold)
        self.max_detections = int(max_detections)

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        out = []
        for frame in frames:
            boxes, scores = self.model.detect(frame_image(frame), score_threshold=self.score_threshold,
                                              max_detections=self.max_detections)
            out.append(Detections(boxes, scores))
        return out
