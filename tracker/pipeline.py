"""The per-frame pose tracking pipeline (HRNet paper section 4.3 / SimpleBaseline FlowTrack).

Per frame:
1. person boxes from the detector (every ``det_interval``-th frame) and from the previous frame's poses
   moved by optical flow (each keypoint displaced by the flow at its location; box = extent of the moved
   keypoints enlarged by 15%), merged by non-maximum suppression (torchvision.ops.nms);
2. the top-down estimator on all boxes of the frame in one batch;
3. association: OKS between current poses and previous poses warped by the flow, greedy matching with a
   minimum similarity, lost tracks kept for ``max_lost_frames`` frames.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol

import numpy as np
import torch
from torchvision.ops import nms

from association import PoseAssociator, boxes_from_keypoints
from association.nms import oks_nms
from flow import warp_points

from .record import ORIGIN_DETECTED, ORIGIN_PROPAGATED, PoseRecord
from .sources import Frame


class _Estimator(Protocol):
    num_keypoints: int

    def estimate(self, image: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray): ...


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


class PoseTracker:
    """Tracks poses frame by frame. Each instance owns its association state and id counter.

    Args:
        estimator: top-down estimator with ``estimate(image (H,W,3) uint8 BGR, boxes (N,4) xyxy px,
            box_scores (N,)) -> Poses(keypoints (N,K,2) px, keypoint_scores (N,K), pose_scores (N,))``.
        detector: person detector with ``detect([frame]) -> [Detections(boxes (N,4) xyxy px, scores (N,))]``.
        flow: optical-flow backend ``compute(prev, curr) -> (H,W,2) px displacement``, or None (no propagation).
        det_interval: run the detector every k-th frame (k=1 is the paper); in between boxes come only
            from flow propagation.
        nms_iou: IoU above which detected and propagated boxes are merged (highest score kept).
        box_enlarge: propagated box = keypoint extent enlarged by this fraction (0.15 in the paper).
        propagate_keypoint_threshold: keypoints with a score below this do not shape propagated boxes.
        min_propagated_score: a propagated box whose new pose scores a mean keypoint score below this is
            dropped (else a box would keep propagating over background forever).
        min_similarity, max_lost_frames, oks_keypoint_threshold, match: association settings.
        min_box_score: detections below this box score are ignored.
        pose_nms_oks: after estimation, poses whose OKS with a better-scoring pose exceeds this are dropped
            (a detected box and a propagated box of different extent on one person give the same pose
            twice; box NMS alone cannot merge them). None disables it.
    """

    def __init__(
        self,
        estimator: _Estimator,
        detector: _Detector,
        flow: _Flow | None = None,
        *,
        det_interval: int = 1,
        nms_iou: float = 0.5,
        box_enlarge: float = 0.15,
        propagate_keypoint_threshold: float = 0.3,
        min_propagated_score: float = 0.3,
        min_similarity: float = 0.3,
        max_lost_frames: int = 5,
        oks_keypoint_threshold: float = 0.2,
        match: str = "greedy",
        min_box_score: float = 0.0,
        pose_nms_oks: float | None = 0.7,
    ) -> None:
        if det_interval < 1:
            raise ValueError(f"det_interval must be >= 1, got {det_interval}")
        if getattr(estimator, "num_keypoints", 17) != 17:
            # OKS association and pose NMS use the COCO-17 sigmas
            raise ValueError(f"PoseTracker needs an estimator with the 17 COCO keypoints; this one gives "
                             f"{estimator.num_keypoints}")
        self.estimator = estimator
        self.detector = detector
        self.flow = flow
        self.det_interval = det_interval
        self.nms_iou = nms_iou
        self.box_enlarge = box_enlarge
        self.propagate_keypoint_threshold = propagate_keypoint_threshold
        self.min_propagated_score = min_propagated_score
        self.min_box_score = min_box_score
        self.pose_nms_oks = pose_nms_oks
        self.associator = PoseAssociator(
            min_similarity=min_similarity,
            max_lost_frames=max_lost_frames,
            keypoint_score_threshold=oks_keypoint_threshold,
            method=match,
        )
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

    def _propagate(self, flow: np.ndarray | None, image_size: tuple[int, int]) -> PoseRecord | None:
        prev = self._prev
        if prev is None or len(prev) == 0 or flow is None:
            return None
        moved = warp_points(prev.keypoints, flow)
        boxes = boxes_from_keypoints(moved, prev.keypoint_scores, self.propagate_keypoint_threshold,
                                     enlarge=self.box_enlarge, image_size=image_size)
        ok = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)
        # A propagated box inherits its person's box score (not the pose score, which would decay
        # multiplicatively from frame to frame).
        extras = {}
        if "aux_points" in prev.extras:
            # BlazePose: the alignment points re-crop the person next frame (rotated ROI, as MediaPipe tracks)
            extras["aux_points"] = warp_points(prev.extras["aux_points"], flow)
        rec = PoseRecord(boxes, prev.box_scores, moved, prev.keypoint_scores,
                         origin=np.full(len(boxes), ORIGIN_PROPAGATED, np.int8), extras=extras)
        return rec[ok]

    def step(self, frame: Frame) -> PoseRecord:
        """Process one frame; returns its poses with track ids (all in image pixels)."""
        image = frame.image
        h, w = image.shape[:2]
        k = self.estimator.num_keypoints
        t = time.perf_counter

        # 1a. flow from the previous frame
        flow = None
        if self.flow is not None and self._prev_image is not None and self._prev_image.shape == image.shape:
            t0 = t()
            flow = self.flow.compute(self._prev_image, image)
            self.times.add("flow", t() - t0)

        # 1b. detector every det_interval-th frame
        boxes = [np.zeros((0, 4), np.float32)]
        scores = [np.zeros(0, np.float32)]
        origins = [np.zeros(0, np.int8)]
        hints = [np.zeros((0, 2, 2), np.float32)]  # per-box ROI hints (BlazePose alignment points), NaN = none
        # without flow (none configured, or the frame size changed) nothing can be propagated: detect
        if self._steps % self.det_interval == 0 or self._prev is None or flow is None:
            t0 = t()
            det = self.detector.detect([frame])[0]
            self.times.add("detect", t() - t0)
            keep = det.scores >= self.min_box_score
            boxes.append(np.asarray(det.boxes, np.float32)[keep])
            scores.append(np.asarray(det.scores, np.float32)[keep])
            origins.append(np.full(int(keep.sum()), ORIGIN_DETECTED, np.int8))
            hints.append(np.full((int(keep.sum()), 2, 2), np.nan, np.float32))

        # 1c. boxes of last frame's poses moved by the flow
        t0 = t()
        prop = self._propagate(flow, (w, h))
        if prop is not None and len(prop):
            boxes.append(prop.boxes)
            scores.append(prop.box_scores)
            origins.append(prop.origin)
            hints.append(prop.extras.get("aux_points", np.full((len(prop), 2, 2), np.nan, np.float32)))
        boxes_a = np.concatenate(boxes).astype(np.float32)
        scores_a = np.concatenate(scores).astype(np.float32)
        origin_a = np.concatenate(origins).astype(np.int8)
        hints_a = np.concatenate(hints).astype(np.float32)
        if len(boxes_a):
            keep = nms(torch.from_numpy(boxes_a), torch.from_numpy(scores_a), self.nms_iou).numpy()
            boxes_a, scores_a, origin_a, hints_a = boxes_a[keep], scores_a[keep], origin_a[keep], hints_a[keep]
        self.times.add("propagate+nms", t() - t0)

        # 2. top-down estimation on all boxes in one batch
        t0 = t()
        if len(boxes_a):
            if hasattr(self.estimator, "next_rois") and np.isfinite(hints_a).any():
                # rows without hints (NaN) fall back to the box ROI inside the estimator
                rois = self.estimator.next_rois(hints_a[:, 0], hints_a[:, 1])
                poses = self.estimator.estimate(image, boxes_a, scores_a, rois=rois)
            else:
                poses = self.estimator.estimate(image, boxes_a, scores_a)
            rec = PoseRecord(boxes_a, scores_a, poses.keypoints, poses.keypoint_scores, poses.pose_scores,
                             origin=origin_a, frame_index=frame.index, timestamp=frame.timestamp,
                             extras=dict(getattr(poses, "extras", None) or {}))
            weak = (rec.origin == ORIGIN_PROPAGATED) & (rec.keypoint_scores.mean(axis=1) < self.min_propagated_score)
            rec = rec[~weak]
            if self.pose_nms_oks is not None and len(rec) > 1:
                rec = rec[oks_nms(rec.keypoints, rec.pose_scores, rec.boxes, self.pose_nms_oks,
                                  rec.keypoint_scores, self.propagate_keypoint_threshold)]
        else:
            rec = PoseRecord.empty(k, frame.index, frame.timestamp)
        self.times.add("estimate", t() - t0)

        # 3. association against the flow-warped previous poses
        t0 = t()
        warp: Callable[[np.ndarray], np.ndarray] | None = None
        if flow is not None:
            warp = lambda pts, _f=flow: warp_points(pts, _f)  # noqa: E731
        rec.track_ids = self.associator.update(rec.keypoints, rec.keypoint_scores, rec.boxes, warp)
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
