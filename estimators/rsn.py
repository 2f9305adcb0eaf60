"""RSN: Residual Steps Network (Cai et al., "Learning Delicate Local Representations for Multi-Person Pose
Estimation", ECCV 2020).

Same multi-stage structure as MSPN (ResNet top, per-stage downsample/upsample paths, 4 heatmap scales per
stage, cross-stage aggregation; shared parts imported from ``estimators.mspn``); the ResNet blocks are
replaced by the Residual Steps Block (RSB): a 1x1 conv splits the features into 4 branches of
``in_channels * 26 // 64`` channels; branch i runs i 3x3 convs, each (after the first) also fed the
previous branch's output at the same step (dense element-wise sums); the concatenated last outputs of the
4 branches go through a 1x1 conv-BN and an identity (or 1x1-conv-BN) shortcut, expansion 1.

Variants follow the released code (``exps/*/network.py`` of the RSN repository) and MMPose 1.x
(``mmpose/models/backbones/rsn.py``), not the paper's figures:
- RSN-18 = layers (2,2,2,2); RSN-50 = the RSN-18 code with ResNet-50 depths (3,4,6,3) (MMPose; there is
  no official RSN-50 code). The stride of a downsampling RSB sits on its first 1x1 conv, as released.
- Convs carry no bias before BN (MMPose); the official RSN convs have one, folded into the next BN's
  running_mean by ``CHECKPOINT_REMAPS["official"]`` (exact in eval mode).
- ``*_prm`` variants: MMPose's ``use_prm`` head, one Pose Refine Machine on every output unit of every
  stage (the paper places PRM on the last stage only; the official repo defines a PRM but never uses it and
  it is not weight-compatible with MMPose's).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from association.keypoints import COCO17

from .mspn import (
    ConvBN,
    MultiStageBackbone,
    MultiStageHead,
    MultiStagePoseNet,
    fold_official_conv_biases,
    official_key_to_ours,
    remap_mmpose,
)
from .registry import register
from .spec import MSPN as MSPN_FAMILY
from .spec import ModelSpec

__all__ = ["RSN", "RSB", "CHECKPOINT_REMAPS"]


class RSB(nn.Module):
    """Residual Steps Block (expansion 1): (B,in,h,w) -> (B,planes,h/stride,w/stride)."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 num_steps: int = 4, expand_times: int = 26, res_top_channels: int = 64):
        super().__init__()
        self.downsample = downsample
        self.num_steps = num_steps
        self.branch_channels = in_channels * expand_times // res_top_channels
        self.conv_bn_relu1 = ConvBN(in_channels, num_steps * self.branch_channels, 1, stride=stride, relu=True)
        for i in range(num_steps):
            for j in range(i + 1):
                self.add_module(f"conv_bn_relu2_{i + 1}_{j + 1}",
                                ConvBN(self.branch_channels, self.branch_channels, 3, padding=1, relu=True))
        self.conv_bn3 = ConvBN(num_steps * self.branch_channels, planes * self.expansion, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        splits = torch.split(self.conv_bn_relu1(x), self.branch_channels, dim=1)
        prev: list[torch.Tensor] = []  # outputs of branch i-1, one per step
        ends = []
        for i in range(self.num_steps):
            cur: list[torch.Tensor] = []
            for j in range(i + 1):
                inp = splits[i] if j == 0 else cur[j - 1]
                if j < i:  # dense step connection from the previous branch
                    inp = inp + prev[j]
                cur.append(getattr(self, f"conv_bn_relu2_{i + 1}_{j + 1}")(inp))
            ends.append(cur[-1])
            prev = cur
        out = self.conv_bn3(torch.cat(ends, dim=1))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


def _make_rsb(in_channels: int, planes: int, stride: int, downsample: nn.Module | None) -> nn.Module:
    return RSB(in_channels, planes, stride, downsample)


class RSN(MultiStagePoseNet):
    """Multi-stage RSN (state dict: MMPose 1.x layout, ``backbone.multi_stage_rsn.*`` / ``head.*``).

    forward(x (B,3,H,W) float32, return_all=False) -> (B,K,H/4,W/4); return_all -> per stage 4 heatmaps
    (B,K,H/4,W/4) from the coarsest unit to the finest (see ``MultiStagePoseNet``).
    """

    arch = "rsn"

    def __init__(self, num_keypoints: int = 17, num_stages: int = 1, num_blocks: Sequence[int] = (2, 2, 2, 2),
                 use_prm: bool = False, unit_channels: int = 256, top_channels: int = 64):
        backbone = MultiStageBackbone(_make_rsb, RSB.expansion, num_blocks, num_stages, unit_channels,
                                      top_channels, stages_name="multi_stage_rsn")
        head = MultiStageHead(num_stages, num_keypoints, unit_channels, use_prm=use_prm)
        super().__init__(backbone, head, num_keypoints)


# ----------------------------------------------------------------------------------------------------------
# Checkpoint remaps (official: RSN18.coco / 4XRSN18.coco; MMPose 0.x / 1.x).

def _rsn_block_rename(rest: str) -> str:
    # Official RSB names its last conv conv_bn_relu3 (it has no ReLU); MMPose calls it conv_bn3.
    return re.sub(r"^conv_bn_relu3\.", "conv_bn3.", rest)


def remap_official_rsn(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    folded = fold_official_conv_biases(sd)
    return {official_key_to_ours(k, "multi_stage_rsn", _rsn_block_rename): v for k, v in folded.items()}


CHECKPOINT_REMAPS: dict[str, Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]] = {
    "official": remap_official_rsn,
    "mmpose0x": remap_mmpose,
    "mmpose1x": remap_mmpose,
}


# ----------------------------------------------------------------------------------------------------------
# Registered variants: name -> (layer depths, stages, PRM).

RSN18, RSN50 = (2, 2, 2, 2), (3, 4, 6, 3)
_RSN_VARIANTS = {
    "rsn_18": (RSN18, 1, False),
    "rsn_50": (RSN50, 1, False),
    "rsn50_2x": (RSN50, 2, False),
    "rsn50_3x": (RSN50, 3, False),
    "rsn50_4x": (RSN50, 4, False),
    "rsn18_4x": (RSN18, 4, False),
    "rsn_18_prm": (RSN18, 1, True),
    "rsn_50_prm": (RSN50, 1, True),
    "rsn50_2x_prm": (RSN50, 2, True),
    "rsn50_4x_prm": (RSN50, 4, True),
}


def _builder(name: str) -> Callable[..., RSN]:
    blocks, stages, prm = _RSN_VARIANTS[name]

    def build(num_keypoints: int = 17) -> RSN:
        return RSN(num_keypoints, num_stages=stages, num_blocks=blocks, use_prm=prm)

    build.__name__ = build.__qualname__ = name
    return build


for _name, (_blocks, _stages, _prm) in _RSN_VARIANTS.items():
    register(ModelSpec(_name, _builder(_name), MSPN_FAMILY, layout=COCO17, input_size=(192, 256),
                       checkpoint_remaps=CHECKPOINT_REMAPS,
                       description=f"RSN-{18 if _blocks == RSN18 else 50}, {_stages} stage(s){', PRM' if _prm else ''} "
                                   f"(Cai et al., ECCV 2020), COCO-17, 256x192 input"))
