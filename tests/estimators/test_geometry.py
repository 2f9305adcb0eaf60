"""Crop geometry: box -> (center, scale), the affine (vs. the released three-point construction), crops."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from estimators.geometry import (
    PIXEL_STD,
    GeometryError,
    box_to_center_scale,
    box_to_center_scale_mspn,
    crop,
    crop_batch,
    crop_to_image,
    get_affine_transform,
    get_affine_transforms,
    transform_points,
)

coord = st.floats(-500, 1500, allow_nan=False)
size = st.floats(2, 800, allow_nan=False)
boxes_st = st.lists(st.tuples(coord, coord, size, size), min_size=1, max_size=6).map(
    lambda rows: np.array([[x, y, x + w, y + h] for x, y, w, h in rows])
)
aspect_st = st.sampled_from([192 / 256, 288 / 384, 1.0, 4 / 3])


def three_point_affine(center, scale, rot_deg, output_size, shift=(0.0, 0.0), inv=False):
    """Independent oracle: the released construction (three point pairs -> cv2.getAffineTransform)."""
    center = np.asarray(center, np.float64)
    scale_px = np.asarray(scale, np.float64) * PIXEL_STD
    src_w = scale_px[0]
    dst_w, dst_h = output_size
    r = math.radians(rot_deg)

    def rotate(p):
        return np.array([p[0] * math.cos(r) - p[1] * math.sin(r), p[0] * math.sin(r) + p[1] * math.cos(r)])

    def third(a, b):
        d = a - b
        return b + np.array([-d[1], d[0]])

    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center + scale_px * np.asarray(shift)
    src[1] = src[0] + rotate(np.array([0.0, -0.5 * src_w]))
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + np.array([0.0, -0.5 * dst_w])
    src[2] = third(src[0], src[1])
    dst[2] = third(dst[0], dst[1])
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


@given(boxes_st, aspect_st)
def test_hrnet_center_scale_aspect_and_padding(boxes, aspect):
    centers, scales = box_to_center_scale(boxes, aspect)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    np.testing.assert_allclose(centers, (boxes[:, :2] + boxes[:, 2:]) / 2, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(scales[:, 0] / scales[:, 1], aspect, rtol=1e-9)
    # the region is the aspect-fixed box x1.25: it contains the padded box and one side matches exactly
    assert np.all(scales[:, 0] * PIXEL_STD >= 1.25 * w * (1 - 1e-9))
    assert np.all(scales[:, 1] * PIXEL_STD >= 1.25 * h * (1 - 1e-9))
    tight = np.isclose(scales[:, 0] * PIXEL_STD, 1.25 * w) | np.isclose(scales[:, 1] * PIXEL_STD, 1.25 * h)
    assert tight.all()


@given(boxes_st, aspect_st)
def test_mspn_center_scale_enlargement_then_aspect(boxes, aspect):
    centers, scales = box_to_center_scale_mspn(boxes, aspect)
    w = (boxes[:, 2] - boxes[:, 0]) * 1.09
    h = (boxes[:, 3] - boxes[:, 1]) * 1.135
    np.testing.assert_allclose(scales[:, 0] / scales[:, 1], aspect, rtol=1e-9)
    assert np.all(scales[:, 0] * PIXEL_STD >= w * (1 - 1e-9))
    assert np.all(scales[:, 1] * PIXEL_STD >= h * (1 - 1e-9))
    tight = np.isclose(scales[:, 0] * PIXEL_STD, w) | np.isclose(scales[:, 1] * PIXEL_STD, h)
    assert tight.all()
    np.testing.assert_allclose(centers, box_to_center_scale(boxes, aspect)[0])


@settings(max_examples=200)
@given(
    cx=coord, cy=coord, sw=st.floats(0.05, 5), rot=st.floats(-180, 180),
    out=st.sampled_from([(192, 256), (48, 64), (288, 384), (64, 64)]),
    shift=st.tuples(st.floats(-0.3, 0.3), st.floats(-0.3, 0.3)), inv=st.booleans(),
)
def test_affine_matches_released_three_point_construction(cx, cy, sw, rot, out, shift, inv):
    scale = np.array([sw, sw * out[1] / out[0]])
    ours = get_affine_transform((cx, cy), scale, rot, out, shift=shift, inv=inv)
    ref = three_point_affine((cx, cy), scale, rot, out, shift=shift, inv=inv)
    assert ours.shape == (2, 3) and ours.dtype == np.float64
    # the oracle goes through float32 points: compare in pixels over the crop's extent
    pts = np.array([[0, 0], [out[0], 0], [0, out[1]], [out[0], out[1]]], float)
    if not inv:
        pts = transform_points(pts, get_affine_transform((cx, cy), scale, rot, out, shift=shift, inv=True))
    tol = 2e-3 * max(1.0, sw * PIXEL_STD / out[0]) * (1 + abs(cx) + abs(cy)) / 100
    np.testing.assert_allclose(transform_points(pts, ours), transform_points(pts, ref), atol=max(tol, 2e-3))


@settings(max_examples=100)
@given(boxes_st, st.floats(-90, 90), aspect_st)
def test_batch_equals_single_and_center_maps_to_crop_center(boxes, rot, aspect):
    out = (48, int(round(48 / aspect)))
    c, s = box_to_center_scale(boxes, aspect)
    batch = get_affine_transforms(c, s, rot, out)
    for i in range(len(boxes)):
        np.testing.assert_allclose(batch[i], get_affine_transform(c[i], s[i], rot, out), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(transform_points(c[:, None], batch)[:, 0],
                               np.tile([out[0] / 2, out[1] / 2], (len(c), 1)),
                               atol=1e-6)


@settings(max_examples=200)
@given(boxes_st, st.floats(-180, 180), st.lists(st.tuples(coord, coord), min_size=1, max_size=17))
def test_crop_then_uncrop_points_is_identity(boxes, rot, pts):
    c, s = box_to_center_scale(boxes, 0.75)
    fwd = get_affine_transforms(c, s, rot, (192, 256))
    inv = get_affine_transforms(c, s, rot, (192, 256), inv=True)
    p = np.broadcast_to(np.array(pts, float)[None], (len(boxes), len(pts), 2))
    back = transform_points(transform_points(p, fwd), inv)
    assert np.abs(back - p).max() < 1e-3
    # crop_to_image is the rot=0 inverse
    fwd0 = get_affine_transforms(c, s, 0.0, (48, 64))
    np.testing.assert_allclose(crop_to_image(transform_points(p, fwd0), c, s, (48, 64)), p, atol=1e-3)


def test_heatmap_and_input_inverse_affines_differ_by_stride_only():
    c, s = box_to_center_scale(np.array([[100.0, 50.0, 220.0, 330.0]]), 0.75)
    hm = np.array([[[10.0, 20.0], [0.0, 0.0]]])
    np.testing.assert_allclose(crop_to_image(hm, c, s, (48, 64)), crop_to_image(hm * 4, c, s, (192, 256)), atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    px=st.integers(20, 139), py=st.integers(20, 99), rot=st.sampled_from([0.0, 30.0, 90.0, -45.0, 180.0]),
    zoom=st.floats(0.5, 2.0),
)
def test_crop_puts_image_content_where_transform_points_says(px, py, rot, zoom):
    """A bright blob at image (px, py) appears in the warped crop at M @ (px, py) (rotation included)."""
    image = np.zeros((120, 160, 3), np.uint8)
    cv2.circle(image, (px, py), 3, (255, 255, 255), -1)
    center = np.array([80.0, 60.0])
    out = (96, 96)
    scale = np.array([out[0] / zoom, out[1] / zoom]) / PIXEL_STD
    m = get_affine_transform(center, scale, rot, out)
    patch = crop(image, m, out).astype(np.float64)[..., 0]
    assert patch.shape == (96, 96)
    expected = transform_points(np.array([px, py], float), m)
    if not (5 < expected[0] < 90 and 5 < expected[1] < 90):
        return  # the blob left the crop
    ys, xs = np.mgrid[0:96, 0:96]
    centroid = np.array([(patch * xs).sum(), (patch * ys).sum()]) / patch.sum()
    assert np.abs(centroid - expected).max() < 0.6


def test_rotation_direction_is_counter_clockwise_on_screen():
    m = get_affine_transform((100.0, 100.0), (1.0, 1.0), 90.0, (200, 200))
    right_of_center = transform_points(np.array([150.0, 100.0]), m)
    np.testing.assert_allclose(right_of_center, [100.0, 50.0], atol=1e-9)  # lands above the crop center


def test_crop_border_is_zero_and_batch_matches():
    image = np.full((50, 60, 3), 200, np.uint8)
    c, s = box_to_center_scale(np.array([[-40.0, -40.0, 20.0, 20.0], [10.0, 10.0, 50.0, 40.0]]), 0.75)
    ms = get_affine_transforms(c, s, 0.0, (48, 64))
    crops = crop_batch(image, ms, (48, 64))
    assert crops.shape == (2, 64, 48, 3) and crops.dtype == np.uint8
    assert crops[0, 0, 0].tolist() == [0, 0, 0]  # outside the image: constant 0 border
    np.testing.assert_array_equal(crops[1], crop(image, ms[1], (48, 64)))


def test_bad_inputs_raise_value_errors():
    with pytest.raises(GeometryError, match="boxes"):
        box_to_center_scale(np.zeros((3, 5)), 0.75)
    with pytest.raises(GeometryError, match="width"):
        get_affine_transforms(np.zeros((1, 2)), np.zeros((1, 2)), 0.0, (48, 64))
    with pytest.raises(GeometryError, match="points"):
        transform_points(np.zeros((4, 3)), np.eye(2, 3))
    assert issubclass(GeometryError, ValueError)
