"""The typed training recipe: one YAML file (``configs/train_*.yaml``, a shipped preset) -> :class:`TrainConfig`.

Loaded with ``configs.load_yaml`` (unknown keys rejected, dotted ``key=value`` overrides). No torch here, so a
typo in a recipe or an override is reported before torch is imported.

Sections: ``model`` (a registered name, or an architecture with explicit constructor arguments for small
variants; optional initial weights), ``data`` (COCO or PoseTrack annotation files and image folders),
``augment`` (:class:`estimators.training.augmentation.AugmentParams`, the value object the dataset takes),
``schedule`` (Adam/AdamW, the lr policy), and the run settings at the top level.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from configs import resolve_preset
from configs.loader import ConfigError, load_yaml

from .augmentation import AugmentParams
from .multiposenet_config import MULTIPOSENET_VARIANTS, STAGES, MultiPoseNetTrainConfig

ARCHITECTURES = ("hrnet", "ms_hrnet", "mspn", "rsn")


class TrainError(ValueError):
    """A training setup that cannot run (names the config key)."""


@dataclass
class ModelConfig:
    """name: registry name (e.g. hrnet_w32). arch + kwargs: build ``hrnet`` / ``ms_hrnet`` / ``mspn`` /
    ``rsn`` with explicit constructor arguments (small variants). init_checkpoint / init_source: weights to
    start from (fine-tuning from a COCO checkpoint; source "native" for our own checkpoints)."""

    name: str = "hrnet_w32"
    arch: str | None = None
    kwargs: dict = field(default_factory=dict)
    init_checkpoint: str | None = None
    init_source: str = "native"

    def __post_init__(self) -> None:
        if self.arch is not None and self.arch not in ARCHITECTURES:
            raise ConfigError(f"model.arch: must be one of {list(ARCHITECTURES)}, got {self.arch!r}")


@dataclass
class DataConfig:
    """dataset: "coco" or "posetrack". *_annotations: COCO json file(s) / PoseTrack sequence files or folders.
    *_images: the COCO image folder / the PoseTrack root the file names are relative to. val_detections: a
    COCO detection results file (None: GT boxes) filtered at det_score_threshold. workers: loader processes."""

    dataset: Literal["coco", "posetrack"] = "coco"
    train_annotations: list[str] = field(default_factory=list)
    train_images: str = ""
    val_annotations: list[str] = field(default_factory=list)
    val_images: str = ""
    val_detections: str | None = None
    det_score_threshold: float = 0.0
    workers: int = 4


# The augment section of a recipe is the value object the dataset takes (one definition, validated there).
AugmentConfig = AugmentParams


@dataclass
class ScheduleConfig:
    """Adam; lr schedule stepped per iteration. policy "step": lr x gamma at every epoch in milestones;
    "linear": lr decays linearly to 0 at the end of the last epoch."""

    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    policy: Literal["step", "linear", "plateau"] = "step"  # plateau: MultiPoseNet stages only (per epoch)
    milestones: list[int] = field(default_factory=lambda: [170, 200])
    gamma: float = 0.1


@dataclass
class TrainConfig:
    # what runs: the top-down loop, or a MultiPoseNet stage (estimators.training.multiposenet_loop)
    stage: Literal["topdown", "multiposenet_keypoint", "multiposenet_detection", "multiposenet_prn"] = "topdown"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    multiposenet: MultiPoseNetTrainConfig = field(default_factory=MultiPoseNetTrainConfig)
    input_size: tuple[int, int] = (192, 256)  # (w, h) network input
    sigma: float | None = None  # HRNet Gaussian sigma; None = 2 at 256 px height, proportional
    batch_size: int = 32  # GLOBAL batch (all processes together)
    epochs: int = 210
    ohkm: bool = False  # HRNet only (MSPN/RSN always use OHKM on the last unit)
    batchnorm: Literal["batch", "sync", "frozen"] = "batch"
    amp: bool = True  # mixed precision (GPU only; ignored on CPU)
    grad_clip: float | None = None  # max gradient norm
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms
    device: str = "auto"  # auto | cpu | cuda
    cpu_threads: int = 0  # torch intra-op threads per process (0 = torch's default)
    output_dir: str = "runs/train"
    resume: str | None = None  # "auto" (output_dir/last.pt if present) or a checkpoint path
    val_every: int = 1  # epochs; 0 = never
    val_flip_test: bool = True
    oks_nms: float | None = 0.9  # HRNet 0.9; MSPN/RSN null
    max_steps_per_epoch: int | None = None  # cap (smoke runs)
    stop_after_epoch: int | None = None  # end this run after this many epochs (time budget / interruption)
    log_every: int = 1  # steps between CSV rows
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {self.batch_size}")
        if self.epochs < 1:
            raise ConfigError(f"epochs: must be >= 1, got {self.epochs}")
        w, h = self.input_size
        if w % 32 or h % 32:
            raise ConfigError(f"input_size: (w, h) must be multiples of 32, got {tuple(self.input_size)}")
        if self.stage == "topdown" and self.schedule.policy == "plateau":
            raise ConfigError("schedule.policy: 'plateau' is for the MultiPoseNet stages (stage: multiposenet_*)")
        if self.stage in STAGES:
            if self.model.name not in MULTIPOSENET_VARIANTS:
                raise ConfigError(f"model.name: a {self.stage} stage trains one of {list(MULTIPOSENET_VARIANTS)}, "
                                  f"got {self.model.name!r}")
            if self.resume is not None or self.data.val_annotations:
                raise ConfigError("resume / data.val_annotations: not supported by the MultiPoseNet stages (each stage "
                                  "starts from model.init_checkpoint; benchmarks/multiposenet_proofs.py evaluates)")


def load_config(path_or_preset: str | os.PathLike | None, overrides: list[str] | None = None) -> TrainConfig:
    """A recipe (a YAML path, or the name of a shipped ``train_<name>.yaml`` preset) + dotted ``key=value``
    overrides -> TrainConfig. None = the defaults."""
    path = resolve_preset("train", os.fspath(path_or_preset) if path_or_preset is not None else None)
    return load_yaml(TrainConfig, path, overrides or [])


__all__ = ["ARCHITECTURES", "AugmentConfig", "DataConfig", "ModelConfig", "ScheduleConfig", "TrainConfig",
           "TrainError", "load_config"]
