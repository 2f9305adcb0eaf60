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

from flow import create_flow
from tracker.detectors import Detections
from tracker.pipeline import PoseTracker
from tracker.record import ORIGIN_PROPAGATED
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
    """Returns the true pose of the scene person whose box overlaps the given box most (score 0.9)."""

    num_keypoints = 17

    def __init__(self, scene: Scene):
        self.scene = scene
        self.frame = 0

    def estimate(self, image, boxes, box_scores):
        from torchvision.ops import box_iou
        import torch

        from estimators.inference import Poses

        gt = self.scene.boxes[self.frame]
        iou = box_iou(torch.from_numpy(np.asarray(boxes, np.float32)), torch.from_numpy(gt)).numpy()
        who = iou.argmax(axis=1)
        kp = self.scene.keypoints[self.frame][who]
        sc = np.where(iou.max(axis=1, keepdims=True) > 0.3, 0.9, 0.05) * np.ones((len(boxes), 17))
        return Poses(kp.astype(np.float32), sc.astype(np.float32), np.asarray(box_scores, np.float32) * 0.9)


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
    tracker = PoseTracker(est, det, create_flow("dis", preset="medium"), det_interval=1)
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
    tracker = PoseTracker(est, det, create_flow("dis", preset="medium"), det_interval=4)
    records = _run(scene, tracker, est)
    assert det.calls == 3  # frames 0, 4, 8 of 12
    ids = _ids_per_person(scene, records)
    assert (ids >= 0).all() and all(len(set(ids[:, p])) == 1 for p in range(3)), ids


def test_two_trackers_do_not_share_ids():
    scene = make_scene(num_frames=3)
    est = OracleEstimator(scene)
    a = PoseTracker(est, DroppingDetector(scene), create_flow("dis"))
    b = PoseTracker(est, DroppingDetector(scene), create_flow("dis"))
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
    tracker = PoseTracker(est, Nobody(), create_flow("dis"))
    rec = tracker.step(Frame(0, 0.0, scene.frames[0], None))
    assert len(rec) == 0 and rec.keypoints.shape == (0, 17, 2)
    with pytest.raises(ValueError, match="det_interval"):
        PoseTracker(est, Nobody(), None, det_interval=0)

    class FifteenJoints(OracleEstimator):
        num_keypoints = 15

    with pytest.raises(ValueError, match="17 COCO keypoints; this one gives 15"):
        PoseTracker(FifteenJoints(scene), Nobody(), None)


def test_without_flow_the_detector_runs_every_frame():
    scene = make_scene(num_frames=6)
    det = DroppingDetector(scene)
    est = OracleEstimator(scene)
    tracker = PoseTracker(est, det, None, det_interval=3)
    records = _run(scene, tracker, est)
    assert det.calls == 6 and all(len(r) == 3 for r in records)
    before = set(records[-1].track_ids.tolist())
    tracker.reset()
    est.frame = 0
    after = set(tracker.step(Frame(0, 0.0, scene.frames[0], None)).track_ids.tolist())
    assert not before & after  # ids are never reused by one tracker, also across reset()


def test_track_source_writes_valid_outputs_from_a_real_video(tmp_path):
    """Real MP4 encode + decode through open_source, outputs in every format, resolved config saved."""
    from eval_posetrack.formats import read_sequence
    from tracker.config import load_track_config
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
    tracker = PoseTracker(est, SyncDetector(scene), create_flow("dis"), det_interval=1)
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
    from tracker.config import load_track_config
    from tracker.track_cli import track_source

    scene = make_scene(num_frames=10)
    folder = tmp_path / "000002_mpiinew_test"
    folder.mkdir()
    for t, img in enumerate(scene.frames):
        cv2.imwrite(str(folder / f"{t:06d}.jpg"), img)

    class InterruptingEstimator(OracleEstimator):
        def estimate(self, image, boxes, box_scores):
            if self.frame == 6:
                raise KeyboardInterrupt
            return super().estimate(image, boxes, box_scores)

    est = InterruptingEstimator(scene)

    class SyncDetector(DroppingDetector):
        def detect(self, frames):
            est.frame = frames[0].index
            return super().detect(frames)

    cfg = load_track_config(None, ["output.flush_every=100"])
    tracker = PoseTracker(est, SyncDetector(scene), create_flow("dis"))
    with pytest.raises(KeyboardInterrupt):
        track_source(cfg, str(folder), tmp_path / "out", progress=False, tracker=tracker)
    data = json.loads((tmp_path / "out" / "000002_mpiinew_test.json").read_text())
    assert len(data["images"]) == 6
    assert [im["file_name"] for im in data["images"]][:2] == [
        "images/000002_mpiinew_test/000000.jpg", "images/000002_mpiinew_test/000001.jpg"]
