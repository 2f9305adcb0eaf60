"""Object Keypoint Similarity (OKS) between two sets of poses, vectorised over all pairs.

COCO's definition (pycocotools ``computeOks``): for a pair of poses with keypoint distances d_k,

    OKS = sum_k exp(-d_k^2 / (2 * s^2 * kappa_k^2)) * v_k / sum_k v_k,   kappa_k = 2 * sigma_k,  s^2 = area

where the area and the visibility v belong to the reference pose (the ground truth in COCO). For tracking
(FlowTrack, SimpleBaseline section 3) the reference is the previous frame's pose warped by the flow: the
area is the previous pose's box area (side B here), and a keypoint counts only when it is confidently
seen on BOTH sides (score >= threshold on A and on B) -- estimated poses have no visibility flags.

COCO evaluation's OKS-NMS (released HRNet ``lib/nms/nms.py`` ``oks_iou``) differs in two places, each a
parameter here: the scale is the mean of the two poses' areas (``areas_a`` given), and a keypoint counts
when its score is strictly above the threshold (``strict=True``).
"""
from __future__ import annotations

import numpy as np

from association.keypoints import COCO17

# COCO-17 keypoint sigmas (pycocotools), in COCO keypoint order: the layout's, under its historical name.
COCO_SIGMAS: tuple[float, ...] = COCO17.sigmas


