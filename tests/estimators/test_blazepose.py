"""BlazePose landmark estimator: ROI geometry (properties), heatmap refinement, its registered spec, and the real
model on COCO."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from association.keypoints import COCO17
from estimators.blazepose import landmarks as lm
from estimators.blazepose import rois as R
from estimators.blazepose import weights as W

COCO_SWAP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
finite = dict(allow_nan=False, allow_infinity=False)


# ---------------------------------------------------------------------------------------------- geometry
@settings(max_examples=60, deadline=None)
@given(cx=st.floats(-500, 1500, **finite), cy=st.floats(-500, 1500, **finite), side=st.floats(4, 2000, **finite),
       rot=st.floats(-math.pi, math.pi, **finite), u=st.floats(0, 255, **finite), v=st.floats(0, 255, **finite))
def test_crop_matrix_matches_projection(cx, cy, side, rot, u, v):
    """The warp used to crop (pixel indices) and the map used to project landmarks back agree everywhere."""
    rois = R.Rois([[cx, cy]], [side], [rot])
    m = R.crop_matrices(rois, 256)[0]
    via_matrix = m @ np.array([u, v, 1.0])
    via_projection = R.crop_to_image(np.array([[[u, v]]]), rois, 256)[0, 0]
    np.testing.assert_allclose(via_matrix, via_projection, atol=1e-3 * max(1.0, side / 100))


@settings(max_examples=60, deadline=None)
@given(x0=st.floats(0, 1000, **finite), y0=st.floats(0, 1000, **finite), dist=st.floats(1, 500, **finite),
       angle=st.floats(-math.pi, math.pi, **finite))
def test_alignment_roi_rule(x0, y0, dist, angle):
    """Centre = p0, side = 2|p1-p0| 1.25, and the crop's up direction (-y axis) points from p0 to p1."""
    p1 = [x0 + dist * math.cos(angle), y0 + dist * math.sin(angle)]
    r = R.rois_from_alignment_points(np.array([[x0, y0]]), np.array([p1]))
    np.testing.assert_allclose(r.centers[0], [x0, y0], atol=1e-3)
    assert r.sizes[0] == pytest.approx(2 * dist * R.ROI_SCALE, rel=1e-4)
    assert -math.pi <= r.rotations[0] < math.pi
    # the point straight above the crop centre (crop y = 0.5 - 1/(2*1.25)) lands on p1
    top = R.crop_to_image(np.array([[[128.0, 128.0 - 256 / (2 * R.ROI_SCALE)]]]), r, 256)[0, 0]
    np.testing.assert_allclose(top, p1, atol=1e-2 * max(1.0, dist / 50))


def test_upright_person_gets_zero_rotation_and_boxes_contain_corners():
    r = R.rois_from_alignment_points(np.array([[100.0, 200.0]]), np.array([[100.0, 120.0]]))
    assert r.rotations[0] == pytest.approx(0.0, abs=1e-6)
    box = R.rois_from_boxes(np.array([[10.0, 20.0, 50.0, 100.0]]))
    np.testing.assert_allclose(box.centers[0], [30, 60])
    assert box.sizes[0] == pytest.approx(100.0)
    tilted = R.Rois([[0.0, 0.0]], [10.0], [math.pi / 4])
    np.testing.assert_allclose(tilted.boxes()[0], [-5 * math.sqrt(2), -5 * math.sqrt(2), 5 * math.sqrt(2),
                                                   5 * math.sqrt(2)], atol=1e-4)


def test_crop_puts_image_content_where_the_projection_says():
    img = np.zeros((300, 400, 3), np.uint8)
    cv2.circle(img, (250, 120), 3, (255, 255, 255), -1)
    rois = R.Rois([[200.0, 150.0]], [160.0], [0.3])
    crop = R.crop_rois(img, rois, 256)[0, :, :, 0].astype(float)
    ys, xs = np.nonzero(crop > 128)
    back = R.crop_to_image(np.array([[[xs.mean(), ys.mean()]]]), rois, 256)[0, 0]
    np.testing.assert_allclose(back, [250, 120], atol=1.0)


def test_heatmap_refinement():
    hm = np.full((1, 64, 64, 3), -20.0, np.float32)
    hm[0, 30, 40, 0] = 5.0  # confident peak for landmark 0 at (col 40, row 30)
    hm[0, 10, 10, 1] = -1.0  # landmark 1: window max sigmoid(-1) < 0.5 -> unchanged
    xy = np.array([[[41.7 / 64, 31.2 / 64], [10.5 / 64, 10.5 / 64], [1.2, 0.5]]], np.float32)  # 2: outside
    out = lm.refine_from_heatmap(xy, hm)
    np.testing.assert_allclose(out[0, 0], [40 / 64, 30 / 64], atol=1e-4)  # index / 64, no +0.5
    np.testing.assert_allclose(out[0, 1:], xy[0, 1:])
    # two equal peaks in the window -> their mean
    hm[0, 30, 42, 0] = 5.0
    np.testing.assert_allclose(lm.refine_from_heatmap(xy, hm)[0, 0], [41 / 64, 30 / 64], atol=1e-3)


