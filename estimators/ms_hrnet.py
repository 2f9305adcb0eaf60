"""Multi-Stage HRNet (Huang, Zhu, Huang, "Multi-Stage HRNet", COCO 2019 challenge technical report): two HRNets
cascaded with cross-stage feature aggregation, heatmaps from every stage, the last one used at test time.

Our reading of the report (section 3.1; no code was released, the MXNet implementation is not public):
- "multiple high-resolution networks are cascaded to refine the pose results": stage 1 is a complete HRNet
  (exactly ``estimators.hrnet.HRNet``, so an HRNet checkpoint initialises it, see ``init_from_hrnet``).
  Stage 2 refines stage 1's result: like MSPN (which the report follows), it takes the previous stage's final
  feature map (the highest-resolution output of stage 1, ``(B, W, H/4, W/4)``) instead of the image, so it
  has no stride-2 stem and its ``layer1`` starts from W channels instead of 64.
- "Feature maps yielded by each high resolution block are delivered to the corresponding positions of the next
  stage by performing plus operation": a "high resolution block" is read as each of HRNet's parts that emit
  feature maps, i.e. ``layer1`` and stages 2, 3, 4; every resolution branch they output in stage 1 is ADDED
  (plain addition, no extra conv: the report says "plus") to the same output of stage 2 before it feeds the
  next part. Stage 4 of a pose HRNet only outputs the highest resolution (its last module fuses into branch 0
  only), so that is what is delivered there.
- Each stage has its own 1x1 ``final_layer``; ``forward(return_all=True)`` gives ``[[hm_stage1], [hm_stage2]]``
  for intermediate supervision, ``forward()`` the stage-2 heatmaps.

Departures: the report's 118.2M parameters for "HRNet-W48 * 2" are not reproduced (the report does not say
which parts it shares or drops). Ours: ms_hrnet_w32 57,023,138 and ms_hrnet_w48 127,147,522 parameters
(= 2 x HRNet - stem - layer1.0's 64-channel 1x1 conv and shortcut + the same two taking W channels).
Layout: ``stages.0.*`` (an HRNet state dict under a prefix) and ``stages.1.*``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from association.keypoints import COCO17

from .hrnet import CHECKPOINT_REMAPS as HRNET_REMAPS
from .hrnet import HRNET_VARIANTS, HRNet
from .registry import register
from .spec import HRNET, ModelSpec


class MultiStageHRNet(nn.Module):
    """Two cascaded HRNets with cross-stage aggregation (see the module docstring).

    Args:
        num_keypoints: K.
        width: W of both stages (32 or 48).
        num_modules: HighResolutionModules in stages 2, 3, 4 of each HRNet.
        num_blocks: BasicBlocks per branch in every module.

    ``forward(x, return_all=False)``: ``x (B, 3, H, W) float32`` normalised crop, H and W multiples of 32 ->
    stage-2 heatmaps ``(B, K, H/4, W/4)``; ``return_all`` -> ``[[hm_stage1], [hm_stage2]]``.
    """

    def __init__(self, num_keypoints: int = 17, width: int = 32, num_modules: Sequence[int] = (1, 4, 3),
                 num_blocks: int = 4):
        super().__init__()
        self.family = HRNET.name
        self.arch = "ms_hrnet"
        self.num_keypoints = int(num_keypoints)
        self.width = int(width)
        first = HRNet(num_keypoints=num_keypoints, width=width, num_modules=num_modules, num_blocks=num_blocks)
        refine = HRNet(num_keypoints=num_keypoints, width=width, num_modules=num_modules, num_blocks=num_blocks,
                       stem=False, in_channels=width)
        self.stages = nn.ModuleList([first, refine])

    def forward(self, x: torch.Tensor, return_all: bool = False):
        first, refine = self.stages
        taps1 = first.forward_features(x)
        feat1 = taps1[-1][0]  # (B, W, H/4, W/4)
        taps2 = refine.forward_features(feat1, laterals=taps1)
        hm2 = refine.final_layer(taps2[-1][0])
        if not return_all:
            return hm2
        return [[first.final_layer(feat1)], [hm2]]


MS_HRNET_VARIANTS: dict[str, dict] = {
    "ms_hrnet_w32": dict(HRNET_VARIANTS["hrnet_w32"]),
    "ms_hrnet_w48": dict(HRNET_VARIANTS["hrnet_w48"]),
}


def ms_hrnet_w32(num_keypoints: int = 17) -> MultiStageHRNet:
    return MultiStageHRNet(num_keypoints=num_keypoints, **MS_HRNET_VARIANTS["ms_hrnet_w32"])


def ms_hrnet_w48(num_keypoints: int = 17) -> MultiStageHRNet:
    return MultiStageHRNet(num_keypoints=num_keypoints, **MS_HRNET_VARIANTS["ms_hrnet_w48"])


# ----------------------------------------------------------------------------------------------- checkpoints

@dataclass
class HRNetInit:
    """What ``init_from_hrnet`` did: stage-1 entries loaded (all of them, strictly), stage-2 entries copied from
    the same HRNet weights (only with ``refine_stage=True``) and stage-2 entries left as they were."""

    stage1_loaded: int
    stage2_copied: list[str] = field(default_factory=list)
    stage2_kept: list[str] = field(default_factory=list)


def init_from_hrnet(model: MultiStageHRNet, hrnet_state_dict: dict[str, torch.Tensor], source: str = "official",
                    refine_stage: bool = False, origin: str = "HRNet state dict") -> HRNetInit:
    """Initialise stage 1 of ``model`` from an HRNet state dict (unwrapped, e.g. from
    ``checkpoints.load_state_dict_file``), remapped with ``estimators.hrnet.CHECKPOINT_REMAPS[source]``.

    Stage 1 is loaded strictly: missing keys, unexpected keys, shape mismatches and non-finite values are reported
    together in one ``CheckpointError`` naming ``origin``. With ``refine_stage=True`` stage 2 also takes every
    entry whose name and shape match (the report initialises every stage from single-stage weights); the stem
    does not exist in stage 2 and ``layer1.0``'s first conv/shortcut differ in shape, so those keep their init.
    """
    from .checkpoints import CheckpointError, check_finite, strict_load

    if not isinstance(model, MultiStageHRNet):
        raise TypeError(f"init_from_hrnet needs a MultiStageHRNet, got {type(model).__name__}")
    if source not in HRNET_REMAPS:
        raise CheckpointError(f"{origin}: unknown HRNet checkpoint source {source!r}; "
                              f"valid: {', '.join(sorted(HRNET_REMAPS))}")
    check_finite(hrnet_state_dict, origin)
    sd = HRNET_REMAPS[source](hrnet_state_dict)
    first, refine = model.stages
    strict_load(first, sd, origin)
    report = HRNetInit(stage1_loaded=len(sd))
    target = refine.state_dict()
    if refine_stage:
        copy = {k: v for k, v in sd.items() if k in target and tuple(target[k].shape) == tuple(v.shape)}
        refine.load_state_dict(copy, strict=False)
        report.stage2_copied = sorted(copy)
        report.stage2_kept = sorted(set(target) - set(copy))
    else:
        report.stage2_kept = sorted(target)
    return report


def _from_official(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # No authors' checkpoint was released: "official" means our own layout (identity). An HRNet checkpoint of any
    # source initialises stage 1 through ``init_from_hrnet``.
    return dict(sd)


def _no_mmpose(source: str) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    def remap(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise ValueError(f"Multi-Stage HRNet has no {source} checkpoints (MMPose has no such model); load an HRNet "
                         f"file into stage 1 with estimators.ms_hrnet.init_from_hrnet(model, sd, source={source!r})")

    return remap


CHECKPOINT_REMAPS: dict[str, Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]] = {
    "official": _from_official,
    "mmpose0x": _no_mmpose("mmpose0x"),
    "mmpose1x": _no_mmpose("mmpose1x"),
}


for _name, _builder, _what in (("ms_hrnet_w32", ms_hrnet_w32, "W32"), ("ms_hrnet_w48", ms_hrnet_w48, "W48")):
    register(ModelSpec(_name, _builder, HRNET, layout=COCO17, input_size=(192, 256),
                       checkpoint_remaps=CHECKPOINT_REMAPS,
                       description=f"Multi-Stage HRNet-{_what} x2 (Huang et al., 2019), COCO-17, 256x192 input"))
