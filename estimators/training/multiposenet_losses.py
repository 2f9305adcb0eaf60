"""Losses of the three MultiPoseNet stages.

- :func:`keypoint_loss` (paper eq. 4): ``mean(W * (H_t - H_p)^2)`` over the 18 maps (17 keypoints + person
  segmentation) of the final output plus the same at each K level (intermediate supervision, sec. 3.2). The
  target and mask of level s (stride 4 * 2^l) are the stride-4 ones max-pooled (Gaussian peaks keep their value
  1 on the coarser grid) and min-pooled (a cell is ignored when any of its stride-4 cells is).
- :func:`detection_loss`: RetinaNet's, computed by torchvision: anchors matched to the person boxes by
  ``torchvision.models.detection._utils.Matcher`` (IoU >= fg -> person, < bg -> background, between: ignored;
  low-quality matches allowed, as ``torchvision.models.detection.RetinaNet``), then ``RetinaNetHead.compute_loss``
  (``torchvision.ops.sigmoid_focal_loss`` gamma 2 alpha 0.25 over the valid anchors / number of foreground
  anchors; box regression encoded by the head's ``BoxCoder``, smooth L1 as the paper says: the head's loss type
  is set to ``smooth_l1``).
- :func:`prn_loss`: the authors' (salihkaragoz/pose-residual-network-pytorch, ``train.py``:
  ``torch.nn.BCELoss()`` between the PRN's softmax output and the Gaussian target), averaged over the cells of
  the labelled joints' channels (see :class:`estimators.training.multiposenet_data.PRNDataset`).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchvision.models.detection._utils import Matcher
from torchvision.ops import box_iou

from ..multiposenet import MultiPoseNet


def keypoint_loss(final: torch.Tensor, intermediate: Sequence[torch.Tensor], target: torch.Tensor,
                  mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """final (B, 18, h, w), intermediate: 4 maps (B, 18, h/2^l, w/2^l), target (B, 18, h, w), mask (B, h, w).
    Returns (the total loss, the final output's term)."""
    if final.shape != target.shape or mask.shape != (target.shape[0], *target.shape[2:]):
        raise ValueError(f"keypoint_loss: final {tuple(final.shape)}, target {tuple(target.shape)} and mask "
                         f"{tuple(mask.shape)} do not fit")
    w = mask[:, None].float()
    last = (w * (final.float() - target) ** 2).mean()
    total = last
    for pred in intermediate:
        k = target.shape[-1] // pred.shape[-1]
        t = F.max_pool2d(target, k) if k > 1 else target
        m = -F.max_pool2d(-w, k) if k > 1 else w
        if t.shape[-2:] != pred.shape[-2:]:
            raise ValueError(f"keypoint_loss: intermediate map {tuple(pred.shape)} is not the target "
                             f"{tuple(target.shape)} pooled by {k}")
        total = total + (m * (pred.float() - t) ** 2).mean()
    return total, last


def detection_loss(network: MultiPoseNet, head_outputs: dict, anchors: Sequence[torch.Tensor],
                   boxes: Sequence[torch.Tensor], fg_iou: float = 0.5, bg_iou: float = 0.4) -> dict[str, torch.Tensor]:
    """RetinaNet losses of one batch: head_outputs ``cls_logits`` (B, A, 1), ``bbox_regression`` (B, A, 4);
    anchors: B tensors (A, 4) xyxy input px; boxes: B tensors (Q_i, 4) xyxy input px. Returns
    ``classification`` and ``bbox_regression`` (scalars)."""
    matcher = Matcher(fg_iou, bg_iou, allow_low_quality_matches=True)
    head = network.detection_head
    head.regression_head._loss_type = "smooth_l1"  # paper sec. 3.5 (torchvision's default is l1)
    matched, targets = [], []
    for a, b in zip(anchors, boxes):
        b = b.to(a.dtype)
        targets.append({"boxes": b, "labels": torch.zeros(len(b), dtype=torch.int64, device=a.device)})
        if len(b) == 0:
            matched.append(torch.full((len(a),), -1, dtype=torch.int64, device=a.device))
        else:
            matched.append(matcher(box_iou(b, a)))
    return head.compute_loss(targets, head_outputs, list(anchors), matched)


def prn_loss(prob: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """prob (N, 17, hc, wc) PRN output (softmax per channel), target (N, 17, hc, wc), weight (N, 17) ->
    binary cross-entropy averaged over the cells of the channels of weight 1 (torch.nn.BCELoss's log clamp)."""
    if prob.shape != target.shape or weight.shape != prob.shape[:2]:
        raise ValueError(f"prn_loss: prob {tuple(prob.shape)}, target {tuple(target.shape)}, weight "
                         f"{tuple(weight.shape)}")
    per = F.binary_cross_entropy(prob.float(), target, reduction="none").flatten(2).mean(2)  # (N, 17)
    return (per * weight).sum() / weight.sum().clamp(min=1)


__all__ = ["detection_loss", "keypoint_loss", "prn_loss"]
