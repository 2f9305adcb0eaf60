"""The per-frame pipeline on a synthetic textured video with known people.

Real parts: OpenCV DIS flow on real rendered frames, real MP4 encode/decode through the source, real NMS,
the real association. The collaborators standing in are the detector (ground-truth boxes, with frames
dropped on purpose) and the estimator (returns the true pose of the person its box covers): the thing under
test is the pipeline's propagation, merging and association, not those two.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from association.keypoints import COCO17
from estimators import Poses
from flow import create_flow
from tracker.build import build_associator, build_tracker
from tracker.config import load_track_config
from tracker.detectors.base import Detections
from tracker.pipeline import PoseTracker, Propagation
from tracker.record import ORIGIN_DETECTED, ORIGIN_PROPAGATED
from tracker.sources import Frame, open_source

H, W = 240, 320
# A person-like template: 17 COCO keypoints inside a 40x100 px box (x right, y down), relative to its top-left.
TEMPLATE = np.array([
    [20, 8], [17, 6], [23, 6], [14, 8], [26, 8], [10, 25], [30, 25], [6, 45], [34, 45], [4, 62], [36, 62],
    [13, 60], [27, 60], [12, 80], [28, 80], [11, 97], [29, 97]], np.float32)
BOX_WH = np.array([40, 100], np.float32)


@dataclass
class Scene:
    frames: list[np.ndarray]
    keypoints: np.ndarray  # (T, P, 17, 2) image px
    boxes: np.ndarray      # (T, P, 4) xyxy image px


def make_scene(num_frames: int = 12, seed: int = 0) -> Scene:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (H // 4, W // 4, 3), dtype=np.uint8)
    background = cv2.GaussianBlur(cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC), (3, 3), 0)
    starts = np.array([[30, 60], [150, 40], [250, 80]], np.float32)
    velocity = np.array([[4, 1], [-2, 2], [-3, -1]], np.float32)
    textures = [cv2.resize(rng.integers(0, 255, (10, 4, 3), dtype=np.uint8), (40, 100),
                           interpolation=cv2.INTER_NEAREST) for _ in range(3)]
    frames, kps, boxes = [], [], []
    for t in range(num_frames):
        img = background.copy()
        kp_t, box_t = [], []
        for p in range(3):
            x, y = starts[p] + velocity[p] * t
            xi, yi = int(round(x)), int(round(y))
            img[yi:yi + 100, xi:xi + 40] = textures[p]
            kp_t.append(TEMPLATE + [xi, yi])
            box_t.append([xi, yi, xi + 40, yi + 100])
        frames.append(img)
        kps.append(kp_t)
        boxes.append(box_t)
    return Scene(frames, np.array(kps, np.float32), np.array(boxes, np.float32))


class DroppingDetector:
    """Ground-truth boxes of the scene, but person ``drop_person`` is missed on ``drop_frames``."""

    def __init__(self, scene: Scene, drop_frames=(), drop_person=0):
        self.scene, self.drop_frames, self.drop_person = scene, set(drop_frames), drop_person
        self.calls = 0

    def detect(self, frames):
        out = []
        for f in frames:
            self.calls += 1
            boxes = self.scene.boxes[f.index]
            keep = np.ones(len(boxes), bool)
            if f.index in self.drop_frames:
                keep[self.drop_person] = False
            out.append(Detections(boxes[keep], np.full(int(keep.sum()), 0.95, np.float32)))
        return out


class OracleEstimator:
    """Returns the true pose of the scene person whose box overlaps the given box most (score 0.9), and
    records the roi_points it was given."""

    layout = COCO17
    num_keypoints = 17

    def __init__(self, scene: Scene):
        self.scene = scene
        self.frame = 0
        self.roi_calls: list = []

    def estimate(self, image, boxes, box_scores, roi_points=None):
        import torch
        from torchvision.ops import box_iou

        self.roi_calls.append(roi_points)
        gt = self.scene.boxes[self.frame]
        iou = box_iou(torch.from_numpy(np.asarray(boxes, np.float32)), torch.from_numpy(gt)).numpy()
        who = iou.argmax(axis=1)
        kp = self.scene.keypoints[self.frame][who]
        sc = np.where(iou.max(axis=1, keepdims=True) > 0.3, 0.9, 0.05) * np.ones((len(boxes), 17))
        return Poses(kp.astype(np.float32), sc.astype(np.float32), np.asarray(box_scores, np.float32) * 0.9)


def make_tracker(estimator, detector, flow, *overrides: str) -> PoseTracker:
    """A PoseTracker with the config's defaults (the one place they live) plus ``overrides``."""
    return build_tracker(load_track_config(None, list(overrides)), estimator=estimator, detector=detector, flow=flow)


