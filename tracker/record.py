"""The per-frame record: one small struct of aligned numpy arrays that every pipeline stage reads and returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ORIGIN_DETECTED = 0
ORIGIN_PROPAGATED = 1


@dataclass
class PoseRecord:
    """Poses of one frame, N persons, K keypoints, all in image pixels (x right, y down).

    boxes: (N, 4) float32 xyxy image pixels.
    box_scores: (N,) float32 in [0, 1].
    keypoints: (N, K, 2) float32 image pixels.
    keypoint_scores: (N, K) float32.
    pose_scores: (N,) float32 (box score x mean keypoint score, per the estimator family).
    track_ids: (N,) int64, -1 = not assigned.
    origin: (N,) int8, ORIGIN_DETECTED or ORIGIN_PROPAGATED (box came from the detector or from flow).
    frame_index: index of the frame in its source; timestamp: seconds from the start of the source.
    roi_points: (N, 2, 2) float32 image pixels or None: per person the estimator's alignment points for the
        next frame ([:, 0] centre, [:, 1] the scale/rotation point; BlazePose's), None for estimators without.
    extras: optional per-person arrays (N, ...), e.g. BlazePose's 33 landmarks.
    """

    boxes: np.ndarray
    box_scores: np.ndarray
    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    pose_scores: np.ndarray = None  # type: ignore[assignment]
    track_ids: np.ndarray = None  # type: ignore[assignment]
    origin: np.ndarray = None  # type: ignore[assignment]
    frame_index: int = -1
    timestamp: float = float("nan")
    roi_points: np.ndarray | None = None
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        n = len(self.boxes)
        self.box_scores = np.asarray(self.box_scores, dtype=np.float32).reshape(-1)
        kp = np.asarray(self.keypoints, dtype=np.float32)
        if kp.size == 0 and kp.ndim != 3:
            kp = kp.reshape(0, 0, 2)
        self.keypoints = kp
        self.keypoint_scores = (np.asarray(self.keypoint_scores, dtype=np.float32).reshape(len(kp), -1) if len(kp)
                                else np.zeros((0, kp.shape[1]), np.float32))
        if self.pose_scores is None:
            self.pose_scores = self.box_scores.copy()
        self.pose_scores = np.asarray(self.pose_scores, dtype=np.float32).reshape(-1)
        if self.track_ids is None:
            self.track_ids = np.full(n, -1, dtype=np.int64)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
        if self.origin is None:
            self.origin = np.full(n, ORIGIN_DETECTED, dtype=np.int8)
        self.origin = np.asarray(self.origin, dtype=np.int8).reshape(-1)
        if self.keypoints.ndim != 3 or self.keypoints.shape[2] != 2:
            raise ValueError(f"PoseRecord.keypoints must be (N, K, 2), got {self.keypoints.shape}")
        k = self.keypoints.shape[1]
        for name, arr, shape in (
            ("box_scores", self.box_scores, (n,)),
            ("keypoints", self.keypoints, (n, k, 2)),
            ("keypoint_scores", self.keypoint_scores, (n, k)),
            ("pose_scores", self.pose_scores, (n,)),
            ("track_ids", self.track_ids, (n,)),
            ("origin", self.origin, (n,)),
        ):
            if arr.shape != shape:
                raise ValueError(f"PoseRecord.{name} has shape {arr.shape}, expected {shape} for N={n} boxes")
        if self.roi_points is not None:
            self.roi_points = np.asarray(self.roi_points, dtype=np.float32)
            if self.roi_points.shape != (n, 2, 2):
                raise ValueError(f"PoseRecord.roi_points has shape {self.roi_points.shape}, expected ({n}, 2, 2) "
                                 f"image px")
        for key, arr in self.extras.items():
            if len(arr) != n:
                raise ValueError(f"PoseRecord.extras[{key!r}] has {len(arr)} rows, expected N={n}")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls, num_keypoints: int = 17, frame_index: int = -1, timestamp: float = float("nan")) -> PoseRecord:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, num_keypoints, 2)), np.zeros((0, num_keypoints)),
                   frame_index=frame_index, timestamp=timestamp)

    _ARRAYS = ("boxes", "box_scores", "keypoints", "keypoint_scores", "pose_scores", "track_ids", "origin")

    def __getitem__(self, index) -> PoseRecord:
        """Boolean mask or integer index array over persons -> a new record with those rows."""
        index = np.asarray(index)
        if index.dtype == bool and index.shape != (len(self),):
            raise ValueError(f"boolean mask of shape {index.shape} does not match N={len(self)}")
        kw = {name: getattr(self, name)[index] for name in self._ARRAYS}
        return PoseRecord(**kw, frame_index=self.frame_index, timestamp=self.timestamp,
                          roi_points=None if self.roi_points is None else self.roi_points[index],
                          extras={k: v[index] for k, v in self.extras.items()})

    @staticmethod
    def concatenate(records: list[PoseRecord]) -> PoseRecord:
        """Stack records of the same frame (same K) along persons."""
        if not records:
            raise ValueError("PoseRecord.concatenate needs at least one record")
        kw = {name: np.concatenate([getattr(r, name) for r in records]) for name in PoseRecord._ARRAYS}
        keys = set(records[0].extras)
        extras = {k: np.concatenate([r.extras[k] for r in records]) for k in keys
                  if all(k in r.extras for r in records)}
        roi = None
        if any(r.roi_points is not None for r in records):
            roi = np.concatenate([r.roi_points if r.roi_points is not None else np.full((len(r), 2, 2), np.nan)
                                  for r in records])
        return PoseRecord(**kw, frame_index=records[0].frame_index, timestamp=records[0].timestamp,
                          roi_points=roi, extras=extras)


@dataclass
class Candidates:
    """The person boxes of one frame before pose estimation: detected and flow-propagated, one record.

    boxes: (N, 4) float32 xyxy image pixels. scores: (N,) float32 box scores (a propagated box keeps its
    person's box score). origin: (N,) int8, ORIGIN_DETECTED or ORIGIN_PROPAGATED.
    roi_points: (N, 2, 2) float32 image pixels, the estimator's alignment points per box ([:, 0] centre,
    [:, 1] scale/rotation point); a row of NaN = no hint (the estimator crops the box).
    """

    boxes: np.ndarray
    scores: np.ndarray
    origin: np.ndarray
    roi_points: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        n = len(self.boxes)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.origin = np.asarray(self.origin, dtype=np.int8).reshape(-1)
        self.roi_points = np.asarray(self.roi_points, dtype=np.float32).reshape(-1, 2, 2)
        for name, arr in (("scores", self.scores), ("origin", self.origin), ("roi_points", self.roi_points)):
            if len(arr) != n:
                raise ValueError(f"Candidates.{name} has {len(arr)} rows, expected N={n} boxes")

    @classmethod
    def of(cls, boxes: np.ndarray, scores: np.ndarray, origin: int,
           roi_points: np.ndarray | None = None) -> Candidates:
        """Boxes of one origin; roi_points None = no hints (rows of NaN)."""
        n = len(np.asarray(boxes).reshape(-1, 4))
        roi = np.full((n, 2, 2), np.nan, np.float32) if roi_points is None else roi_points
        return cls(boxes, scores, np.full(n, origin, np.int8), roi)

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index) -> Candidates:
        """Boolean mask or integer index array -> a new Candidates with those rows."""
        return Candidates(self.boxes[index], self.scores[index], self.origin[index], self.roi_points[index])

    @staticmethod
    def concatenate(parts: list[Candidates]) -> Candidates:
        return Candidates(np.concatenate([p.boxes for p in parts]).reshape(-1, 4),
                          np.concatenate([p.scores for p in parts]),
                          np.concatenate([p.origin for p in parts]),
                          np.concatenate([p.roi_points for p in parts]).reshape(-1, 2, 2))

    def hints(self) -> np.ndarray | None:
        """roi_points for ``estimate(..., roi_points=)``: the array when any row holds a hint, else None."""
        return self.roi_points if np.isfinite(self.roi_points).all(axis=(1, 2)).any() else None
