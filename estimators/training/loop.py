"""The training loop of the top-down estimators: :func:`train` runs one recipe (:class:`TrainConfig`).

- model: ``model.name`` through the estimator factory, or an architecture with explicit arguments
  (``model.arch`` + ``model.kwargs``); optional initial weights (fine-tuning); the per-family rules (crop,
  normalisation, targets, loss) come from the model's ``estimators.spec.Family``, the flip pairs from the
  dataset's keypoint layout (``COCO17``, or ``POSETRACK18`` for PoseTrack fine-tuning);
- data: COCO (GT boxes for training; GT boxes or a detection file for validation) or PoseTrack 2017/2018
  (:mod:`estimators.training.datasets`);
- Adam with the recipe's schedule, stepped every iteration: ``step`` (x gamma at each milestone epoch:
  HRNet 170/200, PoseTrack fine-tuning 10/15) or ``linear`` (to 0 at the last iteration: MSPN/RSN);
- distributed data parallel when launched by ``torchrun`` (:mod:`estimators.training.distributed`);
  ``batch_size`` is the GLOBAL batch, split evenly over the processes; mixed precision on GPU (``amp``);
  gradient clipping; deterministic seeding (augmentation randomness is per sample: ``default_rng([seed,
  epoch, index])``);
- checkpoints ``last.pt`` every epoch and ``best.pt`` at the best validation metric; ``resume`` restores
  model, optimiser, scheduler, grad scaler, epoch, step, best metric and RNG states
  (:mod:`estimators.training.checkpointing`);
- validation every ``val_every`` epochs: COCO keypoint AP table (OKS-NMS for HRNet) or PoseTrack mAP;
- logs (:mod:`estimators.training.logs`): a progress bar per epoch, ``train_log.csv``, ``val_log.csv``,
  TensorBoard when installed, a final summary.

BatchNorm: with ``batchnorm: batch`` each process normalises with its own per-process batch statistics
(standard DDP behaviour); ``sync`` converts to SyncBatchNorm (GPU only: torch has no CPU SyncBatchNorm);
``frozen`` uses the running statistics (BN in eval mode, affine parameters still trained), which makes a
multi-process run mathematically equal to a single-process run of the same global batch.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler

from association.keypoints import KeypointLayout
from configs.loader import save_yaml

from ..spec import Family, get_family
from . import distributed as ddp
from .checkpointing import (
    CHECKPOINT_BEST,
    CHECKPOINT_LAST,
    build_network,
    load_resume_state,
    resume_path,
    run_name,
    save_checkpoint,
)
from .config import ScheduleConfig, TrainConfig, TrainError
from .datasets import PersonSample, TopDownDataset, dataset_layout, expand_annotation_paths, load_samples
from .logs import RunLogs, progress_bar
from .losses import MultiStageLoss

POSETRACK_COLUMNS = ("Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total")


# -------------------------------------------------------------------------------------------- schedule
def lr_factor(step: int, steps_per_epoch: int, epochs: int, sched: ScheduleConfig) -> float:
    """Multiplier of the base lr at iteration ``step`` (0-based, counted over the whole run)."""
    if sched.policy == "linear":
        total = max(1, steps_per_epoch * epochs)
        return max(0.0, 1.0 - step / total)
    epoch = step // max(1, steps_per_epoch)
    return sched.gamma ** sum(1 for m in sched.milestones if epoch >= m)


def make_optimizer(model: nn.Module, sched: ScheduleConfig, steps_per_epoch: int, epochs: int
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Adam / AdamW at ``sched.lr`` with the per-iteration lr schedule of :func:`lr_factor`."""
    opt_cls = torch.optim.AdamW if sched.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=sched.lr, weight_decay=sched.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps_per_epoch, epochs, sched))
    return optimizer, scheduler


def _set_bn_mode(model: nn.Module, mode: str) -> None:
    if mode == "frozen":
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


# ------------------------------------------------------------------------------------------ validation
def validate(model: nn.Module, cfg: TrainConfig, samples: list[PersonSample], device: torch.device, family: Family,
             layout: KeypointLayout, progress: bool = False) -> dict[str, Any]:
    """Validation metric of ``model`` on ``samples`` (the model is left in eval mode).

    COCO: COCOeval keypoints (``metric`` = AP, ``table``, ``stats``); PoseTrack: eval_posetrack mAP
    (``metric`` = Total mAP / 100, ``table``, ``stats`` per column in %).
    """
    from ..topdown import estimate_batch
    from .coco_eval import coco_keypoint_eval, coco_results, format_coco_table, posetrack_map, predict_samples

    model.eval()
    estimate = functools.partial(estimate_batch, model, input_size=cfg.input_size, family=family,
                                 flip_test=cfg.val_flip_test, flip_pairs=layout.flip_pairs, device=device,
                                 max_batch=64)
    pred = predict_samples(estimate, samples, num_keypoints=int(model.num_keypoints), input_size=cfg.input_size,
                           workers=min(cfg.data.workers, 2), progress=progress)
    annotations = expand_annotation_paths(cfg.data.val_annotations)
    if cfg.data.dataset == "coco":
        stats = coco_keypoint_eval(annotations[0], coco_results(samples, pred, cfg.oks_nms))
        return {"metric": stats["AP"], "stats": dict(stats), "table": format_coco_table(stats, run_name(cfg.model))}
    ap = posetrack_map(samples, pred, annotations)
    cols = {k: ap[k] for k in POSETRACK_COLUMNS}
    table = "| " + " | ".join(cols) + " |\n" + "|---" * len(cols) + "|\n| " + \
        " | ".join(f"{v:.1f}" for v in cols.values()) + " |"
    total = cols["Total"]
    return {"metric": 0.0 if total != total else total / 100.0, "stats": cols, "table": "PoseTrack mAP\n" + table}


