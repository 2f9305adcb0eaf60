"""Per-frame prediction <-> GT assignment and the pooled VOC-style AP, exactly as poseval computes them.

All functions work on padded per-sequence arrays (T frames, Q predicted persons, G GT persons, 15 joints);
padding persons have no joints and a PCKh of 0 everywhere, which leaves every argmax/tie rule unchanged.
"""
from __future__ import annotations

import numpy as np

DIST_THRESH = 0.5  # PCKh@0.5
HEAD_SIZE_FACTOR = 0.6  # head size = 0.6 x the head box diagonal (poseval eval_helpers.getHeadSize)


def normalized_distances(pr_kp: np.ndarray, pr_has: np.ndarray, gt_kp: np.ndarray, gt_has: np.ndarray,
                         head_size: np.ndarray) -> np.ndarray:
    """d[t, q, g, j] = ||gt - pred|| / head_size[t, g]; inf where either joint is missing.

    pr_kp (T, Q, 15, 2) / gt_kp (T, G, 15, 2) float64 image pixels; pr_has (T, Q, 15) / gt_has (T, G, 15)
    bool; head_size (T, G) float64 pixels (0.6 x head-box diagonal). Returns (T, Q, G, 15) float64.
    A head size of 0 gives inf/NaN like poseval (never a match).
    """
    diff = gt_kp[:, None, :, :, :] - pr_kp[:, :, None, :, :]
    norm = np.sqrt(diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        d = norm / head_size[:, None, :, None]
    both = pr_has[:, :, None, :] & gt_has[:, None, :, :]
    return np.where(both, d, np.inf)


def assign_frames(match: np.ndarray, gt_has: np.ndarray) -> np.ndarray:
    """poseval's per-frame assignment (``assignGTmulti``) for every frame at once.

    match (T, Q, G, 15) bool: joint within PCKh@0.5; gt_has (T, G, 15) bool.
    pck[q, g] = #matched joints / #annotated joints of g; each prediction keeps only its best g
    (argmax, first on ties); each g takes the best remaining prediction (argmax, first on ties);
    pck 0 -> unassigned. Returns (T, Q) int64: the GT person index of each prediction or -1.
    """
    T, Q, G = match.shape[:3]
    out = np.full((T, Q), -1, dtype=np.int64)
    if T == 0 or Q == 0 or G == 0:
        return out
    n_gt = gt_has.sum(axis=2)  # (T, G)
    pck = 1.0 * match.sum(axis=3)  # (T, Q, G)
    pck = np.where(n_gt[:, None, :] > 0, pck / np.maximum(n_gt, 1)[:, None, :], pck)
    best_g = np.argmax(pck, axis=2)  # (T, Q)
    keep = np.arange(G)[None, None, :] == best_g[:, :, None]
    pck = np.where(keep, pck, 0.0)
    pr_to_gt = np.argmax(pck, axis=1)  # (T, G)
    val = np.max(pck, axis=1)
    tt, gg = np.nonzero(val != 0)
    out[tt, pr_to_gt[tt, gg]] = gg
    return out


def frame_labels(match: np.ndarray, assigned: np.ndarray) -> np.ndarray:
    """(T, Q, 15) bool: joint j of prediction q is a true positive (its assigned GT's joint matches)."""
    T, Q = assigned.shape
    if match.shape[2] == 0:
        return np.zeros((T, Q, match.shape[3]), bool)
    g = np.maximum(assigned, 0)
    lab = np.take_along_axis(match, g[:, :, None, None], axis=2)[:, :, 0, :]
    return lab & (assigned >= 0)[:, :, None]


def compute_rpc(scores: np.ndarray, labels: np.ndarray, total_pos: float) -> tuple[np.ndarray, np.ndarray]:
    """poseval's ``computeRPC``: precision/recall after sorting by ``np.argsort(scores)[::-1]``.

    The default (unstable) argsort is kept on purpose: poseval's tie order depends on it.
    """
    order = np.array(scores).argsort()[::-1]
    npos = np.cumsum(labels[order] == 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = 1.0 * npos / total_pos
    precision = 1.0 * npos / np.arange(1, len(order) + 1)
    return precision, recall


def voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """poseval's ``VOCap``: area under the precision envelope at the recall steps (fraction, not %)."""
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.argwhere(~np.equal(mrec[1:], mrec[:-1])).flatten() + 1
    return float(np.sum(np.multiply(np.subtract(mrec[i], mrec[i - 1]), mpre[i])))


def pooled_ap(scores: list[np.ndarray], labels: list[np.ndarray], n_gt: np.ndarray) -> np.ndarray:
    """Per-joint AP (in %) pooled over all frames of all sequences.

    scores[j], labels[j]: (N_j,) float64 / bool in poseval's pooling order (sequence, frame, prediction);
    n_gt (15,) number of annotated GT joints. No predictions -> 0; predictions but no GT -> NaN.
    """
    ap = np.zeros(len(scores))
    for j in range(len(scores)):
        if len(scores[j]) == 0:
            continue
        prec, rec = compute_rpc(scores[j], labels[j].astype(np.int8), float(n_gt[j]))
        with np.errstate(invalid="ignore"):
            ap[j] = voc_ap(rec, prec) * 100
    return ap