def _run(scene, tracker, estimator):
    records = []
    for t, img in enumerate(scene.frames):
        estimator.frame = t
        records.append(tracker.step(Frame(index=t, timestamp=t / 25, image=img, name=f"{t:06d}.jpg")))
    return records


def _ids_per_person(scene, records):
    """For each frame, the track id given to each true person (-2 = not found)."""
    out = np.full((len(records), scene.boxes.shape[1]), -2, np.int64)
    for t, rec in enumerate(records):
        for i in range(len(rec)):
            d = np.abs(rec.keypoints[i] - scene.keypoints[t][:, None]).mean(axis=(2, 3))
            p = int(d.argmin())
            if d[p] < 2.0:
                out[t, p] = rec.track_ids[i]
    return out


def test_propagation_fills_missed_detections_and_ids_are_perfect():
    scene = make_scene()
    det = DroppingDetector(scene, drop_frames=range(3, 8), drop_person=1)
    est = OracleEstimator(scene)
    tracker = make_tracker(est, det, create_flow("dis", preset="medium"), "propagation.det_interval=1")
    records = _run(scene, tracker, est)
    ids = _ids_per_person(scene, records)
    assert (ids >= 0).all(), f"a person was lost:\n{ids}"
    # one id per person for the whole clip, all different
    assert all(len(set(ids[:, p])) == 1 for p in range(3)), ids
    assert len(set(ids[0])) == 3
    # while the detector misses person 1, its box comes from the flow
    for t in range(3, 8):
        rec = records[t]
        i = int(np.flatnonzero(rec.track_ids == ids[t, 1])[0])
        assert rec.origin[i] == ORIGIN_PROPAGATED


def test_detection_interval_runs_detector_every_kth_frame_and_keeps_ids():
    scene = make_scene()
    det = DroppingDetector(scene)
    est = OracleEstimator(scene)
    tracker = make_tracker(est, det, create_flow("dis", preset="medium"), "propagation.det_interval=4")
    records = _run(scene, tracker, est)
    assert det.calls == 3  # frames 0, 4, 8 of 12
    ids = _ids_per_person(scene, records)
    assert (ids >= 0).all() and all(len(set(ids[:, p])) == 1 for p in range(3)), ids


def test_two_trackers_do_not_share_ids():
    scene = make_scene(num_frames=3)
    est = OracleEstimator(scene)
    a = make_tracker(est, DroppingDetector(scene), create_flow("dis"))
    b = make_tracker(est, DroppingDetector(scene), create_flow("dis"))
    est.frame = 0
    ra = a.step(Frame(0, 0.0, scene.frames[0], None))
    rb = b.step(Frame(0, 0.0, scene.frames[0], None))
    assert sorted(ra.track_ids.tolist()) == sorted(rb.track_ids.tolist()) == [0, 1, 2]


def test_empty_frames_and_reset():
    scene = make_scene(num_frames=2)

    class Nobody:
        def detect(self, frames):
            return [Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32)) for _ in frames]

    est = OracleEstimator(scene)
    tracker = make_tracker(est, Nobody(), create_flow("dis"))
    rec = tracker.step(Frame(0, 0.0, scene.frames[0], None))
    assert len(rec) == 0 and rec.keypoints.shape == (0, 17, 2)
    with pytest.raises(ValueError, match="det_interval"):
        Propagation(det_interval=0, nms_iou=0.5, box_enlarge=0.15, keypoint_threshold=0.3, min_score=0.3,
                    pose_nms_oks=0.7, duplicate_oks=0.5, max_frames=25)


def test_without_flow_the_detector_runs_every_frame():
    scene = make_scene(num_frames=6)
    det = DroppingDetector(scene)
    est = OracleEstimator(scene)
    tracker = make_tracker(est, det, None, "flow.kind=none", "propagation.det_interval=3")
    records = _run(scene, tracker, est)
    assert det.calls == 6 and all(len(r) == 3 for r in records)
    before = set(records[-1].track_ids.tolist())
    tracker.reset()
    est.frame = 0
    after = set(tracker.step(Frame(0, 0.0, scene.frames[0], None)).track_ids.tolist())
    assert not before & after  # ids are never reused by one tracker, also across reset()


