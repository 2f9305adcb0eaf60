"""PoseAssociator on synthetic sequences with known identities, and its bookkeeping rules.

Scene: 5 articulated skeletons moving at different velocities in a 640x360 frame; persons 0 and 1 run
towards each other at 11 px/frame along nearly the same line (12 px apart) and cross around frame 25,
where person 2 passes too; person 3 (5 px/frame) is hidden for frames 20-23 (4 frames, fewer than Q=5)
and comes back. With exact poses and an
exact motion model the ids must be perfect; with keypoint noise, dropped detections and a painted (coarse)
flow field the id switches are measured and printed.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from association import AssociationInputError, boxes_from_keypoints
from association import PoseAssociator as _PoseAssociator
from association.keypoints import COCO17
from flow import warp_points

K = 17
WIDTH, HEIGHT = 640, 360
NUM_FRAMES = 50
HIDDEN = {3: range(20, 24)}  # person -> frames without any detection
# COCO-17 skeleton around the mid-hip point, ~125 px tall: nose, eyes, ears, shoulders, elbows, wrists,
# hips, knees, ankles (left/right alternate).
TEMPLATE = np.array([
    [0, -62], [-3, -65], [3, -65], [-7, -63], [7, -63], [-15, -47], [15, -47], [-20, -27], [20, -27],
    [-22, -8], [22, -8], [-10, 0], [10, 0], [-11, 30], [11, 30], [-12, 60], [12, 60]], float)
SWING = np.zeros((K, 2))
SWING[[7, 9, 13, 15], 0] = [4, 8, 5, 9]  # left arm/leg swing one way
SWING[[8, 10, 14, 16], 0] = [-4, -8, -5, -9]  # right arm/leg the other way
STARTS = np.array([[40, 150], [600, 162], [320, 100], [60, 280], [600, 290]], float)
VELOCITIES = np.array([[11, 0], [-11, 0], [0.5, 1.5], [5, -0.5], [-2, -0.8]], float)


def PoseAssociator(**settings) -> _PoseAssociator:  # noqa: N802  (the class, with this test's settings)
    """PoseAssociator with explicit settings (the associator has no defaults): these, unless overridden."""
    base = dict(min_similarity=0.3, max_lost_frames=5, keypoint_score_threshold=0.2, method="greedy",
                sigmas=COCO17.sigmas)
    return _PoseAssociator(**(base | settings))


def ground_truth() -> tuple[np.ndarray, np.ndarray]:
    """poses (F, P, K, 2) image pixels and present (F, P) bool (False while a person is hidden)."""
    t = np.arange(NUM_FRAMES, dtype=float)[:, None, None, None]
    phase = np.arange(len(STARTS), dtype=float)[None, :, None, None]
    poses = (TEMPLATE[None, None] + STARTS[None, :, None] + VELOCITIES[None, :, None] * t
             + SWING[None, None] * np.sin(0.35 * t + phase))
    present = np.ones(poses.shape[:2], bool)
    for person, frames in HIDDEN.items():
        present[list(frames), person] = False
    return poses, present


def exact_warp(prev_gt: np.ndarray, curr_gt: np.ndarray):
    """A perfect motion model: each stored pose moves exactly as the person it sits on (P, K, 2) -> (P, K, 2)."""
    def warp(points: np.ndarray) -> np.ndarray:
        dist = np.linalg.norm(points[:, None] - prev_gt[None], axis=-1).mean(-1)  # (T, P)
        person = dist.argmin(1)
        return points + (curr_gt[person] - prev_gt[person])
    return warp


def painted_flow(prev_gt: np.ndarray, curr_gt: np.ndarray, present: np.ndarray, rng, noise: float) -> np.ndarray:
    """A coarse dense flow (H, W, 2): each visible person's box filled with its mean displacement (nearer
    persons, lower in the image, painted last; a hidden person is occluded by the static scene, so its
    flow is 0), plus spatially smooth Gaussian noise (std ``noise`` px, correlated over ~8 px)."""
    coarse = rng.standard_normal((HEIGHT // 8, WIDTH // 8, 2), dtype=np.float32) * np.float32(noise)
    flow = cv2.resize(coarse, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
    boxes = boxes_from_keypoints(prev_gt, None, 0.0, enlarge=0.15, image_size=(WIDTH, HEIGHT))
    for person in np.argsort(prev_gt[:, :, 1].max(1)):
        if not present[person]:
            continue
        x0, y0, x1, y1 = np.round(boxes[person]).astype(int)
        flow[y0:y1, x0:x1] += (curr_gt[person] - prev_gt[person]).mean(0)
    return flow


def run_sequence(associator, rng=None, noise_px=0.0, drop=0.0, motion="exact", flow_noise=0.3):
    """Feed the scene to ``associator``; returns (gt_ids, track_ids) lists per frame (detections only)."""
    gt, present = ground_truth()
    rng = rng or np.random.default_rng(0)
    history = []
    for t in range(NUM_FRAMES):
        people = np.flatnonzero(present[t] & (rng.uniform(size=len(STARTS)) >= drop))
        people = rng.permutation(people)  # detection order carries no identity
        kps = gt[t, people] + rng.normal(0.0, noise_px, (len(people), K, 2)) if noise_px else gt[t, people]
        scores = rng.uniform(0.5, 1.0, (len(people), K))
        if noise_px:
            weak = rng.uniform(size=scores.shape) < 0.1  # some joints unsure and far off
            scores[weak] = rng.uniform(0.0, 0.2, weak.sum())
            kps[weak] += rng.normal(0.0, 5 * noise_px, (weak.sum(), 2))
        boxes = boxes_from_keypoints(kps, scores, 0.2)
        warp = None
        if t > 0 and motion == "exact":
            warp = exact_warp(gt[t - 1], gt[t])
        elif t > 0 and motion == "flow":
            field = painted_flow(gt[t - 1], gt[t], present[t - 1], rng, flow_noise)
            warp = lambda p, field=field: warp_points(p, field)  # noqa: E731
        ids = associator.update(kps.astype(np.float32), scores.astype(np.float32), boxes, warp=warp)
        assert ids.dtype == np.int64 and ids.shape == (len(people),)
        assert len(set(ids.tolist())) == len(ids)
        history.append((people, ids))
    return history


def count_id_switches(history) -> int:
    """MOT id switches: a person's track id differs from the id it had when last seen."""
    last: dict[int, int] = {}
    switches = 0
    for people, ids in history:
        for person, track in zip(people.tolist(), ids.tolist()):
            if person in last and last[person] != track:
                switches += 1
            last[person] = track
    return switches