# ------------------------------------------------------------------------------------------------ train
@dataclass
class TrainResult:
    """Summary of a run: per step (step, loss, lr), per validation (epoch, step, metric, stats, table), paths."""

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    val: list[dict] = field(default_factory=list)
    best_metric: float = -math.inf
    epochs_done: int = 0
    output_dir: str = ""
    seconds: float = 0.0
    last_checkpoint: str | None = None
    best_checkpoint: str | None = None


@dataclass
class _Run:
    """Everything :func:`train` set up for the epochs of one process."""

    cfg: TrainConfig
    info: ddp.DistInfo
    device: torch.device
    out: Path
    model: nn.Module  # the network (checkpoints, validation)
    ddp_model: nn.Module  # what the steps call (the network, or its DistributedDataParallel wrapper)
    family: Family
    layout: KeypointLayout
    criterion: MultiStageLoss
    dataset: TopDownDataset
    sampler: DistributedSampler
    loader: DataLoader
    steps_per_epoch: int
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    use_amp: bool
    val_samples: list[PersonSample] | None
    logs: RunLogs
    step: int = 0
    best: float = -math.inf


def _check_process_setup(cfg: TrainConfig, info: ddp.DistInfo, device: torch.device) -> None:
    if cfg.batch_size % info.world_size:
        raise TrainError(f"batch_size: the global batch {cfg.batch_size} must divide evenly over "
                         f"{info.world_size} processes")
    if cfg.batchnorm == "sync" and device.type != "cuda":
        raise TrainError("batchnorm: 'sync' needs GPUs (torch has no CPU SyncBatchNorm); use 'batch' or 'frozen'")


def _setup(cfg: TrainConfig, info: ddp.DistInfo) -> tuple[_Run, int]:
    """Device, seeds, output folder, model, data, optimiser and resume state. Returns the run and its first
    epoch (0-based)."""
    device = ddp.resolve_device(cfg.device, info)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    _check_process_setup(cfg, info, device)
    if cfg.cpu_threads > 0:
        torch.set_num_threads(cfg.cpu_threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    ddp.seed_all(cfg.seed)
    out = Path(cfg.output_dir)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_yaml(cfg, out / "config.yaml")

    model = build_network(cfg.model)
    family = get_family(model.family)
    layout = dataset_layout(cfg.data.dataset)
    if cfg.batchnorm == "sync" and info.world_size > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)

    train_samples = load_samples(cfg.data, "train")
    val_samples = load_samples(cfg.data, "val") if cfg.val_every > 0 and cfg.data.val_annotations else None
    dataset = TopDownDataset(train_samples, family, layout, cfg.input_size, cfg.augment, cfg.sigma, cfg.seed)
    # The same sampler for 1 and N processes: one permutation per epoch (seed + epoch), split by rank.
    sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=False)
    loader = DataLoader(dataset, batch_size=cfg.batch_size // info.world_size, sampler=sampler,
                        num_workers=cfg.data.workers, drop_last=True, pin_memory=device.type == "cuda",
                        worker_init_fn=ddp.worker_init, persistent_workers=False)
    steps_per_epoch = min(len(loader), cfg.max_steps_per_epoch or len(loader))
    if steps_per_epoch == 0:
        raise TrainError(f"batch_size: {cfg.batch_size} is larger than the training set "
                         f"({len(dataset)} persons); no full batch")
    optimizer, scheduler = make_optimizer(model, cfg.schedule, steps_per_epoch, cfg.epochs)
    use_amp = bool(cfg.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, step, best = 0, 0, -math.inf
    resume = resume_path(cfg.resume, out)
    if resume:
        start_epoch, step, best, rng = load_resume_state(resume, model=model, optimizer=optimizer,
                                                         scheduler=scheduler, scaler=scaler, use_amp=use_amp)
        ddp.set_rng_state(rng)
    logs = RunLogs(out, info.is_main, step if resume else None)
    ddp_model = model
    if info.world_size > 1:
        ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                        else None)
    run = _Run(cfg, info, device, out, model, ddp_model, family, layout, MultiStageLoss(family, ohkm=cfg.ohkm),
               dataset, sampler, loader, steps_per_epoch, optimizer, scheduler, scaler, use_amp, val_samples, logs,
               step, best)
    return run, start_epoch