def test_track_source_writes_valid_outputs_from_a_real_video(tmp_path):
    """Real MP4 encode + decode through open_source, outputs in every format, resolved config saved."""
    from eval_posetrack import read_sequence
    from tracker.track_cli import track_source

    scene = make_scene(num_frames=8)
    video = tmp_path / "000001_mpiinew_test.mp4"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (W, H))
    for img in scene.frames:
        vw.write(img)
    vw.release()

    est = OracleEstimator(scene)

    class SyncDetector(DroppingDetector):
        def detect(self, frames):
            est.frame = frames[0].index  # keep the oracle on the frame being processed
            return super().detect(frames)

    cfg = load_track_config(None, ["output.formats=[posetrack18,posetrack17,coco]", "output.render=true",
                                   "output.flush_every=3"])
    tracker = build_tracker(cfg, estimator=est, detector=SyncDetector(scene), flow=create_flow("dis"))
    summary = track_source(cfg, str(video), tmp_path / "out", progress=False, tracker=tracker)
    assert summary["frames"] == 8 and summary["tracks"] == 3
    out = tmp_path / "out"
    data = json.loads((out / "000001_mpiinew_test.json").read_text())
    assert len(data["images"]) == 8 and len(data["annotations"]) == 24
    assert {a["track_id"] for a in data["annotations"]} == {0, 1, 2}
    seq18 = read_sequence(out / "000001_mpiinew_test.json")
    seq17 = read_sequence(out / "000001_mpiinew_test_posetrack17.json")
    assert len(seq18.frames) == len(seq17.frames) == 8
    coco = json.loads((out / "000001_mpiinew_test_coco.json").read_text())
    assert len(coco) == 24 and len(coco[0]["keypoints"]) == 51
    assert (out / "000001_mpiinew_test.config.yaml").is_file()
    with open_source(str(out / "000001_mpiinew_test.mp4")) as src:
        assert sum(1 for _ in src) == 8


def test_interrupted_run_leaves_valid_json(tmp_path):
    """Ctrl-C in the middle of a run: the JSON written so far is valid and holds every finished frame."""
    from tracker.track_cli import track_source

    scene = make_scene(num_frames=10)
    folder = tmp_path / "000002_mpiinew_test"
    folder.mkdir()
    for t, img in enumerate(scene.frames):
        cv2.imwrite(str(folder / f"{t:06d}.jpg"), img)

    class InterruptingEstimator(OracleEstimator):
        def estimate(self, image, boxes, box_scores, roi_points=None):
            if self.frame == 6:
                raise KeyboardInterrupt
            return super().estimate(image, boxes, box_scores, roi_points)

    est = InterruptingEstimator(scene)

    class SyncDetector(DroppingDetector):
        def detect(self, frames):
            est.frame = frames[0].index
            return super().detect(frames)

    cfg = load_track_config(None, ["output.flush_every=100"])
    tracker = build_tracker(cfg, estimator=est, detector=SyncDetector(scene), flow=create_flow("dis"))
    with pytest.raises(KeyboardInterrupt):
        track_source(cfg, str(folder), tmp_path / "out", progress=False, tracker=tracker)
    data = json.loads((tmp_path / "out" / "000002_mpiinew_test.json").read_text())
    assert len(data["images"]) == 6
    assert [im["file_name"] for im in data["images"]][:2] == [
        "images/000002_mpiinew_test/000000.jpg", "images/000002_mpiinew_test/000001.jpg"]


class RoiEstimator(OracleEstimator):
    """The oracle, plus per pose the alignment points a BlazePose-like estimator returns: the true person's
    box centre and top centre (image px)."""

    def estimate(self, image, boxes, box_scores, roi_points=None):
        poses = super().estimate(image, boxes, box_scores, roi_points)
        kp = poses.keypoints
        lo, hi = kp.min(axis=1), kp.max(axis=1)
        centre = (lo + hi) / 2
        top = np.stack([centre[:, 0], lo[:, 1]], axis=1)
        return Poses(kp, poses.keypoint_scores, poses.pose_scores, roi_points=np.stack([centre, top], axis=1))


