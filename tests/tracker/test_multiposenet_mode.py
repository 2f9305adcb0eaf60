"""The one-pass tracker mode (`posetrack track VIDEO --estimator multiposenet_r50`): MultiPoseNet's own person
subnet is the detector (detector kind `own`), one network pass per frame is shared by detection and
estimation, and the PRN assigns keypoints to the detected and the flow-propagated boxes; on the real 5-frame
PoseTrack clip, from the command line and through the Python API, with random weights and with a checkpoint
file written to disk and loaded strictly.

No trained MultiPoseNet weights exist here, so the checkpoint holds the random init with two biases set: the
person logits (every anchor scores ~0.95, so the person subnet gives boxes) and the keypoint heatmaps (~0.5,
so the poses score above the propagation threshold and are carried by the flow). The forwards are counted
with torch's global module forward hook on the real network and PRN (nothing is replaced)."""
from __future__ import annotations

import argparse
import contextlib
import json

import numpy as np
import pytest
import torch

from eval_posetrack import read_sequence
from tracker.cli import main
from tracker.config import ConfigError, load_track_config

FRAMES = 4  # of the 5-frame clip; with --det-interval 2 frames 0, 2 are detector frames, 1, 3 propagated only
SMALL = "128x128"  # the frame (1280x720) is fitted into this network input: 128x72, padded to 128x96


def _clip(testdata):
    return testdata / "posetrack18" / "videos" / "000001_mpiinew_test" / "000001_mpiinew_test.mp4"


