"""Crop geometry: box -> (center, scale), the affine (vs. the released three-point construction), crops."""
from __future__ import annotations

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
    released_affine_points,
    transform_points,
)

coord = st.floats(-500, 1500, allow_nan=False)
size = st.floats(2, 800, allow_nan=False)
boxes_st = st.lists(st.tuples(coord, coord, size, size), min_size=1, max_size=6).map(
    lambda rows: np.array([[x, y, x + w, y + h] for x, y, w, h in rows])
)
aspect_st = st.sampled_from([192 / 256, 288 / 384, 1.0, 4 / 3])


# ---------------------------------------------------------------- the authors' arithmetic, restated step by step
# HRNet lib/utils/transforms.py get_affine_transform / get_dir / get_3rd_point (MSPN/RSN lib/utils/transforms.py is
# the same construction without shift and inv), HRNet lib/dataset/coco.py _xywh2cs, MSPN/RSN dataset/COCO/coco.py
# _bbox_to_center_and_scale + the test-time enlargement of dataset/JointsDataset.py. NumPy 1.x, which the authors
# ran, evaluates ``float32_scalar * python_float`` in float64; the explicit casts below keep that under NumPy 2.
_NO_SHIFT = np.array([0, 0], dtype=np.float32)


def authors_affine(center, scale, rot, output_size, shift=_NO_SHIFT, inv=0):
    scale_tmp = scale * 200.0
    src_w = scale_tmp[0]
    dst_w = output_size[0]
    dst_h = output_size[1]
    rot_rad = np.pi * rot / 180
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    src_point = [0, np.float64(src_w) * -0.5]
    src_dir = [src_point[0] * cs - src_point[1] * sn, src_point[0] * sn + src_point[1] * cs]
    dst_dir = np.array([0, dst_w * -0.5], np.float32)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center + scale_tmp * shift
    src[1, :] = center + src_dir + scale_tmp * shift
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir

    def get_3rd_point(a, b):
        direct = a - b
        return b + np.array([-direct[1], direct[0]], dtype=np.float32)

    src[2:, :] = get_3rd_point(src[0, :], src[1, :])
    dst[2:, :] = get_3rd_point(dst[0, :], dst[1, :])
    if inv:
        return cv2.getAffineTransform(np.float32(dst), np.float32(src))
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def authors_xywh2cs(x, y, w, h, aspect_ratio, pixel_std=200):
    """HRNet: centre/scale of an [x, y, w, h] box (python / float64 numbers)."""
    center = np.zeros((2), dtype=np.float32)
    center[0] = x + w * 0.5
    center[1] = y + h * 0.5
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * 1.0 / pixel_std, h * 1.0 / pixel_std], dtype=np.float32)
    scale = scale * 1.25
    return center, scale


def authors_mspn_test_cs(x, y, w, h, w_h_ratio, pixel_std=200, x_ext=0.01 * 9.0, y_ext=0.015 * 9.0):
    """MSPN/RSN: centre/scale of an [x, y, w, h] detection at test time."""
    center = np.zeros(2, dtype=np.float32)
    center[0] = x + w / 2.0
    center[1] = y + h / 2.0
    scale = np.array([w * 1.0 / pixel_std, h * 1.0 / pixel_std], dtype=np.float32)
    scale[0] = np.float64(scale[0]) * (1 + x_ext)
    scale[1] = np.float64(scale[1]) * (1 + y_ext)
    if np.float64(scale[0]) > w_h_ratio * np.float64(scale[1]):
        scale[1] = np.float64(scale[0]) * 1.0 / w_h_ratio
    else:
        scale[0] = np.float64(scale[1]) * 1.0 * w_h_ratio
    return center, scale


def hrnet_clean_bbox(bbox, width, height):
    """HRNet _load_coco_keypoint_annotation_kernal: the GT box clipped to the image, [x1, y1, w, h] or None."""
    x, y, w, h = bbox
    x1 = np.max((0, x))
    y1 = np.max((0, y))
    x2 = np.min((width - 1, x1 + np.max((0, w - 1))))
    y2 = np.min((height - 1, y1 + np.max((0, h - 1))))
    return [x1, y1, x2 - x1, y2 - y1] if x2 >= x1 and y2 >= y1 else None


