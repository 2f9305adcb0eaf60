"""The network of a recipe and the checkpoints of a run.

- :func:`build_network`: a recipe's ``model`` section -> the network (the estimator factory
  ``estimators.factory.build_model`` for a registered name, the architecture class with explicit arguments for
  ``model.arch``), then the initial weights (``estimators.checkpoints.load_weights``) for fine-tuning.
- :func:`save_checkpoint` / :func:`load_resume_state`: ``last.pt`` / ``best.pt`` hold the model, optimiser,
  scheduler, grad scaler, epoch, step, best metric, RNG states and the recipe; the keypoint layout is stored as
  ``meta.dataset_meta`` so ``estimators.checkpoints.load_weights`` (and so ``create_estimator``) reads it back.
- :func:`model_from_checkpoint`: rebuild the network of a checkpoint written by a run.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from association.keypoints import KeypointLayout
from configs.loader import from_dict, to_dict

from .config import ModelConfig, TrainConfig, TrainError
from .datasets import dataset_layout
from .distributed import rng_state

CHECKPOINT_LAST = "last.pt"
CHECKPOINT_BEST = "best.pt"


def build_network(cfg: ModelConfig) -> nn.Module:
    """The network of a ModelConfig (random weights, then ``init_checkpoint`` if given)."""
    if cfg.arch is not None:
        model = _build_architecture(cfg.arch, cfg.kwargs)
    else:
        from ..factory import build_model

        try:
            model = build_model(cfg.name, **cfg.kwargs)
        except TypeError as exc:
            raise TrainError(f"model.kwargs: {exc}") from None
    if cfg.init_checkpoint:
        from ..checkpoints import load_weights

        load_weights(model, cfg.init_checkpoint, cfg.init_source)
    return model


def _build_architecture(arch: str, kwargs: dict) -> nn.Module:
    """``model.arch`` + ``model.kwargs``: an architecture class with explicit constructor arguments (small
    variants that have no registered name)."""
    if arch == "hrnet":
        from ..hrnet import HRNet as cls
    elif arch == "ms_hrnet":
        from ..ms_hrnet import MultiStageHRNet as cls
    elif arch == "mspn":
        from ..mspn import MSPN as cls
    elif arch == "rsn":
        from ..rsn import RSN as cls
    else:
        raise TrainError(f"model.arch: must be one of hrnet, ms_hrnet, mspn, rsn; got {arch!r}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise TrainError(f"model.kwargs: {exc}") from None


def run_name(cfg: ModelConfig) -> str:
    """The model's name in tables: the architecture for ``model.arch`` runs, else the registered name."""
    return cfg.arch or cfg.name


# ------------------------------------------------------------------------------------------- checkpoints
def _atomic_save(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    scaler: Any, epoch: int, step: int, best_metric: float, cfg: TrainConfig,
                    layout: KeypointLayout) -> None:
    """Write a run's full state to ``path`` atomically (``epoch`` = epochs done)."""
    _atomic_save(path, {
        "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(), "epoch": epoch, "step": step, "best_metric": best_metric, "rng": rng_state(),
        "config": to_dict(cfg), "arch": getattr(model, "arch", ""), "family": getattr(model, "family", ""),
        "meta": {"dataset_meta": layout.to_meta()}})


def resume_path(resume: str | None, out: Path) -> str | None:
    """The checkpoint a run resumes from: ``resume`` "auto" -> ``out/last.pt`` when it exists; a path must exist."""
    if resume == "auto":
        return str(out / CHECKPOINT_LAST) if (out / CHECKPOINT_LAST).is_file() else None
    if resume and not os.path.isfile(resume):
        raise FileNotFoundError(f"resume checkpoint not found: {resume}")
    return resume or None


def load_resume_state(path: str, *, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                      scaler: Any, use_amp: bool) -> tuple[int, int, float, dict]:
    """Restore model, optimiser, scheduler (and grad scaler under AMP) in place from a run checkpoint.

    Returns (epochs done, step, best metric, the saved RNG state for ``distributed.set_rng_state``).
    """
    ck = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(ck["state_dict"])
    optimizer.load_state_dict(ck["optimizer"])
    scheduler.load_state_dict(ck["scheduler"])
    if "scaler" in ck and use_amp:
        scaler.load_state_dict(ck["scaler"])
    return int(ck["epoch"]), int(ck["step"]), float(ck["best_metric"]), ck["rng"]


def model_from_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, TrainConfig, KeypointLayout]:
    """Rebuild the network saved by a training run (its recipe is stored in the checkpoint) and load it.

    Returns (network on CPU, the run's TrainConfig, its keypoint layout: the checkpoint's ``meta``, else the
    dataset's).
    """
    from ..checkpoints import NATIVE_SOURCE, load_weights_object, read_checkpoint_file

    obj = read_checkpoint_file(path)
    if not isinstance(obj, dict) or not isinstance(obj.get("config"), dict):
        raise TrainError(f"{path}: not a checkpoint written by `posetrack train` (no 'config'); pass --estimator")
    cfg = from_dict(TrainConfig, obj["config"], f"{path}['config']")
    model = build_network(dataclasses.replace(cfg.model, init_checkpoint=None))
    _, layout = load_weights_object(model, obj, str(path), NATIVE_SOURCE)
    return model, cfg, layout if layout is not None else dataset_layout(cfg.data.dataset)


__all__ = ["CHECKPOINT_BEST", "CHECKPOINT_LAST", "build_network", "load_resume_state", "model_from_checkpoint",
           "resume_path", "run_name", "save_checkpoint"]
