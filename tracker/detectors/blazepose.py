"""Person detector kind "blazepose": the embedded tiled BlazePose detector (``estimators.blazepose.detector``),
with each person's rotated-ROI alignment points in ``Detections.roi_points`` so that the BlazePose estimator
crops detection frames the way MediaPipe does (rotated ROI from the detector's keypoints 0 and 1)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tracker.sources import Frame

from .base import Detections, DetectorError, PersonDetector, frame_image


class BlazePosePersonDetector(PersonDetector):
    """score_threshold: on each raw detection's sigmoid score. tile_scales: tile sides as fractions of the
    short image side (None: the model's default (1.0, 0.6)). Other keywords go to
    ``estimators.blazepose.BlazePoseDetector`` (detector_path, weights_dir, num_threads, overlap, ...). The
    TFLite model runs on the CPU whatever device the rest of the pipeline uses."""

    def __init__(self, score_threshold: float = 0.4, tile_scales: Sequence[float] | None = None, **model_kw: Any):
        from estimators.blazepose import BlazePoseDetector, BlazePoseInputError

        if tile_scales is not None:
            model_kw["scales"] = tuple(tile_scales)
        try:
            self.model = BlazePoseDetector(score_threshold=score_threshold, **model_kw)
        except BlazePoseInputError as exc:
            raise DetectorError(f"detector blazepose: {exc}") from None

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        out = []
        for i, frame in enumerate(frames):
            people = self.model.detect_rois(frame_image(frame, f"frames[{i}]"))
            out.append(Detections(people.boxes, people.scores, roi_points=people.roi_points))
        return out

    def __repr__(self) -> str:
        return f"BlazePosePersonDetector({self.model!r})"