def test_coco_mapping_is_the_documented_one():
    names = [lm.BLAZEPOSE33_NAMES[i] for i in lm.COCO_FROM_BLAZEPOSE]
    assert names == list(COCO17.names)
    assert names == ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                     "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                     "right_knee", "left_ankle", "right_ankle"]


def test_non_cpu_device_is_refused():
    with pytest.raises(ValueError, match="CPU only"):
        lm.create_blazepose_estimator(device="cuda")


def test_registered_spec_and_factory(tmp_path):
    from estimators.factory import create_estimator
    from estimators.registry import get_spec, list_models

    spec = get_spec("blazepose")
    assert spec is lm.SPEC and "blazepose" in list_models() and "blazepose" not in list_models("topdown")
    assert spec.kind != "topdown" and spec.family is None and spec.embedded_weights
    assert spec.layout is COCO17 and spec.input_size == (256, 256)
    raw = np.array([[0.2, 0.9]], np.float32)
    np.testing.assert_array_equal(spec.calibrate(raw), raw)  # visibility probabilities are used as they are
    missing = tmp_path / "nope.tflite"
    with pytest.raises(FileNotFoundError, match="nope.tflite"):  # the checkpoint reaches the builder
        create_estimator("blazepose", checkpoint=str(missing))


def test_importing_the_package_needs_no_torch():
    code = ("import sys, estimators.blazepose, tracker.detectors; "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_roi_points_choose_the_roi_per_box():
    boxes = np.array([[10, 20, 50, 100], [200, 200, 260, 300], [0, 0, 40, 40]], np.float32)
    pts = np.array([[[30, 60], [30, 20]], [[np.nan, 0], [0, 0]], [[20, 20], [20, 20]]], np.float32)
    r = R.rois_for_boxes(boxes, R.check_roi_points(pts, 3))
    box_rois = R.rois_from_boxes(boxes)
    np.testing.assert_allclose(r.centers[0], [30, 60])
    assert r.sizes[0] == pytest.approx(2 * 40 * R.ROI_SCALE) and r.rotations[0] == pytest.approx(0.0, abs=1e-6)
    for k in (1, 2):  # a NaN row and a degenerate one (zero radius) use the box
        np.testing.assert_allclose(r.centers[k], box_rois.centers[k])
        assert r.sizes[k] == box_rois.sizes[k] and r.rotations[k] == 0
    with pytest.raises(ValueError, match=r"roi_points: expected shape \(2, 2, 2\)"):
        R.check_roi_points(pts, 2)
    pts[0, 1, 0] = np.inf
    with pytest.raises(ValueError, match=r"roi_points\[0\]: infinite"):
        R.check_roi_points(pts, 3)


# ---------------------------------------------------------------------------------------------- real model
@pytest.fixture(scope="module")
def estimator():
    try:
        W.blazepose_paths()
    except W.WeightsError as exc:
        pytest.skip(f"BlazePose weights not in the cache ({exc}); run `posetrack weights fetch`")
    return lm.create_blazepose_estimator(device="cpu", num_threads=2, max_batch=4)


@pytest.fixture(scope="module")
def coco(testdata):
    d = json.loads((testdata / "coco" / "test_coco.json").read_text())
    people = {}
    for a in d["annotations"]:
        if a["num_keypoints"] >= 10:
            x, y, w, h = a["bbox"]
            people.setdefault(a["image_id"], []).append(
                (np.array([x, y, x + w, y + h], np.float32), np.array(a["keypoints"], np.float32).reshape(17, 3)))
    images = {i: cv2.imread(str(testdata / "coco" / f"{i:012d}.jpg")) for i in people}
    return images, people


def test_landmarks_land_on_annotated_joints(estimator, coco):
    images, people = coco
    (box, kps), = people[785]  # one large person, all 17 joints annotated
    res = estimator.estimate_full(images[785], box[None], np.array([0.9], np.float32))
    p = res.poses
    assert p.keypoints.shape == (1, 17, 2) and p.keypoints.dtype == np.float32
    assert p.keypoint_scores.shape == (1, 17) and p.pose_scores.shape == (1,)
    err = np.hypot(*(p.keypoints[0] - kps[:, :2]).T)
    # person ~347 px tall: median joint error < 15 px, every joint < 40 px (measured 7.5 / 23.4)
    assert np.median(err) < 15 and err.max() < 40, err.round(1)
    assert p.pose_scores[0] == pytest.approx(0.9 * p.keypoint_scores[0].mean(), rel=1e-5)
    assert res.pose_flag[0] > 0.5
    assert res.landmarks33.shape == (1, 33, 3) and res.visibility33.shape == (1, 33)
    np.testing.assert_allclose(res.landmarks33[0, lm.COCO_FROM_BLAZEPOSE, :2], p.keypoints[0])
    mid_hip = kps[[11, 12], :2].mean(0)
    assert p.roi_points.shape == (1, 2, 2)
    assert np.hypot(*(p.roi_points[0, 0] - mid_hip)) < 25  # alignment point 33 = body centre
    assert set(p.extras) == {"landmarks33", "visibility33", "presence33", "pose_flag"}
    assert all(len(v) == 1 for v in p.extras.values())  # per-person rows, as PoseRecord.extras wants
    nxt = R.rois_from_alignment_points(p.roi_points[:, 0], p.roi_points[:, 1])
    assert nxt.sizes[0] > 200 and abs(nxt.rotations[0]) < 0.5  # an upright person, ROI around the body
    assert estimator.spec is lm.SPEC and estimator.layout is COCO17 and estimator.num_keypoints == 17


def test_left_right_not_swapped(estimator, coco):
    images, people = coco
    for img_id in (785, 197388):
        boxes = np.stack([b for b, _ in people[img_id]])
        p = estimator.estimate(images[img_id], boxes, np.ones(len(boxes), np.float32))
        for k, (_, kps) in enumerate(people[img_id]):
            vis = kps[:, 2] > 0
            err = np.hypot(*(p.keypoints[k] - kps[:, :2]).T)[vis]
            err_swapped = np.hypot(*(p.keypoints[k][COCO_SWAP] - kps[:, :2]).T)[vis]
            assert np.median(err) < np.median(err_swapped) / 2, (img_id, k)


def test_batch_equals_single_and_roi_points_override(estimator, coco):
    images, people = coco
    ids = [785, 197388]
    boxes = [np.stack([b for b, _ in people[i]]) for i in ids]
    batch = estimator.estimate_full_batch([images[i] for i in ids], boxes)
    for i, b, r in zip(ids, boxes, batch):
        single = [estimator.estimate_full(images[i], b[k:k + 1]) for k in range(len(b))]
        np.testing.assert_allclose(r.landmarks33, np.concatenate([s.landmarks33 for s in single]), atol=1e-3)
    # the previous result's alignment points win over the box; a NaN row falls back to the box
    pts = batch[1].poses.roi_points.copy()
    nxt = R.rois_from_alignment_points(pts[:, 0], pts[:, 1])
    pts[0] = np.nan
    mixed = estimator.estimate_full(images[ids[1]], boxes[1], roi_points=pts)
    np.testing.assert_allclose(mixed.rois.centers[1:], nxt.centers[1:])
    np.testing.assert_allclose(mixed.rois.rotations[1:], nxt.rotations[1:], atol=1e-6)
    np.testing.assert_allclose(mixed.rois.centers[0], batch[1].rois.centers[0])
    via_batch = estimator.estimate_batch([images[ids[1]]], [boxes[1]], None, [pts])[0]
    np.testing.assert_allclose(via_batch.keypoints, mixed.poses.keypoints)
    empty = estimator.estimate_batch([images[785]], [np.zeros((0, 4))])[0]
    assert empty.keypoints.shape == (0, 17, 2) and empty.roi_points.shape == (0, 2, 2)
    with pytest.raises(ValueError, match="roi_points"):
        estimator.estimate(images[785], boxes[0], roi_points=pts)  # 5 rows for 1 box
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        estimator.estimate(images[785].astype(np.float32), boxes[0])


def test_refine_pass_recrops_from_the_alignment_points(estimator, coco):
    images, people = coco
    (box, kps), = people[785]
    first = estimator.estimate_full(images[785], box[None])
    refined = lm.create_blazepose_estimator(num_threads=2, refine_passes=1).estimate_full(images[785], box[None])
    expected = R.rois_from_alignment_points(first.poses.roi_points[:, 0], first.poses.roi_points[:, 1])
    np.testing.assert_allclose(refined.rois.centers, expected.centers, atol=1e-3)
    np.testing.assert_allclose(refined.rois.sizes, expected.sizes, rtol=1e-5)
    err = np.hypot(*(refined.poses.keypoints[0] - kps[:, :2]).T)
    assert np.median(err) < 15, err.round(1)