def test_roi_points_flow_from_detector_and_from_warped_previous_poses():
    """Typed ROI hints: the detector's roi_points reach the estimator for detected boxes; on frames without
    detection the previous poses' roi_points, moved by the flow, reach it for the propagated boxes."""
    scene = make_scene(num_frames=3)
    est = RoiEstimator(scene)

    class RoiDetector(DroppingDetector):
        def detect(self, frames):
            dets = super().detect(frames)
            b = dets[0].boxes
            roi = np.stack([(b[:, :2] + b[:, 2:]) / 2, b[:, :2]], axis=1)  # any distinct points will do
            return [Detections(b, dets[0].scores, roi)]

    tracker = make_tracker(est, RoiDetector(scene), create_flow("dis", preset="medium"),
                           "propagation.det_interval=3")
    records = _run(scene, tracker, est)
    first = est.roi_calls[0]
    b = scene.boxes[0]
    np.testing.assert_allclose(np.sort(first[:, 0, 0]), np.sort((b[:, 0] + b[:, 2]) / 2))  # the detector's
    assert records[0].roi_points is not None and records[0].roi_points.shape == (3, 2, 2)
    for t in (1, 2):  # no detection: every box propagated, every hint = last frame's roi_points + motion
        assert (records[t].origin == ORIGIN_PROPAGATED).all() and len(records[t]) == 3
        given = est.roi_calls[t]
        assert given is not None and np.isfinite(given).all()
        expected = records[t - 1].roi_points + (scene.keypoints[t] - scene.keypoints[t - 1]).mean(axis=1)[
            _people_order(scene, records[t - 1], t - 1)][:, None]
        np.testing.assert_allclose(np.sort(given[:, 0, 0]), np.sort(expected[:, 0, 0]), atol=1.0)
        np.testing.assert_allclose(np.sort(given[:, 1, 1]), np.sort(expected[:, 1, 1]), atol=1.0)


def _people_order(scene, record, t):
    """Index of the true person of each row of ``record`` (frame t)."""
    d = np.abs(record.keypoints[:, None] - scene.keypoints[t][None]).mean(axis=(2, 3))
    return d.argmin(axis=1)


def test_detections_without_roi_points_give_no_hints():
    scene = make_scene(num_frames=1)
    est = OracleEstimator(scene)
    records = _run(scene, make_tracker(est, DroppingDetector(scene), None, "flow.kind=none"), est)
    assert est.roi_calls == [None] and records[0].roi_points is None
    assert (records[0].origin == ORIGIN_DETECTED).all()


def test_previous_poses_are_warped_once_per_frame():
    """One warp of the stored tracks per frame feeds both propagation and association."""
    from association import PoseAssociator

    class CountingAssociator(PoseAssociator):
        warps = 0

        def _apply_warp(self, warp, points):
            CountingAssociator.warps += 1
            return super()._apply_warp(warp, points)

    scene = make_scene(num_frames=6)
    est = OracleEstimator(scene)
    assoc = CountingAssociator(min_similarity=0.3, max_lost_frames=5, keypoint_score_threshold=0.2,
                               method="greedy", sigmas=COCO17.sigmas)
    prop = Propagation(det_interval=2, nms_iou=0.5, box_enlarge=0.15, keypoint_threshold=0.3, min_score=0.3,
                       pose_nms_oks=0.7, duplicate_oks=0.5, max_frames=25)
    tracker = PoseTracker(est, DroppingDetector(scene), create_flow("dis", preset="medium"), assoc, prop)
    records = _run(scene, tracker, est)
    assert CountingAssociator.warps == len(scene.frames) - 1  # every frame after the first, exactly once
    ids = _ids_per_person(scene, records)
    assert (ids >= 0).all() and all(len(set(ids[:, p])) == 1 for p in range(3)), ids


