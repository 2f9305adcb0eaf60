"""What every person detector gives: :class:`Detections` per frame, behind :class:`PersonDetector`."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from association.arrays import check_boxes, check_image
from tracker.sources import Frame


class DetectorError(ValueError):
    """Bad detector configuration or input."""


class DetectionFileError(DetectorError):
    """A detection / annotation file is malformed or cannot be matched to the frames."""


class WeightsNotFoundError(FileNotFoundError):
    """Detector weights are not on disk (nothing is downloaded here)."""


@dataclass
class Detections:
    """Person detections of one frame.

    boxes: (N, 4) float32 xyxy, image pixels of the frame. scores: (N,) float32 detection confidences.
    roi_points: (N, 2, 2) float32 image pixels or None: per box the alignment points of a rotated crop ([:, 0]
    centre, [:, 1] scale/rotation point; the BlazePose detector's), a NaN row = none; None for detectors
    that give boxes only.
    """

    boxes: np.ndarray
    scores: np.ndarray
    roi_points: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes, self.scores = check_boxes(self.boxes, self.scores, "Detections", DetectorError, positive=False,
                                              dtype=np.float32)
        if self.roi_points is not None:
            self.roi_points = np.asarray(self.roi_points, dtype=np.float32)
            if self.roi_points.size == 0 and len(self.boxes) == 0:
                self.roi_points = self.roi_points.reshape(0, 2, 2)
            if self.roi_points.shape != (len(self.boxes), 2, 2):
                raise DetectorError(f"Detections.roi_points: expected shape ({len(self.boxes)}, 2, 2) image px, "
                                    f"got {self.roi_points.shape}")

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


class PersonDetector:
    """Interface: ``detect(frames) -> list[Detections]``, one per frame, in the frames' order."""

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, frames: Sequence[Frame]) -> list[Detections]:
        return self.detect(frames)


def frame_image(frame: Frame | np.ndarray, what: str = "frame") -> np.ndarray:
    """The (H, W, 3) uint8 BGR image of a frame (or the array itself), checked."""
    image = frame.image if isinstance(frame, Frame) else getattr(frame, "image", frame)
    return check_image(image, what, DetectorError)
