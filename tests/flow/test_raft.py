"""RAFT through torchvision with weights from a real file (randomly initialised: none can be downloaded)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torchvision.models.optical_flow import raft_large, raft_small

from flow import create_flow
from flow.raft import (
    RaftFlow,
    RaftWeightsError,
    RaftWeightsNotFoundError,
    default_raft_weights_path,
    raft_weights_filename,
)

CLIP = "posetrack18/videos/000001_mpiinew_test"


@pytest.fixture(scope="module")
def small_pair(testdata):
    images = []
    for i in (0, 1):
        path = testdata / CLIP / f"{i:06d}.jpg"
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            pytest.skip(f"cannot read {path}")
        images.append(cv2.resize(image, (150, 90), interpolation=cv2.INTER_AREA))  # not multiples of 8
    return images


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("raft") / raft_weights_filename("small")
    torch.save(raft_small(weights=None).state_dict(), path)
    return path


def test_weight_file_names_follow_torchvision():
    assert raft_weights_filename("small") == "raft_small_C_T_V2-01064c6d.pth"
    assert raft_weights_filename("large") == "raft_large_C_T_SKHT_V2-ff5fadd5.pth"


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_raft_small_runs_on_real_frames(small_weights, small_pair, scale):
    backend = create_flow("raft_small", weights_path=small_weights, num_flow_updates=3, scale=scale)
    assert isinstance(backend, RaftFlow)
    flow = backend.compute(*small_pair)
    assert flow.shape == (90, 150, 2) and flow.dtype == np.float32
    assert np.isfinite(flow).all()


def test_raft_large_runs_on_real_frames(tmp_path, small_pair):
    torch.manual_seed(0)
    path = tmp_path / "large.pth"
    torch.save(raft_large(weights=None).state_dict(), path)
    flow = RaftFlow(size="large", weights_path=path, num_flow_updates=2).compute(*small_pair)
    assert flow.shape == (90, 150, 2) and np.isfinite(flow).all()


def test_loaded_weights_are_the_saved_ones(small_weights):
    backend = RaftFlow(size="small", weights_path=small_weights)
    saved = torch.load(small_weights, weights_only=True)
    for key, value in backend.model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_missing_weights_say_which_file_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    expected = tmp_path / "torch_home" / "hub" / "checkpoints" / "raft_small_C_T_V2-01064c6d.pth"
    assert default_raft_weights_path("small") == expected
    with pytest.raises(RaftWeightsNotFoundError) as info:
        create_flow("raft_small")
    message = str(info.value)
    assert "$TORCH_HOME/hub/checkpoints/raft_small_C_T_V2-01064c6d.pth" in message and str(expected) in message
    assert isinstance(info.value, OSError)
    with pytest.raises(RaftWeightsNotFoundError, match="raft_large_C_T_SKHT_V2-ff5fadd5.pth"):
        RaftFlow(size="large", weights_path=tmp_path / "nope.pth")


def test_default_cache_path_is_used(tmp_path, monkeypatch, small_weights):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    target = default_raft_weights_path("small")
    target.parent.mkdir(parents=True)
    target.write_bytes(small_weights.read_bytes())
    assert RaftFlow(size="small").weights_path == target


def test_wrong_weights_are_reported_with_the_file(tmp_path, small_weights):
    with pytest.raises(RaftWeightsError, match="does not match torchvision raft_large"):
        RaftFlow(size="large", weights_path=small_weights)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(RaftWeightsError, match="junk.pth"):
        RaftFlow(size="small", weights_path=junk)
