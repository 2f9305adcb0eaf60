"""Box NMS of detected and propagated candidates: by score (the paper), or detected first when asked."""
from __future__ import annotations

import numpy as np

from tracker.pipeline import Propagation
from tracker.record import ORIGIN_DETECTED, ORIGIN_PROPAGATED, Candidates


def _prop(prefer_detected: bool = True) -> Propagation:
    return Propagation(det_interval=1, nms_iou=0.5, box_enlarge=0.15, keypoint_threshold=0.3, min_score=0.3,
                       pose_nms_oks=0.5, duplicate_oks=0.5, max_frames=10, prefer_detected=prefer_detected)


def test_detected_box_beats_a_higher_scoring_propagated_box_on_the_same_person():
    det = Candidates.of(np.array([[100, 100, 200, 400]], np.float32), np.array([0.6], np.float32), ORIGIN_DETECTED)
    prop = Candidates.of(np.array([[105, 95, 210, 405], [500, 100, 600, 400]], np.float32),
                         np.array([0.9, 0.95], np.float32), ORIGIN_PROPAGATED)
    merged = _prop().merge(Candidates.concatenate([prop, det]))
    # the overlapping propagated box (older score 0.9) gives way; the other person's propagated box stays
    assert sorted(merged.origin.tolist()) == [ORIGIN_DETECTED, ORIGIN_PROPAGATED]
    assert np.allclose(merged.boxes[merged.origin == ORIGIN_DETECTED], [[100, 100, 200, 400]])
    assert np.allclose(merged.boxes[merged.origin == ORIGIN_PROPAGATED], [[500, 100, 600, 400]])


def test_within_one_origin_the_best_score_is_kept():
    det = Candidates.of(np.array([[100, 100, 200, 400], [102, 100, 202, 400]], np.float32),
                        np.array([0.4, 0.8], np.float32), ORIGIN_DETECTED)
    merged = _prop().merge(det)
    assert len(merged) == 1 and np.isclose(merged.scores[0], 0.8)


def test_without_prefer_detected_the_higher_score_wins_whatever_its_origin():
    det = Candidates.of(np.array([[100, 100, 200, 400]], np.float32), np.array([0.6], np.float32), ORIGIN_DETECTED)
    prop = Candidates.of(np.array([[105, 95, 210, 405]], np.float32), np.array([0.9], np.float32), ORIGIN_PROPAGATED)
    merged = _prop(prefer_detected=False).merge(Candidates.concatenate([prop, det]))
    assert merged.origin.tolist() == [ORIGIN_PROPAGATED]
