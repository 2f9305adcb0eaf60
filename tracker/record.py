"""The per-frame record: one small struct of aligned numpy arrays that every pipeline stage reads and returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ORIGIN_DETECTED = 0
ORIGIN_PROPAGATED = 1
ORIGIN_INTERPOLATED = 2  # a pose filled in between two matches of its track (files only)


@dataclass
class PoseRecord:
    """Poses of one frame, N persons, K keypoints, all in image pixels (x right, y down).

    boxes: (N, 4) float32 xyxy image pixels.
    box_scores: (N,) float32 in [0, 1].
    keypoints: (N, K, 2) float32 image pixels.
    keypoint_scores: (N, K) float32.
    pose_scores: (N,) float32 (box score x mean keypoint score, per the estimator family).
    track_ids: (N,) int64, -1 = not assigned.
    origin: (N,) int8, ORIGIN_DETECTED, ORIGIN_PROPAGATED (box came from the detector or from flow) or
        ORIGIN_INTERPOLATED (filled into a gap of its track, files only).
    confirmed: (N,) bool, the pose's track is confirmed (association life cycle); default all True.
    frame_index: index of the frame in its source; timestamp: seconds from the start of the source.
    roi_points: (N, 2, 2) float32 image pixels or None: per person the estimator's alignment points for the
        next frame ([:, 0] centre, [:, 1] the scale/rotation point; BlazePose's), None for estimators without.
    extras: optional per-person arrays (N, ...), e.g. BlazePose's 33 landmarks; ``display_keypoints``
        (N, K, 2) px = smoothed keypoints to draw instead of ``keypoints`` (see ``for_display``).
    """

    boxes: np.ndarray
    box_scores: np.ndarray
    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    pose_scores: np.ndarray = None  # type: ignore[assignment]
    track_ids: np.ndarray = None  # type: ignore[assignment]
    origin: np.ndarray = None  # type: ignore[assignment]
    confirmed: np.ndarray = None  # type: ignore[assignment]
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
        if self.confirmed is None:
            self.confirmed = np.ones(n, dtype=bool)
        self.confirmed = np.asarray(self.confirmed, dtype=bool).reshape(-1)
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
            ("confirmed", self.confirmed, (n,)),
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

    _ARRAYS = ("boxes", "box_scores", "keypoints", "keypoint_scores", "pose_scores", "track_ids", "origin",
               "confirmed")

    def for_display(self) -> PoseRecord:
        """The record to draw: keypoints replaced by ``extras["display_keypoints"]`` (smoothed) when present."""
        shown = self.extras.get("display_keypoints")
        if shown is None:
            return self
        out = self[np.arange(len(self))]
        out.keypoints = np.asarray(shown, np.float32)
        return out

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


class TrackFinaliser:
    """Turns the per-frame records of a live tracker into what files keep: only confirmed tracks, each with
    its tentative frames written back, and short gaps of a confirmed track filled in.

    The last ``delay`` frames are held back (a track is confirmed at most ``min_hits - 1`` frames after it
    starts, and a gap is known only when its track is matched again). A record leaves with only the poses of
    tracks that are confirmed by then; a confirmed track matched again after at most ``max_gap`` missing frames
    gets, in each missing frame, its pose linearly interpolated between the two matches (keypoints, box;
    keypoint and pose scores the lower of the two; origin ORIGIN_INTERPOLATED). At the end (``flush``) the
    tracks of the last frame count as confirmed.

    delay: frames held back, >= max_gap + 1 when max_gap > 0. max_gap: frames, 0 = no gap filling.
    Each instance owns its buffer. ``push(item, record, confirmed)`` returns the items now final, ``flush()``
    the rest at the end; ``item`` is anything that travels with the record (the pipeline's Frame).
    """

    def __init__(self, *, delay: int, max_gap: int) -> None:
        if delay < 0 or max_gap < 0:
            raise ValueError(f"TrackFinaliser: delay and max_gap must be >= 0, got {delay}, {max_gap}")
        if max_gap > 0 and delay < max_gap + 1:
            raise ValueError(f"TrackFinaliser: delay ({delay}) must be >= max_gap + 1 ({max_gap + 1})")
        self.delay = int(delay)
        self.max_gap = int(max_gap)
        self._buffer: list[list] = []  # [item, record, confirmed (N,) bool]
        self._confirmed_ids: set[int] = set()

    def push(self, item, record: PoseRecord, confirmed: np.ndarray) -> list[tuple[object, PoseRecord]]:
        """Add one frame (``confirmed``: (N,) bool, the associator's ``last_confirmed``); returns the
        (item, record) pairs that are final now, oldest first."""
        confirmed = np.asarray(confirmed, bool).reshape(-1)
        if confirmed.shape != (len(record),):
            raise ValueError(f"TrackFinaliser.push: confirmed has shape {confirmed.shape}, expected ({len(record)},)")
        self._confirmed_ids.update(int(t) for t in record.track_ids[confirmed])
        if self.max_gap > 0 and self._buffer:
            self._fill_gaps(record, confirmed)
        self._buffer.append([item, record, confirmed.copy()])
        out = []
        while len(self._buffer) > self.delay:
            out.append(self._emit(self._buffer.pop(0)))
        return out

    def flush(self) -> list[tuple[object, PoseRecord]]:
        """Every held frame, final (the end of the video). The tracks of the last frame that are still
        tentative count as confirmed: the video ended before they could be (a one-frame source keeps its poses)."""
        if self._buffer:
            self._confirmed_ids.update(int(t) for t in self._buffer[-1][1].track_ids)
        out = [self._emit(entry) for entry in self._buffer]
        self._buffer = []
        return out

    def _emit(self, entry) -> tuple[object, PoseRecord]:
        item, record, confirmed = entry
        keep = confirmed | np.isin(record.track_ids, np.fromiter(self._confirmed_ids, np.int64))
        out = record[keep]
        out.confirmed[:] = True
        return item, out

    def _fill_gaps(self, record: PoseRecord, confirmed: np.ndarray) -> None:
        for i in np.flatnonzero(confirmed):
            tid = int(record.track_ids[i])
            # the newest held frame that has this track; the frames after it miss it
            for back in range(1, min(self.max_gap + 1, len(self._buffer)) + 1):
                prev = self._buffer[-back][1]
                rows = np.flatnonzero(prev.track_ids == tid)
                if len(rows):
                    break
            else:
                continue
            if back == 1:  # no gap
                continue
            j = int(rows[0])
            for step in range(1, back):
                w = step / back
                entry = self._buffer[-back + step]
                entry[1] = PoseRecord.concatenate([entry[1], _interpolated(prev, j, record, i, w)])
                entry[2] = np.concatenate([entry[2], [True]])


def _interpolated(a: PoseRecord, i: int, b: PoseRecord, j: int, w: float) -> PoseRecord:
    """One pose (1 row) at fraction ``w`` in [0, 1] between pose i of record a and pose j of record b."""
    extras = {}
    for key, arr in b.extras.items():
        arr = np.asarray(arr)
        fill = np.full((1,) + arr.shape[1:], np.nan, np.float32) if arr.dtype.kind == "f" else arr[j:j + 1]
        extras[key] = fill
    return PoseRecord(
        boxes=(1 - w) * a.boxes[i:i + 1] + w * b.boxes[j:j + 1],
        box_scores=np.minimum(a.box_scores[i:i + 1], b.box_scores[j:j + 1]),
        keypoints=(1 - w) * a.keypoints[i:i + 1] + w * b.keypoints[j:j + 1],
        keypoint_scores=np.minimum(a.keypoint_scores[i:i + 1], b.keypoint_scores[j:j + 1]),
        pose_scores=np.minimum(a.pose_scores[i:i + 1], b.pose_scores[j:j + 1]),
        track_ids=b.track_ids[j:j + 1], origin=np.array([ORIGIN_INTERPOLATED], np.int8), confirmed=[True],
        roi_points=None if b.roi_points is None else np.full((1, 2, 2), np.nan, np.float32), extras=extras)


class TrackStats:
    """Proxy metrics of a tracked video without ground truth (a user sees at once when something is off):
    poses per frame, distinct track ids, the histogram of track lengths (frames with a pose), the share of
    low-score poses (mean calibrated keypoint score below ``low_score``) and of interpolated poses.

    Feed it the records that are written (``add``), read ``summary()`` at the end. Each instance owns its counts.
    """

    LENGTH_BINS = (1, 2, 5, 10, 25, 100)  # histogram bins: [1, 2), [2, 5), ..., [100, inf) frames

    def __init__(self, low_score: float = 0.5) -> None:
        self.low_score = float(low_score)
        self.frames = 0
        self.poses = 0
        self.low = 0
        self.interpolated = 0
        self.lengths: dict[int, int] = {}

    def add(self, record: PoseRecord) -> None:
        self.frames += 1
        self.poses += len(record)
        if len(record):
            self.low += int((record.keypoint_scores.mean(axis=1) < self.low_score).sum())
            self.interpolated += int((record.origin == ORIGIN_INTERPOLATED).sum())
        for t in record.track_ids.tolist():
            self.lengths[t] = self.lengths.get(t, 0) + 1

    def histogram(self) -> dict[str, int]:
        """Track lengths in frames -> number of tracks, keyed "1", "2-4", ..., "100+"."""
        edges = list(self.LENGTH_BINS) + [None]
        out = {}
        for lo, hi in zip(edges[:-1], edges[1:]):
            key = f"{lo}+" if hi is None else (str(lo) if hi == lo + 1 else f"{lo}-{hi - 1}")
            out[key] = sum(1 for n in self.lengths.values() if n >= lo and (hi is None or n < hi))
        return out

    def summary(self) -> dict:
        n = max(self.frames, 1)
        return {"poses_per_frame": round(self.poses / n, 3), "distinct_ids": len(self.lengths),
                "track_length_histogram": self.histogram(),
                "low_score_share": round(self.low / max(self.poses, 1), 4), "low_score_below": self.low_score,
                "interpolated_share": round(self.interpolated / max(self.poses, 1), 4)}
