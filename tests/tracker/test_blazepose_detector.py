"""The tiled multi-person BlazePose detector: anchors, weighted NMS, views, the real model on real images, and
the tracker's "blazepose" detector kind passing the rotated ROIs on to the BlazePose estimator."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou

from estimators.blazepose import detector as bd
from estimators.blazepose import landmarks, rois
from estimators.blazepose import weights as W
from tracker.detectors import Detections, create_detector

# The three players of the real clip per frame, xyxy image px, placed by eye (shared with the benchmark).
CLIP_PLAYERS = json.loads((Path(__file__).resolve().parents[1] / "data" / "clip_players.json").read_text())["players"]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return box_iou(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)).numpy()


# ---------------------------------------------------------------------------------------------- pure parts
def test_anchors_layout():
    a = bd.ssd_anchors()
    assert a.shape == (bd.NUM_ANCHORS, 2)
    assert bd.anchor_group_sizes() == (1568, 392, 294)
    np.testing.assert_allclose(a[0], a[1])  # two anchors per stride-8 cell
    np.testing.assert_allclose(a[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[2], [1.5 / 28, 0.5 / 28])  # x runs fastest
    np.testing.assert_allclose(a[1568], [0.5 / 14, 0.5 / 14])
    np.testing.assert_allclose(a[1960:1966], np.full((6, 2), 0.5 / 7))  # 3 merged stride-32 layers x 2
    assert a.min() > 0 and a.max() < 1


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 100), st.floats(1, 40), st.floats(0.01, 1)),
                min_size=1, max_size=30))
def test_weighted_nms_partitions_and_suppresses(rows):
    arr = np.array(rows, np.float64)
    boxes = np.stack([arr[:, 0], arr[:, 1], arr[:, 0] + arr[:, 2], arr[:, 1] + arr[:, 2]], 1)
    scores = arr[:, 3]
    clusters = bd.weighted_nms(boxes, scores, 0.3)
    flat = np.concatenate(clusters)
    assert sorted(flat.tolist()) == list(range(len(rows)))  # every detection in exactly one cluster
    heads = np.array([c[0] for c in clusters])
    assert all(scores[c[0]] == scores[c].max() for c in clusters)
    assert np.all(np.diff(scores[heads]) <= 0)  # best first
    iou = _iou(boxes, boxes)
    for c in clusters:
        assert np.all(iou[c[0], c[1:]] > 0.3)
    # a later head never overlaps an earlier head by more than the threshold
    for i in range(len(heads)):
        for j in range(i + 1, len(heads)):
            assert iou[heads[i], heads[j]] <= 0.3


@settings(max_examples=60, deadline=None)
@given(w=st.integers(64, 2000), h=st.integers(64, 2000), s=st.floats(0.3, 1.0), ov=st.floats(0.0, 0.6))
def test_views_cover_the_frame(w, h, s, ov):
    v = bd.view_squares(w, h, (s,), ov, full_frame=True)
    assert v.sizes[0] == max(w, h) and tuple(v.centers[0]) == (w / 2, h / 2)
    tiles = v[1:]
    if len(tiles):
        lo = tiles.centers - tiles.sizes[:, None] / 2
        hi = tiles.centers + tiles.sizes[:, None] / 2
        short = min(w, h)
        assert lo[:, 0].min() <= 1e-3 and lo[:, 1].min() <= 1e-3
        if s * short < w:
            assert hi[:, 0].max() >= w - 1e-3
        if s * short < h:
            assert hi[:, 1].max() >= h - 1e-3
        assert np.all(tiles.rotations == 0)


# ---------------------------------------------------------------------------------------------- real model
@pytest.fixture(scope="module")
def detector():
    try:
        W.blazepose_paths()
    except W.WeightsError as exc:
        pytest.skip(f"BlazePose weights not in the cache ({exc}); run `posetrack weights fetch`")
    return bd.BlazePoseDetector(num_threads=2)


@pytest.fixture(scope="module")
def clip(testdata):
    folder = testdata / "posetrack18" / "videos" / "000001_mpiinew_test"
    return [cv2.imread(str(folder / f"{i:06d}.jpg")) for i in range(len(CLIP_PLAYERS))]


def test_keypoints_on_a_real_coco_person(detector, testdata):
    ann = json.loads((testdata / "coco" / "test_coco.json").read_text())["annotations"]
    kps = np.array(next(a for a in ann if a["image_id"] == 785)["keypoints"], np.float32).reshape(17, 3)
    img = cv2.imread(str(testdata / "coco" / "000000000785.jpg"))
    for det in (detector, bd.BlazePoseDetector(tiles=False)):  # tiled, and MediaPipe's single pass
        people = det.detect_rois(img)
        assert len(people) >= 1
        kp = people.keypoints[0]
        # kp0 = mid-hip, kp2 = mid-shoulder (measured 16 px / 10 px on this ~350 px tall person)
        assert np.hypot(*(kp[0] - kps[[11, 12], :2].mean(0))) < 30
        assert np.hypot(*(kp[2] - kps[[5, 6], :2].mean(0))) < 30
        roi = people.rois[0:1]
        assert abs(roi.rotations[0]) < 0.5 and 250 < roi.sizes[0] < 800
        np.testing.assert_allclose(roi.centers[0], kp[0])


def test_batched_views_equal_single_view_runs(detector, clip):
    """The detector's batched output is group-major; the un-batching must give the batch-1 numbers."""
    img = clip[0]
    views = detector.views(img.shape[1], img.shape[0])
    assert len(views) > 1
    scores, kps, v_idx = detector.raw_detections(img)
    single = bd.BlazePoseDetector(tiles=False, score_threshold=detector.score_threshold)
    for j in range(len(views)):
        sub = bd.crop_rois(img, views[j:j + 1], bd.DETECTOR_INPUT_SIZE, cv2.BORDER_CONSTANT)[0]
        # a view cut out as its own square image is exactly the full-frame pass of that image
        s1, k1, _ = single.raw_detections(sub)
        k1 = (k1 / bd.DETECTOR_INPUT_SIZE - 0.5) * views.sizes[j] + views.centers[j]
        mine = v_idx == j
        keep = detector._not_truncated(k1, views, np.full(len(s1), j), img.shape[1], img.shape[0])
        np.testing.assert_allclose(np.sort(scores[mine]), np.sort(s1[keep]), atol=1e-4)


