"""The per-frame pose tracking pipeline (HRNet paper section 4.3 / SimpleBaseline FlowTrack).

Per frame::

    frame ──► flow(prev image, image) ──► associator.predict(warp): every track's last pose warped ONCE
                                               │ active tracks (the previous frame's poses)
    detector (every det_interval-th frame)     ▼
        └── detected Candidates ──┐    propagated Candidates: box = extent of the warped keypoints enlarged
                                  │    by 15%, roi_points = the previous poses' roi_points warped
                                  ▼                   │
        boxes clipped to the image (clip_to_image) ◄──┘ outside / no size / absurd: dropped, a BoxWarning
                                  ▼
                        box NMS (Propagation.merge)
                                  │ at most max_persons, the best-scoring (Propagation.cap)
                                  │ one Candidates record (boxes, scores, origin, roi_points)
                                  ▼
            estimator.estimate(image, boxes, scores, roi_points) ──► Poses
                                  │
            Propagation.prune: weak propagated poses, propagated duplicates of detected poses, OKS pose NMS
                                  │ (the estimator's layout sigmas); every box = its pose's extent
                                  ▼
            associator.update: OKS against the warped tracks, greedy matching, life cycle, re-identification
                                  │ by motion gate + appearance (colour histograms along the pose)
                                  ▼ ──► PoseRecord with track ids and ``confirmed`` (step's result, live)
            finalise: only confirmed tracks, tentative frames written back, short gaps interpolated, smoothing
                                  ──► what files and the renderer get (``run`` / ``finalise`` / ``finish``)

A track is propagated only while its re-estimated pose stays credible (mean calibrated keypoint score >=
min_score), does not duplicate a detected pose (OKS <= duplicate_oks) and for at most ``max_frames`` frames
without a detection; into a frame where the detector runs only confirmed tracks are propagated. A detected
pose is kept when its mean keypoint score is at least ``min_detected_score``. A camera cut (the mean grey-level
change of a thumbnail above ``cut_threshold``) drops the flow of that frame and resets the tracks' motion; their
appearance is kept for re-identification.

Without flow (flow "none") nothing is propagated: the detector runs every frame, association has no motion
compensation.
"""
from __future__ import annotations

import functools
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torchvision.ops import nms

from association import PoseAssociator, boxes_from_keypoints, oks_matrix
from association.appearance import PoseAppearance
from association.keypoints import KeypointLayout
from association.nms import oks_nms
from association.smoothing import KeypointSmoother
from flow import warp_points

from .record import ORIGIN_DETECTED, ORIGIN_PROPAGATED, Candidates, PoseRecord, TrackFinaliser
from .sources import Frame


class _Estimator(Protocol):
    layout: KeypointLayout
    num_keypoints: int

    def estimate(self, image: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray,
                 roi_points: np.ndarray | None = None): ...


class _Detector(Protocol):
    def detect(self, frames): ...


class _Flow(Protocol):
    def compute(self, prev: np.ndarray, curr: np.ndarray) -> np.ndarray: ...