def motmetrics_switches(history) -> int:
    import motmetrics as mm

    _, present = ground_truth()
    acc = mm.MOTAccumulator(auto_id=True)
    for t, (people, ids) in enumerate(history):
        gt_ids = np.flatnonzero(present[t])
        dist = np.full((len(gt_ids), len(ids)), np.nan)
        for j, person in enumerate(people):
            dist[np.searchsorted(gt_ids, person), j] = 0.0
        acc.update(gt_ids.tolist(), ids.tolist(), dist)
    summary = mm.metrics.create().compute(acc, metrics=["num_switches"], name="seq")
    return int(summary["num_switches"].iloc[0])


@pytest.mark.parametrize("method", ["greedy", "hungarian"])
def test_exact_poses_and_motion_give_perfect_ids(method):
    history = run_sequence(PoseAssociator(min_similarity=0.5, max_lost_frames=5, method=method))
    assert count_id_switches(history) == 0
    assert motmetrics_switches(history) == 0
    # one id per person, one person per id (no merges), person 3 got its id back after the gap
    pairs = {(p, i) for people, ids in history for p, i in zip(people.tolist(), ids.tolist())}
    assert len(pairs) == len(STARTS) == len({i for _, i in pairs})


def test_crossing_needs_motion_compensation():
    """The same sequence without a motion model: the fast crossing persons lose their ids (sanity)."""
    history = run_sequence(PoseAssociator(min_similarity=0.5, max_lost_frames=5), motion="none")
    print(f"no motion compensation, exact poses: {count_id_switches(history)} id switches, "
          f"{len({i for _, ids in history for i in ids.tolist()})} ids for 5 persons")
    assert len({i for _, ids in history for i in ids.tolist()}) > len(STARTS)


def test_noise_and_dropped_detections_measured():
    """Keypoint noise + 10% dropped detections + painted flow: measure switches (bound only for sanity).

    Prints the switches per seed; asserts only that they stay under 5% of the person-frames and that the
    flow-warped association beats association without motion compensation on the same data.
    """
    _, present = ground_truth()
    seeds = range(5)
    person_frames = int(present.sum()) * len(seeds)
    lines, totals = [], {}
    configs = [("greedy", 2.0, "flow"), ("greedy", 4.0, "flow"), ("hungarian", 4.0, "flow"),
               ("greedy", 4.0, "none"), ("greedy", 4.0, "exact")]
    for method, noise_px, motion in configs:
        switches = []
        for seed in seeds:
            history = run_sequence(PoseAssociator(min_similarity=0.3, max_lost_frames=5, method=method),
                                   np.random.default_rng(seed), noise_px=noise_px, drop=0.1, motion=motion)
            switches.append(count_id_switches(history))
            if seed == 0:  # our count is the MOT definition
                assert switches[-1] == motmetrics_switches(history)
        totals[(method, noise_px, motion)] = sum(switches)
        lines.append(f"{method:9s} noise {noise_px:.0f}px drop 10% motion={motion:5s}: id switches per seed "
                     f"{switches} (total {sum(switches)} over {person_frames} person-frames)")
    print("\n" + "\n".join(lines))
    assert all(total <= 0.05 * person_frames for total in totals.values()), totals
    assert totals[("greedy", 4.0, "flow")] < totals[("greedy", 4.0, "none")]


