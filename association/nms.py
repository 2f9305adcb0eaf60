"""Pose-level non-maximum suppression by OKS: the one implementation for tracking and COCO evaluation."""
from __future__ import annotations

import numpy as np

from association.oks import OKSInputError, box_areas, oks_matrix


def oks_nms(keypoints: np.ndarray, pose_scores: np.ndarray, boxes: np.ndarray | None, threshold: float,
            keypoint_scores: np.ndarray | None = None, keypoint_threshold: float = 0.0, *,
            areas: np.ndarray | None = None, mean_area: bool = False, strict: bool = False,
            sigmas: tuple[float, ...] | np.ndarray | None = None) -> np.ndarray:
    """Greedy OKS-NMS: keep the best-scoring pose, drop every other pose whose OKS with it exceeds
    ``threshold``, repeat.

    keypoints: (N, K, 2) image px; pose_scores: (N,); boxes: (N, 4) xyxy image px, or ``areas`` (N,) px^2:
    the object scale of each pose. keypoint_scores: (N, K) or None; keypoints whose score is below
    ``keypoint_threshold`` (at or below it when ``strict``) on either side do not count. sigmas: (K,)
    (None = COCO's).

    Two conventions:
    - tracking (default): the kept pose's area is the scale;
    - COCO evaluation (``mean_area=True, strict=True``): the released HRNet ``lib/nms/nms.py`` ``oks_nms``,
      scale = the mean of the two areas, keypoints count when their score is > the threshold.

    Returns the kept indices (int64), best score first.
    """
    n = len(keypoints)
    if n == 0:
        return np.zeros(0, np.int64)
    if (boxes is None) == (areas is None):
        raise OKSInputError("oks_nms: give exactly one of boxes (N, 4) and areas (N,)")
    ar = box_areas(boxes) if boxes is not None else np.asarray(areas, dtype=np.float64)
    sim = oks_matrix(keypoints, keypoints, areas_b=ar, scores_a=keypoint_scores, scores_b=keypoint_scores,
                     score_threshold=keypoint_threshold, sigmas=sigmas, areas_a=ar if mean_area else None,
                     strict=strict)
    order = np.argsort(-np.asarray(pose_scores, np.float64), kind="stable")
    suppressed = np.zeros(n, bool)
    keep = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= sim[:, i] > threshold  # OKS of every pose against the kept one
    return np.asarray(keep, np.int64)