@dataclass
class StageTimes:
    """Accumulated wall-clock seconds per pipeline stage and the number of frames."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    frames: int = 0

    def add(self, stage: str, dt: float) -> None:
        self.seconds[stage] += dt

    def ms_per_frame(self) -> dict[str, float]:
        n = max(self.frames, 1)
        return {k: 1000.0 * v / n for k, v in self.seconds.items()}


@dataclass(frozen=True)
class Propagation:
    """How boxes are carried from frame to frame by the flow and merged with the detections.

    det_interval: run the detector every k-th frame (k=1 is the paper); in between boxes come only from
        propagation.
    nms_iou: IoU above which detected and propagated boxes are merged (highest score kept).
    box_enlarge: propagated box = keypoint extent enlarged by this fraction (0.15 in the paper).
    keypoint_threshold: keypoints with a score below this do not shape propagated boxes nor count in pose NMS.
    min_score: a propagated box whose new pose has a mean keypoint score below this is dropped (else a box
        would keep propagating over background forever).
    pose_nms_oks: after estimation, poses whose OKS with a better-scoring pose exceeds this are dropped (a
        detected and a propagated box of different extent on one person give the same pose twice; box NMS
        alone cannot merge them). None disables it.
    duplicate_oks: a propagated pose whose OKS with a detected pose of the frame exceeds this is dropped (the
        detected one is kept, whatever the scores).
    max_frames: a track is propagated for at most this many frames in a row without a detected pose.
    min_detected_score: a detected pose whose mean keypoint score is below this is dropped too (a detector box
        on a rock or a sign post gets a pose of scattered low-scoring keypoints: on OpenCV's vtest.avi with
        CenterNet + MoveNet thunder, mean 0.08-0.16, where the people score 0.25-0.8); 0 = keep all (the paper).
    max_persons: at most this many boxes per frame go to the estimator (the best-scoring after box NMS; a
        :class:`BoxWarning` when more were found): the work of one frame is bounded whatever the detector
        or a bad detection file gives.
    prefer_detected: box NMS ranks every detected box above every propagated one (then by score); off = the
        paper's NMS by score alone. On helps a detector whose boxes are good but whose poses score low (MoveNet:
        a propagated box keeping an older score would win and its pose be dropped by min_score); off is better
        for the BlazePose tiles, whose boxes of entangled people are worse than the propagated pose extents
        (on the PoseTrack test clip on loses a player's track at frame 3).
    Every value is explicit; the tracking config (``propagation:``) holds the defaults.
    """

    det_interval: int
    nms_iou: float
    box_enlarge: float
    keypoint_threshold: float
    min_score: float
    pose_nms_oks: float | None
    duplicate_oks: float
    max_frames: int
    max_persons: int = 100
    prefer_detected: bool = False
    min_detected_score: float = 0.0

    def __post_init__(self) -> None:
        if self.det_interval < 1:
            raise ValueError(f"det_interval must be >= 1, got {self.det_interval}")
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.max_persons < 1:
            raise ValueError(f"max_persons must be >= 1, got {self.max_persons}")

    def detect_now(self, step: int, can_propagate: bool) -> bool:
        """Whether the detector runs on frame number ``step`` (always when nothing can be propagated)."""
        return step % self.det_interval == 0 or not can_propagate

    def propagate(self, previous: PoseRecord, warped_keypoints: np.ndarray, flow: np.ndarray,
                  image_size: tuple[int, int]) -> Candidates:
        """Boxes of the previous frame's poses moved into this frame.

        previous: the previous frame's poses (N persons). warped_keypoints: (N, K, 2) image px, their
        keypoints moved by the flow. flow: (H, W, 2) px, for the roi_points. image_size: (width, height).
        A propagated box keeps its person's box score (not the pose score, which would decay
        multiplicatively from frame to frame); boxes thinner than 1 px are dropped.
        """
        boxes = boxes_from_keypoints(warped_keypoints, previous.keypoint_scores, self.keypoint_threshold,
                                     enlarge=self.box_enlarge, image_size=image_size)
        ok = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)
        roi = None if previous.roi_points is None else warp_points(previous.roi_points, flow)
        return Candidates.of(boxes, previous.box_scores, ORIGIN_PROPAGATED, roi)[ok]

    def merge(self, candidates: Candidates) -> Candidates:
        """Box NMS over detected and propagated candidates (torchvision.ops.nms), highest score kept; with
        ``prefer_detected`` a detected box is ranked above every propagated one, then by score."""
        if len(candidates) < 2:
            return candidates
        rank = candidates.scores.astype(np.float64)
        if self.prefer_detected:
            rank = rank + 2.0 * (candidates.origin == ORIGIN_DETECTED)
        keep = nms(torch.from_numpy(candidates.boxes).double(), torch.from_numpy(rank), self.nms_iou)
        return candidates[keep.numpy()]

    def cap(self, candidates: Candidates, frame_index: int) -> Candidates:
        """At most ``max_persons`` candidates, the best-scoring (their order kept); a :class:`BoxWarning`
        when some are left out."""
        n = len(candidates)
        if n <= self.max_persons:
            return candidates
        best = np.sort(np.argsort(-candidates.scores, kind="stable")[: self.max_persons])
        warnings.warn(f"frame {frame_index}: {n} person boxes, more than propagation.max_persons="
                      f"{self.max_persons}; the {self.max_persons} best-scoring were kept", BoxWarning, stacklevel=3)
        return candidates[best]

    def prune(self, record: PoseRecord, sigmas: tuple[float, ...], image_size: tuple[int, int] | None = None
              ) -> PoseRecord:
        """Drop weak poses (propagated: below min_score, detected: below min_detected_score), propagated
        duplicates of detected poses, then duplicate poses by OKS NMS (``sigmas``: the layout's (K,)); each kept
        pose's box becomes its keypoints' extent (enlarged by box_enlarge, clipped to ``image_size`` (width,
        height) px) where it has 2+ keypoints above the keypoint threshold (else the box it was estimated in
        stays)."""
        propagated = record.origin == ORIGIN_PROPAGATED
        mean = record.keypoint_scores.mean(axis=1) if len(record) else np.zeros(0)
        weak = np.where(propagated, mean < self.min_score, mean < self.min_detected_score)
        record = record[~weak]
        propagated = record.origin == ORIGIN_PROPAGATED
        if propagated.any() and (~propagated).any():
            det = ~propagated
            sim = oks_matrix(record.keypoints[propagated], record.keypoints[det], boxes_b=record.boxes[det],
                             scores_a=record.keypoint_scores[propagated], scores_b=record.keypoint_scores[det],
                             score_threshold=self.keypoint_threshold, sigmas=sigmas)
            dup = np.zeros(len(record), bool)
            dup[np.flatnonzero(propagated)] = (sim > self.duplicate_oks).any(axis=1)
            record = record[~dup]
        if self.pose_nms_oks is not None and len(record) > 1:
            record = record[oks_nms(record.keypoints, record.pose_scores, record.boxes, self.pose_nms_oks,
                                    record.keypoint_scores, self.keypoint_threshold, sigmas=sigmas)]
        if len(record):
            extent = boxes_from_keypoints(record.keypoints, record.keypoint_scores, self.keypoint_threshold,
                                          enlarge=self.box_enlarge, image_size=image_size)
            usable = (record.keypoint_scores >= self.keypoint_threshold).sum(axis=1) >= 2
            ok = (usable & np.isfinite(extent).all(axis=1) & (extent[:, 2] > extent[:, 0])
                  & (extent[:, 3] > extent[:, 1]))
            record.boxes = np.where(ok[:, None], extent, record.boxes).astype(np.float32)
        return record


class BoxWarning(RuntimeWarning):
    """Person boxes of a frame dropped before estimation (outside the image, degenerate, beyond the cap)."""


MIN_INSIDE_FRACTION = 0.1  # a box with less of its area inside the image is dropped, not clipped


def clip_to_image(candidates: Candidates, image_size: tuple[int, int], frame_index: int) -> Candidates:
    """Candidates with their boxes clipped to the image; those that are degenerate are dropped with a
    :class:`BoxWarning`: a side under 1 px once clipped (outside the image, zero or negative size), or less
    than MIN_INSIDE_FRACTION of the box's area inside the image (e.g. a 1e9 px box, which clipped would be
    the whole frame). image_size: (width, height) px. Boxes (N, 4) xyxy image px."""
    if not len(candidates):
        return candidates
    w, h = image_size
    boxes = candidates.boxes.astype(np.float64)
    clipped = np.clip(boxes, 0.0, [w, h, w, h])
    cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    with np.errstate(all="ignore"):
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        inside = cw * ch / area
    ok = (np.isfinite(boxes).all(axis=1) & np.isfinite(candidates.scores) & (cw >= 1) & (ch >= 1)
          & np.isfinite(area) & (area > 0) & (inside >= MIN_INSIDE_FRACTION))
    if not ok.all():
        bad = np.flatnonzero(~ok)
        warnings.warn(f"frame {frame_index}: {len(bad)} person box(es) outside the {w}x{h} image, of no size or "
                      f"absurd were dropped (e.g. xyxy {boxes[bad[0]].round(1).tolist()})", BoxWarning, stacklevel=3)
    out = candidates[ok]
    out.boxes = clipped[ok].astype(np.float32)
    return out


def _estimate(estimator: _Estimator, image: np.ndarray, candidates: Candidates, given=None):
    """The estimator's poses of the candidates; ``given`` = (boxes (M, 4) px, Poses of M) from a detector that
    poses its detections (``movenet_multipose`` with ``poses: replace``): a detected candidate whose box is one
    of them (boxes are carried unchanged from the detector when already inside the image) takes that pose,
    only the others go to the estimator. Returns an object with keypoints (N, K, 2) px, keypoint_scores (N, K),
    pose_scores (N,), roi_points (N, 2, 2) | None and extras, in the candidates' order."""
    if given is None or not len(given[0]):
        return estimator.estimate(image, candidates.boxes, candidates.scores, roi_points=candidates.hints())
    boxes, poses = given
    if poses.keypoints.shape[1] != estimator.num_keypoints:
        raise ValueError(f"the detector's poses have {poses.keypoints.shape[1]} keypoints, the estimator's layout "
                         f"{estimator.num_keypoints}")
    match = np.full(len(candidates), -1)
    for i in np.flatnonzero(candidates.origin == ORIGIN_DETECTED):
        same = np.flatnonzero((boxes == candidates.boxes[i]).all(axis=1))
        match[i] = same[0] if len(same) else -1
    rest = np.flatnonzero(match < 0)
    kps = np.zeros((len(candidates), *poses.keypoints.shape[1:]), np.float32)
    kps_scores = np.zeros((len(candidates), poses.keypoints.shape[1]), np.float32)
    pose_scores = np.zeros(len(candidates), np.float32)
    roi = None
    if len(rest):
        sub = candidates[rest]
        est = estimator.estimate(image, sub.boxes, sub.scores, roi_points=sub.hints())
        kps[rest], kps_scores[rest], pose_scores[rest] = est.keypoints, est.keypoint_scores, est.pose_scores
        if est.roi_points is not None:
            roi = np.full((len(candidates), 2, 2), np.nan, np.float32)
            roi[rest] = est.roi_points
    own = np.flatnonzero(match >= 0)
    kps[own], kps_scores[own] = poses.keypoints[match[own]], poses.keypoint_scores[match[own]]
    pose_scores[own] = poses.pose_scores[match[own]]
    return type(poses)(kps, kps_scores, pose_scores, roi)


