"""Augmentation and targets: property tests (keypoints land on the target peak and on the image content,
flip is an involution, half-body crops keep only the chosen half) and per-family input normalisation."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from association.keypoints import COCO17, POSETRACK18
from estimators.codecs import MSPN_KERNELS
from estimators.geometry import box_to_center_scale, transform_points
from estimators.spec import FAMILIES, HRNET, MSPN
from estimators.training.augmentation import (
    COCO_LOWER_BODY,
    COCO_UPPER_BODY,
    NO_AUGMENT,
    AugmentError,
    AugmentParams,
    body_halves,
    flip_center,
    flip_image,
    flip_keypoints,
    half_body_region,
    make_input,
    sample_transform,
)
from estimators.training.targets import TargetError, hrnet_sigma, make_targets, normalize_input

INPUT = (96, 128)  # (w, h)
IMG_W, IMG_H = 320, 240

coords = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def person(draw):
    """A box inside the image and 17 keypoints inside the box (some unlabelled)."""
    x1 = draw(st.floats(10, IMG_W / 2))
    y1 = draw(st.floats(10, IMG_H / 2))
    w = draw(st.floats(40, IMG_W - 10 - x1))
    h = draw(st.floats(40, IMG_H - 10 - y1))
    u = np.array(draw(st.lists(st.tuples(coords, coords), min_size=17, max_size=17)))
    kp = np.stack([x1 + u[:, 0] * w, y1 + u[:, 1] * h], axis=1)
    vis = np.array(draw(st.lists(st.booleans(), min_size=17, max_size=17)), dtype=np.float64)
    return np.array([x1, y1, x1 + w, y1 + h]), kp, vis


@settings(max_examples=40, deadline=None)
@given(person(), st.integers(0, 2 ** 31 - 1))
def test_transformed_keypoints_land_on_target_peak(p, seed):
    box, kp, vis = p
    c, s = box_to_center_scale(box[None], INPUT[0] / INPUT[1])
    params = AugmentParams(half_body_prob=0.0, flip_prob=0.5)
    tf, kp2, vis2 = sample_transform(np.random.default_rng(seed), params, c[0], s[0], kp, vis, IMG_W,
                                     INPUT[0] / INPUT[1], COCO17)
    _, m = make_input(np.zeros((IMG_H, IMG_W, 3), np.uint8), tf, INPUT)
    kp_in = transform_points(kp2, m)
    # HRNet: Gaussian peak at int(x / 4 + 0.5)
    hm, w = make_targets(HRNET, kp_in, vis2, INPUT)
    assert hm.shape == (1, 17, INPUT[1] // 4, INPUT[0] // 4)
    for j in np.nonzero(w)[0]:
        mu = np.trunc(kp_in[j] / 4 + 0.5).astype(int)
        if 0 <= mu[0] < INPUT[0] // 4 and 0 <= mu[1] < INPUT[1] // 4:
            peak = np.unravel_index(hm[0, j].argmax(), hm[0, j].shape)
            assert (peak[1], peak[0]) == (mu[0], mu[1])
            assert hm[0, j].max() == pytest.approx(1.0)
    assert np.all(w[vis2 == 0] == 0)
    # MSPN: peak at floor(x / 4) for cells at least kernel // 2 from the border (reflect-101 border effect)
    mh, mw = make_targets(MSPN, kp_in, vis2, INPUT)
    assert mh.shape == (len(MSPN_KERNELS), 17, INPUT[1] // 4, INPUT[0] // 4)
    for j in np.nonzero(mw)[0]:
        cell = np.floor(kp_in[j] / 4).astype(int)
        for t, k in enumerate(MSPN_KERNELS):
            b = k // 2
            if b <= cell[0] < INPUT[0] // 4 - b and b <= cell[1] < INPUT[1] // 4 - b:
                peak = np.unravel_index(mh[t, j].argmax(), mh[t, j].shape)
                assert (peak[1], peak[0]) == (cell[0], cell[1])
                assert mh[t, j].max() == pytest.approx(255.0, rel=1e-5)


@settings(max_examples=25, deadline=None)
@given(person(), st.integers(0, 2 ** 31 - 1), st.integers(0, 16))
def test_crop_shows_the_keypoint_where_it_is_mapped(p, seed, j):
    """Paint a bright blob at one keypoint; after the augmented crop (incl. flip) it appears at the
    transformed keypoint: points and pixels go through the same affine."""
    box, kp, vis = p
    img = np.zeros((IMG_H, IMG_W, 3), np.uint8)
    x, y = kp[j]
    yy, xx = np.mgrid[0:IMG_H, 0:IMG_W]
    img[(xx - x) ** 2 + (yy - y) ** 2 <= 9] = 255
    vis = np.zeros(17)
    vis[j] = 1
    c, s = box_to_center_scale(box[None], INPUT[0] / INPUT[1])
    tf, kp2, vis2 = sample_transform(np.random.default_rng(seed), AugmentParams(half_body_prob=0.0), c[0], s[0],
                                     kp, vis, IMG_W, INPUT[0] / INPUT[1], COCO17)
    crop_img, m = make_input(img, tf, INPUT)
    jj = int(np.nonzero(vis2)[0][0])  # the joint's slot after a possible left/right swap
    kx, ky = transform_points(kp2[jj], m)
    if not (4 <= kx < INPUT[0] - 4 and 4 <= ky < INPUT[1] - 4):
        return
    ys, xs = np.nonzero(crop_img[:, :, 0] > 100)
    assert len(xs) > 0
    assert abs(xs.mean() - kx) < 1.5 and abs(ys.mean() - ky) < 1.5


@settings(max_examples=50, deadline=None)
@given(person(), st.integers(50, 1000))
def test_flip_twice_is_identity(p, width):
    _, kp, vis = p
    k1, v1 = flip_keypoints(kp, vis, width, COCO17)
    k2, v2 = flip_keypoints(k1, v1, width, COCO17)
    np.testing.assert_allclose(k2, kp, atol=1e-9)
    np.testing.assert_array_equal(v2, vis)
    np.testing.assert_allclose(flip_center(flip_center(kp[0], width), width), kp[0], atol=1e-9)


def test_flip_swaps_pairs_and_mirrors_pixels():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (7, 11, 3), dtype=np.uint8)
    np.testing.assert_array_equal(flip_image(flip_image(img)), img)
    np.testing.assert_array_equal(flip_image(img)[2, 10 - 3], img[2, 3])  # x -> W - 1 - x
    kp = np.arange(34, dtype=np.float64).reshape(17, 2)
    vis = np.arange(17, dtype=np.float64)
    k, v = flip_keypoints(kp, vis, 11, COCO17)
    for a, b in COCO17.flip_pairs:
        assert v[a] == vis[b] and v[b] == vis[a]
        assert k[a, 0] == 10 - kp[b, 0] and k[a, 1] == kp[b, 1]
    assert k[0, 0] == 10 - kp[0, 0]


@settings(max_examples=40, deadline=None)
@given(st.integers(9, 17), st.integers(0, 2 ** 31 - 1))
def test_half_body_keeps_only_the_chosen_joints(n_visible, seed):
    rng = np.random.default_rng(seed)
    kp = rng.uniform(20, 200, (17, 2))
    vis = np.zeros(17)
    vis[rng.choice(17, n_visible, replace=False)] = 1.0
    params = AugmentParams(half_body_prob=1.0, flip_prob=0.0, rotation_prob=0.0, scale_range=(1, 1), scale_sigma=0)
    tf, kp2, vis2 = sample_transform(rng, params, np.array([100.0, 100.0]), np.array([1.0, 1.0]), kp, vis, 300, 0.75,
                                     COCO17)
    kept = set(np.nonzero(vis2)[0].tolist())
    upper, lower = set(COCO_UPPER_BODY), set(COCO_LOWER_BODY)
    assert kept <= upper or kept <= lower
    assert len(kept) >= 2
    assert kept == set(np.nonzero(vis)[0]) & (upper if kept <= upper else lower)
    # the crop region holds every kept joint (1.5 x their extent, aspect-fixed)
    _, m = make_input(np.zeros((300, 300, 3), np.uint8), tf, INPUT)
    pts = transform_points(kp2[sorted(kept)], m)
    assert np.all(pts >= -1e-6) and np.all(pts[:, 0] <= INPUT[0]) and np.all(pts[:, 1] <= INPUT[1])


def test_half_body_falls_back_and_gives_up():
    kp = np.tile([[10.0, 10.0]], (17, 1)) + np.arange(17)[:, None]
    vis = np.zeros(17)
    vis[[11, 12, 13]] = 1  # only lower body joints
    c, s, keep = half_body_region(kp, vis, 0.75, use_upper=True)
    assert set(np.nonzero(keep)[0]) == {11, 12, 13}
    vis = np.zeros(17)
    vis[[0, 11]] = 1
    assert half_body_region(kp, vis, 0.75, use_upper=True) is None


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2 ** 31 - 1))
def test_sampled_scale_and_rotation_stay_in_range(seed):
    params = AugmentParams(scale_range=(0.7, 1.35), rotation=45.0, half_body_prob=0.0)
    s0 = np.array([1.0, 4 / 3])
    tf, _, _ = sample_transform(np.random.default_rng(seed), params, np.array([50.0, 50.0]), s0,
                                np.zeros((17, 2)), np.zeros(17), 100, 0.75, COCO17)
    ratio = tf.scale / s0
    assert 0.7 - 1e-9 <= ratio[0] <= 1.35 + 1e-9 and ratio[0] == pytest.approx(ratio[1])
    assert -45.0 <= tf.rotation <= 45.0


def test_no_augment_is_the_inference_crop():
    tf, kp, vis = sample_transform(np.random.default_rng(0), NO_AUGMENT, np.array([5.0, 6.0]),
                                   np.array([1.0, 2.0]), np.ones((17, 2)), np.ones(17), 100, 0.5, COCO17)
    assert tf.rotation == 0.0 and not tf.flip
    np.testing.assert_allclose(tf.scale, [1.0, 2.0])


@pytest.mark.parametrize("family", ["hrnet", "mspn"])
def test_input_normalisation_follows_the_family(family):
    crop = np.zeros((4, 4, 3), np.uint8)
    crop[..., 0], crop[..., 1], crop[..., 2] = 10, 100, 200  # B, G, R
    conv = FAMILIES[family]
    x = normalize_input(crop, conv)
    assert x.shape == (3, 4, 4) and x.dtype == np.float32
    order = [200, 100, 10] if conv.rgb else [10, 100, 200]
    for ch in range(3):
        assert x[ch, 0, 0] == pytest.approx((order[ch] / 255 - conv.mean[ch]) / conv.std[ch], rel=1e-5)


def test_sigma_scales_with_input_and_bad_settings_raise():
    assert hrnet_sigma((192, 256)) == 2.0 and hrnet_sigma((288, 384)) == 3.0
    with pytest.raises(AugmentError, match="scale_range"):
        AugmentParams(scale_range=(1.2, 0.8))
    with pytest.raises(AugmentError, match="flip_prob"):
        AugmentParams(flip_prob=1.5)
    with pytest.raises(TargetError, match="target kind 'simcc'"):
        make_targets(dataclasses.replace(HRNET, name="simcc_family", target="simcc"), np.zeros((17, 2)),
                     np.zeros(17), INPUT)
    with pytest.raises(AugmentError, match="posetrack18"):
        flip_keypoints(np.zeros((15, 2)), np.zeros(15), 100, POSETRACK18)


def test_body_halves_come_from_the_keypoint_names():
    assert COCO_UPPER_BODY == tuple(range(11)) and COCO_LOWER_BODY == tuple(range(11, 17))
    assert body_halves(POSETRACK18) == (COCO_UPPER_BODY, COCO_LOWER_BODY)  # head_bottom / head_top are upper body
