"""The "nanodet" and "movenet_multipose" detector kinds (converted TF.js graphs): config sections, factory,
real detections on the shared clip, and the multipose poses replacing the top-down pass in the pipeline."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from configs.loader import ConfigError
from tracker.config import MultiPoseDetectorConfig, NanoDetDetectorConfig, load_track_config
from tracker.detectors import DetectorError, WeightsNotFoundError, create_detector

SHARED = Path(os.environ.get("POSETRACK_SHARED", Path(__file__).resolve().parents[3] / "shared"))
CLIP = SHARED / "data" / "mmpose_testdata" / "posetrack18" / "videos" / "000001_mpiinew_test"
PLAYERS = json.loads((Path(__file__).resolve().parents[1] / "data" / "clip_players.json").read_text())["players"]


def _models_fetched() -> bool:
    from estimators.tfjs import fetch

    return all(s.status == "ok" for s in fetch.list_models())


needs_models = pytest.mark.skipif(not _models_fetched(), reason="TF.js models not fetched (posetrack weights fetch)")


def _frames(indices):
    if not CLIP.is_dir():
        pytest.skip(f"shared clip not found: {CLIP}")
    return [cv2.imread(str(CLIP / f"{i:06d}.jpg")) for i in indices]


def _players_matched(players, boxes) -> int:
    import torch
    from scipy.optimize import linear_sum_assignment
    from torchvision.ops import box_iou

    if not len(boxes):
        return 0
    iou = box_iou(torch.tensor(players, dtype=torch.float32), torch.from_numpy(np.asarray(boxes))).numpy()
    rows, cols = linear_sum_assignment(-iou)  # each player his own box
    return int((iou[rows, cols] >= 0.1).sum())


def test_config_sections():
    cfg = load_track_config(None, settings=[("detector.kind", "nanodet")], overrides=["detector.nms_iou=0.6"])
    assert isinstance(cfg.detector, NanoDetDetectorConfig) and cfg.detector.nms_iou == 0.6
    cfg = load_track_config(None, settings=[("detector.kind", "movenet_multipose")],
                            overrides=["detector.poses=replace", "detector.long_side=640"])
    assert isinstance(cfg.detector, MultiPoseDetectorConfig) and cfg.detector.poses == "replace"
    with pytest.raises(ConfigError, match="detector.score_threshold"):
        load_track_config(None, settings=[("detector.kind", "nanodet")], overrides=["detector.score_threshold=0"])
    with pytest.raises(ConfigError, match="detector.long_side"):
        load_track_config(None, settings=[("detector.kind", "movenet_multipose")], overrides=["detector.long_side=500"])
    with pytest.raises(ConfigError, match="detector.poses"):
        load_track_config(None, settings=[("detector.kind", "movenet_multipose")], overrides=["detector.poses=both"])


def test_factory_errors(tmp_path):
    with pytest.raises(DetectorError, match="no setting 'long_side'"):
        create_detector("nanodet", long_side=512)
    with pytest.raises(WeightsNotFoundError, match="not found"):
        create_detector("nanodet", weights=str(tmp_path / "nanodet.json"))
    with pytest.raises(WeightsNotFoundError, match="not found"):
        create_detector("movenet_multipose", weights=str(tmp_path / "movenet-multipose.json"))
    with pytest.raises(DetectorError, match="poses must be one of"):
        create_detector("movenet_multipose", poses="both", weights=str(tmp_path / "x.json"))


@needs_models
def test_nanodet_detects_the_clip_players():
    det = create_detector("nanodet", score_threshold=0.3, nms_iou=0.5, batch_size=2)
    frames = _frames((0, 1))  # measured: 2 of the 3 players in frames 0-1, 1 in frames 2-4 (entangled)
    for players, d in zip((PLAYERS[0], PLAYERS[1]), det.detect(frames)):
        assert d.boxes.dtype == np.float32 and d.roi_points is None
        assert _players_matched(players, d.boxes) >= 2 and len(d) <= 5


@needs_models
def test_multipose_boxes_and_poses_on_the_clip():
    seed = create_detector("movenet_multipose", score_threshold=0.2, long_side=512)
    replace = create_detector("movenet_multipose", score_threshold=0.2, long_side=512, poses="replace")
    frames = _frames((0,))  # measured at 512: the 3 players score 0.63, 0.45, 0.06 (the one lying under the others)
    (ds,), (dr,) = seed.detect(frames), replace.detect(frames)
    assert ds.poses is None and dr.poses is not None
    assert np.array_equal(ds.boxes, dr.boxes) and len(dr.poses) == len(dr) <= 6
    assert _players_matched(PLAYERS[0], ds.boxes) >= 2
    assert dr.poses.keypoints.shape == (len(dr), 17, 2) and np.all(dr.poses.keypoint_scores <= 1)
    # the poses lie in their boxes
    kp, b = dr.poses.keypoints, dr.boxes
    inside = (kp[..., 0] >= b[:, None, 0] - 10) & (kp[..., 0] <= b[:, None, 2] + 10)
    assert inside.mean() > 0.9


@needs_models
def test_multipose_poses_replace_the_top_down_pass():
    """detector.poses=replace: the written poses of detected boxes are the detector's own, the top-down
    estimator runs only for the propagated boxes (frame 0 has none, so it is not called there)."""
    from tracker.build import build_tracker
    from tracker.record import ORIGIN_DETECTED
    from tracker.sources import Frame

    cfg = load_track_config(None, settings=[("detector.kind", "movenet_multipose"), ("detector.poses", "replace"),
                                            ("detector.score_threshold", 0.2)])
    tracker = build_tracker(cfg)
    calls = []
    estimate = tracker.estimator.estimate

    def counting(image, boxes, *args, **kwargs):
        calls.append(len(boxes))
        return estimate(image, boxes, *args, **kwargs)

    tracker.estimator.estimate = counting
    frames = _frames((0, 1))
    own = tracker.detector.detect([frames[0]])[0]
    rec = tracker.step(Frame(0, 0.0, frames[0], "000000"))
    assert calls == [] and len(rec) >= 2 and (rec.origin == ORIGIN_DETECTED).all()
    for kp in rec.keypoints:  # each written pose is one of the detector's poses (pose NMS may drop some)
        assert np.abs(own.poses.keypoints - kp).max(axis=(1, 2)).min() < 1e-4
    own = tracker.detector.detect([frames[1]])[0]
    rec = tracker.step(Frame(1, 0.04, frames[1], "000001"))
    detected = rec.origin == ORIGIN_DETECTED
    assert len(rec) >= 2 and sum(calls) >= int((~detected).sum())  # the propagated poses came top-down
    for kp in rec.keypoints[detected]:
        assert np.abs(own.poses.keypoints - kp).max(axis=(1, 2)).min() < 1e-4
