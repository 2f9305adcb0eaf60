"""Heatmap encoders and decoders of both families: exact conventions, sub-pixel accuracy, vectorisation."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from estimators.codecs import (
    MSPN_KERNELS,
    CodecError,
    decode_hrnet,
    decode_mspn,
    encode_gaussian,
    encode_mspn,
    gaussian_blur_maps,
    mspn_targets,
)

HM = (48, 64)  # heatmap (w, h)
INP = (192, 256)  # input (w, h)


def gaussian_map(x0: float, y0: float, size=HM, sigma=2.0, peak=1.0) -> np.ndarray:
    """A continuous Gaussian centred at a sub-pixel heatmap location (x0, y0): (h, w) float32."""
    ys, xs = np.mgrid[0:size[1], 0:size[0]]
    return (peak * np.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * sigma**2))).astype(np.float32)


def authors_get_results(outputs: np.ndarray, kernel: int = 5, shifts=(0.25,)):
    """The released MSPN/RSN decoding (``exps/*/test.py`` get_results, per map, as written there) of one person's
    heatmaps (K, H, W) float32 -> input-px keypoints (K, 2) float64 and raw scores (K,) float32."""
    k_num, out_h, out_w = outputs.shape
    score_map = outputs.copy() / 255 + 0.5
    kps = np.zeros((k_num, 2))
    scores = np.zeros(k_num, np.float32)
    border = 10
    dr = np.zeros((k_num, out_h + 2 * border, out_w + 2 * border))
    dr[:, border:-border, border:-border] = outputs.copy()
    for w in range(k_num):
        dr[w] = cv2.GaussianBlur(dr[w], (kernel, kernel), 0)
    for w in range(k_num):
        for j in range(len(shifts)):
            if j == 0:
                lb = dr[w].argmax()
                y, x = np.unravel_index(lb, dr[w].shape)
                dr[w, y, x] = 0
                x -= border
                y -= border
            lb = dr[w].argmax()
            py, px = np.unravel_index(lb, dr[w].shape)
            dr[w, py, px] = 0
            px -= border + x
            py -= border + y
            ln = (px ** 2 + py ** 2) ** 0.5
            if ln > 1e-3:
                x += shifts[j] * px / ln
                y += shifts[j] * py / ln
        x = max(0, min(x, out_w - 1))
        y = max(0, min(y, out_h - 1))
        kps[w] = np.array([x * 4 + 2, y * 4 + 2])
        scores[w] = score_map[w, int(round(y) + 1e-9), int(round(x) + 1e-9)]
    return kps, scores


def border_cases(size=HM) -> np.ndarray:
    """Synthetic (M, h, w) float32 maps: single and double peaks (Gaussian, sub-cell centre; blurred one-hot
    targets) at every distance 0..6 cells from each border and corner, and everywhere along the diagonal."""
    w, h = size
    maps = []
    rng = np.random.default_rng(7)
    spots = []
    for d in range(7):
        mid_x, mid_y = w // 2 + 0.3, h // 2 - 0.2
        spots += [(d, mid_y), (w - 1 - d, mid_y), (mid_x, d), (mid_x, h - 1 - d),
                  (d, d), (w - 1 - d, d), (d, h - 1 - d), (w - 1 - d, h - 1 - d)]
    spots += [(i * (w - 1) / 20, i * (h - 1) / 20) for i in range(21)]
    for x0, y0 in spots:
        for dx, dy in ((0.0, 0.0), (0.3, -0.2), (-0.4, 0.45)):
            xs, ys = float(np.clip(x0 + dx, 0, w - 1)), float(np.clip(y0 + dy, 0, h - 1))
            maps.append(gaussian_map(xs, ys, size, sigma=1.5, peak=255.0))
            x2, y2 = np.clip(xs + rng.uniform(-3, 3), 0, w - 1), np.clip(ys + rng.uniform(-3, 3), 0, h - 1)
            second = gaussian_map(x2, y2, size, sigma=2.0, peak=150.0)
            maps.append(np.maximum(maps[-1], second))
        cell = np.array([[min(x0, w - 1) * 4 + 1, min(y0, h - 1) * 4 + 1]])
        maps.append(encode_mspn(cell, np.ones(1), size, (w * 4, h * 4), 5)[0][0])
    return np.stack(maps).astype(np.float32)


def decode_hrnet_loop(hm: np.ndarray):
    """Per-joint oracle of the released HRNet decoding (get_max_preds + quarter offset)."""
    n, k, h, w = hm.shape
    coords = np.zeros((n, k, 2), np.float32)
    maxvals = np.zeros((n, k), np.float32)
    for i in range(n):
        for j in range(k):
            m = hm[i, j]
            idx = int(np.argmax(m))
            v = m.flat[idx]
            maxvals[i, j] = v
            x, y = (idx % w, idx // w) if v > 0 else (0, 0)
            cx, cy = float(x), float(y)
            if 1 < x < w - 1 and 1 < y < h - 1:
                cx += 0.25 * np.sign(m[y, x + 1] - m[y, x - 1])
                cy += 0.25 * np.sign(m[y + 1, x] - m[y - 1, x])
            coords[i, j] = cx, cy
    return coords, maxvals


# ------------------------------------------------------------------------------------------- HRNet
@settings(max_examples=100)
@given(st.lists(st.tuples(st.floats(0, 191.9), st.floats(0, 255.9), st.booleans()), min_size=1, max_size=17))
def test_encode_gaussian_peak_at_rounded_stride_cell_and_decodes_exactly(rows):
    kp = np.array([[x, y] for x, y, _ in rows])
    vis = np.array([v for *_, v in rows], float)
    hm, weight = encode_gaussian(kp, vis, HM, INP, sigma=2)
    assert hm.shape == (len(rows), 64, 48) and hm.dtype == np.float32
    np.testing.assert_array_equal(weight, vis)  # all inside: weight = visibility
    mu = np.floor(kp / 4 + 0.5).astype(int)
    for j in np.nonzero(vis)[0]:
        if mu[j, 0] < 48 and mu[j, 1] < 64:
            assert hm[j, mu[j, 1], mu[j, 0]] == 1.0 and hm[j].max() == 1.0
    assert not hm[vis == 0].any()
    coords, maxvals = decode_hrnet(hm[None])
    inside = (vis > 0) & (mu[:, 0] < 48) & (mu[:, 1] < 64)
    # a symmetric target has equal neighbours: no quarter offset, the decoder returns the cell exactly
    np.testing.assert_array_equal(coords[0, inside], mu[inside].astype(np.float32))
    np.testing.assert_array_equal(maxvals[0, inside], 1.0)


def test_encode_gaussian_window_and_outside_weight():
    hm, w = encode_gaussian(np.array([[100.0, 100.0], [-100.0, 50.0], [190.0, 400.0]]), np.ones(3), HM, INP)
    assert w.tolist() == [1.0, 0.0, 0.0]
    assert not hm[1:].any()
    # truncated to the (6 sigma + 1)^2 = 13 x 13 window around the peak
    assert (hm[0] > 0).sum() == 13 * 13


@settings(max_examples=200)
@given(st.floats(2.5, 44.5), st.floats(2.5, 60.5), st.floats(1.0, 3.0))
def test_decode_hrnet_subpixel_gaussian_within_quarter_pixel(x0, y0, sigma):
    hm = gaussian_map(x0, y0, sigma=sigma)[None, None]
    coords, maxvals = decode_hrnet(hm)
    err = np.abs(coords[0, 0] - [x0, y0])
    assert err.max() <= 0.25 + 1e-5
    assert 0 < maxvals[0, 0] <= 1


@settings(max_examples=50)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(4, 12), st.integers(4, 12), st.integers(0, 2**31 - 1))
def test_decode_hrnet_vectorised_equals_per_joint_loop(n, k, h, w, seed):
    rng = np.random.default_rng(seed)
    hm = rng.normal(size=(n, k, h, w)).astype(np.float32)
    hm[0, 0] = -np.abs(hm[0, 0])  # a joint with max <= 0 (masked to (0, 0))
    coords, maxvals = decode_hrnet(hm)
    ref_c, ref_v = decode_hrnet_loop(hm)
    np.testing.assert_array_equal(coords, ref_c)
    np.testing.assert_array_equal(maxvals, ref_v)
    np.testing.assert_array_equal(decode_hrnet(torch.from_numpy(hm))[0], coords)  # torch input too
    assert coords[0, 0].tolist() == [0.0, 0.0] and maxvals[0, 0] <= 0


def test_decode_hrnet_released_bounds_exclude_x_equal_one():
    hm = np.zeros((1, 1, 10, 10), np.float32)
    hm[0, 0, 5, 1] = 1.0
    hm[0, 0, 5, 2] = 0.5
    assert decode_hrnet(hm)[0][0, 0].tolist() == [1.0, 5.0]  # 1 < x fails: no offset, as released
    hm[0, 0, 5, 1], hm[0, 0, 5, 3] = 0.0, 1.0
    assert decode_hrnet(hm)[0][0, 0].tolist() == [2.75, 5.0]  # higher neighbour on the left


# ------------------------------------------------------------------------------------------- MSPN
def test_gaussian_blur_maps_is_cv2_per_map_beyond_the_channel_limit():
    rng = np.random.default_rng(0)
    maps = rng.random((3, 100, 9, 7)).astype(np.float32)  # 300 maps > OpenCV's 128 channels
    ref = np.stack([cv2.GaussianBlur(m, (5, 5), 0) for m in maps.reshape(-1, 9, 7)]).reshape(maps.shape)
    # OpenCV's multi-channel path may round differently from the single-channel one (1 ulp)
    np.testing.assert_allclose(gaussian_blur_maps(maps, 5), ref, rtol=1e-6, atol=1e-7)
    with pytest.raises(CodecError, match="odd"):
        gaussian_blur_maps(maps, 4)


@settings(max_examples=100)
@given(st.lists(st.tuples(st.floats(-20, 211), st.floats(-20, 275), st.booleans()), min_size=1, max_size=17),
       st.sampled_from(MSPN_KERNELS))
def test_encode_mspn_is_blurred_one_hot_with_peak_255(rows, kernel):
    kp = np.array([[x, y] for x, y, _ in rows])
    vis = np.array([v for *_, v in rows], float)
    hm, weight = encode_mspn(kp, vis, HM, INP, kernel)
    cell = np.floor(kp * np.array([48 / 192, 64 / 256])).astype(int)
    inside = (cell[:, 0] >= 0) & (cell[:, 0] < 48) & (cell[:, 1] >= 0) & (cell[:, 1] < 64)
    np.testing.assert_array_equal(weight, ((vis > 0) & inside).astype(np.float32))
    for j in range(len(rows)):
        if weight[j] == 0:
            assert not hm[j].any()
            continue
        one = np.zeros((64, 48), np.float32)
        one[cell[j, 1], cell[j, 0]] = 1
        ref = cv2.GaussianBlur(one, (kernel, kernel), 0)
        np.testing.assert_allclose(hm[j], ref * (255 / ref.max()), rtol=1e-5, atol=1e-4)
        assert hm[j].max() == pytest.approx(255.0)
        # Away from the border the peak is the one-hot cell. Closer than kernel // 4 + 1 cells, cv2's default
        # BORDER_REFLECT_101 mirrors the mass and moves the maximum toward the border (as in released targets).
        m = kernel // 4 + 1
        if m <= cell[j, 0] <= 48 - 1 - m and m <= cell[j, 1] <= 64 - 1 - m:
            assert hm[j, cell[j, 1], cell[j, 0]] == pytest.approx(255.0)


def test_mspn_targets_kernel_assignment_coarse_to_fine():
    kp = np.array([[96.0, 128.0], [40.0, 30.0]])
    vis = np.ones(2)
    for final, kernels in ((False, (15, 11, 9, 7)), (True, (11, 9, 7, 5))):
        targets, weight = mspn_targets(kp, vis, INP, stage_is_final=final)
        assert len(targets) == 4 and weight.tolist() == [1.0, 1.0]
        for t, k in zip(targets, kernels):
            np.testing.assert_array_equal(t, encode_mspn(kp, vis, HM, INP, k)[0])
        mass = [t[0].sum() for t in targets]
        assert mass == sorted(mass, reverse=True)  # lowest-resolution unit = widest target
    small = mspn_targets(kp, vis, INP, True, heatmap_sizes=[(6, 8), (12, 16), (24, 32), (48, 64)])[0]
    assert [t.shape for t in small] == [(2, 8, 6), (2, 16, 12), (2, 32, 24), (2, 64, 48)]


def test_decode_mspn_is_the_authors_decoder_at_every_distance_from_the_border():
    maps = border_cases()
    coords, scores = decode_mspn(maps[None], kernel=5)
    ref_c, ref_s = authors_get_results(maps, 5)
    assert coords.dtype == np.float64 and scores.dtype == np.float32
    np.testing.assert_array_equal(coords[0], ref_c)  # every case, bit for bit
    np.testing.assert_array_equal(scores[0], ref_s)
    assert len(maps) > 500


def test_decode_mspn_all_negative_and_flat_maps_as_released():
    rng = np.random.default_rng(3)
    neg = -np.abs(rng.normal(size=(4, 64, 48)).astype(np.float32)) * 30 - 1e-3
    flat = np.stack([np.zeros((64, 48)), np.full((64, 48), 40.0), np.full((64, 48), -40.0),
                     np.full((64, 48), 1e-6)]).astype(np.float32)
    maps = np.concatenate([neg, flat])
    coords, scores = decode_mspn(maps[None])
    ref_c, ref_s = authors_get_results(maps)
    np.testing.assert_array_equal(coords[0], ref_c)
    np.testing.assert_array_equal(scores[0], ref_s)
    # all-negative and all-zero maps: the zero padding holds the maximum, the released decoder returns cell (0, 0)
    for j in (0, 1, 2, 3, 4, 6):
        assert coords[0, j].tolist() == [2.0, 2.0]
        assert scores[0, j] == maps[j, 0, 0] / np.float32(255) + np.float32(0.5)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(4, 20), st.integers(4, 20), st.floats(-50, 50), st.integers(0, 2**31 - 1))
def test_decode_mspn_equals_the_authors_decoder_on_random_maps(k, h, w, offset, seed):
    maps = (np.random.default_rng(seed).normal(size=(2, k, h, w)) * 40 + offset).astype(np.float32)
    coords, scores = decode_mspn(maps)
    for i in range(2):
        ref_c, ref_s = authors_get_results(maps[i])
        np.testing.assert_array_equal(coords[i], ref_c)
        np.testing.assert_array_equal(scores[i], ref_s)


@settings(max_examples=100)
@given(st.floats(0, 191.99), st.floats(0, 255.99))
def test_decode_mspn_recovers_encoded_target(x, y):
    """An encoded target (one-hot cell, blurred) decodes to within one input px of its cell centre 4*cell + 2
    plus the clip at the map edge, i.e. within 3 px of (x, y) everywhere, borders included."""
    hm, _ = encode_mspn(np.array([[x, y]]), np.ones(1), HM, INP, 5)
    coords, scores = decode_mspn(hm[None], kernel=5)
    cell = np.floor(np.array([x, y]) / 4)
    assert np.abs(coords[0, 0] - (cell * 4 + 2)).max() <= 1.0 + 1e-9
    assert np.abs(coords[0, 0] - [x, y]).max() <= 3.0 + 1e-9
    # the score is the unblurred value at the rounded decoded cell: the peak 255 away from the border; on the
    # outer ring the target's own reflect-101 blur (as released) puts its maximum on the edge cell
    at = np.rint((coords[0, 0] - 2) / 4).astype(int)
    assert scores[0, 0] == hm[0, at[1], at[0]] / np.float32(255) + np.float32(0.5)
    if 2 <= cell[0] <= 48 - 3 and 2 <= cell[1] <= 64 - 3:
        assert scores[0, 0] == pytest.approx(255 / 255 + 0.5)


@settings(max_examples=200)
@given(st.floats(2.0, 45.0), st.floats(2.0, 61.0))
def test_decode_mspn_subpixel_gaussian_within_half_cell(x0, y0):
    hm = gaussian_map(x0, y0, sigma=1.5, peak=255.0)[None, None]
    coords, _ = decode_mspn(hm)
    cell = (coords[0, 0] - 2) / 4  # back to heatmap px
    assert np.abs(cell - [x0, y0]).max() <= 0.5 + 1e-5


def test_decode_mspn_steps_toward_second_peak_and_scores_unblurred():
    hm = np.zeros((1, 2, 20, 20), np.float32)
    hm[0, 0, 10, 10] = 255.0
    hm[0, 0, 11, 11] = 200.0  # diagonal second peak: unit vector (1, 1) / sqrt(2)
    hm[0, 1, 4, 7] = 100.0
    hm[0, 1, 4, 6] = 90.0  # second peak on the left
    coords, scores = decode_mspn(hm, kernel=1)  # kernel 1: blur is the identity
    d = 0.25 / np.sqrt(2)
    np.testing.assert_allclose(coords[0, 0], [(10 + d) * 4 + 2, (10 + d) * 4 + 2], atol=1e-5)
    np.testing.assert_allclose(coords[0, 1], [6.75 * 4 + 2, 4 * 4 + 2], atol=1e-5)
    np.testing.assert_allclose(scores[0], [255 / 255 + 0.5, 100 / 255 + 0.5], rtol=1e-6)
    # score reads the UNBLURRED map at the blurred argmax
    _, s5 = decode_mspn(hm, kernel=5)
    assert s5[0, 0] == pytest.approx(1.5)


@settings(max_examples=30)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_decode_mspn_batch_equals_single(n, k, seed):
    hm = np.random.default_rng(seed).random((n, k, 16, 12)).astype(np.float32) * 255
    coords, scores = decode_mspn(hm)
    for i in range(n):
        for j in range(k):
            c1, s1 = decode_mspn(hm[i:i + 1, j:j + 1])
            np.testing.assert_array_equal(c1[0, 0], coords[i, j])
            assert s1[0, 0] == scores[i, j]


def test_codec_errors_are_value_errors():
    with pytest.raises(CodecError, match="keypoints"):
        encode_gaussian(np.zeros((3, 3)), np.ones(3), HM, INP)
    with pytest.raises(CodecError, match="visible"):
        encode_mspn(np.zeros((3, 2)), np.ones(2), HM, INP, 5)
    with pytest.raises(CodecError, match="heatmaps"):
        decode_hrnet(np.zeros((3, 4, 5)))
    with pytest.raises(CodecError, match="4"):
        mspn_targets(np.zeros((1, 2)), np.ones(1), INP, True, heatmap_sizes=[(1, 1)])
