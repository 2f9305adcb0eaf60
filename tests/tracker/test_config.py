"""Typed tracking configs: presets load AND build a tracker, tagged-union sections accept only their kind's
keys, bad values are rejected with the dotted key named, one default per setting, no torch to load one."""
from __future__ import annotations

import json
import subprocess
import sys
import typing

import numpy as np
import pytest
import yaml

from configs import list_presets
from configs.loader import ConfigError, load_yaml, save_yaml, to_dict
from tracker.config import (
    NoFlowConfig,
    PrecomputedDetectorConfig,
    TopDownEstimatorConfig,
    TrackConfig,
    load_track_config,
)


@pytest.fixture(scope="module")
def blazepose_weights():
    from estimators.blazepose.weights import blazepose_paths

    try:
        return blazepose_paths(verify=True)
    except (OSError, ValueError) as exc:
        pytest.skip(f"BlazePose weights not in the cache ({exc}); `make setup` fetches them")


def _detections_file(tmp_path) -> str:
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": i, "category_id": 1, "bbox": [10, 20, 50, 100], "score": 0.9}
                                for i in range(2)]))  # frames 000000.jpg, 000001.jpg (COCO-style ids)
    return str(dets)


def _tiny_estimator(cfg: TrackConfig):
    """A real top-down estimator of the preset's model family and spec, with a tiny untrained network
    (HRNet-W32 itself takes ~40 s to build and ~15 s per frame untrained on 2 busy cores)."""
    import estimators
    from estimators.hrnet import HRNet
    from estimators.topdown import TopDownEstimator

    estimators.load_models()
    spec = estimators.get_spec(cfg.estimator.name)
    net = HRNet(width=8, num_modules=(1, 1, 1), num_blocks=1, layer1_blocks=1)
    return TopDownEstimator(net, spec, input_size=(64, 96), flip_test=cfg.estimator.flip_test,
                            precision=cfg.estimator.precision, max_batch=cfg.estimator.max_batch)


@pytest.mark.parametrize("preset", list_presets("track"))
def test_every_preset_builds_a_tracker_that_tracks(preset, tmp_path, blazepose_weights):
    """Each shipped preset: the components it names, built from it, and two real frames through them. A
    top-down estimator without a checkpoint is refused by the real factory (naming --checkpoint); a tiny
    network of its spec stands in for the trained weights the machine does not have."""
    from tracker.build import build_tracker
    from tracker.pipeline import PoseTracker
    from tracker.sources import Frame

    cfg = load_track_config(preset)
    estimator = None
    if isinstance(cfg.detector, PrecomputedDetectorConfig) and cfg.detector.file is None:
        cfg = load_track_config(preset, [f"detector.file={_detections_file(tmp_path)}"])
    import estimators
    from estimators.tfjs import fetch

    embedded = (isinstance(cfg.estimator, TopDownEstimatorConfig)
                and estimators.get_spec(cfg.estimator.name).embedded_weights)
    tfjs_detector = cfg.detector.kind in ("centernet", "nanodet", "movenet_multipose")
    if (embedded or tfjs_detector) and any(s.status != "ok" for s in fetch.list_models()):
        pytest.skip("TF.js models not fetched (posetrack weights fetch)")
    if isinstance(cfg.estimator, TopDownEstimatorConfig) and cfg.estimator.checkpoint is None and not embedded:
        with pytest.raises(ValueError, match="--checkpoint"):
            build_tracker(cfg)
        estimator = _tiny_estimator(cfg)
    tracker = build_tracker(cfg, estimator=estimator)
    assert isinstance(tracker, PoseTracker)
    assert tracker.associator.sigmas == tracker.estimator.layout.sigmas
    assert tracker.propagation.det_interval == cfg.propagation.det_interval
    assert (tracker.flow is None) == isinstance(cfg.flow, NoFlowConfig)
    image = np.full((128, 160, 3), 127, np.uint8)
    for i in range(2):
        rec = tracker.step(Frame(i, i / 25, image, f"{i:06d}.jpg"))
        assert rec.keypoints.shape[1:] == (tracker.estimator.layout.num_keypoints, 2)


