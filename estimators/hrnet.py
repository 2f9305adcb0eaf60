"""HRNet for top-down pose estimation (Sun et al., "Deep High-Resolution Representation Learning for Human
Pose Estimation", CVPR 2019), as plain ``nn.Module``s.

The layout (module names, order, shapes) is the one of the authors' released ``pose_hrnet.py`` with the
w32/w48 256x192 experiment settings, so an official state dict loads with the identity remap:

- stem: two stride-2 3x3 convs (3 -> 64 -> 64 channels) with BN + ReLU (``conv1/bn1/conv2/bn2``);
- ``layer1``: 4 Bottlenecks (64 -> 256 channels) at 1/4 resolution;
- ``transition1``, ``stage2`` (1 module, 2 branches), ``transition2``, ``stage3`` (4 modules, 3 branches),
  ``transition3``, ``stage4`` (3 modules, 4 branches); every module = 4 BasicBlocks per branch + fuse layers;
  branch widths (W, 2W, 4W, 8W); the last module of stage 4 only fuses into the highest resolution;
- ``final_layer``: 1x1 conv from the highest-resolution branch to K heatmaps at 1/4 input resolution.

Parameter counts (random init): hrnet_w32 28,536,113; hrnet_w48 63,595,745 (1754 state-dict entries).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from association.keypoints import COCO17

from .registry import register
from .spec import HRNET, ModelSpec

BN_MOMENTUM = 0.1  # the authors' value (pose_hrnet.py)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias (BN follows), padding 1."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or ``downsample``) shortcut; ``expansion`` = 1."""

    expansion = 1  # immutable class constant (channel multiplier of the block output)

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 conv-BN bottleneck; output has ``channels * 4`` channels."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(channels, channels * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


BlockType = type[BasicBlock] | type[Bottleneck]


