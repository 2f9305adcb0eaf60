"""Process set-up of a training run: distributed data parallel (launched by ``torchrun``), device, threads and
the random state (seeding, saving and restoring it for ``resume``).

One process = rank 0 of a world of 1. Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is created
here (gloo on CPU, NCCL on GPU) and destroyed by :func:`shutdown` if it was created here.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from .config import TrainError


@dataclass(frozen=True)
class DistInfo:
    """This process in the run: rank, world_size, local_rank (GPU index on its machine), and whether the
    process group was created by :func:`init_distributed` (and must be destroyed by :func:`shutdown`)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def device_kind(device: str) -> str:
    """"cuda" or "cpu": what a config's ``device`` ("auto", "cpu", "cuda", "cuda:N") runs on."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if device.startswith("cuda") else "cpu"


def init_distributed(kind: str) -> DistInfo:
    """The process group of a ``torchrun`` launch (backend NCCL for ``kind`` "cuda", else gloo); a single
    process without one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    here = not dist.is_initialized()
    if here:
        dist.init_process_group(backend="nccl" if kind == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, here)


def shutdown(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """The torch device of config ``device`` for this process (its local GPU under DDP)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainError("device: cuda requested but no GPU is available")
        if info.world_size > 1:
            return torch.device("cuda", info.local_rank)
    return torch.device(name)


def mean_over_processes(value: torch.Tensor, info: DistInfo) -> float:
    """The mean of a scalar over the processes (the global-batch loss from per-process means)."""
    value = value.detach().float()
    if info.world_size > 1:
        dist.all_reduce(value)
        value /= info.world_size
    return float(value)


def barrier(info: DistInfo) -> None:
    if info.world_size > 1:
        dist.barrier()


# ------------------------------------------------------------------------------------------ random state
def seed_all(seed: int) -> None:
    """Seed python, numpy's global and torch's RNGs (augmentation itself uses per-sample generators)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def worker_init(worker_id: int) -> None:
    """DataLoader worker seeding: augmentation draws from per-sample generators; this only pins any library
    code using the global RNGs."""
    s = torch.initial_seed() % 2 ** 32
    np.random.seed(s)
    random.seed(s)


def rng_state() -> dict:
    """The global RNG states (torch, numpy, python, CUDA) as tensors / plain data (``weights_only`` loadable)."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy_key": torch.from_numpy(np_state[1].astype(np.int64)),
             "numpy_pos": int(np_state[2]), "numpy_gauss": [int(np_state[3]), float(np_state[4])],
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_key"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_gauss"][0], state["numpy_gauss"][1]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


__all__ = ["DistInfo", "barrier", "device_kind", "init_distributed", "mean_over_processes", "resolve_device",
           "rng_state", "seed_all", "set_rng_state", "shutdown", "worker_init"]
