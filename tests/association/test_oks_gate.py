"""Gated / pairwise OKS: the pairs it computes equal the full matrix, and the gate never drops a pair that
could reach the threshold, so the tracker's matches are the same with and without it."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from association.keypoints import COCO17
from association.oks import OKSInputError, oks_candidates, oks_matrix
from association.tracker import PoseAssociator


def _poses(rng: np.random.Generator, n: int, spread: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n random COCO-17 poses: keypoints (n, 17, 2) px, scores (n, 17), boxes (n, 4) xyxy px."""
    centre = rng.uniform(0, spread, (n, 1, 2))
    size = rng.uniform(20, 150, (n, 1, 1))
    kps = centre + rng.normal(0, 0.3, (n, 17, 2)) * size
    scores = rng.uniform(0, 1, (n, 17))
    boxes = np.concatenate([kps.min(1), kps.max(1)], axis=1)
    return kps, scores, boxes


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 12), m=st.integers(0, 12),
       spread=st.floats(10, 2000), threshold=st.floats(0.01, 0.95), kp_thr=st.sampled_from([0.0, 0.2, 0.5]))
def test_gated_pairs_equal_full_matrix_and_keep_every_pair_above_threshold(seed, n, m, spread, threshold, kp_thr):
    rng = np.random.default_rng(seed)
    a, sa, _ = _poses(rng, n, spread)
    b, sb, boxes_b = _poses(rng, m, spread)
    if n and m:  # some near-copies, so that pairs above the threshold exist
        k = min(n, m)
        a[:k] = b[:k] + rng.normal(0, 3.0, (k, 17, 2))
        a[0, 3] = np.nan  # a missing keypoint
    areas = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
    kw = dict(scores_a=sa, scores_b=sb, score_threshold=kp_thr, sigmas=COCO17.sigmas)
    full = oks_matrix(a, b, areas_b=areas, **kw)
    rows, cols = oks_candidates(a, b, areas, threshold, **kw)
    assert np.array_equal(oks_matrix(a, b, areas_b=areas, pairs=(rows, cols), **kw), full[rows, cols])
    admitted = np.zeros(full.shape, bool)
    admitted[rows, cols] = True
    assert not np.any((full >= threshold) & ~admitted)  # the gate is exact at the threshold


def test_gate_skips_far_pairs_and_pairs_mode_checks_indices():
    rng = np.random.default_rng(1)
    b, sb, boxes = _poses(rng, 30, 10.0)
    b += np.arange(30)[:, None, None] * np.array([400.0, 0.0])  # 30 people side by side
    areas = np.full(30, 100.0 * 200.0)
    rows, cols = oks_candidates(b + 2.0, b, areas, 0.3, scores_a=sb, scores_b=sb, score_threshold=0.2)
    assert np.array_equal(rows, cols)  # only each person with itself
    with pytest.raises(OKSInputError, match="pairs"):
        oks_matrix(b, b, areas_b=areas, pairs=(np.array([0]), np.array([30])))


def test_tracker_gives_the_same_ids_with_and_without_the_gate():
    rng = np.random.default_rng(2)
    kps, scores, _ = _poses(rng, 30, 3000.0)
    ids = {}
    for gate in (False, True):
        assoc = PoseAssociator(min_similarity=0.3, max_lost_frames=5, keypoint_score_threshold=0.2,
                               method="greedy", sigmas=COCO17.sigmas, gate=gate)
        walk = np.random.default_rng(3)
        frames = []
        cur = kps.copy()
        for _ in range(15):
            cur = cur + walk.normal(0, 6.0, (30, 1, 2)) + walk.normal(0, 2.0, cur.shape)
            keep = walk.uniform(size=30) > 0.1
            boxes = np.concatenate([cur[keep].min(1), cur[keep].max(1)], axis=1)
            frames.append(assoc.update(cur[keep], scores[keep], boxes))
        ids[gate] = np.concatenate(frames)
    assert np.array_equal(ids[False], ids[True])
    assert len(np.unique(ids[True])) < 30 * 3  # tracks were actually matched across frames