def test_any_keypoint_layout_tracks_with_its_own_sigmas():
    """No hard 17-keypoint rule: OKS association and pose NMS use the estimator's layout sigmas."""
    from association.keypoints import KeypointLayout

    five = KeypointLayout("five", ("head", "left_hand", "right_hand", "left_foot", "right_foot"),
                          ((1, 2), (3, 4)), (0.026, 0.062, 0.062, 0.089, 0.089), ((0, 1), (0, 2), (0, 3), (0, 4)))
    scene = make_scene(num_frames=4)

    class FivePoints(OracleEstimator):
        layout = five
        num_keypoints = 5

        def estimate(self, image, boxes, box_scores, roi_points=None):
            p = super().estimate(image, boxes, box_scores, roi_points)
            idx = [0, 9, 10, 15, 16]
            return Poses(p.keypoints[:, idx], p.keypoint_scores[:, idx], p.pose_scores)

    est = FivePoints(scene)
    tracker = make_tracker(est, DroppingDetector(scene, drop_frames=[2]), create_flow("dis", preset="medium"))
    assert tracker.associator.sigmas == five.sigmas
    records = _run(scene, tracker, est)
    assert all(r.keypoints.shape == (3, 5, 2) for r in records)
    assert all(sorted(r.track_ids.tolist()) == [0, 1, 2] for r in records)
    coco_associator = build_associator(load_track_config(None), COCO17.sigmas)
    with pytest.raises(ValueError, match="sigmas=estimator.layout.sigmas"):
        PoseTracker(est, DroppingDetector(scene), None, coco_associator, tracker.propagation)


# ------------------------------------------------------------------------------ life cycle and final records
def test_propagation_dies_after_max_frames_without_a_detection():
    """Person 0 is detected on frame 0 only: the flow carries it for max_frames frames, then it is gone."""
    scene = make_scene(num_frames=8)
    est = OracleEstimator(scene)
    tracker = make_tracker(est, DroppingDetector(scene, drop_frames=range(1, 8)), create_flow("dis", preset="medium"),
                           "propagation.max_frames=3")
    ids = _ids_per_person(scene, _run(scene, tracker, est))
    assert (ids[:4, 0] == ids[0, 0]).all() and ids[0, 0] >= 0, ids  # frames 1-3: propagated, same id
    assert (ids[4:, 0] == -2).all(), ids  # then dropped
    assert (ids[:, 1:] >= 0).all()  # the others, detected every frame, stay


def test_prune_drops_propagated_duplicates_of_detected_poses_and_boxes_follow_the_pose():
    from tracker.record import PoseRecord

    prop = Propagation(det_interval=1, nms_iou=0.5, box_enlarge=0.15, keypoint_threshold=0.3, min_score=0.3,
                       pose_nms_oks=None, duplicate_oks=0.5, max_frames=25)
    a = TEMPLATE + [50, 40]
    b = TEMPLATE + [200, 40]
    kps = np.stack([a, a + 3.0, b])  # detected a; propagated a shifted by 3 px (a duplicate); propagated b
    square = np.array([[0, 0, 140, 140], [0, 0, 150, 150], [170, 20, 270, 160]], np.float32)  # detector-like
    rec = PoseRecord(square, [0.9, 0.95, 0.9], kps, np.full((3, 17), 0.9), [0.5, 0.9, 0.8],
                     origin=[ORIGIN_DETECTED, ORIGIN_PROPAGATED, ORIGIN_PROPAGATED])
    out = prop.prune(rec, COCO17.sigmas, (W, H))
    assert out.origin.tolist() == [ORIGIN_DETECTED, ORIGIN_PROPAGATED]  # the detected one kept despite its score
    np.testing.assert_allclose(out.keypoints, kps[[0, 2]])
    for box, kp in zip(out.boxes, out.keypoints):  # the pose's extent enlarged by 15 %, not the square box
        w, h = kp.max(0) - kp.min(0)
        np.testing.assert_allclose(box[2:] - box[:2], [1.15 * w, 1.15 * h], rtol=1e-4)