def test_recall_on_the_real_clip(detector, clip):
    """At least 2 of the 3 players get their own detection in every frame (one-to-one, IoU >= 0.1)."""
    found = []
    for img, players in zip(clip, CLIP_PLAYERS):
        people = detector.detect_rois(img)
        assert people.boxes.dtype == np.float32 and people.boxes.shape == (len(people), 4)
        assert np.all(people.boxes[:, 2:] > people.boxes[:, :2])
        m = _iou(np.array(players, np.float64), people.boxes.astype(np.float64))
        r, c = linear_sum_assignment(-m)
        found.append(int((m[r, c] >= 0.1).sum()))
    assert min(found) >= 2, found
    single = bd.BlazePoseDetector(tiles=False, score_threshold=0.5)
    assert all(len(single.detect_rois(img)) == 1 for img in clip[:2])  # the model alone: one person


def test_detect_frames_interface(clip):
    person_detector = create_detector("blazepose", score_threshold=0.4, tile_scales=None)
    frames = [SimpleNamespace(index=i, timestamp=i / 25, image=img, name=f"{i:06d}.jpg")
              for i, img in enumerate(clip[:2])]
    dets = person_detector.detect(frames)
    assert len(dets) == 2
    for d in dets:
        assert isinstance(d, Detections)
        assert d.boxes.dtype == np.float32 and d.boxes.shape[1] == 4 and d.scores.shape == (len(d.boxes),)
        assert np.all(np.diff(d.scores) <= 0) and np.all((d.scores >= 0.4) & (d.scores <= 1))
        assert d.roi_points.shape == (len(d), 2, 2) and np.isfinite(d.roi_points).all()
    with pytest.raises(ValueError, match="uint8"):
        person_detector.detect([SimpleNamespace(index=0, image=clip[0].astype(np.float32))])
    blank = np.zeros((240, 320, 3), np.uint8)
    assert len(person_detector.model.detect_rois(blank)) == 0
    assert create_detector("blazepose", tile_scales=[0.5]).model.scales == (0.5,)
    with pytest.raises(ValueError, match="tile scales must be > 0"):
        create_detector("blazepose", tile_scales=[0.0])


@pytest.fixture(scope="module")
def estimator():
    try:
        W.blazepose_paths()
    except W.WeightsError as exc:
        pytest.skip(f"BlazePose weights not in the cache ({exc}); run `posetrack weights fetch`")
    return landmarks.create_blazepose_estimator(num_threads=2)


def test_detection_frames_are_cropped_with_the_detectors_rotated_rois(detector, estimator, clip):
    """MediaPipe crops the landmark ROI from the detector's alignment keypoints: the detector kind hands them on
    (Detections.roi_points) and the estimator crops exactly the detector's rotated ROIs, not upright boxes."""
    img = clip[3]
    people = detector.detect_rois(img)
    (det,) = create_detector("blazepose", score_threshold=detector.score_threshold).detect(
        [SimpleNamespace(index=3, image=img)])
    assert len(det) == len(people) >= 2
    assert np.isfinite(det.roi_points).all()
    from_points = rois.rois_from_alignment_points(det.roi_points[:, 0], det.roi_points[:, 1])
    np.testing.assert_allclose(from_points.centers, people.rois.centers, atol=1e-3)
    np.testing.assert_allclose(from_points.sizes, people.rois.sizes, rtol=1e-5)
    np.testing.assert_allclose(from_points.rotations, people.rois.rotations, atol=1e-5)
    assert np.abs(people.rois.rotations).max() > 1e-3  # rotated ROIs, so an upright crop would differ

    result = estimator.estimate_full(img, det.boxes, det.scores, det.roi_points)
    np.testing.assert_allclose(result.rois.centers, people.rois.centers, atol=1e-3)
    np.testing.assert_allclose(result.rois.sizes, people.rois.sizes, rtol=1e-5)
    np.testing.assert_allclose(result.rois.rotations, people.rois.rotations, atol=1e-5)
    expected = rois.crop_rois(img, people.rois, landmarks.LANDMARK_INPUT_SIZE, cv2.BORDER_REPLICATE)
    np.testing.assert_array_equal(estimator.crops([img], [result.rois]), expected)
    upright = rois.rois_from_boxes(det.boxes)
    assert not np.array_equal(estimator.crops([img], [upright]), expected)
    # the landmarks are those of the rotated crops, and the poses carry the next frame's alignment points
    (lms, _, _, _), = estimator.landmarks_on_rois([img], [people.rois])
    np.testing.assert_allclose(result.poses.keypoints, lms[:, landmarks.COCO_FROM_BLAZEPOSE, :2], atol=1e-3)
    assert result.poses.roi_points.shape == (len(det), 2, 2)
