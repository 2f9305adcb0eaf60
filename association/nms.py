"""Pose-level non-maximum suppression by OKS (as the top-down papers apply to their final poses)."""
from __future__ import annotations

import numpy as np

from association.oks import box_areas, oks_matrix


def oks_nms(keypoints: np.ndarray, pose_scores: np.ndarray, boxes: np.ndarray, threshold: float,
            keypoint_scores: np.ndarray | None = None, keypoint_threshold: float = 0.0) -> np.ndarray:
    """Greedy OKS-NMS: keep the best-scoring pose, drop every other pose whose OKS with it exceeds
    ``threshold``, repeat.

    keypoints: (N, K, 2) image px; pose_scores: (N,); boxes: (N, 4) xyxy image px (their areas set the OKS
    scale of the kept pose); keypoint_scores: (N, K) or None; keypoints below ``keypoint_threshold`` on
    either side do not count. Returns the kept indices (int64), best score first.
    """
    n = len(keypoints)
    if n == 0:
        return np.zeros(0, np.int64)
    sim = oks_matrix(keypoints, keypoints, areas_b=box_areas(boxes), scores_a=keypoint_scores,
                     scores_b=keypoint_scores, score_threshold=keypoint_threshold)
    order = np.argsort(-np.asarray(pose_scores, np.float64), kind="stable")
    suppressed = np.zeros(n, bool)
    keep = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= sim[:, i] > threshold  # OKS of every pose against the kept one, in its scale
    return np.asarray(keep, np.int64)
