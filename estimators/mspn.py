"""MSPN: Multi-Stage Pose Network (Li et al., "Rethinking on Multi-Stage Networks for Human Pose
Estimation", 2019), plus the parts every MSPN-style network shares (RSN imports them from here).

Structure (released code, MSPN @a84f750; parameter layout of MMPose 1.x):
- ResNet top: 7x7/2 conv + BN + ReLU, 3x3/2 max-pool -> 64 channels at 1/4 of the input.
- Each stage (single-stage module) = a ResNet downsample path (layer1..layer4 at 1/4, 1/8, 1/16, 1/32)
  and an upsample path of 4 units (global-net style: 1x1 lateral conv + bilinearly upsampled 1x1 conv of
  the coarser unit, summed, ReLU), from the coarsest (1/32) to the finest (1/4) scale.
- Every unit feeds a prediction head (1x1 conv-BN-ReLU, 3x3 conv-BN) whose heatmaps are bilinearly
  upsampled to the 1/4 output size: 4 heatmap sets per stage for the coarse-to-fine multi-scale loss.
- Cross-stage feature aggregation: every non-final stage also emits, per scale, a 1x1 conv of its
  downsample feature (``out_skip1``) and of its upsample feature (``out_skip2``); the next stage adds both
  to its own downsample output at that scale. The next stage's input is ``cross_conv`` (1x1 conv of the
  finest upsample feature to 64 channels), not the ResNet top output.

Departures, each on purpose:
- Convs carry no bias before BN (MMPose style; the official code keeps one). ``CHECKPOINT_REMAPS["official"]``
  folds each official conv bias into the next BN's running_mean, which is exact in eval mode.
- The ResNet stride sits on the 3x3 conv (ResNet v1.5), as in the released code the checkpoints were
  trained with. The paper's FLOPs (4.4/9.6/14.7/19.9 G) assume ResNet v1 (stride on the first 1x1 conv) and
  count only the convs on the path to the final output; this network costs 5.07/11.26/17.45/23.64 GMACs
  (1e9) at 256x192 (every conv and linear layer that runs, batch 1; MMPose's model the same).
- The released code fixes the output size in its config (64x48); here the heatmaps take the size of the
  finest feature (input/4), so the same weights run at 256x192 and 384x288.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from association.keypoints import COCO17

from .registry import register
from .spec import MSPN as MSPN_FAMILY
from .spec import ModelSpec

__all__ = [
    "MSPN", "MultiStagePoseNet", "MultiStageBackbone", "MultiStageHead", "ConvBN", "ResNetTop",
    "Bottleneck", "BasicBlock", "DownsampleModule", "UpsampleUnit", "UpsampleModule", "SingleStageModule",
    "PredictHeatmap", "PRM", "CHECKPOINT_REMAPS", "official_key_to_ours", "fold_official_conv_biases",
]

NUM_UNITS = 4  # upsample units (scales) per stage: 1/32, 1/16, 1/8, 1/4 of the input


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm -> optional ReLU; submodules ``conv`` and ``bn`` (MMPose ConvModule keys)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, relu: bool = True, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


class ResNetTop(nn.Module):
    """The ResNet stem: (B,3,H,W) -> (B,C,ceil(H/4),ceil(W/4))."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.top = nn.Sequential(ConvBN(3, channels, 7, stride=2, padding=3, relu=True),
                                 nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(x)


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3, 1x1, expansion 4), stride on the 3x3 conv (v1.5, as the released code)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        # Stride on the 3x3 (v1.5) as the released code; the paper's FLOPs assume v1 (stride on conv1).
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class BasicBlock(nn.Module):
    """ResNet-18/34 basic block (two 3x3 convs, expansion 1): the MSPN paper's Res-18 single-stage option."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


# make_block(in_channels, planes, stride, downsample) -> block module; expansion given next to it.
BlockFactory = Callable[[int, int, int, "nn.Module | None"], nn.Module]


class DownsampleModule(nn.Module):
    """ResNet layer1..layer4 (planes 64, 128, 256, 512; strides 1, 2, 2, 2).

    With ``has_skip`` the previous stage's skip features are added after each layer (cross-stage aggregation).
    """

    def __init__(self, make_block: BlockFactory, expansion: int, num_blocks: Sequence[int],
                 in_channels: int = 64, has_skip: bool = False):
        super().__init__()
        if len(num_blocks) != NUM_UNITS:
            raise ValueError(f"num_blocks must list {NUM_UNITS} layer depths, got {list(num_blocks)}")
        self.has_skip = has_skip
        self.out_channels: list[int] = []
        channels = in_channels
        for i, blocks in enumerate(num_blocks):
            planes = 64 * 2 ** i
            stride = 1 if i == 0 else 2
            out_channels = planes * expansion
            downsample = None
            if stride != 1 or channels != out_channels:
                downsample = ConvBN(channels, out_channels, 1, stride=stride, relu=False)
            layer = [make_block(channels, planes, stride, downsample)]
            layer += [make_block(out_channels, planes, 1, None) for _ in range(1, blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
            self.out_channels.append(out_channels)
            channels = out_channels

    def forward(self, x: torch.Tensor, skip1: list[torch.Tensor] | None = None,
                skip2: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """x (B,C,h,w) -> features of layer1..layer4, finest first; skips are finest-first lists too."""
        if self.has_skip and (skip1 is None or skip2 is None):
            raise ValueError("this stage aggregates the previous stage's features: skip1 and skip2 are required")
        feats = []
        for i in range(NUM_UNITS):
            x = getattr(self, f"layer{i + 1}")(x)
            if self.has_skip:
                x = x + skip1[i] + skip2[i]
            feats.append(x)
        return feats


class UpsampleUnit(nn.Module):
    """One scale of the upsample path (``ind`` 0 = coarsest).

    out = ReLU(in_skip(x) + up_conv(bilinear(up_x to x's size))); optional out_skip1(x), out_skip2(out)
    for the next stage and, on the finest unit, cross_conv(out) = the next stage's input.
    """

    def __init__(self, ind: int, in_channels: int, unit_channels: int = 256, gen_skip: bool = False,
                 gen_cross_conv: bool = False, cross_channels: int = 64):
        super().__init__()
        self.ind = ind
        self.in_skip = ConvBN(in_channels, unit_channels, 1, relu=False)
        self.up_conv = ConvBN(unit_channels, unit_channels, 1, relu=False) if ind > 0 else None
        self.gen_skip = gen_skip
        if gen_skip:
            self.out_skip1 = ConvBN(in_channels, in_channels, 1, relu=True)
            self.out_skip2 = ConvBN(unit_channels, in_channels, 1, relu=True)
        self.gen_cross_conv = gen_cross_conv and ind == NUM_UNITS - 1
        if self.gen_cross_conv:
            self.cross_conv = ConvBN(unit_channels, cross_channels, 1, relu=True)

    def forward(self, x: torch.Tensor, up_x: torch.Tensor | None):
        out = self.in_skip(x)
        if self.up_conv is not None:
            up = F.interpolate(up_x, size=x.shape[-2:], mode="bilinear", align_corners=True)
            out = out + self.up_conv(up)
        out = F.relu(out)
        skip1 = self.out_skip1(x) if self.gen_skip else None
        skip2 = self.out_skip2(out) if self.gen_skip else None
        cross = self.cross_conv(out) if self.gen_cross_conv else None
        return out, skip1, skip2, cross


class UpsampleModule(nn.Module):
    """Four upsample units ``up1`` (coarsest) .. ``up4`` (finest)."""

    def __init__(self, in_channels: Sequence[int], unit_channels: int = 256, gen_skip: bool = False,
                 gen_cross_conv: bool = False, cross_channels: int = 64):
        super().__init__()
        # in_channels: channels of layer4..layer1 (coarsest first)
        for i in range(NUM_UNITS):
            self.add_module(f"up{i + 1}", UpsampleUnit(i, in_channels[i], unit_channels, gen_skip,
                                                       gen_cross_conv, cross_channels))

    def forward(self, feats: list[torch.Tensor]):
        """feats: layer1..layer4 features (finest first). Returns (unit features coarsest first,
        skip1 finest first, skip2 finest first, cross_conv or None)."""
        outs, skip1, skip2, cross = [], [], [], None
        up = None
        for i in range(NUM_UNITS):
            up, s1, s2, c = getattr(self, f"up{i + 1}")(feats[NUM_UNITS - 1 - i], up)
            outs.append(up)
            skip1.append(s1)
            skip2.append(s2)
            if c is not None:
                cross = c
        return outs, skip1[::-1], skip2[::-1], cross


class SingleStageModule(nn.Module):
    """One stage: ResNet downsample path + upsample path (+ skips / cross conv unless it is the last)."""

    def __init__(self, make_block: BlockFactory, expansion: int, num_blocks: Sequence[int], has_skip: bool,
                 gen_skip: bool, gen_cross_conv: bool, unit_channels: int = 256, top_channels: int = 64):
        super().__init__()
        self.downsample = DownsampleModule(make_block, expansion, num_blocks, top_channels, has_skip)
        self.upsample = UpsampleModule(self.downsample.out_channels[::-1], unit_channels, gen_skip,
                                       gen_cross_conv, top_channels)

    def forward(self, x, skip1=None, skip2=None):
        return self.upsample(self.downsample(x, skip1, skip2))


class MultiStageBackbone(nn.Module):
    """ResNet top + ``num_stages`` single-stage modules stored under ``stages_name`` (MMPose:
    ``multi_stage_mspn`` / ``multi_stage_rsn``). Returns per stage the 4 unit features, coarsest first."""

    def __init__(self, make_block: BlockFactory, expansion: int, num_blocks: Sequence[int], num_stages: int,
                 unit_channels: int = 256, top_channels: int = 64, stages_name: str = "multi_stage_mspn"):
        super().__init__()
        if num_stages < 1:
            raise ValueError(f"num_stages must be >= 1, got {num_stages}")
        self.top = ResNetTop(top_channels)
        self.stages_name = stages_name
        stages = [SingleStageModule(make_block, expansion, num_blocks, has_skip=i > 0,
                                    gen_skip=i < num_stages - 1, gen_cross_conv=i < num_stages - 1,
                                    unit_channels=unit_channels, top_channels=top_channels)
                  for i in range(num_stages)]
        self.add_module(stages_name, nn.ModuleList(stages))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        x = self.top(x)
        skip1 = skip2 = None
        out = []
        for stage in getattr(self, self.stages_name):
            feats, skip1, skip2, x = stage(x, skip1, skip2)
            out.append(feats)
        return out


class PRM(nn.Module):
    """Pose Refine Machine as MMPose lays it out (``use_prm``), on (B,K,h,w) heatmaps.

    out = f * (1 + alpha * beta), f = conv_bn_relu_prm_1(x); alpha (B,K,1,1) from global pooling ->
    Linear-BN1d-ReLU-Linear-BN1d-ReLU-Sigmoid; beta (B,1,h,w) from 1x1 conv-BN-ReLU -> depthwise 9x9
    conv-BN-ReLU -> pointwise conv to 1 channel-BN-ReLU -> Sigmoid. (The paper's figure has no ReLU before
    the sigmoids; MMPose's layers do, and its checkpoints were trained that way.)
    """

    def __init__(self, channels: int):
        super().__init__()
        self.middle_path = nn.Sequential(
            nn.Linear(channels, channels), nn.BatchNorm1d(channels), nn.ReLU(),
            nn.Linear(channels, channels), nn.BatchNorm1d(channels), nn.ReLU(), nn.Sigmoid())
        self.bottom_path = nn.Sequential(
            ConvBN(channels, channels, 1, relu=True),
            _DepthwiseSeparable(channels, 1, 9, padding=4),
            nn.Sigmoid())
        self.conv_bn_relu_prm_1 = ConvBN(channels, channels, 3, padding=1, relu=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_bn_relu_prm_1(x)
        alpha = self.middle_path(out.mean(dim=(2, 3)))[:, :, None, None]
        beta = self.bottom_path(out)
        return out * (1 + alpha * beta)


class _DepthwiseSeparable(nn.Module):
    """Depthwise kxk conv-BN-ReLU then pointwise 1x1 conv-BN-ReLU (MMPose DepthwiseSeparableConvModule keys)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int):
        super().__init__()
        self.depthwise_conv = ConvBN(in_channels, in_channels, kernel_size, padding=padding, groups=in_channels)
        self.pointwise_conv = ConvBN(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class PredictHeatmap(nn.Module):
    """Unit feature (B,C,h,w) -> heatmaps (B,K,H/4,W/4): 1x1 conv-BN-ReLU, 3x3 conv-BN, bilinear upsample
    (align_corners=True, as the released code) to the output size, optional PRM."""

    def __init__(self, unit_channels: int, num_keypoints: int, use_prm: bool = False):
        super().__init__()
        self.prm = PRM(num_keypoints) if use_prm else None  # registered first: MMPose's key order
        self.conv_layers = nn.Sequential(ConvBN(unit_channels, unit_channels, 1, relu=True),
                                         ConvBN(unit_channels, num_keypoints, 3, padding=1, relu=False))

    def forward(self, feat: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        y = F.interpolate(self.conv_layers(feat), size=out_size, mode="bilinear", align_corners=True)
        return y if self.prm is None else self.prm(y)


class MultiStageHead(nn.Module):
    """``predict_layers[stage * 4 + unit]``: one PredictHeatmap per stage and unit (MMPose MSPNHead)."""

    def __init__(self, num_stages: int, num_keypoints: int, unit_channels: int = 256, use_prm: bool = False):
        super().__init__()
        self.num_stages = num_stages
        self.predict_layers = nn.ModuleList(PredictHeatmap(unit_channels, num_keypoints, use_prm)
                                            for _ in range(num_stages * NUM_UNITS))

    def forward(self, feats: list[list[torch.Tensor]], out_size: tuple[int, int],
                only_last: bool = False) -> list[list[torch.Tensor]]:
        if only_last:
            return [[self.predict_layers[-1](feats[-1][-1], out_size)]]
        return [[self.predict_layers[s * NUM_UNITS + u](feats[s][u], out_size) for u in range(NUM_UNITS)]
                for s in range(self.num_stages)]


def _init_weights(module: nn.Module) -> None:
    # As the released code: Kaiming-normal (fan_out, ReLU) convs, BN weight 1 / bias 0.
    # Skipped on the meta device (shape-only models): meta normal_ runs a slow Python decomposition.
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and not m.weight.is_meta:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) and not m.weight.is_meta:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class MultiStagePoseNet(nn.Module):
    """Backbone (``backbone.*``) + heads (``head.*``), the MMPose 1.x parameter layout.

    forward(x): x (B,3,H,W) float32 normalised crop (MSPN/RSN convention: BGR, see the reference README).
    Returns the final heatmaps (B,K,H/4,W/4) = last stage, finest unit. With ``return_all=True``:
    list per stage of 4 heatmaps (B,K,H/4,W/4), ordered from the unit on the coarsest feature (1/32) to the
    finest (1/4); as in the released code every unit's prediction is upsampled to the output size so the
    coarse-to-fine loss compares them with targets of one size blurred by different kernels.
    """

    family = MSPN_FAMILY.name
    arch = "mspn"

    def __init__(self, backbone: MultiStageBackbone, head: MultiStageHead, num_keypoints: int):
        super().__init__()
        self.family = MSPN_FAMILY.name
        self.arch = type(self).arch
        self.num_keypoints = num_keypoints
        self.backbone = backbone
        self.head = head
        _init_weights(self)

    def forward(self, x: torch.Tensor, return_all: bool = False):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{type(self).__name__} input: expected (B,3,H,W), got shape {tuple(x.shape)}")
        feats = self.backbone(x)
        out_size = tuple(feats[-1][-1].shape[-2:])
        heatmaps = self.head(feats, out_size, only_last=not return_all)
        return heatmaps if return_all else heatmaps[-1][-1]


def _make_bottleneck(in_channels: int, planes: int, stride: int, downsample: nn.Module | None) -> nn.Module:
    return Bottleneck(in_channels, planes, stride, downsample)


def _make_basic(in_channels: int, planes: int, stride: int, downsample: nn.Module | None) -> nn.Module:
    return BasicBlock(in_channels, planes, stride, downsample)


_BLOCKS = {"bottleneck": (_make_bottleneck, Bottleneck.expansion), "basic": (_make_basic, BasicBlock.expansion)}


class MSPN(MultiStagePoseNet):
    """MSPN with ``num_stages`` ResNet single-stage modules.

    block: "bottleneck" (ResNet-50 depths (3,4,6,3), as every released checkpoint) or "basic" (ResNet-18
    depths (2,2,2,2), the paper's Res-18 variant; no released weights).
    """

    arch = "mspn"

    def __init__(self, num_keypoints: int = 17, num_stages: int = 1, num_blocks: Sequence[int] = (3, 4, 6, 3),
                 block: str = "bottleneck", unit_channels: int = 256, top_channels: int = 64):
        if block not in _BLOCKS:
            raise ValueError(f"MSPN block must be one of {sorted(_BLOCKS)}, got {block!r}")
        make_block, expansion = _BLOCKS[block]
        backbone = MultiStageBackbone(make_block, expansion, num_blocks, num_stages, unit_channels,
                                      top_channels, stages_name="multi_stage_mspn")
        head = MultiStageHead(num_stages, num_keypoints, unit_channels, use_prm=False)
        super().__init__(backbone, head, num_keypoints)


# ----------------------------------------------------------------------------------------------------------
# Checkpoint remaps: source state dict (already unwrapped) -> our (MMPose 1.x) keys.

def fold_official_conv_biases(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop every official ``P.conv.bias`` and fold it into ``P.bn.running_mean`` (new tensors; input untouched).

    BN(conv(x) + b) with running mean m equals BN'(conv(x)) with m' = m - b in eval mode (exact); in training
    mode the batch mean absorbs b anyway.
    """
    out = dict(sd)
    for key in [k for k in sd if k.endswith(".conv.bias")]:
        prefix = key[: -len(".conv.bias")]
        mean_key = f"{prefix}.bn.running_mean"
        if mean_key not in sd:
            raise ValueError(f"official checkpoint: conv bias {key!r} has no BatchNorm {mean_key!r} to fold into")
        if sd[mean_key].shape != sd[key].shape:
            raise ValueError(f"official checkpoint: {key!r} shape {tuple(sd[key].shape)} does not match "
                             f"{mean_key!r} shape {tuple(sd[mean_key].shape)}")
        out[mean_key] = out[mean_key] - sd[key]
        del out[key]
    return out


_STAGE_RE = re.compile(r"^stage(\d+)\.(downsample|upsample)\.(.*)$")
_UNIT_RE = re.compile(r"^up(\d)\.(u_skip|up_conv|skip1|skip2|cross_conv|res_conv1|res_conv2)\.(.*)$")
_UNIT_RENAME = {"u_skip": "in_skip", "up_conv": "up_conv", "skip1": "out_skip1", "skip2": "out_skip2",
                "cross_conv": "cross_conv"}


def official_key_to_ours(key: str, stages_name: str, block_rename: Callable[[str], str]) -> str:
    """Rename one key of the authors' MSPN/RSN layout to ours (``block_rename`` maps the part after
    ``layerN.B.`` of a downsample-path key). Raises ValueError for a key outside that layout."""
    if key.startswith("top.conv."):
        return "backbone.top.top.0." + key[len("top.conv."):]
    m = _STAGE_RE.match(key)
    if m:
        stage, path, rest = int(m.group(1)), m.group(2), m.group(3)
        if path == "downsample":
            lm = re.match(r"^(layer\d+\.\d+)\.(.*)$", rest)
            if lm:
                return f"backbone.{stages_name}.{stage}.downsample.{lm.group(1)}.{block_rename(lm.group(2))}"
        else:
            um = _UNIT_RE.match(rest)
            if um:
                unit, name, tail = int(um.group(1)), um.group(2), um.group(3)
                if name.startswith("res_conv"):
                    index = stage * NUM_UNITS + unit - 1
                    return f"head.predict_layers.{index}.conv_layers.{int(name[-1]) - 1}.{tail}"
                return f"backbone.{stages_name}.{stage}.upsample.up{unit}.{_UNIT_RENAME[name]}.{tail}"
    raise ValueError(f"official checkpoint: key {key!r} is not part of the authors' MSPN/RSN layout")


def _mspn_block_rename(rest: str) -> str:
    # Bottleneck: conv_bn_relu{n}.conv.X -> conv{n}.X, conv_bn_relu{n}.bn.X -> bn{n}.X; downsample.* kept.
    m = re.match(r"^conv_bn_relu(\d)\.(conv|bn)\.(.*)$", rest)
    return f"{m.group(2)}{m.group(1)}.{m.group(3)}" if m else rest


def remap_official_mspn(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    folded = fold_official_conv_biases(sd)
    return {official_key_to_ours(k, "multi_stage_mspn", _mspn_block_rename): v for k, v in folded.items()}


def remap_mmpose(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MMPose 0.x and 1.x: identical apart from the head prefix (``keypoint_head.`` in 0.x and in the MSPN
    files of the 1.x model zoo, ``head.`` otherwise)."""
    return {("head." + k[len("keypoint_head."):] if k.startswith("keypoint_head.") else k): v for k, v in sd.items()}


CHECKPOINT_REMAPS: dict[str, Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]] = {
    "official": remap_official_mspn,
    "mmpose0x": remap_mmpose,
    "mmpose1x": remap_mmpose,
}


# ----------------------------------------------------------------------------------------------------------
# Registered variants (ResNet-50 single-stage modules; "Nstg" = number of stages).

_MSPN_VARIANTS = {"mspn_1stg": 1, "mspn_2stg": 2, "mspn_3stg": 3, "mspn_4stg": 4}


def mspn_1stg(num_keypoints: int = 17) -> MSPN:
    return MSPN(num_keypoints, num_stages=_MSPN_VARIANTS["mspn_1stg"])


def mspn_2stg(num_keypoints: int = 17) -> MSPN:
    return MSPN(num_keypoints, num_stages=_MSPN_VARIANTS["mspn_2stg"])


def mspn_3stg(num_keypoints: int = 17) -> MSPN:
    return MSPN(num_keypoints, num_stages=_MSPN_VARIANTS["mspn_3stg"])


def mspn_4stg(num_keypoints: int = 17) -> MSPN:
    return MSPN(num_keypoints, num_stages=_MSPN_VARIANTS["mspn_4stg"])


for _name, _builder in (("mspn_1stg", mspn_1stg), ("mspn_2stg", mspn_2stg), ("mspn_3stg", mspn_3stg),
                        ("mspn_4stg", mspn_4stg)):
    register(ModelSpec(_name, _builder, MSPN_FAMILY, layout=COCO17, input_size=(192, 256),
                       checkpoint_remaps=CHECKPOINT_REMAPS,
                       description=f"MSPN, {_MSPN_VARIANTS[_name]} ResNet-50 stage(s) (Li et al., 2019), COCO-17, "
                                   f"256x192 input"))
