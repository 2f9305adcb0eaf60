"""MAC counting (``benchmarks/macs.py``, benchmark material): exact on hand-computed small nets, and the
official HRNet-W32 figure of the reference model statistics."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from estimators.factory import build_model


def _load_macs():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "macs.py"
    spec = importlib.util.spec_from_file_location("benchmarks_macs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_macs = _load_macs()
InvalidInputSizeError, count_macs, count_params = _macs.InvalidInputSizeError, _macs.count_macs, _macs.count_params


@pytest.fixture(autouse=True)
def _one_thread():
    # Two shared cores: intra-op threads fighting other processes make small forwards many times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class _Tiny(nn.Module):
    """conv 3->8 k3 s2 p1, BN, grouped conv 8->8 k3 g4, linear 8->5 on the pooled features, an unused conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False)
        self.fc = nn.Linear(8, 5)
        self.unused = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        y = self.grouped(torch.relu(self.bn(self.conv(x))))
        y = self.grouped(y)  # the same module twice: counted twice
        return self.fc(y.mean(dim=(2, 3)))


def test_tiny_net_by_hand():
    h, w = 16, 12
    ho, wo = 8, 6  # stride 2, padding 1, kernel 3
    conv = 8 * 3 * 3 * 3 * ho * wo
    grouped = 8 * (8 // 4) * 3 * 3 * ho * wo
    fc = 8 * 5
    assert count_macs(_Tiny(), (h, w)) == conv + 2 * grouped + fc


def test_transposed_conv_follows_model_stats_convention():
    # model_stats.json's rule: weight.numel() * H_out * W_out, transposed convs included.
    net = nn.Sequential(nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1, bias=False))
    assert count_macs(net, (5, 7), in_channels=4) == 4 * 6 * 4 * 4 * 10 * 14


def test_model_left_untouched():
    net = _Tiny().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    count_macs(net, (16, 12))
    assert net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not any(m._forward_hooks for m in net.modules())


@pytest.mark.parametrize("size", [(0, 10), (10,), (10.0, 10), (-1, 3)])
def test_bad_input_size(size):
    with pytest.raises(InvalidInputSizeError, match="input_size"):
        count_macs(_Tiny(), size)


def test_hrnet_w32_matches_reference(reference):
    stats = json.loads((reference / "model_stats.json").read_text())["official"]["hrnet_w32"]
    with torch.device("meta"):  # MACs and parameter counts follow from shapes alone
        model = build_model("hrnet_w32")
    assert count_params(model) == stats["params"]
    macs = count_macs(model, (256, 192))
    ref = stats["256x192"]["conv_linear_macs"]
    assert abs(macs - ref) <= 0.005 * ref, (macs, ref)
    assert round(macs / 2**30, 2) == stats["256x192"]["GMAC_2p30"]  # the paper's 7.1 (HRNet counter convention)
