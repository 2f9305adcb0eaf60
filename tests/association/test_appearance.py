"""Colour-histogram appearance along the pose: re-identification on a real clip, invariances, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from association.appearance import PARTS, AppearanceInputError, PoseAppearance, appearance_similarity, segment_parts
from association.keypoints import COCO17, POSETRACK18

DATA = Path(__file__).resolve().parents[1] / "data" / "clip_players_keypoints.json"
K = COCO17.num_keypoints


@pytest.fixture(scope="module")
def clip(testdata):
    """Two consecutive real frames and the three players' keypoints (N=3, 17, 2) px and scores (3, 17)."""
    clip_dir = testdata / "posetrack18" / "videos" / "000001_mpiinew_test"
    doc = json.loads(DATA.read_text())
    assert tuple(doc["keypoint_names"]) == COCO17.names
    out = []
    for name, players in zip(doc["frames"], doc["players"]):
        image = cv2.imread(str(clip_dir / name))
        assert image is not None, clip_dir / name
        kps = np.array([[q if q is not None else [np.nan, np.nan] for q in p] for p in players], np.float64)
        out.append((image, kps, np.isfinite(kps).all(-1).astype(np.float64)))
    return out


def _margin(sim: np.ndarray) -> float:
    """min over people of (same person across frames) - (best other person, either direction)."""
    n = sim.shape[0]
    return min(sim[i, i] - max(max(sim[i, j], sim[j, i]) for j in range(n) if j != i) for i in range(n))


def test_parts_of_the_coco_skeleton():
    parts = [PARTS[i] for i in segment_parts(COCO17)]
    names = [(COCO17.names[a], COCO17.names[b]) for a, b in COCO17.skeleton]
    got = dict(zip(names, parts))
    assert got[("left_ankle", "left_knee")] == "lower_leg"
    assert got[("left_knee", "left_hip")] == "upper_leg"
    assert got[("left_hip", "right_hip")] == "torso"
    assert got[("left_shoulder", "left_hip")] == "torso"
    assert got[("left_shoulder", "left_elbow")] == "upper_arm"
    assert got[("right_elbow", "right_wrist")] == "lower_arm"
    assert got[("left_ear", "left_shoulder")] == "head"
    assert sorted(set(parts)) == sorted(PARTS)  # every part is sampled by some segment
    assert (segment_parts(POSETRACK18) == segment_parts(COCO17)).all()


def test_same_person_in_consecutive_real_frames_is_most_similar(clip):
    (im0, k0, s0), (im1, k1, s1) = clip
    pa = PoseAppearance()
    d0, d1 = pa.describe(im0, k0, s0), pa.describe(im1, k1, s1)
    assert d0.shape == (3, pa.descriptor_size) and d0.dtype == np.float32
    sim = pa.similarity(d0, d1)
    # measured: diagonal 0.96 / 0.94 / 0.86, best other 0.70, margin 0.156 (white #3 vs the lying player, both
    # white shirts and dark shorts, are the hard pair)
    assert np.all(np.argmax(sim, axis=1) == np.arange(3)) and np.all(np.argmax(sim, axis=0) == np.arange(3))
    assert _margin(sim) > 0.1, sim


def test_reidentification_survives_keypoint_error_and_light_change(clip):
    (im0, k0, s0), (im1, k1, s1) = clip
    pa = PoseAppearance()
    rng = np.random.default_rng(0)
    d0 = pa.describe(im0, k0, s0)
    for _ in range(3):  # 5 px keypoint error on both frames (measured margin 0.08-0.15)
        sim = pa.similarity(pa.describe(im0, k0 + rng.normal(0, 5, k0.shape), s0),
                            pa.describe(im1, k1 + rng.normal(0, 5, k1.shape), s1))
        assert _margin(sim) > 0.03, sim
    for gain in (0.85, 1.2):  # global brightness change (measured margins 0.12 / 0.13)
        im = np.clip(im1.astype(np.float64) * gain, 0, 255).astype(np.uint8)
        assert _margin(pa.similarity(d0, pa.describe(im, k1, s1))) > 0.05


