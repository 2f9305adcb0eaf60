"""Inference preparation: BN folding finds exactly the safe pairs, fp32 outputs match eager, input untouched."""
from __future__ import annotations

import os

import pytest
import torch
import torch.nn as nn

from estimators.factory import build_model
from estimators.optimize import (
    FastForward,
    InputShapeError,
    OptimizeOptionError,
    find_conv_bn_pairs,
    max_abs_diff,
    optimize_for_inference,
)

_BN = nn.modules.batchnorm._BatchNorm


@pytest.fixture(autouse=True)
def _one_thread():
    # Two shared cores: intra-op threads fighting other processes make small forwards many times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics/affine (fresh BNs are the identity, which would hide folding mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BN) and m.running_mean is not None:
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                if m.weight is not None:
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
    return model.eval()


def _assert_close(out: torch.Tensor, ref: torch.Tensor, rel: float) -> None:
    assert out.shape == ref.shape and out.dtype == torch.float32 and out.is_contiguous()
    scale = float(ref.abs().max())
    assert scale > 0
    assert max_abs_diff(out, ref) <= rel * scale, (max_abs_diff(out, ref), scale)


def _snapshot(model: nn.Module):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [(n, type(m)) for n, m in model.named_modules()], model.training)


def _assert_unchanged(model: nn.Module, snap) -> None:
    state, types, training = snap
    assert [(n, type(m)) for n, m in model.named_modules()] == types
    assert model.training == training
    now = model.state_dict()
    assert now.keys() == state.keys() and all(torch.equal(now[k], state[k]) for k in state)


def test_hrnet_w32_fp32_matches_eager_and_input_untouched():
    torch.manual_seed(0)
    model = _randomise_bn(build_model("hrnet_w32"))
    x = torch.randn(2, 3, 128, 96, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = model(x)
    model.train()  # the caller's mode must survive
    snap = _snapshot(model)
    fast = optimize_for_inference(model, example_shape=(1, 3, 128, 96))
    _assert_unchanged(model, snap)
    n_bn = sum(isinstance(m, _BN) for m in model.modules())
    assert len(fast.folded_pairs) == n_bn > 0
    assert not any(isinstance(m, _BN) for m in fast.module.modules())
    assert (fast.family, fast.arch, fast.num_keypoints) == (model.family, model.arch, model.num_keypoints)
    out = fast(x)
    assert max_abs_diff(out, ref) <= 1e-4
    _assert_close(out, ref, rel=1e-5)
    assert fast(x[:0]).shape == (0,) + tuple(ref.shape[1:])


@pytest.mark.parametrize("name", ["mspn_1stg", "rsn_18_prm"])
def test_mspn_rsn_fp32_matches_eager(name):
    # rsn_18_prm also has Linear -> BatchNorm1d pairs (PRM middle path).
    torch.manual_seed(0)  # the builders' init draws from the global generator: fix it, whatever ran before
    model = _randomise_bn(build_model(name))
    x = torch.randn(1, 3, 128, 96, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref = model(x)
    snap = _snapshot(model)
    fast = optimize_for_inference(model, example_shape=(1, 3, 128, 96))
    _assert_unchanged(model, snap)
    assert len(fast.folded_pairs) == sum(isinstance(m, _BN) for m in model.modules())
    _assert_close(fast(x), ref, rel=1e-5)


class _Patterns(nn.Module):
    """One foldable pair and four that must not be folded."""

    def __init__(self):
        super().__init__()
        self.ok_conv, self.ok_bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.shared_conv, self.shared_bn = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)  # conv output also used raw
        self.inplace_conv, self.inplace_bn = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)  # relu_ in between
        self.twice_conv, self.twice_bn = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)  # conv called twice
        self.batchstat_conv = nn.Conv2d(4, 4, 1)
        self.batchstat_bn = nn.BatchNorm2d(4, track_running_stats=False)  # batch statistics at eval

    def forward(self, x):
        x = self.ok_bn(self.ok_conv(x))
        y = self.shared_conv(x)
        x = self.shared_bn(y) + y
        x = self.inplace_bn(torch.relu_(self.inplace_conv(x)))
        x = self.twice_bn(self.twice_conv(self.twice_conv(x)))
        return self.batchstat_bn(self.batchstat_conv(x))