def test_finaliser_writes_back_tentative_frames_drops_unconfirmed_tracks_and_fills_gaps():
    from tracker.record import ORIGIN_INTERPOLATED, PoseRecord, TrackFinaliser

    def rec(t, ids, confirmed, xs):
        kps = np.stack([TEMPLATE + [x, 10.0] for x in xs]) if xs else np.zeros((0, 17, 2))
        boxes = np.array([[x, 10, x + 40, 110] for x in xs], np.float32).reshape(-1, 4)
        return PoseRecord(boxes, np.full(len(xs), 0.9), kps, np.full((len(xs), 17), 0.8), track_ids=ids,
                          confirmed=confirmed, frame_index=t)

    fin = TrackFinaliser(delay=4, max_gap=3)
    out = []
    # track 7: tentative at frames 0-1, confirmed at 2, missing at 3-4, back at 5; track 9: seen once, never confirmed
    out += fin.push(0, rec(0, [7, 9], [False, False], [0.0, 200.0]), [False, False])
    out += fin.push(1, rec(1, [7], [False], [4.0]), [False])
    out += fin.push(2, rec(2, [7], [True], [8.0]), [True])
    assert out == []  # held back: delay 4
    out += fin.push(3, rec(3, [], [], []), np.zeros(0, bool))
    out += fin.push(4, rec(4, [], [], []), np.zeros(0, bool))
    out += fin.push(5, rec(5, [7], [True], [20.0]), [True])
    out += fin.push(6, rec(6, [7, 11], [True, False], [24.0, 300.0]), [True, False])
    out += fin.flush()
    assert [t for t, _ in out] == [0, 1, 2, 3, 4, 5, 6]
    records = [r for _, r in out]
    # 9 never written; 11, still tentative when the video ends, is (it had no chance to be confirmed)
    assert [r.track_ids.tolist() for r in records] == [[7], [7], [7], [7], [7], [7], [7, 11]]
    assert records[3].origin.tolist() == [ORIGIN_INTERPOLATED]
    np.testing.assert_allclose(records[3].keypoints[0], TEMPLATE + [8.0 + (20.0 - 8.0) / 3, 10.0], rtol=1e-6)
    np.testing.assert_allclose(records[4].boxes[0, 0], 8.0 + 2 * (20.0 - 8.0) / 3, rtol=1e-6)
    with pytest.raises(ValueError, match="delay"):
        TrackFinaliser(delay=2, max_gap=3)


def test_run_gives_final_records_tentative_frames_back_and_smoothed_display_keypoints():
    from tracker.record import TrackStats

    scene = make_scene(num_frames=8)
    est = OracleEstimator(scene)
    no_early = "association.confirm_score=null"  # the oracle's pose scores (0.855) would confirm at once
    live = make_tracker(est, DroppingDetector(scene), create_flow("dis", preset="medium"), no_early)
    first = live.step(Frame(0, 0.0, scene.frames[0], "000000.jpg"))
    assert len(first) == 3 and not first.confirmed.any()  # min_hits = 3: tentative on frame 0

    tracker = make_tracker(est, DroppingDetector(scene), create_flow("dis", preset="medium"), no_early)
    def frames():
        for t, img in enumerate(scene.frames):
            est.frame = t  # the oracle answers for the frame being tracked
            yield Frame(index=t, timestamp=t / 25, image=img, name=f"{t:06d}.jpg")

    stats = TrackStats()
    out = []
    for f, r in tracker.run(frames()):
        stats.add(r)
        out.append((f.index, r))
    assert [t for t, _ in out] == list(range(8))
    assert all(len(r) == 3 and r.confirmed.all() for _, r in out)  # frame 0's tentative poses written back
    shown = out[-1][1].for_display()
    assert "display_keypoints" in out[-1][1].extras and shown.keypoints.shape == (3, 17, 2)
    np.testing.assert_allclose(out[0][1].extras["display_keypoints"], out[0][1].keypoints)  # first sample as is
    s = stats.summary()
    assert s["poses_per_frame"] == 3.0 and s["distinct_ids"] == 3 and s["track_length_histogram"]["5-9"] == 3
    assert s["low_score_share"] == 0.0


def test_camera_cut_is_detected_from_the_frame_difference_and_resets_motion_only():
    scene = make_scene(num_frames=4)
    est = OracleEstimator(scene)
    tracker = make_tracker(est, DroppingDetector(scene), create_flow("dis", preset="medium"),
                           "association.confirm_score=null")
    ids = []
    for t in range(4):
        est.frame = t
        image = scene.frames[t] if t < 2 else 255 - scene.frames[t]  # frames 2-3: another "shot"
        ids.append(tracker.step(Frame(t, t / 25, image, f"{t:06d}.jpg")).track_ids.tolist())
    assert tracker.cuts == 1  # frame 3 differs from frame 2 by a few grey levels only
    assert ids[0] == ids[1] and len(ids[2]) == 3 and sorted(ids[3]) == sorted(ids[2])  # tracked in each shot


# ------------------------------------------------------------------------------ bounded, sane boxes per frame
class FixedDetector:
    """Gives the same boxes and scores on every frame."""

    def __init__(self, boxes, scores):
        self.boxes, self.scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)

    def detect(self, frames):
        return [Detections(self.boxes, self.scores) for _ in frames]


