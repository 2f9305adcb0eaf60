"""Top-down batched inference: person boxes -> crops -> one network forward per batch -> keypoints in image px.

Per-family conventions follow the released code (../shared/reference/README.md, "Inference conventions"):

| | HRNet family (HRNet, MS-HRNet) | MSPN family (MSPN, RSN) |
| --- | --- | --- |
| box -> crop | aspect-fix, x1.25 padding | width x1.09, height x1.135, then aspect-fix |
| colour, normalisation | RGB, ImageNet mean/std | BGR, mean [.406,.456,.485], std [.225,.224,.229] |
| flip test | flip back + swap pairs + shift 1 px right, average | flip back + swap pairs, average (no shift) |
| decoding | argmax + quarter offset (heatmap px -> image via heatmap-size inverse affine) | blur(5) + argmax + quarter step toward 2nd peak, ``x*4+2`` input px -> image |
| joint score | heatmap maximum | unblurred value / 255 + 0.5 |
| pose score | box score x mean of joint scores > 0.2 (0 if none is > 0.2, as released) | box score x mean of all joint scores |

Crops of every person of every image go through the network together (``max_batch`` images per forward,
flipped copies included). The network is called in exactly one place, :func:`_forward`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .codecs import MSPN_TEST_KERNEL, decode_hrnet, decode_mspn
from .geometry import box_to_center_scale, box_to_center_scale_mspn, crop_batch, crop_to_image, get_affine_transforms

# COCO-17 left/right pairs: eyes, ears, shoulders, elbows, wrists, hips, knees, ankles.
COCO_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
PRECISIONS = ("fp32", "bf16", "fp16")
DEFAULT_INPUT_SIZE = (192, 256)  # (w, h)
HRNET_JOINT_SCORE_THRESHOLD = 0.2  # released HRNet rescoring: only joints above it count in the pose score


class InferenceError(ValueError):
    """Bad input to the top-down estimator (shapes, lengths, options)."""


@dataclass(frozen=True)
class FamilyConventions:
    """Inference conventions of one estimator family (values, see the module table)."""

    rgb: bool  # convert the BGR crop to RGB before normalising
    mean: tuple[float, float, float]  # per channel of the network input, in the input's channel order
    std: tuple[float, float, float]
    flip_shift: bool  # shift the flipped-back heatmaps one pixel right (HRNet)


FAMILIES: MappingProxyType = MappingProxyType({
    "hrnet": FamilyConventions(rgb=True, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), flip_shift=True),
    "mspn": FamilyConventions(rgb=False, mean=(0.406, 0.456, 0.485), std=(0.225, 0.224, 0.229), flip_shift=False),
})


@dataclass
class Poses:
    """Poses of N persons in one image.

    keypoints: (N, K, 2) float32 image pixels (x, y); keypoint_scores: (N, K) float32 (per-family joint
    score); pose_scores: (N,) float32; extras: optional per-person arrays (N, ...) (unused by the torch
    estimators).
    """

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    pose_scores: np.ndarray
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        self.keypoint_scores = np.asarray(self.keypoint_scores, dtype=np.float32)
        self.pose_scores = np.asarray(self.pose_scores, dtype=np.float32).reshape(-1)
        n = len(self.pose_scores)
        if self.keypoints.ndim != 3 or self.keypoints.shape[0] != n or self.keypoints.shape[2] != 2:
            raise InferenceError(f"Poses.keypoints: expected shape ({n}, K, 2), got {self.keypoints.shape}")
        if self.keypoint_scores.shape != self.keypoints.shape[:2]:
            raise InferenceError(
                f"Poses.keypoint_scores: expected shape {self.keypoints.shape[:2]}, got {self.keypoint_scores.shape}")

    def __len__(self) -> int:
        return len(self.pose_scores)

    @classmethod
    def empty(cls, num_keypoints: int) -> "Poses":
        return cls(np.zeros((0, num_keypoints, 2), np.float32), np.zeros((0, num_keypoints), np.float32),
                   np.zeros(0, np.float32))


# ------------------------------------------------------------------------------------------------ helpers
def _family(model: Any) -> str:
    fam = getattr(model, "family", None)
    if fam not in FAMILIES:
        raise InferenceError(f"model {type(model).__name__}: attribute 'family' must be one of "
                             f"{sorted(FAMILIES)}, got {fam!r}")
    return fam


def flip_permutation(num_keypoints: int, flip_pairs: Sequence[Sequence[int]] = COCO_FLIP_PAIRS) -> np.ndarray:
    """(K,) int64 channel permutation swapping each left/right pair (identity elsewhere)."""
    perm = np.arange(num_keypoints)
    for a, b in flip_pairs:
        if not (0 <= a < num_keypoints and 0 <= b < num_keypoints):
            raise InferenceError(f"flip pair ({a}, {b}) out of range for {num_keypoints} keypoints "
                                 f"(pass flip_pairs for a non-COCO-17 model, or flip_test=False)")
        perm[a], perm[b] = b, a
    return perm


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise InferenceError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def _check_image(image: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InferenceError(f"{what}: expected a (H, W, 3) uint8 BGR image, got {desc}")
    return image


def _check_boxes(boxes, scores, what: str) -> tuple[np.ndarray, np.ndarray]:
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise InferenceError(f"{what} boxes: expected shape (N, 4) xyxy pixels, got {b.shape}")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(s) != len(b):
        raise InferenceError(f"{what} box_scores: expected {len(b)} scores (one per box), got {len(s)}")
    if not np.isfinite(b).all():
        raise InferenceError(f"{what} boxes: non-finite coordinates")
    if len(b) and np.any((b[:, 2] - b[:, 0] <= 0) | (b[:, 3] - b[:, 1] <= 0)):
        bad = int(np.nonzero((b[:, 2] - b[:, 0] <= 0) | (b[:, 3] - b[:, 1] <= 0))[0][0])
        raise InferenceError(f"{what} boxes[{bad}]: x2 > x1 and y2 > y1 required, got {b[bad].tolist()}")
    return b, s


def _forward(model: Callable, batch: torch.Tensor, precision: str) -> torch.Tensor:
    """The single network call: batch (B, 3, H, W) float32 normalised -> heatmaps (B, K, H/4, W/4) float32.

    Half precisions run under autocast for nn.Modules; a prepared callable (e.g.
    ``estimators.optimize.FastForward``) handles its own precision and is called as is.
    """
    if precision != "fp32" and isinstance(model, torch.nn.Module):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        with torch.autocast(device_type=batch.device.type, dtype=dtype):
            out = model(batch)
    else:
        out = model(batch)
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        raise InferenceError(f"model {type(model).__name__} returned {type(out).__name__} "
                             f"{tuple(getattr(out, 'shape', ()))}; expected heatmaps (B, K, h, w)")
    return out.float()


def crops_to_heatmaps(
    model: Callable,
    crops: np.ndarray,
    *,
    flip_test: bool = True,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    max_batch: int = 32,
    flip_pairs: Sequence[Sequence[int]] = COCO_FLIP_PAIRS,
) -> np.ndarray:
    """Crops (N, h, w, 3) uint8 BGR -> heatmaps (N, K, h/4, w/4) float32 (flip-averaged when ``flip_test``).

    Colour order, normalisation and the flip shift follow ``model.family``. With ``flip_test`` each forward
    carries ``max_batch // 2`` crops plus their mirrors, so no forward exceeds ``max_batch`` images.
    """
    conv = FAMILIES[_family(model)]
    k = int(model.num_keypoints)
    n, h, w = crops.shape[:3]
    if n == 0:
        raise InferenceError("crops_to_heatmaps: no crops")
    perm = torch.from_numpy(flip_permutation(k, flip_pairs)) if flip_test else None
    per_forward = max(1, max_batch // 2) if flip_test else max(1, max_batch)
    dev = torch.device(device)
    mean = torch.tensor(conv.mean, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(conv.std, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    outs = []
    with torch.inference_mode():
        for s in range(0, n, per_forward):
            x = torch.from_numpy(np.ascontiguousarray(crops[s:s + per_forward])).to(dev)
            x = x.permute(0, 3, 1, 2).float()
            if conv.rgb:
                x = x.flip(1)
            x = (x / 255.0 - mean) / std
            b = x.shape[0]
            if flip_test:
                x = torch.cat([x, x.flip(3)])
            hm = _forward(model, x, precision)
            if flip_test:
                back = hm[b:].flip(3)[:, perm.to(hm.device)]
                if conv.flip_shift:
                    # Released HRNet: output_flipped[..., 1:] = output_flipped[..., :-1] (column 0 kept).
                    back[..., 1:] = back[..., :-1].clone()
                hm = (hm[:b] + back) * 0.5
            outs.append(hm.cpu().numpy())
    return np.concatenate(outs)


def _pose_scores(family: str, box_scores: np.ndarray, joint_scores: np.ndarray) -> np.ndarray:
    if family == "hrnet":
        keep = joint_scores > HRNET_JOINT_SCORE_THRESHOLD
        cnt = keep.sum(axis=1)
        mean = np.where(cnt > 0, (joint_scores * keep).sum(axis=1) / np.maximum(cnt, 1), 0.0)
    else:
        mean = joint_scores.mean(axis=1)
    return box_scores * mean


# ------------------------------------------------------------------------------------------------ API
def estimate_batch(
    model: Callable,
    images: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    box_scores: Sequence[np.ndarray],
    *,
    input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
    flip_test: bool = True,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    max_batch: int = 32,
    flip_pairs: Sequence[Sequence[int]] = COCO_FLIP_PAIRS,
) -> list[Poses]:
    """Poses of the persons in several images, all crops batched together.

    model: an estimator (``family``, ``num_keypoints``, ``forward(x) -> (B, K, H/4, W/4)``) already on
    ``device`` and in eval mode, or a prepared callable with those attributes. images: list of (H, W, 3)
    uint8 BGR. boxes: list of (N_i, 4) xyxy image pixels; box_scores: list of (N_i,). input_size: (w, h)
    of the network input. Returns one :class:`Poses` per image (keypoints in that image's pixels).
    """
    _check_precision(precision)
    if not (len(images) == len(boxes) == len(box_scores)):
        raise InferenceError(f"estimate_batch: {len(images)} images, {len(boxes)} box arrays and "
                             f"{len(box_scores)} score arrays; they must match")
    if max_batch < 1:
        raise InferenceError(f"max_batch must be >= 1, got {max_batch}")
    in_w, in_h = int(input_size[0]), int(input_size[1])
    if in_w <= 0 or in_h <= 0:
        raise InferenceError(f"input_size must be positive (w, h), got {tuple(input_size)}")
    family = _family(model)
    k = int(model.num_keypoints)
    to_center_scale = box_to_center_scale if family == "hrnet" else box_to_center_scale_mspn

    checked = [_check_boxes(b, s, f"image {i}") for i, (b, s) in enumerate(zip(boxes, box_scores))]
    counts = [len(b) for b, _ in checked]
    if sum(counts) == 0:
        return [Poses.empty(k) for _ in images]
    centers, scales, crops = [], [], []
    for i, (image, (b, _)) in enumerate(zip(images, checked)):
        if not len(b):
            continue
        _check_image(image, f"image {i}")
        c, s = to_center_scale(b, in_w / in_h)
        m = get_affine_transforms(c, s, 0.0, (in_w, in_h))
        crops.append(crop_batch(image, m, (in_w, in_h)))  # the only per-person loop (cv2.warpAffine)
        centers.append(c)
        scales.append(s)
    c_all, s_all = np.concatenate(centers), np.concatenate(scales)
    heatmaps = crops_to_heatmaps(model, np.concatenate(crops), flip_test=flip_test, device=device,
                                 precision=precision, max_batch=max_batch, flip_pairs=flip_pairs)
    hm_h, hm_w = heatmaps.shape[-2:]
    if heatmaps.shape[1] != k:
        raise InferenceError(f"model returned {heatmaps.shape[1]} heatmaps, but num_keypoints is {k}")
    if family == "hrnet":
        coords, joint_scores = decode_hrnet(heatmaps)
        # Heatmap px -> image px with the heatmap-size inverse affine, as released (no half-cell offset).
        kps = crop_to_image(coords, c_all, s_all, (hm_w, hm_h))
    else:
        coords, joint_scores = decode_mspn(heatmaps, kernel=MSPN_TEST_KERNEL, stride=in_w / hm_w)
        kps = crop_to_image(coords, c_all, s_all, (in_w, in_h))
    all_box_scores = np.concatenate([s for _, s in checked])
    pose_scores = _pose_scores(family, all_box_scores, joint_scores.astype(np.float64))

    out, start = [], 0
    for n in counts:
        sl = slice(start, start + n)
        out.append(Poses(kps[sl], joint_scores[sl], pose_scores[sl]) if n else Poses.empty(k))
        start += n
    return out


def estimate(
    model: Callable,
    image: np.ndarray,
    boxes: np.ndarray,
    box_scores: np.ndarray,
    *,
    input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
    flip_test: bool = True,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    max_batch: int = 32,
    flip_pairs: Sequence[Sequence[int]] = COCO_FLIP_PAIRS,
) -> Poses:
    """Poses of the persons in one image: image (H, W, 3) uint8 BGR, boxes (N, 4) xyxy px, box_scores (N,).

    See :func:`estimate_batch`. Empty boxes give an empty :class:`Poses`.
    """
    return estimate_batch(model, [image], [boxes], [box_scores], input_size=input_size, flip_test=flip_test,
                          device=device, precision=precision, max_batch=max_batch, flip_pairs=flip_pairs)[0]


class TopDownEstimator:
    """A top-down estimator: the network plus its inference settings.

    model: an estimator nn.Module (moved to ``device``, eval mode). name: registry name. input_size: (w, h).
    ``optimize()`` swaps the forward for ``estimators.optimize.optimize_for_inference`` (CPU, fp32/bf16).
    """

    def __init__(self, model: torch.nn.Module, name: str = "", *, input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
                 device: str = "cpu", precision: str = "fp32", flip_test: bool = True, max_batch: int = 32,
                 flip_pairs: Sequence[Sequence[int]] = COCO_FLIP_PAIRS) -> None:
        _check_precision(precision)
        _family(model)
        if max_batch < 1:
            raise InferenceError(f"max_batch must be >= 1, got {max_batch}")
        self.model = model.to(device).eval()
        self.name = name or type(model).__name__
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.device = device
        self.precision = precision
        self.flip_test = bool(flip_test)
        self.max_batch = int(max_batch)
        self.flip_pairs = tuple(tuple(p) for p in flip_pairs)
        self._runner: Callable = self.model  # what _forward calls (the model, or a prepared FastForward)

    @property
    def num_keypoints(self) -> int:
        return int(self.model.num_keypoints)

    @property
    def family(self) -> str:
        return self.model.family

    def optimize(self, compile: bool = False) -> "TopDownEstimator":
        """Use the BN-folded channels-last forward of ``estimators.optimize`` (CPU; precision fp32 or bf16)."""
        from .optimize import optimize_for_inference

        if str(self.device).split(":")[0] != "cpu":
            raise InferenceError(f"optimize(): CPU only, estimator is on {self.device!r}")
        self._runner = optimize_for_inference(
            self.model, precision=self.precision, compile=compile,
            example_shape=(1, 3, self.input_size[1], self.input_size[0]))
        return self

    def _settings(self) -> dict:
        # The prepared runner does its own precision handling; autocast only for the plain module.
        precision = self.precision if self._runner is self.model else "fp32"
        return dict(input_size=self.input_size, flip_test=self.flip_test, device=self.device,
                    precision=precision, max_batch=self.max_batch, flip_pairs=self.flip_pairs)

    def estimate(self, image: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray) -> Poses:
        """image (H, W, 3) uint8 BGR, boxes (N, 4) xyxy px, box_scores (N,) -> Poses (image px)."""
        return estimate(self._runner, image, boxes, box_scores, **self._settings())

    def estimate_batch(self, images: Sequence[np.ndarray], boxes_list: Sequence[np.ndarray],
                       scores_list: Sequence[np.ndarray]) -> list[Poses]:
        """One Poses per image; all crops of all images share the forwards."""
        return estimate_batch(self._runner, images, boxes_list, scores_list, **self._settings())

    def __repr__(self) -> str:
        return (f"TopDownEstimator({self.name!r}, family={self.family!r}, input_size={self.input_size}, "
                f"device={self.device!r}, precision={self.precision!r}, flip_test={self.flip_test})")


def default_input_size(name: str) -> tuple[int, int]:
    """(w, h): 288x384 when the model name says 384x288, else 192x256."""
    return (288, 384) if "384" in name else DEFAULT_INPUT_SIZE


def create_estimator(
    name: str,
    checkpoint: str | None = None,
    source: str | None = None,
    *,
    input_size: Sequence[int] | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    flip_test: bool = True,
    max_batch: int = 32,
    optimize: bool | None = None,
    **model_kwargs,
):
    """Build the registered estimator ``name``, load ``checkpoint`` (strict) and wrap it for inference.

    source: "official" | "mmpose0x" | "mmpose1x" | "native"; None = guessed from the file's keys
    (``checkpoints.suggest_source``; "native" when the keys are our own layout). Without a checkpoint the
    weights are random. ``name == "blazepose"`` returns ``estimators.blazepose.create_blazepose_estimator``
    (checkpoint = landmark .tflite path; input_size/precision/flip_test do not apply to it).
    optimize: use the BatchNorm-folded channels-last forward (``estimators.optimize``, same outputs within
    1e-6, 1.6-2.4x faster on CPU); None = on for CPU, off for CUDA.
    """
    if name == "blazepose":
        from .blazepose import create_blazepose_estimator

        kw = dict(model_kwargs, max_batch=max_batch)
        if checkpoint is not None:
            kw["landmark_path"] = checkpoint
        return create_blazepose_estimator(device=device, **kw)
    from .registry import build_model

    _check_precision(precision)
    model = build_model(name, **model_kwargs)
    if checkpoint is not None:
        load_weights(model, checkpoint, source)
    est = TopDownEstimator(model, name, input_size=input_size or default_input_size(name), device=device,
                           precision=precision, flip_test=flip_test, max_batch=max_batch)
    if optimize is None:
        optimize = str(device).split(":")[0] == "cpu"
    if optimize:
        est.optimize()
    return est


def guess_source(model: torch.nn.Module, state_dict: dict) -> str:
    """The checkpoint source of an unwrapped ``state_dict`` for ``model``: "native" when its keys are exactly
    ``model``'s own, else ``checkpoints.suggest_source`` of its keys."""
    from . import checkpoints as ckpt

    if set(state_dict) == set(model.state_dict()):
        return ckpt.NATIVE_SOURCE
    return ckpt.suggest_source(state_dict)


def load_weights(model: torch.nn.Module, path, source: str | None = None) -> str:
    """Load checkpoint file ``path`` strictly into ``model`` (in place); returns the source used.

    With a source this is ``checkpoints.load_checkpoint``; without one the file is read once, its source
    guessed (:func:`guess_source`) and the same remap / finiteness check / strict load applied.
    """
    from . import checkpoints as ckpt

    if source is not None:
        ckpt.load_checkpoint(model, path, source)
        return source
    origin = str(path)
    sd = ckpt.load_state_dict_file(path)
    source = guess_source(model, sd)
    ckpt.check_finite(sd, origin)
    ckpt.strict_load(model, ckpt.remap_state_dict(model, sd, source, origin), origin)
    return source


__all__ = [
    "COCO_FLIP_PAIRS",
    "FAMILIES",
    "InferenceError",
    "Poses",
    "TopDownEstimator",
    "create_estimator",
    "crops_to_heatmaps",
    "estimate",
    "estimate_batch",
    "flip_permutation",
    "guess_source",
    "load_weights",
]