def test_only_safe_pairs_are_folded():
    torch.manual_seed(0)  # the weights must not depend on what earlier tests drew
    model = _randomise_bn(_Patterns())
    assert find_conv_bn_pairs(model, torch.zeros(1, 3, 8, 6)) == [("ok_conv", "ok_bn")]
    x = torch.randn(3, 3, 8, 6, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        ref = model(x)
    fast = optimize_for_inference(model, example_shape=(1, 3, 8, 6))
    assert fast.folded_pairs == [("ok_conv", "ok_bn")]
    # folding re-rounds the conv weights: over 60 seeds the worst error was 2.0e-5 of the output's largest value
    _assert_close(fast(x), ref, rel=5e-5)


def test_bf16_path_is_close_and_float32():
    torch.manual_seed(0)
    model = _randomise_bn(build_model("rsn_18"))
    x = torch.randn(2, 3, 128, 96, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        ref = model(x)
    fast = optimize_for_inference(model, precision="bf16", example_shape=(1, 3, 128, 96))
    assert fast.precision == "bf16"
    assert all(p.dtype == torch.bfloat16 for p in fast.module.parameters())
    _assert_close(fast(x), ref, rel=5e-2)  # bfloat16 keeps 8 mantissa bits


def _small_net() -> nn.Module:
    torch.manual_seed(5)
    return _randomise_bn(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                       nn.Conv2d(8, 4, 1)))


def _check_padding(fast: FastForward, model: nn.Module) -> None:
    for n in (1, 3, 5, 4):
        x = torch.randn(n, 3, 8, 8)
        with torch.inference_mode():
            ref = model(x)
        _assert_close(fast(x), ref, rel=1e-5)
    # 1 -> 2, 3 -> 4, 5 -> 4 + (1 -> 2), 4 -> 4: only the padding sizes ever reach the network.
    assert fast.shapes_run == {(2, 3, 8, 8), (4, 3, 8, 8)}


def test_batches_padded_to_fixed_sizes():
    model = _small_net()
    fast = optimize_for_inference(model, pad_batches=True, batch_sizes=(2, 4), example_shape=(1, 3, 8, 8))
    _check_padding(fast, model)
    assert fast.compile_seconds == {}


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("POSETRACK_SLOW_TESTS"),
                    reason="torch.compile takes minutes on a loaded 2-core CPU; set POSETRACK_SLOW_TESTS=1")
def test_compiled_path_compiles_once_per_padded_size():
    model = _small_net()
    fast = optimize_for_inference(model, compile=True, batch_sizes=(2, 4), example_shape=(1, 3, 8, 8))
    _check_padding(fast, model)
    assert set(fast.compile_seconds) == {(2, 3, 8, 8), (4, 3, 8, 8)}
    assert all(s > 0 for s in fast.compile_seconds.values())


def test_bad_arguments():
    model = nn.Sequential(nn.Conv2d(3, 4, 1))
    with pytest.raises(OptimizeOptionError, match="precision"):
        optimize_for_inference(model, precision="fp16")
    with pytest.raises(OptimizeOptionError, match="batch_sizes"):
        optimize_for_inference(model, batch_sizes=(8, 1))
    with pytest.raises(OptimizeOptionError, match="example_shape"):
        optimize_for_inference(model, example_shape=(3, 8, 8))
    fast = optimize_for_inference(model, example_shape=(1, 3, 4, 4))
    assert isinstance(fast, FastForward)
    with pytest.raises(InputShapeError, match=r"\(B, C, H, W\)"):
        fast(torch.zeros(3, 4, 4))
