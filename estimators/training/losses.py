"""Training losses of the estimator families (as the released code computes them).

- :class:`JointsMSELoss` (HRNet): ``0.5 * mean((w * pred - w * gt)^2)`` over batch, joints and pixels, with
  per-joint target weights ``w``.
- :class:`JointsOHKMLoss`: per joint ``0.5 * mean over pixels``, then the mean of the top-k (8) joints per
  sample, averaged over the batch (online hard keypoint mining; optional for HRNet).
- :class:`MultiStageLoss`: sums over stages and units.
  * HRNet family (HRNet, Multi-Stage HRNet): every stage is supervised with the same Gaussian target by
    JointsMSE (or OHKM when ``ohkm=True``).
  * MSPN family (MSPN, RSN): stage i, unit j (lowest -> highest resolution) is compared with the target
    blurred by ``MSPN_KERNELS[j]`` (non-final stage: 15/11/9/7) or ``MSPN_KERNELS[j + 1]`` (final stage:
    11/9/7/5); units 0-2 use MSE / 4, unit 3 uses OHKM top-8 (released MSPN/RSN code). Unlike the released
    code (which zeroes only the target of joints with visibility flag < 2 and leaves the prediction
    unmasked) both prediction and target are masked with the target weight, as for HRNet, because
    PoseTrack labels carry no "occluded" flag.

Shapes: ``pred`` (B, K, h, w) float; ``target`` (B, K, h, w); ``weight`` (B, K). Loss tensors are scalars.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from ..spec import Family

OHKM_TOPK = 8
MSPN_NON_FINAL_UNIT_FACTOR = 0.25  # released MSPN/RSN: units 0-2 of every stage contribute loss / 4


class LossError(ValueError):
    """Predictions and targets that do not fit together (names the stage / unit)."""


def _check(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, where: str) -> None:
    if pred.shape != target.shape:
        raise LossError(f"{where}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if weight.shape != pred.shape[:2]:
        raise LossError(f"{where}: target_weight {tuple(weight.shape)} must be (B, K) = {tuple(pred.shape[:2])}")


def per_joint_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """(B, K) mean over pixels of ``(w * pred - w * target)^2`` (float32 even under autocast)."""
    pred, target = pred.float(), target.float()
    if weight is not None:
        w = weight.float()[:, :, None, None]
        pred, target = pred * w, target * w
    return ((pred - target) ** 2).flatten(2).mean(dim=2)


class JointsMSELoss(nn.Module):
    """HRNet's JointsMSELoss: 0.5 x MSE with target weights (``use_target_weight``)."""

    def __init__(self, use_target_weight: bool = True, factor: float = 0.5):
        super().__init__()
        self.use_target_weight = bool(use_target_weight)
        self.factor = float(factor)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        _check(pred, target, weight, "JointsMSELoss")
        return self.factor * per_joint_mse(pred, target, weight if self.use_target_weight else None).mean()


class JointsOHKMLoss(nn.Module):
    """Online hard keypoint mining: mean of the ``topk`` largest per-joint losses of each sample.

    Per-joint loss = ``factor`` x pixel-mean squared error (HRNet: factor 0.5; MSPN: 1). Joints with weight 0
    contribute 0 (they are masked), as released.
    """

    def __init__(self, topk: int = OHKM_TOPK, use_target_weight: bool = True, factor: float = 0.5):
        super().__init__()
        if topk < 1:
            raise LossError(f"topk must be >= 1, got {topk}")
        self.topk = int(topk)
        self.use_target_weight = bool(use_target_weight)
        self.factor = float(factor)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        _check(pred, target, weight, "JointsOHKMLoss")
        per = self.factor * per_joint_mse(pred, target, weight if self.use_target_weight else None)
        k = min(self.topk, per.shape[1])
        return per.topk(k, dim=1).values.mean(dim=1).mean()


class MultiStageLoss(nn.Module):
    """Loss of one network output ``outputs = model(x, return_all=True)`` (list per stage of per-unit maps).

    The family's target kind (``Family.target``) decides: "gaussian" (HRNet family): targets (B, 1, K, h, w);
    every stage's single map vs the Gaussian target, JointsMSE (or OHKM when ``ohkm``), summed over stages.
    "mspn" (MSPN family): targets (B, 5, K, h, w) (kernels 15/11/9/7/5); per stage 4 units, coarse-to-fine
    assignment and weighting as the module docstring says.
    """

    def __init__(self, family: Family, ohkm: bool = False, topk: int = OHKM_TOPK):
        super().__init__()
        if family.target not in ("gaussian", "mspn"):
            raise LossError(f"family {family.name!r}: unknown target kind {family.target!r} (known: 'gaussian', "
                            f"'mspn')")
        self.target_kind = family.target
        if self.target_kind == "gaussian":
            self.stage_loss = JointsOHKMLoss(topk, factor=0.5) if ohkm else JointsMSELoss(factor=0.5)
        else:
            self.mse = JointsMSELoss(factor=1.0)
            self.ohkm = JointsOHKMLoss(topk, factor=1.0)

    def forward(self, outputs: Sequence[Sequence[torch.Tensor]], target: torch.Tensor,
                weight: torch.Tensor) -> torch.Tensor:
        if target.dim() != 5:
            raise LossError(f"target: expected (B, T, K, h, w), got {tuple(target.shape)}")
        total = None
        n_stages = len(outputs)
        for i, units in enumerate(outputs):
            if self.target_kind == "gaussian":
                if len(units) != 1:
                    raise LossError(f"stage {i}: a Gaussian-target (HRNet) family expects one map per stage, "
                                    f"got {len(units)}")
                loss = self.stage_loss(units[0], target[:, 0], weight)
            else:
                if len(units) != 4 or target.shape[1] != 5:
                    raise LossError(f"stage {i}: the MSPN family expects 4 units and 5 target maps, got "
                                    f"{len(units)} units and {target.shape[1]} maps")
                first = 1 if i == n_stages - 1 else 0
                loss = None
                for j, pred in enumerate(units):
                    t = target[:, first + j]
                    if j == 3:
                        term = self.ohkm(pred, t, weight)
                    else:
                        term = MSPN_NON_FINAL_UNIT_FACTOR * self.mse(pred, t, weight)
                    loss = term if loss is None else loss + term
            total = loss if total is None else total + loss
        if total is None:
            raise LossError("outputs: no stage")
        return total


__all__ = ["JointsMSELoss", "JointsOHKMLoss", "LossError", "MultiStageLoss", "OHKM_TOPK", "per_joint_mse"]
