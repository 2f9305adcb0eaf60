"""Training of the top-down estimators: typed recipe config, (distributed) trainer, checkpoints, validation.

One recipe = one YAML file in ``configs/train_*.yaml`` loaded into :class:`TrainConfig` with
``configs.load_yaml`` (unknown keys rejected, dotted overrides). :func:`train` runs it:

- model from the registry (``model.name``) or, for small variants, the architecture class with explicit
  arguments (``model.arch`` + ``model.kwargs``); optional initialisation from a checkpoint (fine-tuning);
- data: COCO (GT boxes for training; GT boxes or a detection file for validation) or PoseTrack 2017/2018
  (:mod:`estimators.datasets`), augmentation and targets per family (:mod:`estimators.augment`);
- Adam with the recipe's schedule, stepped every iteration: ``step`` (x gamma at each milestone epoch:
  HRNet 170/200, PoseTrack fine-tuning 10/15) or ``linear`` (to 0 at the last iteration: MSPN/RSN);
- distributed data parallel when launched by ``torchrun`` (gloo on CPU, NCCL on GPU); ``batch_size`` is the
  GLOBAL batch, split evenly over the processes; mixed precision on GPU (``amp``); gradient clipping;
  deterministic seeding (augmentation randomness is per sample: ``default_rng([seed, epoch, index])``);
- checkpoints ``last.pt`` every epoch and ``best.pt`` at the best validation metric; ``resume`` restores
  model, optimiser, scheduler, grad scaler, epoch, step, best metric and RNG states;
- validation every ``val_every`` epochs: COCO keypoint AP table (OKS-NMS for HRNet) or PoseTrack mAP;
- logs: a progress bar per epoch, ``train_log.csv`` (epoch, step, loss, lr), ``val_log.csv``, TensorBoard
  when installed, a final summary.

BatchNorm: with ``batchnorm: batch`` each process normalises with its own per-process batch statistics
(standard DDP behaviour); ``sync`` converts to SyncBatchNorm (GPU only: torch has no CPU SyncBatchNorm);
``frozen`` uses the running statistics (BN in eval mode, affine parameters still trained), which makes a
multi-process run mathematically equal to a single-process run of the same global batch.
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler

from .augment import AugmentParams
from configs.loader import ConfigError, save_yaml, to_dict

CHECKPOINT_LAST = "last.pt"
CHECKPOINT_BEST = "best.pt"
TRAIN_LOG = "train_log.csv"
VAL_LOG = "val_log.csv"


class TrainError(ValueError):
    """A training setup that cannot run (names the config key)."""


# ---------------------------------------------------------------------------------------------- config
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
    policy: Literal["step", "linear"] = "step"
    milestones: list[int] = field(default_factory=lambda: [170, 200])
    gamma: float = 0.1


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
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


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> TrainConfig:
    """A recipe YAML + dotted ``key=value`` overrides -> TrainConfig."""
    from configs.loader import load_yaml

    return load_yaml(TrainConfig, path, overrides or [])


# ----------------------------------------------------------------------------------------------- model
def build_estimator(cfg: ModelConfig) -> nn.Module:
    """The estimator of a ModelConfig (random weights, then ``init_checkpoint`` if given)."""
    if cfg.arch is not None:
        from . import hrnet, ms_hrnet, mspn, rsn

        classes = {"hrnet": hrnet.HRNet, "ms_hrnet": ms_hrnet.MultiStageHRNet, "mspn": mspn.MSPN, "rsn": rsn.RSN}
        if cfg.arch not in classes:
            raise TrainError(f"model.arch: must be one of {sorted(classes)}, got {cfg.arch!r}")
        try:
            model = classes[cfg.arch](**cfg.kwargs)
        except TypeError as exc:
            raise TrainError(f"model.kwargs: {exc}") from None
    else:
        from .registry import build_model

        model = build_model(cfg.name, **cfg.kwargs)
    if cfg.init_checkpoint:
        from .checkpoints import load_checkpoint

        load_checkpoint(model, cfg.init_checkpoint, cfg.init_source)
    return model


def model_from_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, TrainConfig | None]:
    """Rebuild the estimator saved by :func:`train` (its config is stored in the checkpoint) and load it."""
    from .checkpoints import read_checkpoint_file, strict_load, unwrap_state_dict
    from configs.loader import from_dict

    obj = read_checkpoint_file(path)
    if not isinstance(obj, dict) or not isinstance(obj.get("config"), dict):
        raise TrainError(f"{path}: not a checkpoint written by `posetrack train` (no 'config'); pass --model")
    cfg = from_dict(TrainConfig, obj["config"], f"{path}['config']")
    model = build_estimator(dataclasses.replace(cfg.model, init_checkpoint=None))
    strict_load(model, unwrap_state_dict(obj, str(path)), str(path))
    return model, cfg


def _set_bn_mode(model: nn.Module, mode: str) -> None:
    if mode == "frozen":
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


# ------------------------------------------------------------------------------------------------ data
def _expand(paths: list[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            files = sorted(glob.glob(os.path.join(glob.escape(p), "*.json")))
            if not files:
                raise FileNotFoundError(f"no *.json annotation files in {p}")
            out += files
        else:
            out.append(p)
    return out


def load_samples(data: DataConfig, split: Literal["train", "val"]):
    """PersonSamples of the split (see module docstring)."""
    from .datasets import load_coco_detections, load_coco_gt, load_posetrack

    anns = _expand(data.train_annotations if split == "train" else data.val_annotations)
    images = data.train_images if split == "train" else data.val_images
    if not anns:
        raise TrainError(f"data.{split}_annotations: no annotation file given")
    if data.dataset == "coco":
        if len(anns) != 1:
            raise TrainError(f"data.{split}_annotations: COCO takes one annotation file, got {len(anns)}")
        if split == "val" and data.val_detections:
            return load_coco_detections(data.val_detections, anns[0], images, data.det_score_threshold)
        return load_coco_gt(anns[0], images)
    return load_posetrack(anns, images)


def flip_pairs(data: DataConfig) -> tuple[tuple[int, int], ...]:
    """Left/right slot pairs of the dataset's 17 slots (PoseTrack18 keeps head_bottom / head_top unswapped)."""
    from .datasets import POSETRACK18_FLIP_PAIRS
    from .inference import COCO_FLIP_PAIRS

    return POSETRACK18_FLIP_PAIRS if data.dataset == "posetrack" else COCO_FLIP_PAIRS