def _train_step(run: _Run, batch: dict, epoch: int) -> tuple[float, float]:
    """One optimiser step on a batch. Returns (the global-batch loss, the lr the step used)."""
    x = batch["input"].to(run.device, non_blocking=True)
    target = batch["target"].to(run.device, non_blocking=True)
    weight = batch["target_weight"].to(run.device, non_blocking=True)
    with torch.autocast(device_type=run.device.type, dtype=torch.float16, enabled=run.use_amp):
        outputs = run.ddp_model(x, return_all=True)
    loss = run.criterion(outputs, target, weight)
    if not torch.isfinite(loss):
        raise TrainError(f"loss is {loss.item()} at epoch {epoch + 1} step {run.step}; lower schedule.lr "
                         f"or set grad_clip")
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.cfg.grad_clip:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    lr = run.optimizer.param_groups[0]["lr"]
    run.scheduler.step()
    run.step += 1
    return ddp.mean_over_processes(loss, run.info), lr


def _train_epoch(run: _Run, epoch: int, result: TrainResult) -> None:
    cfg = run.cfg
    run.sampler.set_epoch(epoch)
    run.dataset.set_epoch(epoch)
    run.ddp_model.train()
    _set_bn_mode(run.model, cfg.batchnorm)
    bar = progress_bar(cfg.progress and run.info.is_main, run.steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}")
    for i, batch in enumerate(run.loader):
        if i >= run.steps_per_epoch:
            break
        loss, lr = _train_step(run, batch, epoch)
        result.steps.append(run.step)
        result.losses.append(loss)
        result.lrs.append(lr)
        if run.step % cfg.log_every == 0:
            run.logs.step(epoch + 1, run.step, loss, lr)
        if bar is not None:
            bar.set_postfix(loss=f"{loss:.4g}", lr=f"{lr:.2g}")
            bar.update(1)
    if bar is not None:
        bar.close()


def _validate_epoch(run: _Run, epoch: int, result: TrainResult) -> float | None:
    """Validate after ``epoch`` (0-based) when due (main process); returns the metric or None."""
    cfg = run.cfg
    if run.val_samples is None or not ((epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs):
        return None
    metric = None
    if run.info.is_main:
        v = validate(run.model, cfg, run.val_samples, run.device, run.family, run.layout, progress=cfg.progress)
        metric = v["metric"]
        result.val.append({"epoch": epoch + 1, "step": run.step, **v})
        run.logs.validation(epoch + 1, run.step, metric, v["table"])
    run.model.train()
    _set_bn_mode(run.model, cfg.batchnorm)
    return metric


def _save_epoch(run: _Run, epoch: int, improved: bool, result: TrainResult) -> None:
    if run.info.is_main:
        state = dict(model=run.model, optimizer=run.optimizer, scheduler=run.scheduler, scaler=run.scaler,
                     epoch=epoch + 1, step=run.step, best_metric=run.best, cfg=run.cfg, layout=run.layout)
        save_checkpoint(run.out / CHECKPOINT_LAST, **state)
        result.last_checkpoint = str(run.out / CHECKPOINT_LAST)
        if improved:
            save_checkpoint(run.out / CHECKPOINT_BEST, **state)
            result.best_checkpoint = str(run.out / CHECKPOINT_BEST)
    ddp.barrier(run.info)


def _summary(run: _Run, result: TrainResult) -> str:
    last = f"{result.losses[-1]:.6g}" if result.losses else "n/a"
    best = result.best_metric if result.best_metric > -math.inf else float("nan")
    return (f"done: {result.epochs_done}/{run.cfg.epochs} epochs, {run.step} steps, last loss {last}, "
            f"best {'AP' if run.cfg.data.dataset == 'coco' else 'mAP'} {best:.4f}, {result.seconds:.1f} s, "
            f"checkpoints in {run.out}")


def train(cfg: TrainConfig) -> TrainResult:
    """Run a recipe (see the module docstring). Returns the run's summary (rank 0 has the full logs)."""
    t0 = time.time()
    info = ddp.init_distributed(ddp.device_kind(cfg.device))
    try:
        run, start_epoch = _setup(cfg, info)
        result = TrainResult(best_metric=run.best, epochs_done=start_epoch, output_dir=str(run.out))
        end_epoch = cfg.epochs if cfg.stop_after_epoch is None else min(cfg.epochs, cfg.stop_after_epoch)
        for epoch in range(start_epoch, end_epoch):
            _train_epoch(run, epoch, result)
            metric = _validate_epoch(run, epoch, result)
            improved = metric is not None and metric > run.best
            if improved:
                run.best = metric
            _save_epoch(run, epoch, improved, result)
            result.epochs_done = epoch + 1
        result.best_metric = run.best
        result.seconds = time.time() - t0
        run.logs.close()
        if info.is_main:
            print(_summary(run, result), flush=True)
        return result
    finally:
        ddp.shutdown(info)


__all__ = ["TrainResult", "lr_factor", "make_optimizer", "train", "validate"]
