"""Typed tracking configs: presets load, unknown keys and wrong types are rejected with the key named."""
from __future__ import annotations

import pytest
import yaml

from configs.loader import ConfigError, load_yaml, save_yaml, to_dict
from configs import list_presets
from tracker.config import TrackConfig, load_track_config


@pytest.mark.parametrize("preset", list_presets("track"))
def test_every_preset_loads(preset):
    cfg = load_track_config(preset)
    assert isinstance(cfg, TrackConfig)
    assert cfg.association.det_interval >= 1


def test_dotted_overrides_are_typed():
    cfg = load_track_config("default", ["association.min_similarity=0.45", "association.det_interval=3",
                                        "output.formats=[posetrack18,coco]", "estimator.input_size=[288,384]"])
    assert cfg.association.min_similarity == 0.45 and cfg.association.det_interval == 3
    assert cfg.output.formats == ["posetrack18", "coco"]
    assert cfg.estimator.input_size == (288, 384)


@pytest.mark.parametrize("override, needle", [
    ("association.bogus=1", "unknown key(s) bogus"),
    ("association.det_interval=fast", "association.det_interval: expected an integer"),
    ("flow.name=lucas", "flow.name: 'lucas' is not one of"),
    ("output.formats=[mp3]", "unknown format"),
    ("association.det_interval=0", "det_interval must be >= 1"),
    ("nonsense", "must look like key.sub=value"),
])
def test_bad_values_are_rejected_naming_the_key(override, needle):
    with pytest.raises(ConfigError) as err:
        load_track_config("default", [override])
    assert needle in str(err.value)


def test_unknown_key_in_file_names_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("flow:\n  name: dis\n  speed: 3\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(TrackConfig, path)
    assert str(path) in str(err.value) and "flow: unknown key(s) speed" in str(err.value)
    with pytest.raises(ConfigError, match="unknown tracking preset 'nope'; valid presets: .*default"):
        load_track_config("nope")


def test_saved_config_round_trips(tmp_path):
    cfg = load_track_config("realtime", ["association.match=hungarian"])
    path = save_yaml(cfg, tmp_path / "resolved.yaml")
    again = load_yaml(TrackConfig, path)
    assert again == cfg
    assert yaml.safe_load(path.read_text()) == to_dict(cfg)