# ------------------------------------------------------------------------------------------ distributed
@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_kind: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
        info.initialized_here = True
    return info


def _resolve_device(name: str, info: DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainError("device: cuda requested but no GPU is available")
        if info.world_size > 1:
            return torch.device("cuda", info.local_rank)
    return torch.device(name)


# -------------------------------------------------------------------------------------------- schedule
def lr_factor(step: int, steps_per_epoch: int, epochs: int, sched: ScheduleConfig) -> float:
    """Multiplier of the base lr at iteration ``step`` (0-based, counted over the whole run)."""
    if sched.policy == "linear":
        total = max(1, steps_per_epoch * epochs)
        return max(0.0, 1.0 - step / total)
    epoch = step // max(1, steps_per_epoch)
    return sched.gamma ** sum(1 for m in sched.milestones if epoch >= m)


# ----------------------------------------------------------------------------------------------- state
def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy_key": torch.from_numpy(np_state[1].astype(np.int64)),
             "numpy_pos": int(np_state[2]), "numpy_gauss": [int(np_state[3]), float(np_state[4])],
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_key"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_gauss"][0], state["numpy_gauss"][1]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    # Augmentation draws from per-sample generators; this only pins any library code using global RNGs.
    s = torch.initial_seed() % 2 ** 32
    np.random.seed(s)
    random.seed(s)


