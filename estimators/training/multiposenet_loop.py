"""The three MultiPoseNet training stages (paper sec. 3.5): :func:`train_multiposenet` runs one recipe whose
``stage`` is ``multiposenet_keypoint``, ``multiposenet_detection`` or ``multiposenet_prn``.

1. keypoint: backbone + keypoint FPN + keypoint subnet on 480x480 patches (:class:`KeypointDataset`), masked L2
   with intermediate supervision (:func:`keypoint_loss`), Adam 1e-4 reduced x0.1 on plateaux of the epoch loss;
   the person subnet is not in the optimiser. ``multiposenet.backbone_weights`` (a torchvision ImageNet ResNet
   state dict) starts the backbone, as the paper does.
2. detection: backbone, keypoint FPN and keypoint subnet frozen (no gradients, BatchNorm on its running
   statistics), the person subnet's FPN and RetinaNet head trained on images of shorter side 800 with
   torchvision's RetinaNet losses (:func:`detection_loss`), Adam 1e-5.
3. prn: the PRN alone from keypoint annotations (COCO files + PoseTrack sequences, no images;
   :class:`PRNDataset`), BCE (:func:`prn_loss`), Adam 1e-4, curriculum order. The UCR baseline's prior
   (:func:`estimators.multiposenet.ucr_prior`) is learned from the same people and stored with the checkpoint.

Each stage starts from ``model.init_checkpoint`` (the previous stage's) and writes ``last.pt`` (every
``multiposenet.save_every`` epochs and at the end): ``{"network", "prn", "ucr_prior" (stage 3, or inherited),
"stage", "epoch", "step", "config"}``, read by the next stage and by
:func:`estimators.multiposenet.create_multiposenet_estimator` (strict, ``weights_only=True``). No optimiser
state is saved (MultiPoseNet stages do not resume). Logs: ``train_log.csv`` (per step), ``config.yaml``.
Single process (no DDP).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from configs.loader import save_yaml, to_dict

from ..multiposenet import (
    PRN_SIZE,
    MultiPoseNet,
    MultiPoseNetWeightsError,
    PoseResidualNetwork,
    build_multiposenet,
    ucr_prior,
)
from . import distributed as ddp
from .checkpointing import CHECKPOINT_LAST
from .config import TrainConfig, TrainError
from .datasets import expand_annotation_paths
from .logs import RunLogs, progress_bar
from .loop import lr_factor
from .multiposenet_data import (
    DetectionDataset,
    KeypointDataset,
    PRNDataset,
    coco_prn_frames,
    collate_detection,
    load_coco_images,
    posetrack_prn_frames,
    prn_samples,
)
from .multiposenet_losses import detection_loss, keypoint_loss, prn_loss


# ------------------------------------------------------------------------------------------------ forwards
def keypoint_forward(net: MultiPoseNet, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The keypoint half of :meth:`MultiPoseNet.forward`: x (B, 3, H, W) -> (heatmaps (B, 18, H/4, W/4), the 4
    intermediate maps)."""
    out = net(x, detection=False)
    return out["heatmaps"], out["intermediate"]


def detection_forward(net: MultiPoseNet, x: torch.Tensor, frozen: bool = True) -> tuple[dict, list[torch.Tensor]]:
    """The person half of :meth:`MultiPoseNet.forward`: (head outputs ``cls_logits`` (B, A, 1) /
    ``bbox_regression`` (B, A, 4), anchors: B tensors (A, 4) xyxy input px); the backbone without gradients
    when ``frozen``."""
    from torchvision.models.detection.image_list import ImageList

    with torch.set_grad_enabled(not frozen and torch.is_grad_enabled()):
        c = net.features(x)
    p = list(net.detection_fpn({str(i): t for i, t in enumerate(c[1:])}).values())
    head = net.detection_head(p)
    anchors = net.anchor_generator(ImageList(x, [tuple(x.shape[-2:])] * x.shape[0]), p)
    return head, anchors


# ------------------------------------------------------------------------------------------------ checkpoints
def read_stage_checkpoint(path: str | os.PathLike) -> dict:
    """A MultiPoseNet checkpoint (``torch.load(weights_only=True)``) with the ``network`` and ``prn`` state dicts."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as e:
        raise MultiPoseNetWeightsError(f"{path}: cannot read a MultiPoseNet checkpoint: {e}") from None
    missing = [k for k in ("network", "prn") if not isinstance(obj, dict) or not isinstance(obj.get(k), dict)]
    if missing:
        raise MultiPoseNetWeightsError(f"{path}: a MultiPoseNet checkpoint needs the state dicts {missing}")
    return obj


def save_stage_checkpoint(path: Path, network: nn.Module, prn: nn.Module, prior: torch.Tensor | None, cfg: TrainConfig,
                          epoch: int, step: int) -> None:
    """Write the stage's weights atomically (see the module docstring for the keys)."""
    obj = {"network": network.state_dict(), "prn": prn.state_dict(), "stage": cfg.stage, "epoch": epoch,
           "step": step, "config": to_dict(cfg)}
    if prior is not None:
        obj["ucr_prior"] = prior
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------ run
@dataclass
class StageResult:
    """Per step (step, loss, lr); the epoch mean losses; the checkpoint; seconds. For the keypoint stage
    ``final_losses`` are the final output's loss terms (without the intermediate levels)."""

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    final_losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    checkpoint: str | None = None
    output_dir: str = ""
    seconds: float = 0.0