class OKSInputError(ValueError):
    """Poses, scores, areas or sigmas given to OKS have inconsistent shapes or invalid values."""


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """boxes: (M, 4) xyxy image pixels -> (M,) float64 areas in px^2 (negative extents count as 0)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise OKSInputError(f"boxes: expected shape (M, 4) xyxy pixels, got shape {boxes.shape}")
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def _visibility(keypoints: np.ndarray, scores: np.ndarray | None, threshold: float, name: str,
                strict: bool = False) -> np.ndarray:
    """(N, K) bool: finite keypoint and (when scores are given) score >= threshold (> when ``strict``)."""
    visible = np.isfinite(keypoints).all(axis=-1)
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != keypoints.shape[:2]:
            raise OKSInputError(f"{name}: expected shape {keypoints.shape[:2]} (one score per keypoint), "
                                f"got shape {scores.shape}")
        visible &= (scores > threshold) if strict else (scores >= threshold)
    return visible


def oks_matrix(
    keypoints_a: np.ndarray,
    keypoints_b: np.ndarray,
    *,
    areas_b: np.ndarray | None = None,
    boxes_b: np.ndarray | None = None,
    scores_a: np.ndarray | None = None,
    scores_b: np.ndarray | None = None,
    score_threshold: float = 0.0,
    sigmas: tuple[float, ...] | np.ndarray | None = None,
    areas_a: np.ndarray | None = None,
    strict: bool = False,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """OKS of every pose of A against every pose of B (or of the given pairs only).

    keypoints_a: (N, K, 2) image pixels (e.g. the current frame's poses).
    keypoints_b: (M, K, 2) image pixels (the reference poses, e.g. previous poses warped to this frame).
    areas_b: (M,) px^2 object scale of each B pose; or boxes_b: (M, 4) xyxy image pixels whose areas are
        used. Exactly one of the two is required.
    scores_a, scores_b: (N, K), (M, K) keypoint confidences; a keypoint enters a pair's OKS only when it is
        finite on both sides and its score is >= score_threshold on both sides (None = all visible).
    sigmas: (K,) per-keypoint sigmas; None -> COCO_SIGMAS (then K must be 17).
    areas_a: (N,) px^2; when given, a pair's scale is the mean of its two areas (released HRNet ``oks_iou``,
        used by COCO evaluation's OKS-NMS) instead of B's area alone (tracking).
    strict: a keypoint counts when its score is > score_threshold (released HRNet) instead of >=.
    pairs: (rows (P,), cols (P,)) int indices into A and B: only these pairs are computed (e.g. those
        :func:`oks_candidates` admits), each exactly as in the full matrix.
    Returns (N, M) float64 in [0, 1], or (P,) with ``pairs``; a pair with no jointly visible keypoint gets 0.
    """
    a = np.asarray(keypoints_a, dtype=np.float64)
    b = np.asarray(keypoints_b, dtype=np.float64)
    if a.ndim != 3 or a.shape[-1] != 2:
        raise OKSInputError(f"keypoints_a: expected shape (N, K, 2) pixels, got shape {a.shape}")
    if b.ndim != 3 or b.shape[-1] != 2:
        raise OKSInputError(f"keypoints_b: expected shape (M, K, 2) pixels, got shape {b.shape}")
    if a.shape[1] != b.shape[1]:
        raise OKSInputError(f"keypoints_b: {b.shape[1]} keypoints per pose, keypoints_a has {a.shape[1]}")
    num_kp = a.shape[1]
    sig = np.asarray(COCO_SIGMAS if sigmas is None else sigmas, dtype=np.float64)
    if sig.shape != (num_kp,):
        raise OKSInputError(f"sigmas: expected {num_kp} values (one per keypoint), got shape {sig.shape}")
    if (areas_b is None) == (boxes_b is None):
        raise OKSInputError("areas_b/boxes_b: give exactly one (the object scale of each B pose)")
    areas = box_areas(boxes_b) if boxes_b is not None else np.asarray(areas_b, dtype=np.float64)
    if areas.shape != (b.shape[0],):
        raise OKSInputError(f"areas_b: expected shape ({b.shape[0]},), got shape {areas.shape}")
    if np.any(~np.isfinite(areas)) or np.any(areas < 0):
        raise OKSInputError("areas_b: areas must be finite and >= 0")
    scale = areas[None, :]  # (1, M) or (N, M) px^2
    if areas_a is not None:
        aa = np.asarray(areas_a, dtype=np.float64)
        if aa.shape != (a.shape[0],) or np.any(~np.isfinite(aa)) or np.any(aa < 0):
            raise OKSInputError(f"areas_a: expected ({a.shape[0]},) finite areas >= 0, got shape {aa.shape}")
        scale = (aa[:, None] + areas[None, :]) / 2.0
    vis_a = _visibility(a, scores_a, score_threshold, "scores_a", strict)
    vis_b = _visibility(b, scores_b, score_threshold, "scores_b", strict)
    kvar = (2.0 * sig) ** 2
    if pairs is not None:
        rows, cols = (np.asarray(p, dtype=np.int64).reshape(-1) for p in pairs)
        if rows.shape != cols.shape:
            raise OKSInputError(f"pairs: rows and cols differ in length ({rows.size} vs {cols.size})")
        if rows.size and (rows.min() < 0 or rows.max() >= a.shape[0] or cols.min() < 0
                          or cols.max() >= b.shape[0]):
            raise OKSInputError(f"pairs: indices out of range for {a.shape[0]} x {b.shape[0]} poses")
        pair_scale = scale[0, cols] if scale.shape[0] == 1 else scale[rows, cols]
        return _oks(a[rows], b[cols], vis_a[rows] & vis_b[cols], pair_scale, kvar)
    return _oks(a[:, None], b[None, :], vis_a[:, None, :] & vis_b[None, :, :], scale, kvar)


def _oks(a: np.ndarray, b: np.ndarray, vis: np.ndarray, scale: np.ndarray, kvar: np.ndarray) -> np.ndarray:
    """a, b: (..., K, 2) px broadcastable; vis: (..., K) bool; scale: (...) px^2; kvar: (K,) -> (...) OKS."""
    d2 = ((a - b) ** 2).sum(-1)  # (..., K), NaN where a side is NaN
    # np.spacing(1) as in pycocotools keeps zero-area references finite (OKS -> 0 unless d == 0).
    e = d2 / kvar / (scale[..., None] + np.spacing(1)) / 2.0
    similarity = np.where(vis, np.exp(-np.where(vis, e, 0.0)), 0.0).sum(-1)
    count = vis.sum(-1)
    return np.where(count > 0, similarity / np.maximum(count, 1), 0.0)


def oks_candidates(
    keypoints_a: np.ndarray,
    keypoints_b: np.ndarray,
    areas_b: np.ndarray,
    min_oks: float,
    *,
    scores_a: np.ndarray | None = None,
    scores_b: np.ndarray | None = None,
    score_threshold: float = 0.0,
    sigmas: tuple[float, ...] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (A row, B row) whose OKS (B's area as the scale, as in :func:`oks_matrix`) can reach ``min_oks``.

    An OKS >= t > 0 needs some jointly visible keypoint with exp(-d^2 / (2 area kappa^2)) >= t, i.e. a distance
    d <= r = sqrt(2 ln(1/t) area) * max kappa. So a pair whose visible-keypoint extents (xyxy px), B's enlarged
    by r, do not overlap has OKS < t: leaving it out changes no match at threshold t. Costs O((N + M) K + N M).
    keypoints_a: (N, K, 2) px; keypoints_b: (M, K, 2) px; areas_b: (M,) px^2; scores and threshold as in
    :func:`oks_matrix`. min_oks <= 0 admits every pair.
    Returns (rows (P,), cols (P,)) int64 in row-major order.
    """
    a = np.asarray(keypoints_a, dtype=np.float64)
    b = np.asarray(keypoints_b, dtype=np.float64)
    n, m = a.shape[0], b.shape[0]
    if min_oks <= 0:
        rows, cols = np.indices((n, m)).reshape(2, -1)
        return rows.astype(np.int64), cols.astype(np.int64)
    sig = np.asarray(COCO_SIGMAS if sigmas is None else sigmas, dtype=np.float64)
    areas = np.asarray(areas_b, dtype=np.float64).reshape(-1)
    if areas.shape != (m,):
        raise OKSInputError(f"areas_b: expected shape ({m},), got shape {areas.shape}")
    lo_a, hi_a = _extent(a, _visibility(a, scores_a, score_threshold, "scores_a"))
    lo_b, hi_b = _extent(b, _visibility(b, scores_b, score_threshold, "scores_b"))
    # a little slack so rounding never drops a pair exactly at the threshold
    r = np.sqrt(2.0 * np.log(1.0 / min(min_oks, 1.0)) * (areas + np.spacing(1))) * 2.0 * sig.max() * 1.001 + 1e-6
    lo_b = lo_b - r[:, None]
    hi_b = hi_b + r[:, None]
    ok = ((lo_a[:, None, :] <= hi_b[None, :, :]) & (lo_b[None, :, :] <= hi_a[:, None, :])).all(-1)  # (N, M)
    rows, cols = np.nonzero(ok)
    return rows.astype(np.int64), cols.astype(np.int64)


def _extent(points: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, 2) px, (N, K) bool -> (N, 2) min and max px of the visible points (+inf/-inf: none visible)."""
    lo = np.where(visible[..., None], points, np.inf).min(axis=1)
    hi = np.where(visible[..., None], points, -np.inf).max(axis=1)
    return lo, hi