def _warp(points: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """(..., 2) px of the previous frame -> the current frame through ``flow`` (H, W, 2) px."""
    return warp_points(points, flow)


class PoseTracker:
    """Tracks poses frame by frame. Each instance owns its association state and id counter.

    Args:
        estimator: exposes ``layout`` (KeypointLayout), ``num_keypoints`` and ``estimate(image (H,W,3) uint8
            BGR, boxes (N,4) xyxy px, box_scores (N,), roi_points=None | (N,2,2) px) -> Poses(keypoints
            (N,K,2) px, keypoint_scores (N,K) calibrated, pose_scores (N,), roi_points (N,2,2) px | None,
            extras)``.
        detector: ``detect([frame]) -> [Detections(boxes (N,4) xyxy px, scores (N,), roi_points (N,2,2) px
            | None)]``.
        flow: ``compute(prev, curr) -> (H,W,2) px displacement``, or None: no propagation (the detector runs
            every frame) and association without motion compensation.
        associator: a fresh PoseAssociator with the estimator's layout sigmas.
        propagation: the Propagation settings.
        appearance: the re-identification cue computed per pose (``PoseAppearance`` with the estimator's
            layout), or None: re-identification by the motion gate only.
        cut_threshold: mean absolute grey-level change (0-255, 64x36 thumbnails) above which a frame starts a
            new shot (``associator.camera_cut()``, no flow into it); None = never.
        fill_gaps: gaps of a confirmed track of at most this many frames are interpolated in what
            ``finalise`` returns (0 = none).
        smoother: One-Euro filter of the finalised keypoints, or None. smooth_files: True = the smoothed
            keypoints replace the raw ones; False = they go to ``extras["display_keypoints"]`` (drawn, not
            written; ``PoseRecord.for_display``).
    """

    def __init__(self, estimator: _Estimator, detector: _Detector, flow: _Flow | None,
                 associator: PoseAssociator, propagation: Propagation, *,
                 appearance: PoseAppearance | None = None, cut_threshold: float | None = None,
                 fill_gaps: int = 0, smoother: KeypointSmoother | None = None, smooth_files: bool = False) -> None:
        layout = estimator.layout
        if tuple(associator.sigmas) != tuple(layout.sigmas):
            raise ValueError(f"associator: its OKS sigmas ({len(associator.sigmas)}) are not the estimator's "
                             f"{layout.name} layout's ({layout.num_keypoints} keypoints); build it with "
                             f"sigmas=estimator.layout.sigmas")
        self.estimator = estimator
        self.detector = detector
        self.flow = flow
        self.associator = associator
        self.propagation = propagation
        self.layout = layout
        if appearance is not None and appearance.layout.num_keypoints != layout.num_keypoints:
            raise ValueError(f"appearance: built for layout {appearance.layout.name!r}, the estimator's is "
                             f"{layout.name!r}")
        self.appearance = appearance
        self.cut_threshold = cut_threshold
        self.fill_gaps = int(fill_gaps)
        self.smoother = smoother
        self.smooth_files = smooth_files
        self.times = StageTimes()
        self.cuts = 0
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (ids keep counting up: ids are never reused by one tracker)."""
        self.associator.reset(restart_ids=False)
        self._prev_image: np.ndarray | None = None
        self._prev_thumb: np.ndarray | None = None
        self._prev: PoseRecord | None = None
        self._undetected: dict[int, int] = {}  # track id -> frames in a row without a detected pose
        self._steps = 0
        gaps = self.fill_gaps
        self._finaliser = TrackFinaliser(delay=max(self.associator.min_hits - 1, gaps + 1 if gaps else 0),
                                         max_gap=gaps)
        if self.smoother is not None:
            self.smoother.reset()

    def step(self, frame: Frame) -> PoseRecord:
        """Process one frame; returns its poses with track ids (all in image pixels)."""
        image = frame.image
        h, w = image.shape[:2]
        t = time.perf_counter
        prop = self.propagation

        # 0. a camera cut: the tracks keep their appearance, lose their motion; nothing is carried over
        if self._is_cut(image):
            self.associator.camera_cut()
            self._prev = None
            self._prev_image = None
            self.cuts += 1

        # 1. flow from the previous frame; every track's last pose warped once, for propagation and association
        flow = None
        if self.flow is not None and self._prev_image is not None and self._prev_image.shape == image.shape:
            t0 = t()
            flow = self.flow.compute(self._prev_image, image)
            self.times.add("flow", t() - t0)
        warp = None if flow is None else functools.partial(_warp, flow=flow)
        tracks = self.associator.predict(warp)

        # 2. candidates: detections (every det_interval-th frame) and last frame's poses moved by the flow
        previous = self._prev if self._prev is not None and len(self._prev) else None
        parts = [Candidates.of(np.zeros((0, 4)), np.zeros(0), ORIGIN_DETECTED)]
        detecting = prop.detect_now(self._steps, can_propagate=flow is not None and self._prev is not None)
        given = None  # (boxes (M, 4) px, Poses of M) the detector posed itself
        if detecting:
            t0 = t()
            det = self.detector.detect([frame])[0]
            self.times.add("detect", t() - t0)
            parts.append(Candidates.of(det.boxes, det.scores, ORIGIN_DETECTED, det.roi_points))
            if getattr(det, "poses", None) is not None:  # a one-pass detector's poses replace the top-down pass
                given = (det.boxes, det.poses)
        t0 = t()
        if previous is not None and flow is not None:
            alive = np.array([self._undetected.get(int(t), 0) < prop.max_frames for t in previous.track_ids], bool)
            if detecting:  # into a detector frame only confirmed tracks are carried: a tentative one (a person just
                # found, or junk) must be detected again to count a hit, or junk would confirm itself by the flow
                alive &= previous.confirmed
            previous = previous[alive]
            row = {int(tid): i for i, tid in enumerate(tracks.track_ids)}
            warped = tracks.keypoints[[row[int(tid)] for tid in previous.track_ids]]
            if len(previous):
                parts.append(prop.propagate(previous, warped, flow, (w, h)))
        candidates = clip_to_image(Candidates.concatenate(parts), (w, h), frame.index)
        candidates = prop.cap(prop.merge(candidates), frame.index)
        self.times.add("propagate+nms", t() - t0)

        # 3. the estimator on all boxes of the frame in one call
        t0 = t()
        if len(candidates):
            poses = _estimate(self.estimator, image, candidates, given)
            rec = PoseRecord(candidates.boxes, candidates.scores, poses.keypoints, poses.keypoint_scores,
                             poses.pose_scores, origin=candidates.origin, frame_index=frame.index,
                             timestamp=frame.timestamp, roi_points=poses.roi_points, extras=dict(poses.extras))
            rec = prop.prune(rec, self.layout.sigmas, (w, h))
        else:
            rec = PoseRecord.empty(self.layout.num_keypoints, frame.index, frame.timestamp)
        self.times.add("estimate", t() - t0)

        # 4. association against the warped tracks (appearance descriptors for re-identification)
        t0 = t()
        desc = None
        if self.appearance is not None:
            desc = self.appearance.describe(image, rec.keypoints, rec.keypoint_scores)
        self.times.add("appearance", t() - t0)
        t0 = t()
        timestamp = frame.timestamp if np.isfinite(frame.timestamp) else None
        # confirmation in the detector's box score (shared by every estimator; pose scores are not: MoveNet's
        # are 0.1-0.5 where BlazePose's are 0.7-0.9); a propagated pose carries no new detection
        confirm = np.where(rec.origin == ORIGIN_DETECTED, rec.box_scores, 0.0)
        rec.track_ids = self.associator.update(rec.keypoints, rec.keypoint_scores, rec.boxes,
                                               confirm_scores=confirm, timestamp=timestamp, descriptors=desc)
        rec.confirmed = self.associator.last_confirmed.copy()
        self.times.add("associate", t() - t0)
        self._undetected = {int(tid): 0 if o == ORIGIN_DETECTED else self._undetected.get(int(tid), 0) + 1
                            for tid, o in zip(rec.track_ids, rec.origin)}

        self._prev_image = image
        self._prev = rec
        self._steps += 1
        self.times.frames += 1
        return rec

    def _is_cut(self, image: np.ndarray) -> bool:
        """Whether ``image`` starts a new shot (see cut_threshold); remembers its thumbnail."""
        if self.cut_threshold is None:
            return False
        import cv2

        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        thumb = cv2.resize(grey, (64, 36), interpolation=cv2.INTER_AREA).astype(np.float32)
        prev, self._prev_thumb = self._prev_thumb, thumb
        return prev is not None and float(np.abs(thumb - prev).mean()) > self.cut_threshold

    # -- what files and displays get ---------------------------------------------------------------------
    def finalise(self, frame: Frame, record: PoseRecord) -> list[tuple[Frame, PoseRecord]]:
        """Hand one tracked frame (``step``'s result) over; returns the frames that are final now, oldest first:
        only confirmed tracks (a track's tentative frames written back once it is confirmed), gaps of at most
        ``fill_gaps`` frames interpolated, keypoints smoothed (see the constructor). Frames come out at most
        ``max(min_hits - 1, fill_gaps + 1)`` frames late; ``finish()`` returns the rest at the end."""
        return [self._smooth(f, r) for f, r in self._finaliser.push(frame, record, record.confirmed)]

    def finish(self) -> list[tuple[Frame, PoseRecord]]:
        """The frames still held by ``finalise`` (call once at the end of the source)."""
        return [self._smooth(f, r) for f, r in self._finaliser.flush()]

    def _smooth(self, frame: Frame, record: PoseRecord) -> tuple[Frame, PoseRecord]:
        if self.smoother is None or not len(record):
            return frame, record
        ts = frame.timestamp if np.isfinite(frame.timestamp) else frame.index / 25.0
        smoothed = self.smoother.update(record.track_ids, record.keypoints, record.keypoint_scores, ts)
        if self.smooth_files:
            record.keypoints = smoothed
        else:
            record.extras["display_keypoints"] = smoothed
        return frame, record

    def run(self, frames: Iterable[Frame], final: bool = True) -> Iterator[tuple[Frame, PoseRecord]]:
        """Iterate a source (any iterable of Frame), yielding ``(frame, record)``: final records (``finalise``,
        a few frames late) by default, or every frame's live record as it is tracked (``final=False``)."""
        for frame in frames:
            record = self.step(frame)
            if final:
                yield from self.finalise(frame, record)
            else:
                yield frame, record
        if final:
            yield from self.finish()