class RecordingEstimator(OracleEstimator):
    """The oracle, remembering the boxes it was asked to estimate."""

    def __init__(self, scene):
        super().__init__(scene)
        self.boxes: list[np.ndarray] = []

    def estimate(self, image, boxes, box_scores, roi_points=None):
        self.boxes.append(np.array(boxes))
        return super().estimate(image, boxes, box_scores, roi_points)


def test_boxes_are_clipped_to_the_image_and_degenerate_ones_dropped_with_a_warning():
    from tracker.pipeline import BoxWarning

    scene = make_scene(num_frames=2)
    person = scene.boxes[0, 0]
    straddling = [-20, -30, 60, 120]  # a person cut by the top-left corner: clipped, kept
    boxes = [person, straddling,
             [W + 10, 10, W + 60, 110],       # wholly right of the image
             [-80, -150, -10, -20],           # wholly above-left of it
             [100, 50, 100, 150],             # zero width
             [150, 60, 140, 160],             # negative width
             [0, 0, 1e9, 1e9]]                # absurd: clipped it would be the whole frame
    est = RecordingEstimator(scene)
    flow = create_flow("dis", preset="medium")
    tracker = make_tracker(est, FixedDetector(boxes, np.linspace(0.9, 0.99, len(boxes))), flow,
                           "propagation.pose_nms_oks=null")
    with pytest.warns(BoxWarning, match=r"frame 0: 5 person box\(es\) outside the 320x240 image"):
        tracker.step(Frame(0, 0.0, scene.frames[0], None))
    given = est.boxes[-1]
    assert len(given) == 2
    assert (given >= 0).all() and (given[:, [0, 2]] <= W).all() and (given[:, [1, 3]] <= H).all()
    np.testing.assert_allclose(sorted(given.tolist()), sorted([person.tolist(), [0, 0, 60, 120]]))

    # propagated boxes are clipped too: on frame 1 the detector gives nothing, person 0 is carried by the flow
    # and its box may not leave the image
    tracker.detector = FixedDetector(np.zeros((0, 4)), np.zeros(0))
    est.frame = 1
    rec = tracker.step(Frame(1, 0.04, scene.frames[1], None))
    assert len(rec) and len(est.boxes[-1])
    for b in est.boxes[-1]:
        assert b[0] >= 0 and b[1] >= 0 and b[2] <= W and b[3] <= H and b[2] - b[0] >= 1 and b[3] - b[1] >= 1


def test_persons_per_frame_are_capped_keeping_the_best_scoring_with_a_warning():
    from tracker.pipeline import BoxWarning

    scene = make_scene(num_frames=1)
    # 12 x 10 disjoint 20x20 boxes = 120 candidates that box NMS cannot merge
    xs, ys = np.meshgrid(np.arange(12) * 26.0, np.arange(10) * 24.0)
    boxes = np.stack([xs.ravel(), ys.ravel(), xs.ravel() + 20, ys.ravel() + 20], axis=1)
    scores = np.random.default_rng(0).permutation(120) / 200 + 0.3
    est = RecordingEstimator(scene)
    tracker = make_tracker(est, FixedDetector(boxes, scores), None, "flow.kind=none",
                           "propagation.max_persons=50")
    with pytest.warns(BoxWarning, match=r"frame 0: 120 person boxes, more than propagation.max_persons=50"):
        tracker.step(Frame(0, 0.0, scene.frames[0], None))
    given = est.boxes[-1]
    assert len(given) == 50
    best = boxes[np.argsort(-scores)[:50]]
    assert sorted(map(tuple, given.tolist())) == sorted(map(tuple, best.astype(np.float32).tolist()))
    assert make_tracker(est, FixedDetector(boxes, scores), None).propagation.max_persons == 100  # the default


def _tfjs_models_fetched() -> bool:
    from estimators.tfjs import fetch

    return all(s.status == "ok" for s in fetch.list_models())