def test_translation_flip_and_order_invariance(clip):
    (im0, k0, s0), _ = clip
    pa = PoseAppearance()
    d = pa.describe(im0, k0, s0)
    # the same pixels elsewhere in a larger image: identical descriptors
    padded = cv2.copyMakeBorder(im0, 23, 0, 41, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    np.testing.assert_array_equal(pa.describe(padded, k0 + [41, 23], s0), d)
    # mirrored image and mirrored pose (left/right are pooled): the same colours (a pixel may differ where a
    # sample point falls exactly between two pixels)
    w = im0.shape[1]
    flipped = np.ascontiguousarray(im0[:, ::-1])
    kf = k0.copy()
    kf[..., 0] = w - 1 - kf[..., 0]
    perm = COCO17.flip_permutation()
    assert np.diag(pa.similarity(pa.describe(flipped, kf[:, perm], s0[:, perm]), d)).min() > 0.998
    # person order: rows follow
    order = np.array([2, 0, 1])
    np.testing.assert_array_equal(pa.describe(im0, k0[order], s0[order]), d[order])


def test_unusable_people_get_zero_descriptors(clip):
    (im0, k0, s0), _ = clip
    pa = PoseAppearance(score_threshold=0.5)
    scores = s0.copy()
    scores[1] = 0.4  # below threshold
    kps = k0.copy()
    kps[2] += 5000.0  # outside the image
    d = pa.describe(im0, kps, scores)
    assert np.all(d[1:] == 0) and np.any(d[0] > 0)
    sim = pa.similarity(d, d)
    assert sim[0, 0] == pytest.approx(1.0, abs=1e-5) and np.all(sim[1:] == 0) and np.all(sim[:, 1:] == 0)
    assert pa.describe(im0, np.zeros((0, K, 2)), np.zeros((0, K))).shape == (0, pa.descriptor_size)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 5), m=st.integers(1, 5))
def test_descriptor_and_similarity_properties(seed, n, m):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    pa = PoseAppearance(score_threshold=0.3)
    kps = rng.uniform(-20, 100, size=(n + m, K, 2))
    scores = rng.uniform(0, 1, size=(n + m, K))
    d = pa.describe(image, kps, scores).astype(np.float64)
    parts = d.reshape(n + m, pa.num_parts, pa.bins_per_part)
    norms = np.linalg.norm(parts, axis=-1)
    assert np.all((norms == 0) | (np.abs(norms - 1) < 1e-5))  # each part: unit vector or empty
    sim = pa.similarity(d[:n], d[n:])
    assert sim.shape == (n, m) and np.all((sim >= 0) & (sim <= 1))
    np.testing.assert_allclose(sim, pa.similarity(d[n:], d[:n]).T, atol=1e-6)
    self_sim = np.diag(pa.similarity(d, d))
    has = norms.sum(-1) > 0
    np.testing.assert_allclose(self_sim[has], 1.0, atol=1e-5)
    assert np.all(self_sim[~has] == 0)


def test_bad_input_gives_clear_errors():
    pa = PoseAppearance()
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(AppearanceInputError, match="image: expected a"):
        pa.describe(image.astype(np.float32), np.zeros((1, K, 2)), np.ones((1, K)))
    with pytest.raises(AppearanceInputError, match="image: expected a"):
        pa.describe(image[..., 0], np.zeros((1, K, 2)), np.ones((1, K)))
    with pytest.raises(AppearanceInputError, match=r"keypoints: expected shape \(N, 17, 2\)"):
        pa.describe(image, np.zeros((1, 15, 2)), np.ones((1, 15)))
    with pytest.raises(AppearanceInputError, match="scores: expected shape"):
        pa.describe(image, np.zeros((2, K, 2)), np.ones((1, K)))
    with pytest.raises(AppearanceInputError, match="sizes differ"):
        appearance_similarity(np.zeros((1, 12)), np.zeros((1, 18)))
    with pytest.raises(AppearanceInputError, match="desc_a"):
        appearance_similarity(-np.ones((1, 12)), np.zeros((1, 12)))
    with pytest.raises(AppearanceInputError, match="samples_per_segment"):
        PoseAppearance(samples_per_segment=0)
    with pytest.raises(AppearanceInputError, match="radius_fraction"):
        PoseAppearance(radius_fraction=float("nan"))