def _truncate_csv(path: Path, max_step: int) -> None:
    """Drop rows logged after the checkpoint we resume from (a killed run may have logged more)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    head, body = rows[0], rows[1:]
    col = head.index("step")
    body = [r for r in body if int(r[col]) <= max_step]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([head] + body)


class _CsvLog:
    def __init__(self, path: Path, columns: list[str], enabled: bool):
        self.path, self.columns, self.enabled = path, columns, enabled
        if enabled and not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(columns)

    def write(self, row: dict) -> None:
        if self.enabled:
            with open(self.path, "a", newline="") as f:
                csv.writer(f).writerow([row.get(c, "") for c in self.columns])


def _tensorboard(out: Path, enabled: bool):
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except (ImportError, ModuleNotFoundError):
        return None
    return SummaryWriter(str(out / "tensorboard"))


# ------------------------------------------------------------------------------------------ validation
def validate(model: nn.Module, cfg: TrainConfig, samples, device: torch.device, family: str,
             progress: bool = False) -> dict[str, Any]:
    """Validation metric of ``model`` on ``samples``.

    COCO: COCOeval keypoints (``metric`` = AP, ``table``, ``stats``); PoseTrack: eval_posetrack mAP
    (``metric`` = Total mAP / 100, ``table``, ``stats`` per column in %).
    """
    from .coco_eval import coco_keypoint_eval, coco_results, format_coco_table, posetrack_map, predict_samples

    pred = predict_samples(model, samples, input_size=cfg.input_size, flip_test=cfg.val_flip_test, device=device,
                           workers=min(cfg.data.workers, 2), progress=progress, flip_pairs=flip_pairs(cfg.data))
    if cfg.data.dataset == "coco":
        results = coco_results(samples, pred, cfg.oks_nms)
        stats = coco_keypoint_eval(_expand(cfg.data.val_annotations)[0], results)
        return {"metric": stats["AP"], "stats": dict(stats), "table": format_coco_table(stats, cfg.model.arch or cfg.model.name)}
    ap = posetrack_map(samples, pred, _expand(cfg.data.val_annotations))
    cols = {k: ap[k] for k in ("Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total")}
    table = "| " + " | ".join(cols) + " |\n" + "|---" * len(cols) + "|\n| " + \
        " | ".join(f"{v:.1f}" for v in cols.values()) + " |"
    total = cols["Total"]
    return {"metric": 0.0 if total != total else total / 100.0, "stats": cols, "table": "PoseTrack mAP\n" + table}


# ------------------------------------------------------------------------------------------------ train
@dataclass
class TrainResult:
    """Summary of a run: per logged step (step, loss, lr), per validation (epoch, metric), paths."""

    steps: list[int]
    losses: list[float]
    lrs: list[float]
    val: list[dict]
    best_metric: float
    epochs_done: int
    output_dir: str
    seconds: float
    last_checkpoint: str | None = None
    best_checkpoint: str | None = None


def _save(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig) -> TrainResult:
    """Run a recipe (see the module docstring). Returns the run's summary (rank 0 has the full logs)."""
    from .datasets import TopDownDataset
    from .losses import MultiStageLoss

    t0 = time.time()
    device_kind = "cuda" if (cfg.device == "auto" and torch.cuda.is_available()) or cfg.device.startswith("cuda") else "cpu"
    info = _init_distributed(device_kind)
    try:
        device = _resolve_device(cfg.device, info)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if cfg.batch_size % info.world_size:
            raise TrainError(f"batch_size: the global batch {cfg.batch_size} must divide evenly over "
                             f"{info.world_size} processes")
        if cfg.batchnorm == "sync" and device.type != "cuda":
            raise TrainError("batchnorm: 'sync' needs GPUs (torch has no CPU SyncBatchNorm); use 'batch' or 'frozen'")
        if cfg.cpu_threads > 0:
            torch.set_num_threads(cfg.cpu_threads)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        _seed_all(cfg.seed)
        out = Path(cfg.output_dir)
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            save_yaml(cfg, out / "config.yaml")

        model = build_estimator(cfg.model)
        family = model.family
        if cfg.batchnorm == "sync" and info.world_size > 1:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(device)
        criterion = MultiStageLoss(family, ohkm=cfg.ohkm)

        train_samples = load_samples(cfg.data, "train")
        val_samples = load_samples(cfg.data, "val") if cfg.val_every > 0 and cfg.data.val_annotations else None
        dataset = TopDownDataset(train_samples, family, cfg.input_size, cfg.augment, cfg.sigma, cfg.seed,
                                 flip_pairs=flip_pairs(cfg.data))
        per_proc = cfg.batch_size // info.world_size
        # The same sampler for 1 and N processes: one permutation per epoch (seed + epoch), split by rank.
        sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                     seed=cfg.seed, drop_last=False)
        loader = DataLoader(dataset, batch_size=per_proc, sampler=sampler, num_workers=cfg.data.workers,
                            drop_last=True, pin_memory=device.type == "cuda", worker_init_fn=_worker_init,
                            persistent_workers=False)
        steps_per_epoch = len(loader)
        if cfg.max_steps_per_epoch:
            steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
        if steps_per_epoch == 0:
            raise TrainError(f"batch_size: {cfg.batch_size} is larger than the training set "
                             f"({len(dataset)} persons); no full batch")

        sc = cfg.schedule
        opt_cls = torch.optim.AdamW if sc.optimizer == "adamw" else torch.optim.Adam
        optimizer = opt_cls(model.parameters(), lr=sc.lr, weight_decay=sc.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, steps_per_epoch, cfg.epochs, sc))
        use_amp = bool(cfg.amp and device.type == "cuda")
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

        start_epoch, step, best = 0, 0, -math.inf
        resume = cfg.resume
        if resume == "auto":
            resume = str(out / CHECKPOINT_LAST) if (out / CHECKPOINT_LAST).is_file() else None
        if resume:
            if not os.path.isfile(resume):
                raise FileNotFoundError(f"resume checkpoint not found: {resume}")
            ck = torch.load(resume, map_location="cpu", weights_only=True)
            model.load_state_dict(ck["state_dict"])
            optimizer.load_state_dict(ck["optimizer"])
            scheduler.load_state_dict(ck["scheduler"])
            if "scaler" in ck and use_amp:
                scaler.load_state_dict(ck["scaler"])
            start_epoch, step, best = int(ck["epoch"]), int(ck["step"]), float(ck["best_metric"])
            _set_rng_state(ck["rng"])
            if info.is_main:
                _truncate_csv(out / TRAIN_LOG, step)
                _truncate_csv(out / VAL_LOG, step)
        elif info.is_main:  # a fresh run starts fresh logs
            for name in (TRAIN_LOG, VAL_LOG):
                (out / name).unlink(missing_ok=True)

        ddp_model = model
        if info.world_size > 1:
            ddp_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        log = _CsvLog(out / TRAIN_LOG, ["epoch", "step", "loss", "lr"], info.is_main)
        vlog = _CsvLog(out / VAL_LOG, ["epoch", "step", "metric"], info.is_main)
        tb = _tensorboard(out, info.is_main)
        result = TrainResult([], [], [], [], best, start_epoch, str(out), 0.0)
        end_epoch = cfg.epochs if cfg.stop_after_epoch is None else min(cfg.epochs, cfg.stop_after_epoch)

        for epoch in range(start_epoch, end_epoch):
            sampler.set_epoch(epoch)
            dataset.set_epoch(epoch)
            ddp_model.train()
            _set_bn_mode(model, cfg.batchnorm)
            bar = None
            if cfg.progress and info.is_main:
                from tqdm import tqdm
                bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", leave=False)
            for i, batch in enumerate(loader):
                if i >= steps_per_epoch:
                    break
                x = batch["input"].to(device, non_blocking=True)
                target = batch["target"].to(device, non_blocking=True)
                weight = batch["target_weight"].to(device, non_blocking=True)
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                    outputs = ddp_model(x, return_all=True)
                loss = criterion(outputs, target, weight)
                if not torch.isfinite(loss):
                    raise TrainError(f"loss is {loss.item()} at epoch {epoch + 1} step {step}; lower schedule.lr "
                                     f"or set grad_clip")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                lr = optimizer.param_groups[0]["lr"]
                scheduler.step()
                step += 1
                value = loss.detach().float()
                if info.world_size > 1:  # the global-batch loss: mean of the per-process means
                    dist.all_reduce(value)
                    value /= info.world_size
                value = float(value)
                result.steps.append(step)
                result.losses.append(value)
                result.lrs.append(lr)
                if step % cfg.log_every == 0:
                    log.write({"epoch": epoch + 1, "step": step, "loss": f"{value:.9g}", "lr": f"{lr:.6g}"})
                    if tb is not None:
                        tb.add_scalar("train/loss", value, step)
                        tb.add_scalar("train/lr", lr, step)
                if bar is not None:
                    bar.set_postfix(loss=f"{value:.4g}", lr=f"{lr:.2g}")
                    bar.update(1)
            if bar is not None:
                bar.close()

            metric = None
            if val_samples is not None and ((epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs):
                if info.is_main:
                    v = validate(model, cfg, val_samples, device, family, progress=cfg.progress)
                    metric = v["metric"]
                    result.val.append({"epoch": epoch + 1, "step": step, **v})
                    vlog.write({"epoch": epoch + 1, "step": step, "metric": f"{metric:.6f}"})
                    print(f"epoch {epoch + 1}: validation\n{v['table']}", flush=True)
                    if tb is not None:
                        tb.add_scalar("val/metric", metric, step)
                model.train()
                _set_bn_mode(model, cfg.batchnorm)
            improved = metric is not None and metric > best
            if improved:
                best = metric
            if info.is_main:
                state = {"state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch + 1,
                         "step": step, "best_metric": best, "rng": _rng_state(), "config": to_dict(cfg),
                         "arch": getattr(model, "arch", ""), "family": family}
                _save(out / CHECKPOINT_LAST, state)
                result.last_checkpoint = str(out / CHECKPOINT_LAST)
                if improved:
                    _save(out / CHECKPOINT_BEST, state)
                    result.best_checkpoint = str(out / CHECKPOINT_BEST)
            if info.world_size > 1:
                dist.barrier()
            result.epochs_done = epoch + 1
        result.best_metric = best
        result.seconds = time.time() - t0
        if tb is not None:
            tb.close()
        if info.is_main:
            last = f"{result.losses[-1]:.6g}" if result.losses else "n/a"
            print(f"done: {result.epochs_done}/{cfg.epochs} epochs, {step} steps, last loss {last}, "
                  f"best {'AP' if cfg.data.dataset == 'coco' else 'mAP'} "
                  f"{best if best > -math.inf else float('nan'):.4f}, {result.seconds:.1f} s, "
                  f"checkpoints in {out}", flush=True)
        return result
    finally:
        if info.initialized_here and dist.is_initialized():
            dist.destroy_process_group()


__all__ = [
    "AugmentConfig", "DataConfig", "ModelConfig", "ScheduleConfig", "TrainConfig", "TrainError", "TrainResult",
    "build_estimator", "load_config", "load_samples", "lr_factor", "model_from_checkpoint", "train", "validate",
]
