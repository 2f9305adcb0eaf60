"""The "centernet" detector kind (CenterNet TF.js graph, ``estimators.tfjs.centernet``) and MoveNet by name:
config section, factory, real detections on the shared clip, and the tracker built from a config."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from configs.loader import ConfigError
from tracker.config import CenterNetDetectorConfig, load_track_config
from tracker.detectors import DetectorError, WeightsNotFoundError, create_detector

SHARED = Path(os.environ.get("POSETRACK_SHARED", Path(__file__).resolve().parents[3] / "shared"))
CLIP = SHARED / "data" / "mmpose_testdata" / "posetrack18" / "videos" / "000001_mpiinew_test"
PLAYERS = json.loads((Path(__file__).resolve().parents[1] / "data" / "clip_players.json").read_text())["players"]


def _models_fetched() -> bool:
    from estimators.tfjs import fetch

    return all(s.status == "ok" for s in fetch.list_models())


needs_models = pytest.mark.skipif(not _models_fetched(), reason="TF.js models not fetched (posetrack weights fetch)")


def test_config_section():
    cfg = load_track_config(None, settings=[("detector.kind", "centernet")], overrides=["detector.nms_iou=0.6"])
    assert isinstance(cfg.detector, CenterNetDetectorConfig) and cfg.detector.nms_iou == 0.6
    with pytest.raises(ConfigError, match="detector.score_threshold"):
        load_track_config(None, settings=[("detector.kind", "centernet")], overrides=["detector.score_threshold=2"])
    with pytest.raises(ConfigError, match="tile_scales"):
        load_track_config(None, settings=[("detector.kind", "centernet")], overrides=["detector.tile_scales=[1.0]"])


def test_factory_errors(tmp_path):
    with pytest.raises(DetectorError, match="no setting 'model'"):
        create_detector("centernet", model="x")
    with pytest.raises(WeightsNotFoundError, match="not found"):
        create_detector("centernet", weights=str(tmp_path / "centernet.json"))


@needs_models
def test_detects_the_clip_players():
    import torch
    from scipy.optimize import linear_sum_assignment
    from torchvision.ops import box_iou

    if not CLIP.is_dir():
        pytest.skip(f"shared clip not found: {CLIP}")
    det = create_detector("centernet", score_threshold=0.3, nms_iou=0.5, batch_size=2)
    frames = [cv2.imread(str(CLIP / f"{i:06d}.jpg")) for i in (2,)]
    for players, d in zip((PLAYERS[2],), det.detect(frames)):
        iou = box_iou(torch.tensor(players, dtype=torch.float32), torch.from_numpy(d.boxes)).numpy()
        rows, cols = linear_sum_assignment(-iou)  # each player his own box
        assert len(rows) == 3 and (iou[rows, cols] >= 0.1).all() and len(d) <= 4
        assert d.roi_points is None


@needs_models
def test_movenet_by_name_in_a_tracking_config():
    from tracker.build import build_estimator

    cfg = load_track_config(None, settings=[("estimator.kind", "topdown"), ("estimator.name", "movenet_lightning")])
    est = build_estimator(cfg)
    assert est.spec.name == "movenet_lightning" and est.layout.name == "coco17" and est.num_keypoints == 17
    image = np.zeros((120, 160, 3), np.uint8)
    poses = est.estimate(image, np.array([[10, 10, 60, 110]], np.float32), np.ones(1, np.float32))
    assert poses.keypoints.shape == (1, 17, 2) and poses.roi_points is None