def test_real_clip_one_pose_per_person_none_on_the_rock(sample_video):
    """The movenet preset (real CenterNet + MoveNet thunder, real DIS flow) on frames 0-4 of OpenCV's vtest.avi:
    three people walk on the road (A near [256, 221, 280, 310], B [500, 159, 529, 230], C [647, 243, 681, 322]);
    CenterNet also boxes a rock on the grass (about [162, 249, 192, 277], box score 0.36-0.41) and a sign post
    (score 0.33), whose MoveNet poses score 0.08-0.16 on average: they are dropped (min_detected_score), never
    carried by the flow nor confirmed; each person keeps one id."""
    if not _tfjs_models_fetched():
        pytest.skip("TF.js models not fetched (posetrack weights fetch)")
    tracker = build_tracker(load_track_config("movenet", []))
    people = np.array([[268, 265], [514, 195], [664, 282]], np.float32)  # box centres at frame 0, px
    with open_source(sample_video) as source:
        frames = [f for f, _ in zip(source, range(5))]
    out = list(tracker.run(frames))
    assert len(out) == 5
    ids_of = {p: set() for p in range(3)}
    for frame, rec in out:
        centres = (rec.boxes[:, :2] + rec.boxes[:, 2:]) / 2
        rock = (centres[:, 0] > 150) & (centres[:, 0] < 205) & (centres[:, 1] > 240) & (centres[:, 1] < 290)
        assert not rock.any(), (frame.index, rec.boxes)
        if frame.index < 4:  # the last frame may keep tentative tracks (the video ended before they could confirm)
            assert len(rec) == 3, (frame.index, rec.boxes)
        for p, c in enumerate(people):  # people move < 40 px in 5 frames at 10 frames/s
            near = np.linalg.norm(centres - c, axis=1) < 40
            assert near.sum() == 1, (frame.index, p, rec.boxes)
            ids_of[p].add(int(rec.track_ids[near][0]))
    assert all(len(v) == 1 for v in ids_of.values()) and len(set.union(*ids_of.values())) == 3, ids_of


class LowScoreOnceDetector(DroppingDetector):
    """Person 0 is detected on frame 0 only, with a box score under confirm_score; the others every frame."""

    def detect(self, frames):
        out = []
        for f in frames:
            boxes = self.scene.boxes[f.index]
            scores = np.full(len(boxes), 0.95, np.float32)
            scores[0] = 0.3
            keep = np.ones(len(boxes), bool)
            keep[0] = f.index == 0
            out.append(Detections(boxes[keep], scores[keep]))
        return out


@pytest.mark.parametrize("det_interval", [1, 2])
def test_tentative_tracks_are_not_carried_into_detector_frames(det_interval):
    """A tentative track (one detection under confirm_score) must be detected again to count a hit: into a frame
    where the detector runs it is not propagated (else junk would confirm itself by the flow). Between detector
    frames (det_interval 2) it is carried, and dies at the next detector frame."""
    scene = make_scene(num_frames=6)
    est = OracleEstimator(scene)
    tracker = make_tracker(est, LowScoreOnceDetector(scene), create_flow("dis", preset="medium"),
                           "association.min_hits=3", f"propagation.det_interval={det_interval}")
    live = _ids_per_person(scene, _run(scene, tracker, est))
    assert (live[:, 1:] >= 0).all()
    assert live[0, 0] >= 0 and (live[det_interval:, 0] == -2).all(), live
    if det_interval == 2:
        assert live[1, 0] == live[0, 0]  # carried into the frame without a detector run


def test_prune_drops_detected_poses_below_min_detected_score():
    from tracker.record import PoseRecord

    prop = Propagation(det_interval=1, nms_iou=0.5, box_enlarge=0.15, keypoint_threshold=0.3, min_score=0.3,
                       pose_nms_oks=None, duplicate_oks=0.5, max_frames=25, min_detected_score=0.2)
    kps = np.stack([TEMPLATE + [50, 40], TEMPLATE + [200, 40], TEMPLATE + [120, 130]])
    scores = np.stack([np.full(17, 0.6), np.full(17, 0.12), np.full(17, 0.25)])  # person, rock-like, weak person
    rec = PoseRecord(np.array([[40, 30, 100, 150], [190, 30, 250, 150], [110, 120, 170, 240]], np.float32),
                     [0.7, 0.4, 0.3], kps, scores, [0.4, 0.05, 0.07],
                     origin=[ORIGIN_DETECTED, ORIGIN_DETECTED, ORIGIN_PROPAGATED])
    out = prop.prune(rec, COCO17.sigmas, (W, H))
    np.testing.assert_allclose(out.keypoints, kps[[0]])  # the weak propagated one goes by min_score 0.3
    keep_all = Propagation(**{**prop.__dict__, "min_detected_score": 0.0, "min_score": 0.0})
    assert len(keep_all.prune(rec, COCO17.sigmas, (W, H))) == 3
