"""One-to-one matching of rows to columns of a similarity matrix, never below a threshold.

Both functions return ``(rows, cols)``: two (P,) int64 arrays, sorted by row, pairing row ``rows[i]``
with column ``cols[i]``; every row and column appears at most once and every matched pair has
``similarity >= threshold``. NaN similarities never match.
"""
from __future__ import annotations

import numpy as np


class MatchingInputError(ValueError):
    """The similarity matrix or threshold given to a matcher is invalid."""


def _check(similarity: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2:
        raise MatchingInputError(f"similarity: expected a 2-D (N, M) matrix, got shape {sim.shape}")
    if not np.isfinite(threshold):
        raise MatchingInputError(f"threshold: expected a finite number, got {threshold}")
    valid = np.isfinite(sim) & (sim >= threshold)
    return sim, valid


def _sorted_pairs(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(rows, kind="stable")
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


def greedy_match(similarity: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching (FlowTrack's): take the most similar remaining pair, remove its row and column, repeat.

    similarity: (N, M) float, larger = more similar (e.g. OKS of current poses vs previous tracks).
    threshold: pairs with similarity < threshold are never matched (>= threshold can be).
    Ties: among equal similarities the pair with the smaller row index wins, then the smaller column
    index (row-major order), so the result is deterministic.
    Returns (rows (P,), cols (P,)) int64 sorted by row.
    """
    sim, valid = _check(similarity, threshold)
    flat_rows, flat_cols = np.nonzero(valid)  # row-major order
    # stable sort on -similarity keeps row-major order among ties
    order = np.argsort(-sim[flat_rows, flat_cols], kind="stable")
    row_used = np.zeros(sim.shape[0], bool)
    col_used = np.zeros(sim.shape[1], bool)
    rows, cols = [], []
    for idx in order:
        r, c = flat_rows[idx], flat_cols[idx]
        if row_used[r] or col_used[c]:
            continue
        row_used[r] = col_used[c] = True
        rows.append(r)
        cols.append(c)
        if len(rows) == min(sim.shape):
            break
    return _sorted_pairs(np.asarray(rows, np.int64), np.asarray(cols, np.int64))


def hungarian_match(similarity: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-total-similarity matching over the pairs with similarity >= threshold (scipy's solver).

    similarity: (N, M) float, expected >= 0 (OKS, IoU); threshold as in greedy_match.
    Pairs below the threshold are given weight 0 (= leaving both unmatched), so the solver maximises the
    summed similarity of the admissible pairs without being forced to use any other pair; a pair of
    similarity exactly 0 may then be left unmatched. Among optimal solutions the one scipy returns is kept.
    Returns (rows (P,), cols (P,)) int64 sorted by row.
    """
    sim, valid = _check(similarity, threshold)
    if sim.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    weights = np.where(valid, sim, 0.0)
    from scipy.optimize import linear_sum_assignment  # lazily: importing scipy.optimize takes ~0.5 s

    rows, cols = linear_sum_assignment(weights, maximize=True)
    keep = valid[rows, cols]
    return _sorted_pairs(rows[keep], cols[keep])


MATCHERS = {"greedy": greedy_match, "hungarian": hungarian_match}
