"""Losses: JointsMSE (0.5 x MSE with target weights), OHKM top-k, MSPN/RSN per-unit weighting and
coarse-to-fine assignment, multi-stage sums."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from estimators.spec import HRNET, MSPN
from estimators.training.losses import JointsMSELoss, JointsOHKMLoss, LossError, MultiStageLoss
from estimators.training.targets import make_targets

B, K, H, W = 3, 17, 16, 12


def _rand(seed: int):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(B, K, H, W, generator=g)
    target = torch.rand(B, K, H, W, generator=g)
    weight = (torch.rand(B, K, generator=g) > 0.3).float()
    return pred, target, weight


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_joints_mse_is_half_weighted_mse(seed):
    pred, target, weight = _rand(seed)
    w = weight[:, :, None, None]
    expected = 0.5 * ((pred * w - target * w) ** 2).mean()
    assert JointsMSELoss()(pred, target, weight).item() == pytest.approx(expected.item(), rel=1e-6)
    # an unlabelled joint does not matter, whatever is predicted there
    pred2 = pred.clone()
    b, k = torch.nonzero(weight == 0)[0]
    pred2[b, k] += 100.0
    assert JointsMSELoss()(pred2, target, weight).item() == pytest.approx(expected.item(), rel=1e-6)
    unweighted = JointsMSELoss(use_target_weight=False)(pred, target, weight)
    assert unweighted.item() == pytest.approx(0.5 * ((pred - target) ** 2).mean().item(), rel=1e-6)


def test_ohkm_takes_the_mean_of_the_top8_joints_per_sample():
    pred, target, weight = _rand(3)
    per = 0.5 * ((pred - target) ** 2 * weight[:, :, None, None]).flatten(2).mean(2)
    expected = np.mean([np.sort(per[b].numpy())[::-1][:8].mean() for b in range(B)])
    assert JointsOHKMLoss(topk=8)(pred, target, weight).item() == pytest.approx(expected, rel=1e-5)
    # topk = K is the plain per-joint mean
    assert JointsOHKMLoss(topk=K)(pred, target, weight).item() == pytest.approx(per.mean().item(), rel=1e-5)
    with pytest.raises(LossError):
        JointsOHKMLoss(topk=0)


def _mspn_targets(seed: int):
    rng = np.random.default_rng(seed)
    maps, weights = [], []
    for _ in range(B):
        kp = rng.uniform(4, 44, (K, 2))
        vis = (rng.random(K) > 0.2).astype(np.float64)
        t, w = make_targets(MSPN, kp, vis, (48, 64))
        maps.append(t)
        weights.append(w)
    return torch.from_numpy(np.stack(maps)), torch.from_numpy(np.stack(weights))


def test_mspn_coarse_to_fine_assignment_and_unit_weights():
    target, weight = _mspn_targets(0)  # (B, 5, K, 16, 12): kernels 15, 11, 9, 7, 5
    crit = MultiStageLoss(MSPN)
    # two stages that predict exactly their assigned maps: zero loss
    perfect = [[target[:, j] for j in range(4)], [target[:, j + 1] for j in range(4)]]
    assert crit(perfect, target, weight).item() == pytest.approx(0.0, abs=1e-6)
    # shifting the last stage onto the non-final kernels is wrong
    wrong = [[target[:, j] for j in range(4)], [target[:, j] for j in range(4)]]
    assert crit(wrong, target, weight).item() > 1.0
    # units 0-2 count MSE / 4, unit 3 counts OHKM-8 (MSE factor 1, per the released code)
    zeros = torch.zeros_like(target[:, 0])
    one_stage = [[zeros, zeros, zeros, zeros]]
    mse = JointsMSELoss(factor=1.0)
    ohkm = JointsOHKMLoss(8, factor=1.0)
    expected = sum(0.25 * mse(zeros, target[:, 1 + j], weight) for j in range(3)) + ohkm(zeros, target[:, 4], weight)
    assert crit(one_stage, target, weight).item() == pytest.approx(expected.item(), rel=1e-5)


def test_hrnet_family_sums_stages_and_optional_ohkm():
    pred, target, weight = _rand(4)
    t5 = target[:, None]
    single = MultiStageLoss(HRNET)([[pred]], t5, weight)
    assert single.item() == pytest.approx(JointsMSELoss()(pred, target, weight).item(), rel=1e-6)
    two = MultiStageLoss(HRNET)([[pred], [pred]], t5, weight)
    assert two.item() == pytest.approx(2 * single.item(), rel=1e-6)
    with_ohkm = MultiStageLoss(HRNET, ohkm=True)([[pred]], t5, weight)
    assert with_ohkm.item() == pytest.approx(JointsOHKMLoss(8)(pred, target, weight).item(), rel=1e-6)


def test_gradients_flow_and_shapes_are_checked():
    pred, target, weight = _rand(5)
    pred.requires_grad_(True)
    MultiStageLoss(HRNET)([[pred]], target[:, None], weight).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    with pytest.raises(LossError, match="differ"):
        JointsMSELoss()(pred, target[:, :, :8], weight)
    with pytest.raises(LossError, match="target_weight"):
        JointsMSELoss()(pred, target, weight[:, :5])
    with pytest.raises(LossError, match="4 units"):
        MultiStageLoss(MSPN)([[pred]], torch.zeros(B, 5, K, H, W), weight)
    with pytest.raises(LossError, match="target kind 'simcc'"):
        MultiStageLoss(dataclasses.replace(HRNET, name="simcc_family", target="simcc"))