@given(boxes_st, aspect_st)
def test_hrnet_center_scale_aspect_and_padding(boxes, aspect):
    centers, scales = box_to_center_scale(boxes, aspect)
    assert centers.dtype == scales.dtype == np.float32  # the authors' dtypes
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    np.testing.assert_allclose(centers, (boxes[:, :2] + boxes[:, 2:]) / 2, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(scales[:, 0] / scales[:, 1], aspect, rtol=1e-6)
    # the region is the aspect-fixed box x1.25: it contains the padded box and one side matches (float32)
    assert np.all(scales[:, 0] * PIXEL_STD >= 1.25 * w * (1 - 1e-6))
    assert np.all(scales[:, 1] * PIXEL_STD >= 1.25 * h * (1 - 1e-6))
    tight = np.isclose(scales[:, 0] * PIXEL_STD, 1.25 * w, rtol=1e-6) | \
        np.isclose(scales[:, 1] * PIXEL_STD, 1.25 * h, rtol=1e-6)
    assert tight.all()


@given(boxes_st, aspect_st)
def test_mspn_center_scale_enlargement_then_aspect(boxes, aspect):
    centers, scales = box_to_center_scale_mspn(boxes, aspect)
    assert centers.dtype == scales.dtype == np.float32
    w = (boxes[:, 2] - boxes[:, 0]) * 1.09
    h = (boxes[:, 3] - boxes[:, 1]) * 1.135
    np.testing.assert_allclose(scales[:, 0] / scales[:, 1], aspect, rtol=1e-6)
    assert np.all(scales[:, 0] * PIXEL_STD >= w * (1 - 1e-6))
    assert np.all(scales[:, 1] * PIXEL_STD >= h * (1 - 1e-6))
    tight = np.isclose(scales[:, 0] * PIXEL_STD, w, rtol=1e-6) | np.isclose(scales[:, 1] * PIXEL_STD, h, rtol=1e-6)
    assert tight.all()
    np.testing.assert_array_equal(centers, box_to_center_scale(boxes, aspect)[0])


xywh_st = st.tuples(st.floats(-100, 1500), st.floats(-100, 1000), st.floats(0.5, 800), st.floats(0.5, 800),
                    st.sampled_from([None, 2]))


@settings(max_examples=150)
@given(xywh_st, aspect_st)
def test_box_to_center_scale_round_trip_in_the_authors_precision(row, aspect):
    """[x, y, w, h] (as the authors read it; COCO files carry 2 decimals) -> our xyxy float64 box (x + w, as the
    detection reader stores it) -> centre/scale: bit-identical to the authors' float32 centre and scale."""
    *xywh, decimals = row
    x, y, w, h = (round(v, decimals) for v in xywh) if decimals else xywh
    box = np.array([[x, y, x + w, y + h]])
    c, s = box_to_center_scale(box, aspect)
    ac, as_ = authors_xywh2cs(x, y, w, h, aspect)
    np.testing.assert_array_equal(c[0], ac)
    np.testing.assert_array_equal(s[0], as_)
    c, s = box_to_center_scale_mspn(box, aspect)
    ac, as_ = authors_mspn_test_cs(x, y, w, h, aspect)
    np.testing.assert_array_equal(c[0], ac)
    np.testing.assert_array_equal(s[0], as_)
    # float32 rounding is all that separates them from the float64 values (one float32 step at most)
    np.testing.assert_allclose(c[0], [x + w / 2, y + h / 2], rtol=2 ** -23, atol=1e-30)


@settings(max_examples=150)
@given(
    cx=coord, cy=coord, sw=st.floats(0.05, 5), rot=st.floats(-180, 180),
    out=st.sampled_from([(192, 256), (48, 64), (288, 384), (64, 64)]),
    shift=st.tuples(st.floats(-0.3, 0.3), st.floats(-0.3, 0.3)), inv=st.booleans(),
)
def test_affine_is_the_released_float32_three_point_construction_to_the_last_bit(cx, cy, sw, rot, out, shift, inv):
    scale = np.array([sw, sw * out[1] / out[0]])
    ours = get_affine_transform((cx, cy), scale, rot, out, shift=shift, inv=inv)
    ref = authors_affine(np.array([cx, cy], np.float32), scale.astype(np.float32), rot, out,
                         shift=np.array(shift, np.float32), inv=int(inv))
    assert ours.shape == (2, 3) and ours.dtype == np.float64
    np.testing.assert_array_equal(ours, ref)
    # the three points are those the authors pass to cv2.getAffineTransform
    src, dst = released_affine_points((cx, cy), scale, rot, out, shift)
    assert src.dtype == dst.dtype == np.float32
    np.testing.assert_array_equal(cv2.getAffineTransform(src, dst) if not inv else cv2.getAffineTransform(dst, src),
                                  ours)
    # the float64 closed form (released=False) is the same similarity up to the float32 rounding of the points
    closed = get_affine_transform((cx, cy), scale, rot, out, shift=shift, inv=inv, released=False)
    pts = np.array([[0, 0], [out[0], 0], [0, out[1]], [out[0], out[1]]], float)
    if not inv:
        pts = transform_points(pts, get_affine_transform((cx, cy), scale, rot, out, shift=shift, inv=True))
    tol = 2e-3 * max(1.0, sw * PIXEL_STD / out[0]) * (1 + abs(cx) + abs(cy)) / 100
    np.testing.assert_allclose(transform_points(pts, closed), transform_points(pts, ours), atol=max(tol, 2e-3))


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


@settings(max_examples=100)
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


def test_crops_equal_the_authors_crops_on_real_coco_images(testdata):
    """The 4 shared COCO images: every GT box (HRNet's clipped ``clean_bbox``, through ``load_coco_gt``) and every
    person detection (through ``load_coco_detections``) cropped at 256x192 by the project (the family's box
    helper, the released affine, ``crop_batch``) equals, pixel for pixel, the authors' crop: their centre/scale
    from ``[x, y, w, h]``, their ``get_affine_transform`` and ``cv2.warpAffine(..., flags=cv2.INTER_LINEAR)``."""
    import json

    from estimators.training.datasets import load_coco_detections, load_coco_gt, read_image

    ann = testdata / "coco" / "test_coco.json"
    raw = json.loads(ann.read_text())
    sizes = {im["id"]: (im["width"], im["height"]) for im in raw["images"]}
    by_id = {a["id"]: a for a in raw["annotations"]}
    gt = load_coco_gt(ann, testdata / "coco")
    dets = load_coco_detections(testdata / "coco" / "test_coco_det_AP_H_56.json", ann, testdata / "coco")
    size = (192, 256)
    aspect = size[0] / size[1]
    cases = []  # (sample, authors' [x, y, w, h])
    for smp in gt:
        clean = hrnet_clean_bbox(by_id[smp.extras["annotation_id"]]["bbox"], *sizes[smp.image_id])
        cases.append((smp, clean))
    det_raw = [d for d in json.loads((testdata / "coco" / "test_coco_det_AP_H_56.json").read_text())
               if d["category_id"] == 1]
    assert len(dets) == len(det_raw)
    det_raw.sort(key=lambda d: d["image_id"])  # the loader's order (stable sort by image id)
    cases += [(smp, d["bbox"]) for smp, d in zip(dets, det_raw)]
    images = {}
    n_crops = 0
    for smp, xywh in cases:
        if smp.image_path not in images:
            images[smp.image_path] = read_image(smp.image_path)
        image = images[smp.image_path]
        for to_cs, authors_cs in ((box_to_center_scale, authors_xywh2cs), (box_to_center_scale_mspn,
                                                                             authors_mspn_test_cs)):
            c, s = to_cs(smp.box[None], aspect)
            ac, as_ = authors_cs(*xywh, aspect)
            np.testing.assert_array_equal(c[0], ac)
            np.testing.assert_array_equal(s[0], as_)
            ours = crop_batch(image, get_affine_transforms(c, s, 0.0, size), size)[0]
            theirs = cv2.warpAffine(image, authors_affine(ac, as_, 0, np.array(size)), size, flags=cv2.INTER_LINEAR)
            np.testing.assert_array_equal(ours, theirs)
            n_crops += 1
    assert n_crops == 2 * (12 + len(det_raw))
