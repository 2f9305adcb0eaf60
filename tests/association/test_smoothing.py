"""One-Euro keypoint smoothing: jitter removal, bounded lag, per-id / per-instance state, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from association.keypoints import COCO17
from association.smoothing import KeypointSmoother, SmoothingInputError, one_euro_alpha, steady_state_lag

K = COCO17.num_keypoints
SETTINGS = dict(min_cutoff=1.0, beta=0.01, d_cutoff=1.0, score_threshold=0.3, forget_after=1.0)


def _pose(rng: np.random.Generator, n: int = 1) -> np.ndarray:
    return rng.uniform(100, 500, size=(n, K, 2))


def test_alpha_matches_the_paper_formula():
    # alpha = 1 / (1 + tau / Te), tau = 1 / (2 pi fc)
    assert one_euro_alpha(1.0, 1 / 30) == pytest.approx(1 / (1 + (1 / (2 * math.pi)) * 30))
    assert one_euro_alpha(1e9, 1.0) == pytest.approx(1.0)
    a = one_euro_alpha(np.array([0.5, 1.0, 4.0]), 0.02)
    assert np.all(np.diff(a) > 0) and np.all((a > 0) & (a < 1))


def test_removes_jitter_on_a_static_pose():
    rng = np.random.default_rng(0)
    truth = _pose(rng, 3)
    sigma = 3.0  # px of detector jitter
    sm = KeypointSmoother(**SETTINGS)
    frames, outs = 300, []
    for i in range(frames):
        noisy = truth + rng.normal(0, sigma, truth.shape)
        outs.append(sm.update(np.array([4, 9, 2]), noisy, np.ones((3, K)), i / 30.0))
    err = np.stack(outs[30:]) - truth  # after a 1 s warm-up
    ratio = err.std() / sigma
    # A first-order low-pass with alpha a leaves std sqrt(a / (2 - a)) of white noise; at rest fc ~ min_cutoff,
    # so about sqrt(0.173 / 1.827) = 0.31 at 30 fps and 1 Hz; beta * |speed noise| raises fc a little.
    a = one_euro_alpha(SETTINGS["min_cutoff"], 1 / 30)
    assert ratio < 0.45, ratio
    assert ratio > math.sqrt(a / (2 - a)) * 0.9  # it cannot do better than its resting cutoff allows
    assert abs(err.mean()) < 0.2  # no bias


@pytest.mark.parametrize("speed", [20.0, 200.0, 2000.0])
def test_lags_a_constant_velocity_motion_by_the_formula(speed):
    rng = np.random.default_rng(1)
    start = _pose(rng)
    direction = np.array([0.6, 0.8])
    sm = KeypointSmoother(**SETTINGS)
    bound = speed / (2 * math.pi * SETTINGS["min_cutoff"])
    lags = []
    for i in range(240):
        t = i / 30.0
        x = start + direction * speed * t
        out = sm.update(np.array([0]), x, np.ones((1, K)), t)
        lag_vec = x - out
        lags.append(np.linalg.norm(lag_vec, axis=-1).max())
        # behind the motion, along it
        assert np.all(lag_vec @ direction >= -1e-3)
    lags = np.array(lags)
    assert lags.max() <= bound * (1 + 1e-6)
    expected = steady_state_lag(speed, SETTINGS["min_cutoff"], SETTINGS["beta"])
    assert lags[-1] == pytest.approx(expected, rel=0.02)
    assert lags[-1] < 1 / (2 * math.pi * SETTINGS["beta"])  # the high-speed ceiling 1 / (2 pi beta)


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.floats(0.005, 0.2), min_size=5, max_size=60),
       speed=st.floats(1.0, 3000.0), beta=st.floats(0.0, 0.1), min_cutoff=st.floats(0.2, 5.0))
def test_lag_bound_holds_for_irregular_time_steps(steps, speed, beta, min_cutoff):
    sm = KeypointSmoother(min_cutoff=min_cutoff, beta=beta, d_cutoff=1.0, score_threshold=0.0, forget_after=1.0)
    start = np.zeros((1, K, 2))
    t = 0.0
    for dt in [0.0] + steps:
        t += dt
        x = start + np.array([speed * t, 0.0])
        out = sm.update(np.array([7]), x, np.ones((1, K)), t)
        lag = (x - out)[..., 0]
        tol = 1e-6 + 2e-7 * speed * t  # the output is float32
        assert np.all(lag >= -tol)
        assert np.all(lag <= speed / (2 * math.pi * min_cutoff) + tol)
        assert np.isfinite(out).all()


def test_state_is_per_track_id_and_per_instance():
    rng = np.random.default_rng(2)
    a_pose, b_pose = _pose(rng), _pose(rng)
    one, two = KeypointSmoother(**SETTINGS), KeypointSmoother(**SETTINGS)
    one.update(np.array([1, 2]), np.concatenate([a_pose, b_pose]), np.ones((2, K)), 0.0)
    # a fresh instance passes its first sample through, whatever the other instance holds
    first = two.update(np.array([1]), b_pose, np.ones((1, K)), 0.0)
    np.testing.assert_allclose(first, b_pose.astype(np.float32))
    # the order of the poses does not matter, only their ids
    moved_a, moved_b = a_pose + 5.0, b_pose - 5.0
    out_ab = one.update(np.array([2, 1]), np.concatenate([moved_b, moved_a]), np.ones((2, K)), 1 / 30)
    ref = KeypointSmoother(**SETTINGS)
    ref.update(np.array([1]), a_pose, np.ones((1, K)), 0.0)
    np.testing.assert_allclose(out_ab[1], ref.update(np.array([1]), moved_a, np.ones((1, K)), 1 / 30)[0], atol=1e-4)
    # a new id starts from its own first sample
    new = one.update(np.array([3]), a_pose, np.ones((1, K)), 2 / 30)
    np.testing.assert_allclose(new, a_pose.astype(np.float32))
    assert sorted(one.track_ids.tolist()) == [1, 2, 3] and len(two) == 1


def test_tracks_are_forgotten_after_forget_after_seconds():
    rng = np.random.default_rng(3)
    pose = _pose(rng)
    sm = KeypointSmoother(**SETTINGS)  # forget_after = 1 s
    sm.update(np.array([5]), pose, np.ones((1, K)), 0.0)
    sm.update(np.array([6]), pose, np.ones((1, K)), 0.5)
    assert len(sm) == 2
    out = sm.update(np.array([6]), pose, np.ones((1, K)), 1.2)  # id 5 unseen for 1.2 s
    assert sm.track_ids.tolist() == [6]
    # coming back after the gap: no smoothing across it (the first sample passes through)
    far = pose + 100.0
    np.testing.assert_allclose(sm.update(np.array([5]), far, np.ones((1, K)), 1.3), far.astype(np.float32))
    assert np.isfinite(out).all()
    sm.forget([5, 99])
    assert sm.track_ids.tolist() == [6]
    sm.reset()
    assert len(sm) == 0


def test_low_score_and_nan_joints_pass_through_and_keep_state():
    rng = np.random.default_rng(4)
    pose = _pose(rng)
    sm = KeypointSmoother(**SETTINGS)
    ones = np.ones((1, K))
    sm.update(np.array([0]), pose, ones, 0.0)
    bad = pose + 50.0
    bad[0, 3] = np.nan
    scores = ones.copy()
    scores[0, 4] = 0.1  # below score_threshold 0.3
    scores[0, 5] = np.nan
    out = sm.update(np.array([0]), bad, scores, 1 / 30)
    assert np.isnan(out[0, 3]).all()
    np.testing.assert_allclose(out[0, 4:6], bad[0, 4:6].astype(np.float32))
    # filtered joints moved only part of the way (smoothing happened) ...
    assert np.all(np.abs(out[0, 0] - pose[0, 0]) < 50.0)
    # ... and the skipped joints kept their state: a later good sample at the old place stays there
    back = sm.update(np.array([0]), pose, ones, 2 / 30)
    np.testing.assert_allclose(back[0, 4], pose[0, 4], atol=1e-4)


def test_bad_input_gives_clear_errors():
    sm = KeypointSmoother(**SETTINGS)
    pose = np.zeros((2, K, 2))
    with pytest.raises(SmoothingInputError, match="keypoints: expected shape"):
        sm.update(np.array([0, 1]), np.zeros((2, K)), np.ones((2, K)), 0.0)
    with pytest.raises(SmoothingInputError, match="scores: expected shape"):
        sm.update(np.array([0, 1]), pose, np.ones((2, K + 1)), 0.0)
    with pytest.raises(SmoothingInputError, match="track_ids: expected"):
        sm.update(np.array([0.5, 1.0]), pose, np.ones((2, K)), 0.0)
    with pytest.raises(SmoothingInputError, match="appears twice"):
        sm.update(np.array([3, 3]), pose, np.ones((2, K)), 0.0)
    with pytest.raises(SmoothingInputError, match="timestamp"):
        sm.update(np.array([0, 1]), pose, np.ones((2, K)), float("nan"))
    sm.update(np.array([0, 1]), pose, np.ones((2, K)), 1.0)
    with pytest.raises(SmoothingInputError, match="not after"):
        sm.update(np.array([0, 1]), pose, np.ones((2, K)), 1.0)
    with pytest.raises(SmoothingInputError, match="K=17"):
        sm.update(np.array([0]), np.zeros((1, 5, 2)), np.ones((1, 5)), 2.0)
    for bad in (dict(min_cutoff=0.0), dict(beta=-1.0), dict(d_cutoff=float("inf")), dict(forget_after=0.0)):
        with pytest.raises(SmoothingInputError, match=next(iter(bad))):
            KeypointSmoother(**{**SETTINGS, **bad})
    with pytest.raises(TypeError):
        KeypointSmoother(min_cutoff=1.0)  # every setting is explicit


def test_empty_frames_are_fine():
    sm = KeypointSmoother(**SETTINGS)
    out = sm.update(np.zeros(0, np.int64), np.zeros((0, K, 2)), np.zeros((0, K)), 0.0)
    assert out.shape == (0, K, 2) and out.dtype == np.float32
