"""RAFT optical flow (Teed & Deng 2020) through torchvision's ``raft_small`` / ``raft_large``.

torchvision's pretrained weights cannot be downloaded here, so the weights come from a file: either the
path given, or torchvision's own cache file name under ``$TORCH_HOME/hub/checkpoints/`` (where
``torchvision.models.optical_flow.raft_*(weights=...)`` would have put it), loaded with
``torch.load(..., weights_only=True)`` and ``load_state_dict(strict=True)``.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights, raft_large, raft_small

from flow.base import FlowBackend, FlowConfigError

# size -> (builder, the torchvision weights entry whose file we expect). The file names are taken from
# torchvision itself so they follow the installed version: raft_small_C_T_V2-01064c6d.pth and
# raft_large_C_T_SKHT_V2-ff5fadd5.pth for torchvision 0.29.
RAFT_VARIANTS = {
    "small": (raft_small, Raft_Small_Weights.C_T_V2),
    "large": (raft_large, Raft_Large_Weights.C_T_SKHT_V2),
}

# RAFT's correlation pyramid needs the 1/8 feature map to survive 3 more halvings; torchvision's weights
# declare a minimum input of 128 x 128, so smaller frames are padded up to it.
_MIN_SIZE = 128


class RaftWeightsNotFoundError(FileNotFoundError):
    """The RAFT weights file is missing (it cannot be downloaded on this machine)."""


class RaftWeightsError(ValueError):
    """The RAFT weights file exists but does not hold a state dict matching the architecture."""


def raft_weights_filename(size: str) -> str:
    """torchvision's file name for the default weights of RAFT ``size`` ("small" | "large")."""
    if size not in RAFT_VARIANTS:
        raise FlowConfigError(f"size: unknown RAFT size {size!r}; valid sizes: {sorted(RAFT_VARIANTS)}")
    return RAFT_VARIANTS[size][1].url.rsplit("/", 1)[-1]


def default_raft_weights_path(size: str) -> Path:
    """Where torchvision caches RAFT ``size`` weights: ``$TORCH_HOME/hub/checkpoints/<file>`` (torch.hub.get_dir())."""
    return Path(torch.hub.get_dir()) / "checkpoints" / raft_weights_filename(size)


class RaftFlow(FlowBackend):
    """torchvision RAFT on (H, W, 3) uint8 BGR frames.

    size: "small" (1.0 M parameters) | "large" (5.3 M).
    weights_path: file holding the torchvision state dict; None -> the torchvision cache path
        ``$TORCH_HOME/hub/checkpoints/<torchvision file name>``. Missing file -> RaftWeightsNotFoundError
        (an OSError) saying which file to put where.
    num_flow_updates: recurrent refinement iterations (torchvision's default 12).
    device: torch device string ("cpu", "cuda", ...).
    scale: resize factor in (0, 1] for computing the flow (see flow.base.FlowBackend).
    """

    def __init__(
        self,
        size: str = "small",
        weights_path: str | os.PathLike | None = None,
        num_flow_updates: int = 12,
        device: str = "cpu",
        scale: float = 1.0,
    ) -> None:
        super().__init__(scale)
        filename = raft_weights_filename(size)
        if int(num_flow_updates) < 1:
            raise FlowConfigError(f"num_flow_updates: expected >= 1, got {num_flow_updates}")
        self.size = size
        self.name = f"raft_{size}"
        self.num_flow_updates = int(num_flow_updates)
        self.device = torch.device(device)
        path = Path(weights_path) if weights_path is not None else default_raft_weights_path(size)
        if not path.is_file():
            url = RAFT_VARIANTS[size][1].url
            raise RaftWeightsNotFoundError(
                f"RAFT {size} weights not found: {path} does not exist. This machine cannot download them; "
                f"fetch {url} elsewhere and put it at $TORCH_HOME/hub/checkpoints/{filename} "
                f"(here: {default_raft_weights_path(size)}) or pass weights_path=<file>")
        self.weights_path = path
        builder = RAFT_VARIANTS[size][0]
        model = builder(weights=None, progress=False)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling / format errors, reported with the file name
            raise RaftWeightsError(f"{path}: cannot load RAFT {size} weights with weights_only=True: {exc}") from exc
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise RaftWeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise RaftWeightsError(f"{path}: state dict does not match torchvision raft_{size}: {exc}") from exc
        self.model = model.eval().to(self.device)

    def _to_tensor(self, image: np.ndarray) -> torch.Tensor:
        """(h, w, 3) uint8 BGR -> (1, 3, h, w) float32 RGB in [-1, 1] (torchvision's OpticalFlow preset)."""
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        tensor = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float()
        return (tensor / 127.5 - 1.0).to(self.device)

    @torch.inference_mode()
    def _compute(self, prev: np.ndarray, curr: np.ndarray) -> np.ndarray:
        height, width = prev.shape[:2]
        # RAFT needs H, W divisible by 8 (and >= 128); pad bottom/right by replicating the border, then crop.
        pad_h = max(_MIN_SIZE, -(-height // 8) * 8) - height
        pad_w = max(_MIN_SIZE, -(-width // 8) * 8) - width
        image1, image2 = self._to_tensor(prev), self._to_tensor(curr)
        if pad_h or pad_w:
            image1 = F.pad(image1, (0, pad_w, 0, pad_h), mode="replicate")
            image2 = F.pad(image2, (0, pad_w, 0, pad_h), mode="replicate")
        predictions = self.model(image1, image2, num_flow_updates=self.num_flow_updates)
        flow = predictions[-1][0, :, :height, :width]  # (2, h, w), channel 0 = dx, 1 = dy
        return flow.permute(1, 2, 0).cpu().numpy().astype(np.float32)

    def __repr__(self) -> str:
        return (f"RaftFlow(size={self.size!r}, weights_path={str(self.weights_path)!r}, "
                f"num_flow_updates={self.num_flow_updates}, device={str(self.device)!r}, scale={self.scale})")