def test_ids_are_owned_per_instance_and_never_reused():
    gt, _ = ground_truth()
    a, b = PoseAssociator(), PoseAssociator(first_id=100)
    scores = np.ones((2, K), np.float32)
    boxes = boxes_from_keypoints(gt[0, :2], None, 0.0)
    assert a.update(gt[0, :2], scores, boxes).tolist() == [0, 1]
    assert b.update(gt[0, :2], scores, boxes).tolist() == [100, 101]
    assert PoseAssociator().update(gt[0, :2], scores, boxes).tolist() == [0, 1]  # no shared counter
    # person 0 leaves for Q + 1 = 3 frames -> forgotten; when it returns it gets a NEW id
    q = PoseAssociator(max_lost_frames=2)
    first = q.update(gt[0, :2], scores, boxes)
    for _ in range(3):
        q.update(gt[0, 1:2], scores[:1], boxes[1:2])
    back = q.update(gt[0, :2], scores, boxes)
    assert back[1] == first[1] and back[0] not in first.tolist() and back[0] == 2
    # lost for exactly Q frames -> recovered
    q2 = PoseAssociator(max_lost_frames=2)
    first = q2.update(gt[0, :2], scores, boxes)
    for _ in range(2):
        q2.update(gt[0, 1:2], scores[:1], boxes[1:2])
    assert q2.update(gt[0, :2], scores, boxes).tolist() == first.tolist()


def test_lost_tracks_are_warped_forward_frame_by_frame_and_snapshots():
    gt, _ = ground_truth()
    assoc = PoseAssociator(max_lost_frames=5)
    scores = np.ones((2, K), np.float32)
    ids = assoc.update(gt[0, :2], scores, boxes_from_keypoints(gt[0, :2], None, 0.0))
    shift = lambda p: p + np.float32([2.0, -1.0])  # noqa: E731
    before = assoc.previous_poses()
    warped = assoc.predict(shift)  # the tracks are moved once: predict's poses are what update matches against
    np.testing.assert_allclose(warped.keypoints, before.keypoints + [2.0, -1.0])
    np.testing.assert_array_equal(assoc.previous_poses().keypoints, warped.keypoints)
    with pytest.raises(AssociationInputError, match="predict: already called"):
        assoc.predict(shift)
    with pytest.raises(AssociationInputError, match="already moved by predict"):
        assoc.update(np.zeros((0, K, 2)), np.zeros((0, K)), np.zeros((0, 4)), warp=shift)
    assert assoc.update(np.zeros((0, K, 2)), np.zeros((0, K)), np.zeros((0, 4))).size == 0  # frame 1
    for _ in range(2):  # nobody detected for 2 more frames
        assert assoc.update(np.zeros((0, K, 2)), np.zeros((0, K)), np.zeros((0, 4)), warp=shift).size == 0
    assert len(assoc.previous_poses()) == 0  # no active track
    lost = assoc.previous_poses(include_lost=True)
    assert lost.lost_frames.tolist() == [3, 3] and sorted(lost.track_ids.tolist()) == sorted(ids.tolist())
    order = np.argsort(lost.track_ids)
    np.testing.assert_allclose(lost.keypoints[order], gt[0, :2] + 3 * np.array([2.0, -1.0]), atol=1e-4)
    # they come back where the warp predicted: same ids
    moved = (gt[0, :2] + 4 * np.array([2.0, -1.0])).astype(np.float32)
    back = assoc.update(moved, scores, boxes_from_keypoints(moved, None, 0.0), warp=shift)
    assert back.tolist() == ids.tolist()


def test_reset_and_bad_inputs():
    gt, _ = ground_truth()
    scores = np.ones((2, K), np.float32)
    boxes = boxes_from_keypoints(gt[0, :2], None, 0.0)
    assoc = PoseAssociator()
    assoc.update(gt[0, :2], scores, boxes)
    assoc.reset(restart_ids=False)
    assert len(assoc) == 0 and assoc.update(gt[0, :2], scores, boxes).tolist() == [2, 3]
    assoc.reset()
    assert assoc.update(gt[0, :2], scores, boxes).tolist() == [0, 1]
    with pytest.raises(AssociationInputError, match="keypoints"):
        assoc.update(gt[0, :2, :5], scores, boxes)
    with pytest.raises(AssociationInputError, match="keypoint_scores"):
        assoc.update(gt[0, :2], scores[:1], boxes)
    with pytest.raises(AssociationInputError, match="boxes"):
        assoc.update(gt[0, :2], scores, boxes[:1])
    with pytest.raises(AssociationInputError, match="warp"):
        assoc.update(gt[0, :2], scores, boxes, warp=lambda p: p[:1])
    with pytest.raises(AssociationInputError, match="method"):
        PoseAssociator(method="auction")
    with pytest.raises(AssociationInputError, match="min_similarity"):
        PoseAssociator(min_similarity=1.5)
    with pytest.raises(AssociationInputError, match="sigmas"):
        PoseAssociator(sigmas=())
    with pytest.raises(TypeError):  # every setting is explicit: the tracking config holds the defaults
        _PoseAssociator()