def make_res_layer(block: BlockType, in_channels: int, channels: int, num_blocks: int,
                   stride: int = 1) -> nn.Sequential:
    """``num_blocks`` residual blocks; the first gets a 1x1 conv-BN shortcut when the shape changes."""
    downsample = None
    out_channels = channels * block.expansion
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
        )
    layers = [block(in_channels, channels, stride, downsample)]
    layers += [block(out_channels, channels) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches (one per resolution, resolution halves from branch i to i+1) and the exchange unit.

    ``forward(xs)``: ``xs`` list of ``num_branches`` tensors ``(B, in_channels[i], H/2^i, W/2^i)``; returns the
    fused list (``num_branches`` tensors, or only the highest resolution when ``multi_scale_output=False``).
    Fusion into branch i: sum over j of x_j (j == i), 1x1 conv-BN + nearest upsampling (j > i), or a chain of
    stride-2 3x3 conv-BN (j < i; ReLU between them, none after the last), then ReLU.
    """

    def __init__(self, block: BlockType, num_blocks: Sequence[int], in_channels: Sequence[int],
                 channels: Sequence[int], multi_scale_output: bool = True):
        super().__init__()
        n = len(channels)
        if not (len(num_blocks) == len(in_channels) == n) or n < 1:
            raise ValueError(f"HighResolutionModule: num_blocks {list(num_blocks)}, in_channels {list(in_channels)} "
                             f"and channels {list(channels)} must have the same non-zero length")
        self.num_branches = n
        self.multi_scale_output = multi_scale_output
        self.branches = nn.ModuleList(
            make_res_layer(block, in_channels[i], channels[i], num_blocks[i]) for i in range(n))
        self.out_channels = [c * block.expansion for c in channels]
        self.fuse_layers = self._make_fuse_layers(self.out_channels) if n > 1 else None
        self.relu = nn.ReLU(inplace=True)

    def _make_fuse_layers(self, ch: list[int]) -> nn.ModuleList:
        n = len(ch)
        rows = []
        for i in range(n if self.multi_scale_output else 1):
            row: list[nn.Module | None] = []
            for j in range(n):
                if j > i:
                    row.append(nn.Sequential(
                        nn.Conv2d(ch[j], ch[i], kernel_size=1, bias=False),
                        nn.BatchNorm2d(ch[i], momentum=BN_MOMENTUM),
                        nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                    ))
                elif j == i:
                    row.append(None)
                else:
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out = ch[i] if last else ch[j]
                        layers: list[nn.Module] = [conv3x3(ch[j], out, stride=2),
                                                   nn.BatchNorm2d(out, momentum=BN_MOMENTUM)]
                        if not last:
                            layers.append(nn.ReLU(inplace=True))
                        steps.append(nn.Sequential(*layers))
                    row.append(nn.Sequential(*steps))
            rows.append(nn.ModuleList(row))
        return nn.ModuleList(rows)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(xs) != self.num_branches:
            raise ValueError(f"HighResolutionModule expects {self.num_branches} inputs, got {len(xs)}")
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + (xs[j] if j == i else row[j](xs[j]))
            out.append(self.relu(y))
        return out


def make_transition(pre_channels: Sequence[int], cur_channels: Sequence[int]) -> nn.ModuleList:
    """Transition between stages: existing branches get a 3x3 conv-BN-ReLU only if their width changes
    (else ``None``); each new branch is a chain of stride-2 3x3 conv-BN-ReLU from the lowest resolution."""
    layers: list[nn.Module | None] = []
    n_pre = len(pre_channels)
    for i, c in enumerate(cur_channels):
        if i < n_pre:
            if c != pre_channels[i]:
                layers.append(nn.Sequential(conv3x3(pre_channels[i], c), nn.BatchNorm2d(c, momentum=BN_MOMENTUM),
                                            nn.ReLU(inplace=True)))
            else:
                layers.append(None)
        else:
            steps = []
            for k in range(i + 1 - n_pre):
                cin = pre_channels[-1]
                cout = c if k == i - n_pre else cin
                steps.append(nn.Sequential(conv3x3(cin, cout, stride=2), nn.BatchNorm2d(cout, momentum=BN_MOMENTUM),
                                           nn.ReLU(inplace=True)))
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


def make_stage(block: BlockType, num_modules: int, num_blocks: Sequence[int], in_channels: Sequence[int],
               channels: Sequence[int], multi_scale_output: bool = True) -> nn.Sequential:
    """``num_modules`` HighResolutionModules in sequence; only the last one may drop the lower outputs."""
    modules = []
    cin = list(in_channels)
    for m in range(num_modules):
        last = m == num_modules - 1
        mod = HighResolutionModule(block, num_blocks, cin, channels, multi_scale_output or not last)
        cin = mod.out_channels
        modules.append(mod)
    return nn.Sequential(*modules)


def apply_transition(transition: nn.ModuleList, ys: list[torch.Tensor]) -> list[torch.Tensor]:
    """Inputs of the next stage: existing branches (possibly re-projected), new ones from the lowest one."""
    out = []
    for i, layer in enumerate(transition):
        src = ys[i] if i < len(ys) else ys[-1]
        out.append(src if layer is None else layer(src))
    return out


def _add(taps: list[torch.Tensor], lateral: list[torch.Tensor] | None) -> list[torch.Tensor]:
    if lateral is None:
        return taps
    if len(lateral) != len(taps):
        raise ValueError(f"lateral features: expected {len(taps)} tensors, got {len(lateral)}")
    return [t + lat for t, lat in zip(taps, lateral)]


class HRNet(nn.Module):
    """HRNet pose network.

    Args:
        num_keypoints: K, heatmap channels.
        width: W, channels of the highest-resolution branch (32 or 48 for the released models).
        num_modules: HighResolutionModules in stages 2, 3, 4.
        num_blocks: BasicBlocks per branch in every module.
        layer1_blocks: Bottlenecks in ``layer1``.
        stem: True for the image stem (two stride-2 3x3 convs to 64 channels). False drops it: the input is
            then a feature map ``(B, in_channels, H/4, W/4)`` fed straight to ``layer1`` (used by the refinement
            stage of Multi-Stage HRNet).
        in_channels: input channels (3 for an RGB crop; the feature width when ``stem=False``).
        final_conv_kernel: 1 (released configs) or 3.

    ``forward(x, return_all=False)``: ``x (B, 3, H, W) float32`` normalised crop -> heatmaps
    ``(B, K, H/4, W/4)``; with ``return_all`` -> ``[[heatmaps]]`` (one stage, one scale).
    """

    def __init__(self, num_keypoints: int = 17, width: int = 32, num_modules: Sequence[int] = (1, 4, 3),
                 num_blocks: int = 4, layer1_blocks: int = 4, stem: bool = True, in_channels: int = 3,
                 final_conv_kernel: int = 1):
        super().__init__()
        if len(num_modules) != 3:
            raise ValueError(f"HRNet: num_modules must give stages 2, 3 and 4, got {list(num_modules)}")
        if final_conv_kernel not in (1, 3):
            raise ValueError(f"HRNet: final_conv_kernel must be 1 or 3, got {final_conv_kernel}")
        self.family = HRNET.name
        self.arch = "hrnet"
        self.num_keypoints = int(num_keypoints)
        self.width = int(width)
        self.has_stem = bool(stem)
        self.in_channels = int(in_channels)
        if stem:
            self.conv1 = conv3x3(in_channels, 64, stride=2)
            self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
            self.conv2 = conv3x3(64, 64, stride=2)
            self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
            layer1_in = 64
        else:
            layer1_in = in_channels
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_res_layer(Bottleneck, layer1_in, 64, layer1_blocks)
        pre = [64 * Bottleneck.expansion]
        widths = [width * 2 ** i for i in range(4)]
        for s, modules in enumerate(num_modules):
            cur = widths[: s + 2]
            setattr(self, f"transition{s + 1}", make_transition(pre, cur))
            stage = make_stage(BasicBlock, modules, [num_blocks] * len(cur), cur, cur,
                               multi_scale_output=s < len(num_modules) - 1)
            setattr(self, f"stage{s + 2}", stage)
            pre = cur
        self.final_layer = nn.Conv2d(width, num_keypoints, kernel_size=final_conv_kernel, stride=1,
                                     padding=1 if final_conv_kernel == 3 else 0)
        self._init_weights()

    def _init_weights(self) -> None:
        # The authors' init_weights: conv N(0, 0.001), BN weight 1 / bias 0, conv bias 0.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor,
                         laterals: list[list[torch.Tensor]] | None = None) -> list[list[torch.Tensor]]:
        """Outputs of ``layer1`` and of stages 2, 3, 4: ``[[l1], [s2_0, s2_1], [s3_0..s3_2], [s4_0]]``; entry i of
        a list has resolution 1/(4*2^i) of the input image. ``laterals`` (same structure) are added to each output
        before it feeds the next part (Multi-Stage HRNet's cross-stage aggregation); the returned taps include them.
        """
        if laterals is not None and len(laterals) != 4:
            raise ValueError(f"laterals: expected 4 groups (layer1, stage2..4), got {len(laterals)}")
        lat = (lambda i: None) if laterals is None else (lambda i: laterals[i])
        # The lowest branch is at 1/32 (1/8 of a stem-less input): other sizes break the fusion's upsampling.
        mult = 32 if self.has_stem else 8
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] % mult or x.shape[3] % mult:
            raise ValueError(f"HRNet input: expected (B, {self.in_channels}, H, W) with H and W multiples of {mult}, "
                             f"got {tuple(x.shape)}")
        if self.has_stem:
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.relu(self.bn2(self.conv2(x)))
        taps = [_add([self.layer1(x)], lat(0))]
        ys = taps[0]
        for s in range(3):
            xs = apply_transition(getattr(self, f"transition{s + 1}"), ys)
            ys = _add(getattr(self, f"stage{s + 2}")(xs), lat(s + 1))
            taps.append(ys)
        return taps

    def forward(self, x: torch.Tensor, return_all: bool = False):
        heatmaps = self.final_layer(self.forward_features(x)[-1][0])
        return [[heatmaps]] if return_all else heatmaps


HRNET_VARIANTS: dict[str, dict] = {
    "hrnet_w32": {"width": 32, "num_modules": (1, 4, 3), "num_blocks": 4},
    "hrnet_w48": {"width": 48, "num_modules": (1, 4, 3), "num_blocks": 4},
}


def hrnet_w32(num_keypoints: int = 17) -> HRNet:
    return HRNet(num_keypoints=num_keypoints, **HRNET_VARIANTS["hrnet_w32"])


def hrnet_w48(num_keypoints: int = 17) -> HRNet:
    return HRNet(num_keypoints=num_keypoints, **HRNET_VARIANTS["hrnet_w48"])


# ----------------------------------------------------------------------------------------------- checkpoints

def rename_keys(state_dict: dict[str, torch.Tensor], rules: Sequence[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Rename keys by the first matching ``(old_prefix, new_prefix)`` rule; other keys are kept unchanged (a
    strict load then reports them). Two keys landing on the same name raise ``ValueError``."""
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in state_dict.items():
        new = key
        for old_prefix, new_prefix in rules:
            if key.startswith(old_prefix):
                new = new_prefix + key[len(old_prefix):]
                break
        if new in out:
            raise ValueError(f"checkpoint keys {origin[new]!r} and {key!r} both map to {new!r}")
        out[new] = value
        origin[new] = key
    return out


def _from_official(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return dict(sd)  # our layout is the official one


def _from_mmpose0x(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return rename_keys(sd, [("backbone.", ""), ("keypoint_head.final_layer.", "final_layer.")])


def _from_mmpose1x(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return rename_keys(sd, [("backbone.", ""), ("head.final_layer.", "final_layer.")])


CHECKPOINT_REMAPS: dict[str, Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]] = {
    "official": _from_official,
    "mmpose0x": _from_mmpose0x,
    "mmpose1x": _from_mmpose1x,
}


for _name, _builder, _what in (("hrnet_w32", hrnet_w32, "HRNet-W32"), ("hrnet_w48", hrnet_w48, "HRNet-W48")):
    register(ModelSpec(_name, _builder, HRNET, layout=COCO17, input_size=(192, 256),
                       checkpoint_remaps=CHECKPOINT_REMAPS,
                       description=f"{_what} (Sun et al., CVPR 2019), COCO-17, 256x192 input"))
