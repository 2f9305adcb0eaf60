"""The ``multiposenet`` section of a training recipe (no torch): settings of the three MultiPoseNet stages.

A recipe's top-level ``stage`` picks what :func:`estimators.training.cli.run_train` runs:
``multiposenet_keypoint`` (backbone + keypoint subnet), ``multiposenet_detection`` (person subnet, backbone and
keypoint subnet frozen) or ``multiposenet_prn`` (the Pose Residual Network alone, from annotations only). The
other sections keep their meaning: ``model.name`` is the variant (``multiposenet_r50`` / ``_r101``),
``model.init_checkpoint`` the previous stage's checkpoint, ``data.train_annotations`` / ``data.train_images``
the COCO files, ``augment`` the random scale / rotation / flip, ``schedule`` Adam and its lr policy
(``plateau``: x ``gamma`` when the epoch's mean loss has not improved for ``patience`` epochs), ``input_size``
the keypoint patch (and the PRN stage's inference input the heatmaps are at).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from configs.loader import ConfigError

STAGES = ("multiposenet_keypoint", "multiposenet_detection", "multiposenet_prn")
# the registered variants (estimators.multiposenet.VARIANTS, which imports torch; a test checks they agree)
MULTIPOSENET_VARIANTS = ("multiposenet_r50", "multiposenet_r101")


@dataclass
class MultiPoseNetTrainConfig:
    """backbone_weights: a torchvision ImageNet ResNet state dict (.pth) loaded before the keypoint stage (the
    paper starts from ImageNet); None = random init. heatmap_sigma: Gaussian std (heatmap cells, stride 4) of
    the keypoint targets. patch: "crowd" = a square around the annotated people (or the main person when they
    spread over more than ``crowd_max_spread`` x its size), "full" = the whole image scaled to fit the input
    and padded right/bottom, exactly as inference frames it. shorter_side / max_side: detection stage image
    size (RetinaNet's 800 / 1333). fg_iou / bg_iou: anchor matching thresholds (RetinaNet 0.5 / 0.4).
    posetrack_annotations: PoseTrack 2017/2018 files or folders added to the PRN stage's COCO annotations (joints
    mapped to COCO-17 where they exist). min_keypoints: PRN instances need at least this many labelled joints
    (paper: 2). peak_sigma: std (heatmap cells) of the PRN input's peak Gaussians (the estimator's ``sigma``);
    target_sigma: std (crop cells) of the PRN target (the authors' 2). curriculum: PRN samples in order of
    keypoint count then box area, descending (easy first), every epoch. save_every: epochs between checkpoints
    (0: only at the end of the run)."""

    backbone_weights: str | None = None
    heatmap_sigma: float = 2.0
    patch: Literal["crowd", "full"] = "crowd"
    crowd_max_spread: float = 2.5
    shorter_side: int = 800
    max_side: int = 1333
    fg_iou: float = 0.5
    bg_iou: float = 0.4
    posetrack_annotations: list[str] = field(default_factory=list)
    min_keypoints: int = 2
    peak_sigma: float = 1.0
    target_sigma: float = 2.0
    curriculum: bool = True
    patience: int = 5
    save_every: int = 0

    def __post_init__(self) -> None:
        for name in ("heatmap_sigma", "peak_sigma", "target_sigma", "crowd_max_spread"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"multiposenet.{name}: must be > 0, got {getattr(self, name)}")
        if self.shorter_side < 32 or self.max_side < self.shorter_side:
            raise ConfigError(f"multiposenet.shorter_side / max_side: need 32 <= shorter_side <= max_side, got "
                              f"{self.shorter_side} / {self.max_side}")
        if not 0 < self.bg_iou <= self.fg_iou <= 1:
            raise ConfigError(f"multiposenet.fg_iou / bg_iou: need 0 < bg_iou <= fg_iou <= 1, got {self.fg_iou} / "
                              f"{self.bg_iou}")
        if self.min_keypoints < 1:
            raise ConfigError(f"multiposenet.min_keypoints: must be >= 1, got {self.min_keypoints}")
        if self.patience < 0 or self.save_every < 0:
            raise ConfigError("multiposenet.patience / save_every: must be >= 0")


__all__ = ["MULTIPOSENET_VARIANTS", "STAGES", "MultiPoseNetTrainConfig"]