@contextlib.contextmanager
def counting():
    """Counts MultiPoseNet forwards and the PRN's batch rows (person boxes) while active."""
    from torchvision.models.detection.retinanet import RetinaNetHead

    from estimators.multiposenet import MultiPoseNet, PoseResidualNetwork

    calls: dict = {"network": 0, "prn_rows": [], "person_head": 0}

    def hook(module, args, output):
        if isinstance(module, MultiPoseNet):
            calls["network"] += 1
        elif isinstance(module, RetinaNetHead):
            calls["person_head"] += 1
        elif isinstance(module, PoseResidualNetwork):
            calls["prn_rows"].append(int(args[0].shape[0]))

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A native MultiPoseNet checkpoint file (`network`, `prn` state dicts, ~450 MB), see the module docstring."""
    from estimators.multiposenet import PoseResidualNetwork, build_multiposenet_r50

    torch.manual_seed(0)
    net, prn = build_multiposenet_r50(), PoseResidualNetwork()
    with torch.no_grad():
        net.detection_head.classification_head.cls_logits.bias.fill_(3.0)
        net.keypoint_subnet.predict.bias[:17] = 0.5
    path = tmp_path_factory.mktemp("mpn") / "multiposenet_r50.pt"
    torch.save({"network": net.state_dict(), "prn": prn.state_dict()}, path)
    yield path
    path.unlink()


def _flags(argv: list[str]):
    from tracker.track_cli import flag_settings, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]  # positionals go before the options
    args = parser.parse_args(["track", "x.mp4", *overrides, *[a for a in argv if a not in overrides]])
    return load_track_config(args.preset, args.overrides, settings=flag_settings(args))


def test_the_flag_chooses_the_own_detector_and_keeps_an_explicit_file_detector():
    cfg = _flags(["--estimator", "multiposenet_r101", "--checkpoint", "m.pt"])
    assert (cfg.estimator.kind, cfg.estimator.name, cfg.detector.kind) == ("multiposenet", "multiposenet_r101", "own")
    assert cfg.detector.score_threshold == 0.3 and cfg.detector.max_detections == 100  # not the preset's BlazePose
    cfg = _flags(["--estimator", "multiposenet_r50", "--detector", "gt", "--detections", "a.json"])
    assert cfg.detector.kind == "gt"  # given boxes: the network still runs once per frame, for the heatmaps


@pytest.mark.parametrize("argv, needle", [
    (["--estimator", "multiposenet_r50", "--detector", "blazepose"],
     "detector.kind: 'blazepose' cannot run with estimator.kind=multiposenet"),
    (["--estimator", "multiposenet_r50", "--detector", "torchvision"], "use detector.kind=own"),
    (["--estimator", "hrnet_w32", "--detector", "own"], "detector.kind: 'own' is the person subnet of a one-pass"),
    (["--detector", "own"], "detector.kind: 'own' is the person subnet"),  # with the default preset's estimator
    (["estimator.kind=topdown", "estimator.name=multiposenet_r50"],
     "estimator.name: 'multiposenet_r50' is a one-pass (bottom-up) model"),
    (["--estimator", "multiposenet_r50", "estimator.assign=greedy"], "estimator.assign: 'greedy' is not one of"),
    (["--estimator", "multiposenet_r50", "estimator.peak_threshold=2"], "estimator.peak_threshold"),
    (["--estimator", "multiposenet_r50", "detector.max_detections=0"], "detector.max_detections: expected >= 1"),
    (["--estimator", "multiposenet_r50", "detector.score_threshold=0"], "detector.score_threshold"),
    (["--estimator", "multiposenet_r50", "--checkpoint-format", "mmpose1x"],
     "estimator: unknown key(s) checkpoint_format for kind 'multiposenet'"),
    (["--estimator", "multiposenet_r50", "estimator.flip_test=false"], "unknown key(s) flip_test"),
])
def test_config_errors_name_the_dotted_key(argv, needle):
    with pytest.raises(ConfigError) as err:
        _flags(argv)
    assert needle in str(err.value)


def test_cli_refuses_bad_combinations_before_any_model_loads(testdata, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["track", str(_clip(testdata)), "--estimator", "multiposenet_r50", "--detector", "centernet",
                 "--out", str(out), "--no-progress", "estimator.random_weights=true"]) == 2
    assert "detector.kind: 'centernet' cannot run with estimator.kind=multiposenet" in capsys.readouterr().err
    assert main(["track", str(_clip(testdata)), "--estimator", "multiposenet_r50", "--out", str(out),
                 "--no-progress"]) == 2  # no checkpoint, no random_weights: the factory refuses before building
    assert "--checkpoint" in capsys.readouterr().err
    assert not out.exists() or not list(out.iterdir())


def test_the_own_detector_needs_the_one_pass_estimator():
    from tracker.detectors import DetectorError, create_detector

    with pytest.raises(DetectorError, match="needs the one-pass estimator"):
        create_detector("own", score_threshold=0.3, max_detections=5)
    with pytest.raises(DetectorError, match="person subnet"):
        create_detector("own", estimator=object(), score_threshold=0.3, max_detections=5)  # no detect()
    with pytest.raises(DetectorError, match="takes no estimator"):
        create_detector("gt", estimator=object(), file="a.json")
    with pytest.raises(DetectorError, match="has no setting 'nms_iou'"):
        create_detector("own", estimator=object(), score_threshold=0.3, max_detections=5, nms_iou=0.5)


def test_shared_forward_is_keyed_on_the_frame_content():
    """detect() then estimate() on one image: one network pass; another image (or the same array changed in
    place): a new one. The cache belongs to the estimator instance."""
    from estimators.multiposenet import MultiPoseNetEstimator, PoseResidualNetwork, build_multiposenet_r50

    torch.manual_seed(0)
    est = MultiPoseNetEstimator(build_multiposenet_r50(), PoseResidualNetwork(), input_size=(64, 64))
    other = MultiPoseNetEstimator(est.network, est.prn, input_size=(64, 64))
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    box = np.array([[4, 4, 40, 44]], np.float32)
    with counting() as c:
        boxes, scores = est.detect(image, score_threshold=0.005, max_detections=3)
        assert 0 < len(boxes) <= 3 and boxes.dtype == np.float32 and (scores > 0.005).all()
        first = est.estimate(image, box, np.ones(1, np.float32))
        assert c["network"] == 1 and c["prn_rows"] == [1]
        est.estimate(image.copy(), box, np.ones(1, np.float32))  # same content, another array
        assert c["network"] == 1
        other.estimate(image, box, np.ones(1, np.float32))  # another instance has its own cache
        assert c["network"] == 2
        image[10:20, 10:20] = 255 - image[10:20, 10:20]  # the same array, changed in place
        changed = est.estimate(image, box, np.ones(1, np.float32))
        assert c["network"] == 3
    assert first.keypoints.shape == changed.keypoints.shape == (1, 17, 2)


def test_one_pass_pipeline_network_once_per_frame_prn_on_propagated_boxes(testdata, checkpoint):
    """Through the Python API, frame by frame: exactly one network forward per frame; on the frames between
    detector frames every pose comes from the PRN on flow-propagated boxes."""
    from tracker.build import build_tracker
    from tracker.detectors import OwnPersonDetector
    from tracker.record import ORIGIN_DETECTED, ORIGIN_PROPAGATED
    from tracker.sources import open_source

    cfg = _flags(["--estimator", "multiposenet_r50", "--checkpoint", str(checkpoint), "--input-size", SMALL,
                  "--det-interval", "2", "detector.max_detections=3"])
    tracker = build_tracker(cfg)
    assert isinstance(tracker.detector, OwnPersonDetector) and tracker.detector.model is tracker.estimator
    assert torch.equal(tracker.estimator.network.detection_head.classification_head.cls_logits.bias,
                       torch.full((9,), 3.0))  # the file's weights, loaded strictly
    with open_source(str(_clip(testdata))) as src:
        frames = [f for _, f in zip(range(FRAMES), src)]
    propagated_poses = 0
    for frame in frames:
        with counting() as c:
            rec = tracker.step(frame)
        assert c["network"] == 1, (frame.index, c)
        assert len(rec) > 0 and np.isfinite(rec.keypoints).all() and rec.keypoints.shape[1:] == (17, 2)
        assert sum(c["prn_rows"]) >= len(rec)  # every pose from the PRN, all boxes of the frame in one call
        assert len(c["prn_rows"]) == 1
        if frame.index % 2:  # no detector: only the boxes the flow carried, and the person subnet skipped
            assert (rec.origin == ORIGIN_PROPAGATED).all()
            assert c["person_head"] == 0
            propagated_poses += len(rec)
        else:
            assert 0 < (rec.origin == ORIGIN_DETECTED).sum() <= 3  # detector.max_detections
            assert c["person_head"] == 1
    assert propagated_poses >= 2
    assert tracker.times.seconds["detect"] > 0 and tracker.times.seconds["estimate"] > 0


def _check_posetrack_json(path, frames: int) -> dict:
    seq = read_sequence(path)  # the project's PoseTrack 2018 reader (what `posetrack eval` reads)
    assert len(seq.frames) == frames
    data = json.loads(path.read_text())
    assert len(data["images"]) == frames and data["categories"][0]["name"] == "person"
    for a in data["annotations"]:
        assert len(a["keypoints"]) == 51 and len(a["scores"]) == 17 and 0 <= a["track_id"] < 10000
        assert np.isfinite(a["keypoints"]).all()
    return data


@pytest.mark.slow  # reads the ~450 MB checkpoint file (the API test above covers the same path without the CLI)
def test_cli_one_pass_with_a_checkpoint_file(testdata, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    with counting() as c:
        assert main(["track", str(_clip(testdata)), "--estimator", "multiposenet_r50", "--checkpoint",
                     str(checkpoint), "--input-size", SMALL, "--det-interval", "2", "--max-frames", str(FRAMES),
                     "--out", str(out), "--no-progress", "detector.max_detections=3"]) == 0
    assert f"tracked {FRAMES} frames" in capsys.readouterr().out
    assert c["network"] == FRAMES
    data = _check_posetrack_json(out / "000001_mpiinew_test.json", FRAMES)
    assert {a["image_id"] for a in data["annotations"]} == {im["id"] for im in data["images"]}  # every frame
    saved = (out / "000001_mpiinew_test.config.yaml").read_text()
    assert "kind: own" in saved and "kind: multiposenet" in saved


def test_cli_one_pass_with_random_weights(testdata, tmp_path, capsys):
    """Random weights (benchmarks' setting): the person subnet's init scores every anchor ~0.01, so a low
    detector threshold lets it give boxes; the poses are noise, the plumbing is real."""
    out = tmp_path / "out"
    with counting() as c:
        assert main(["track", str(_clip(testdata)), "--estimator", "multiposenet_r50", "--input-size", SMALL,
                     "--det-interval", "2", "--max-frames", "3", "--out", str(out), "--no-progress",
                     "estimator.random_weights=true", "detector.score_threshold=0.005", "detector.max_detections=2",
                     "propagation.min_score=0", "association.min_hits=1"]) == 0
    assert "tracked 3 frames" in capsys.readouterr().out
    assert c["network"] == 3 and len(c["prn_rows"]) == 3
    _check_posetrack_json(out / "000001_mpiinew_test.json", 3)
