"""The per-frame pose tracking pipeline (HRNet paper section 4.3 / SimpleBaseline FlowTrack).

Per frame::

    frame ──► flow(prev image, image) ──► associator.predict(warp): every track's last pose warped ONCE
                                               │ active tracks (the previous frame's poses)
    detector (every det_interval-th frame)     ▼
        └── detected Candidates ──┐    propagated Candidates: box = extent of the warped keypoints enlarged
                                  │    by 15%, roi_points = the previous poses' roi_points warped
                                  ▼                   │
                        box NMS (Propagation.merge) ◄─┘
                                  │ one Candidates record (boxes, scores, origin, roi_points)
                                  ▼
            estimator.estimate(image, boxes, scores, roi_points) ──► Poses
                                  │
            Propagation.prune: weak propagated poses, OKS pose NMS (the estimator's layout sigmas)
                                  │
                                  ▼
            associator.update: OKS against the warped tracks, greedy matching ──► PoseRecord with track ids

Without flow (flow "none") nothing is propagated: the detector runs every frame, association has no motion
compensation.
"""
from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torchvision.ops import nms

from association import PoseAssociator, boxes_from_keypoints
from association.keypoints import KeypointLayout
from association.nms import oks_nms
from flow import warp_points

from .record import ORIGIN_DETECTED, ORIGIN_PROPAGATED, Candidates, PoseRecord
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
    Every value is explicit; the tracking config (``propagation:``) holds the defaults.
    """

    det_interval: int
    nms_iou: float
    box_enlarge: float
    keypoint_threshold: float
    min_score: float
    pose_nms_oks: float | None

    def __post_init__(self) -> None:
        if self.det_interval < 1:
            raise ValueError(f"det_interval must be >= 1, got {self.det_interval}")

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
        """Box NMS over detected and propagated candidates (torchvision.ops.nms, highest score kept)."""
        if len(candidates) < 2:
            return candidates
        keep = nms(torch.from_numpy(candidates.boxes), torch.from_numpy(candidates.scores), self.nms_iou)
        return candidates[keep.numpy()]

    def prune(self, record: PoseRecord, sigmas: tuple[float, ...]) -> PoseRecord:
        """Drop weak propagated poses, then duplicate poses by OKS NMS (``sigmas``: the layout's (K,))."""
        weak = (record.origin == ORIGIN_PROPAGATED) & (record.keypoint_scores.mean(axis=1) < self.min_score)
        record = record[~weak]
        if self.pose_nms_oks is not None and len(record) > 1:
            record = record[oks_nms(record.keypoints, record.pose_scores, record.boxes, self.pose_nms_oks,
                                    record.keypoint_scores, self.keypoint_threshold, sigmas=sigmas)]
        return record


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
    """

    def __init__(self, estimator: _Estimator, detector: _Detector, flow: _Flow | None,
                 associator: PoseAssociator, propagation: Propagation) -> None:
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
        self.times = StageTimes()
        self._prev_image: np.ndarray | None = None
        self._prev: PoseRecord | None = None
        self._steps = 0

    def reset(self) -> None:
        """Forget all tracks (ids keep counting up: ids are never reused by one tracker)."""
        self.associator.reset(restart_ids=False)
        self._prev_image = None
        self._prev = None
        self._steps = 0

    def step(self, frame: Frame) -> PoseRecord:
        """Process one frame; returns its poses with track ids (all in image pixels)."""
        image = frame.image
        h, w = image.shape[:2]
        t = time.perf_counter
        prop = self.propagation

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
        if prop.detect_now(self._steps, can_propagate=flow is not None and self._prev is not None):
            t0 = t()
            det = self.detector.detect([frame])[0]
            self.times.add("detect", t() - t0)
            parts.append(Candidates.of(det.boxes, det.scores, ORIGIN_DETECTED, det.roi_points))
        t0 = t()
        if previous is not None and flow is not None:
            row = {int(tid): i for i, tid in enumerate(tracks.track_ids)}
            warped = tracks.keypoints[[row[int(tid)] for tid in previous.track_ids]]
            parts.append(prop.propagate(previous, warped, flow, (w, h)))
        candidates = prop.merge(Candidates.concatenate(parts))
        self.times.add("propagate+nms", t() - t0)

        # 3. the estimator on all boxes of the frame in one call
        t0 = t()
        if len(candidates):
            poses = self.estimator.estimate(image, candidates.boxes, candidates.scores,
                                            roi_points=candidates.hints())
            rec = PoseRecord(candidates.boxes, candidates.scores, poses.keypoints, poses.keypoint_scores,
                             poses.pose_scores, origin=candidates.origin, frame_index=frame.index,
                             timestamp=frame.timestamp, roi_points=poses.roi_points, extras=dict(poses.extras))
            rec = prop.prune(rec, self.layout.sigmas)
        else:
            rec = PoseRecord.empty(self.layout.num_keypoints, frame.index, frame.timestamp)
        self.times.add("estimate", t() - t0)

        # 4. association against the warped tracks
        t0 = t()
        rec.track_ids = self.associator.update(rec.keypoints, rec.keypoint_scores, rec.boxes)
        self.times.add("associate", t() - t0)

        self._prev_image = image
        self._prev = rec
        self._steps += 1
        self.times.frames += 1
        return rec

    def run(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, PoseRecord]]:
        """Iterate a source (any iterable of Frame), yielding ``(frame, record)`` as frames are tracked."""
        for frame in frames:
            yield frame, self.step(frame)