def test_defaults_are_the_default_preset():
    """Defect 6: one default per setting, with or without a preset (the detector threshold was 0.5 without
    a preset and 0.4 with one)."""
    assert to_dict(load_track_config(None)) == to_dict(load_track_config("default"))
    assert load_track_config(None).detector.score_threshold == load_track_config("default").detector.score_threshold
    # a kind switched on the command line takes that kind's one default, whatever the preset said
    a = load_track_config("default", ["detector.kind=precomputed"])
    b = load_track_config("hrnet_w32_posetrack")
    assert a.detector.score_threshold == b.detector.score_threshold == PrecomputedDetectorConfig().score_threshold


def test_default_realtime_and_blazepose_presets():
    """The default is NanoDet + MoveNet thunder + DIS flow, realtime the detector every k frames + lightning;
    the BlazePose presets stay available by name."""
    d = load_track_config(None)
    assert (d.detector.kind, d.estimator.kind, d.estimator.name, d.flow.kind) == (
        "nanodet", "topdown", "movenet_thunder", "dis")
    assert d.propagation.det_interval == 1 and not d.estimator.flip_test
    r = load_track_config("realtime")
    assert (r.detector.kind, r.estimator.name) == ("nanodet", "movenet_lightning") and r.propagation.det_interval > 1
    for name, interval in (("blazepose", 1), ("blazepose_realtime", 10)):
        b = load_track_config(name)
        assert b.estimator.kind == b.detector.kind == "blazepose" and b.propagation.det_interval == interval
        assert not b.propagation.prefer_detected


def test_flow_none_means_no_propagation_everywhere():
    """Defect 6: flow "none" from the config and from the Python API are the same thing: no flow (None)."""
    from flow import create_flow
    from tracker.build import build_flow

    cfg = load_track_config("default", ["flow.kind=none"])
    assert isinstance(cfg.flow, NoFlowConfig)
    assert build_flow(cfg) is None
    assert create_flow("none") is None


def test_dotted_overrides_are_typed():
    cfg = load_track_config("default", ["association.min_similarity=0.45", "propagation.det_interval=3",
                                        "output.formats=[posetrack18,coco]", "estimator.kind=topdown",
                                        "estimator.input_size=[288,384]"])
    assert cfg.association.min_similarity == 0.45 and cfg.propagation.det_interval == 3
    assert cfg.output.formats == ["posetrack18", "coco"]
    assert cfg.estimator.input_size == (288, 384)


def test_tagged_unions_accept_only_their_kinds_keys():
    with pytest.raises(ConfigError, match=r"detector: unknown key\(s\) model for kind 'nanodet'"):
        load_track_config("default", ["detector.model=retinanet"])
    with pytest.raises(ConfigError, match=r"detector: unknown key\(s\) model for kind 'blazepose'"):
        load_track_config("blazepose", ["detector.model=retinanet"])
    with pytest.raises(ConfigError, match=r"flow: unknown key\(s\) weights for kind 'dis'"):
        load_track_config("default", ["flow.weights=raft.pth"])
    with pytest.raises(ConfigError, match=r"estimator: unknown key\(s\) input_size for kind 'blazepose'"):
        load_track_config("blazepose", ["estimator.input_size=[192,256]"])
    with pytest.raises(ConfigError, match=r"estimator: unknown key\(s\) tile_scales for kind 'topdown'"):
        load_track_config("default", ["estimator.tile_scales=[1.0]"])
    # switching the kind starts the section afresh: the preset's nanodet keys do not leak into gt
    cfg = load_track_config("default", ["detector.kind=gt", "detector.file=ann.json"])
    assert to_dict(cfg.detector) == {"kind": "gt", "file": "ann.json"}
    raft = load_track_config("default", ["flow.kind=raft_large"]).flow
    assert raft.kind == "raft_large" and raft.weights is None