def _trainable(module: nn.Module, on: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(on)


def _bn_eval(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _prn_data(cfg: TrainConfig) -> tuple[PRNDataset, torch.Tensor]:
    frames = []
    for f in expand_annotation_paths(cfg.data.train_annotations):
        frames += coco_prn_frames(f)
    if cfg.multiposenet.posetrack_annotations:
        frames += posetrack_prn_frames(expand_annotation_paths(cfg.multiposenet.posetrack_annotations))
    if not frames:
        raise TrainError("data.train_annotations / multiposenet.posetrack_annotations: no annotated frame")
    m = cfg.multiposenet
    samples = prn_samples(frames, m.min_keypoints, m.curriculum)
    if not samples:
        raise TrainError(f"multiposenet.min_keypoints: no person has {m.min_keypoints} labelled keypoints")
    kps = np.stack([frames[s.frame].keypoints[s.person] for s in samples])
    vis = np.stack([frames[s.frame].visible[s.person] for s in samples])
    boxes = np.stack([frames[s.frame].boxes[s.person] for s in samples])
    prior = torch.from_numpy(ucr_prior(kps, vis, boxes, PRN_SIZE))
    return PRNDataset(frames, samples, cfg.input_size, m.peak_sigma, m.target_sigma), prior


def _build(cfg: TrainConfig) -> tuple[MultiPoseNet, PoseResidualNetwork, torch.Tensor | None]:
    network, prn, prior = build_multiposenet(cfg.model.name), PoseResidualNetwork(), None
    if cfg.model.init_checkpoint:
        obj = read_stage_checkpoint(cfg.model.init_checkpoint)
        for name, module in (("network", network), ("prn", prn)):
            try:
                module.load_state_dict(obj[name], strict=True)
            except RuntimeError as e:
                raise TrainError(f"model.init_checkpoint: {cfg.model.init_checkpoint}: {name!r} does not match "
                                 f"{cfg.model.name}: {e}") from None
        if isinstance(obj.get("ucr_prior"), torch.Tensor):
            prior = obj["ucr_prior"]
    elif cfg.multiposenet.backbone_weights:
        sd = torch.load(cfg.multiposenet.backbone_weights, map_location="cpu", weights_only=True)
        try:
            network.load_backbone(sd)
        except (KeyError, RuntimeError) as e:
            raise TrainError(f"multiposenet.backbone_weights: {cfg.multiposenet.backbone_weights}: {e}") from None
    return network, prn, prior


def train_multiposenet(cfg: TrainConfig) -> StageResult:
    """Run one MultiPoseNet stage recipe on one process (see the module docstring)."""
    if cfg.stage == "topdown":
        raise TrainError("stage: 'topdown' recipes run with estimators.training.loop.train")
    # CPU: denormals in the small late-training gradients cost 10x. Flushing them is processor state of the
    # whole process, so it is undone when the stage ends (a process starts without it).
    # The same for cpu_threads (torch's intra-op thread count is per process).
    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)
    try:
        return _train_stage(cfg)
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


def _train_stage(cfg: TrainConfig) -> StageResult:
    t0 = time.time()
    device = ddp.resolve_device(cfg.device, ddp.DistInfo())
    if cfg.cpu_threads > 0:
        torch.set_num_threads(cfg.cpu_threads)
    ddp.seed_all(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_yaml(cfg, out / "config.yaml")
    m = cfg.multiposenet

    network, prn, prior = _build(cfg)
    if cfg.stage == "multiposenet_prn":
        dataset, prior = _prn_data(cfg)
        trainable: nn.Module = prn
        loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=not m.curriculum, drop_last=False,
                            num_workers=0)
    else:
        anns = expand_annotation_paths(cfg.data.train_annotations)
        if len(anns) != 1:
            raise TrainError(f"data.train_annotations: a {cfg.stage} stage takes one COCO file, got {len(anns)}")
        coco, images = load_coco_images(anns[0], cfg.data.train_images)
        if cfg.stage == "multiposenet_keypoint":
            if cfg.input_size[0] != cfg.input_size[1]:
                raise TrainError(f"input_size: the keypoint patches are square, got {tuple(cfg.input_size)}")
            dataset = KeypointDataset(coco, images, cfg.input_size[0], cfg.augment, m.heatmap_sigma, m.patch,
                                      m.crowd_max_spread, cfg.seed)
            trainable = nn.ModuleList([network.backbone, network.keypoint_fpn, network.keypoint_subnet])
            collate = None
        else:
            dataset = DetectionDataset(images, m.shorter_side, m.max_side, cfg.augment.flip_prob, cfg.seed)
            trainable = nn.ModuleList([network.detection_fpn, network.detection_head])
            collate = collate_detection
        loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=False,
                            num_workers=cfg.data.workers, collate_fn=collate,
                            generator=torch.Generator().manual_seed(cfg.seed))
    _trainable(network, False)
    _trainable(prn, False)
    _trainable(trainable, True)
    network.to(device)
    prn.to(device)
    steps_per_epoch = min(len(loader), cfg.max_steps_per_epoch or len(loader))
    params = [p for p in trainable.parameters() if p.requires_grad]
    sched = cfg.schedule
    opt_cls = torch.optim.AdamW if sched.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(params, lr=sched.lr, weight_decay=sched.weight_decay)
    if sched.policy == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=sched.gamma, patience=m.patience)
        per_step = None
    else:
        plateau = None
        per_step = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, steps_per_epoch, cfg.epochs, sched))
    logs = RunLogs(out, True, None)
    result = StageResult(output_dir=str(out))
    step = 0
    end_epoch = cfg.epochs if cfg.stop_after_epoch is None else min(cfg.epochs, cfg.stop_after_epoch)
    for epoch in range(end_epoch):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        network.eval()
        prn.eval()
        trainable.train()
        if cfg.batchnorm == "frozen" or cfg.stage != "multiposenet_keypoint":
            _bn_eval(network)  # detection: the frozen backbone's statistics; keypoint: "frozen" recipes
        bar = progress_bar(cfg.progress, steps_per_epoch, f"{cfg.stage} epoch {epoch + 1}/{cfg.epochs}")
        epoch_losses = []
        for i, batch in enumerate(loader):
            if i >= steps_per_epoch:
                break
            x = batch["input"].to(device)
            if cfg.stage == "multiposenet_keypoint":
                final, inter = keypoint_forward(network, x)
                loss, last = keypoint_loss(final, inter, batch["target"].to(device), batch["mask"].to(device))
                result.final_losses.append(last.item())
            elif cfg.stage == "multiposenet_detection":
                head, anchors = detection_forward(network, x)
                parts = detection_loss(network, head, anchors, [b.to(device) for b in batch["boxes"]], m.fg_iou,
                                       m.bg_iou)
                loss = parts["classification"] + parts["bbox_regression"]
            else:
                loss = prn_loss(prn(x), batch["target"].to(device), batch["weight"].to(device))
            if not torch.isfinite(loss):
                raise TrainError(f"loss is {loss.item()} at epoch {epoch + 1} step {step}; lower schedule.lr or set "
                                 f"grad_clip")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            lr = optimizer.param_groups[0]["lr"]
            if per_step is not None:
                per_step.step()
            step += 1
            v = loss.item()
            epoch_losses.append(v)
            result.steps.append(step)
            result.losses.append(v)
            result.lrs.append(lr)
            if step % cfg.log_every == 0:
                logs.step(epoch + 1, step, v, lr)
            if bar is not None:
                bar.set_postfix(loss=f"{v:.4g}", lr=f"{lr:.2g}")
                bar.update(1)
        if bar is not None:
            bar.close()
        mean = float(np.mean(epoch_losses)) if epoch_losses else math.nan
        result.epoch_losses.append(mean)
        if plateau is not None:
            plateau.step(mean)
        if (m.save_every and (epoch + 1) % m.save_every == 0) or epoch + 1 == end_epoch:
            save_stage_checkpoint(out / CHECKPOINT_LAST, network, prn, prior, cfg, epoch + 1, step)
            result.checkpoint = str(out / CHECKPOINT_LAST)
    logs.close()
    result.seconds = time.time() - t0
    if cfg.progress:
        print(f"done: {cfg.stage}, {step} steps, first loss {result.losses[0]:.6g}, last {result.losses[-1]:.6g}, "
              f"{result.seconds:.1f} s, checkpoint {result.checkpoint}", flush=True)
    return result


__all__ = ["StageResult", "detection_forward", "keypoint_forward", "read_stage_checkpoint", "save_stage_checkpoint",
           "train_multiposenet"]