@pytest.mark.parametrize("override, needle", [
    ("association.bogus=1", "unknown key(s) bogus"),
    ("propagation.det_interval=fast", "propagation.det_interval: expected an integer"),
    ("flow.kind=lucas", "flow.kind: 'lucas' is not one of"),
    ("flow.scale=0", "flow.scale: expected 0 < scale <= 1"),
    ("flow.scale=1.5", "flow.scale: expected 0 < scale <= 1"),
    ("output.formats=[mp3]", "output.formats: unknown format"),
    ("propagation.det_interval=0", "propagation.det_interval: must be >= 1"),
    ("association.min_similarity=2", "association.min_similarity: expected a number in [0, 1]"),
    ("detector.score_threshold=-1", "detector.score_threshold: expected a number in (0, 1]"),
    ("max_frames=0", "max_frames: expected >= 1"),
    ("propagation.max_persons=0", "propagation.max_persons: expected >= 1"),
    ("nonsense", "must look like key.sub=value"),
])
def test_bad_values_are_rejected_naming_the_key(override, needle):
    with pytest.raises(ConfigError) as err:
        load_track_config("default", [override])
    assert needle in str(err.value)


def test_estimator_vocabularies_are_the_estimators():
    from estimators.checkpoints import FORMATS
    from estimators.precision import PRECISIONS
    from tracker.config import CheckpointFormat

    assert set(typing.get_args(CheckpointFormat)) == set(FORMATS)
    with pytest.raises(ConfigError, match=r"estimator.precision: 'fp8' is not one of " + ", ".join(PRECISIONS)):
        load_track_config("hrnet_w32_posetrack", ["estimator.precision=fp8"])


def test_missing_detector_file_is_reported_before_any_model_loads():
    from tracker.build import build_tracker

    cfg = load_track_config("hrnet_w32_posetrack", ["estimator.random_weights=true"])
    with pytest.raises(ConfigError, match=r"detector.file: .*--detections"):
        build_tracker(cfg)


def test_unknown_key_in_file_names_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("flow:\n  kind: dis\n  speed: 3\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(TrackConfig, path)
    assert str(path) in str(err.value) and "flow: unknown key(s) speed" in str(err.value)
    with pytest.raises(ConfigError, match="unknown tracking preset 'nope'; valid presets: .*default"):
        load_track_config("nope")


def test_saved_config_round_trips(tmp_path):
    for preset in list_presets("track"):
        cfg = load_track_config(preset, ["association.match=hungarian"])
        path = save_yaml(cfg, tmp_path / f"{preset}.yaml")
        again = load_yaml(TrackConfig, path)
        assert again == cfg
        assert yaml.safe_load(path.read_text()) == to_dict(cfg)


def test_flags_are_typed_values_not_reparsed(tmp_path):
    """A file name that YAML would read as a number or a mapping stays the string given."""
    import argparse

    from tracker.track_cli import flag_settings, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["track", "x.mp4", "--estimator", "rsn_18", "--checkpoint", "2024",
                              "--input-size", "192x256", "--detector", "precomputed", "--detections", "a: b.json",
                              "--flow", "farneback", "--det-interval", "4", "--max-batch", "8"])
    cfg = load_track_config(args.preset, args.overrides, settings=flag_settings(args))
    assert cfg.estimator.checkpoint == "2024" and cfg.estimator.name == "rsn_18"
    assert cfg.estimator.input_size == (192, 256) and cfg.estimator.max_batch == 8
    assert cfg.detector.kind == "precomputed" and cfg.detector.file == "a: b.json"
    assert cfg.flow.kind == "farneback" and cfg.propagation.det_interval == 4
    args = parser.parse_args(["track", "x.mp4", "--input-size", "192by256"])
    with pytest.raises(ConfigError, match="--input-size: expected WxH"):
        flag_settings(args)


def test_loading_a_config_and_the_track_help_do_not_import_torch():
    code = ("import sys; from tracker.config import load_track_config; load_track_config('default'); "
            "from tracker.cli import build_parser; build_parser(['track', '--help']); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
