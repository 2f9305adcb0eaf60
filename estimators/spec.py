"""What travels with every registered model: its :class:`ModelSpec`, the top-down :class:`Family` conventions,
and the :class:`Poses` record every estimator returns. No torch here (importing it is cheap).

Per-family conventions of the top-down estimators, as the released code does them (HRNet: the authors'
``lib/core/inference.py``, ``lib/core/function.py`` and ``lib/dataset/JointsDataset.py``; MSPN/RSN: the
authors' ``exps/*/test.py`` (``get_results``) and MMPose's ``MegviiHeatmap`` codec):

| | HRNet family (HRNet, MS-HRNet) | MSPN family (MSPN, RSN) |
| --- | --- | --- |
| box -> crop | aspect-fix, x1.25 padding | width x1.09, height x1.135, then aspect-fix |
| colour, normalisation | RGB, ImageNet mean/std | BGR, mean [.406,.456,.485], std [.225,.224,.229] |
| flip test | flip back + swap pairs + shift 1 px right, average | flip back + swap pairs, average (no shift) |
| box -> centre, scale | float32, from the float64 box (``_xywh2cs``) | float32, from the float64 box |
| crop affine | three float32 points + ``cv2.getAffineTransform`` | the same construction |
| decoding | argmax + quarter offset (heatmap px) | zero-pad 10 cells, blur(5), argmax over the padded map, |
| | | quarter step toward the 2nd max, clip, ``x*4+2`` input px |
| back to the image | heatmap-size inverse affine (``transform_preds``) | ``x / w_in * 200 s + c - 100 s`` |
| raw joint score | heatmap maximum | unblurred value / 255 + 0.5 |
| calibrated joint score | raw | raw - 0.5 |
| pose score (from RAW scores) | box score x mean of joint scores > 0.2 (0 if none) | box score x mean joint score |
| training target | Gaussian, peak 1, sigma 2 | blurred one-hot, peak 255, coarse-to-fine kernels |

``Poses.keypoint_scores`` are the calibrated scores, the shared unit of every estimator: 1.0 is a perfect
target peak (HRNet's Gaussian peak 1; MSPN's 255 / 255), 0 is a flat heatmap. Thresholds downstream
(tracking, rendering) are in that unit; the pose scores stay exactly the released ones.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from association.keypoints import COCO17, KeypointLayout

from .codecs import MSPN_TEST_KERNEL, decode_hrnet, decode_mspn
from .geometry import box_to_center_scale, box_to_center_scale_mspn, crop_to_image, input_to_image_linear

HRNET_JOINT_SCORE_THRESHOLD = 0.2  # released HRNet rescoring: only joints above it count in the pose score
MSPN_SCORE_OFFSET = 0.5  # released MSPN/RSN joint score = value / 255 + 0.5
TOPDOWN = "topdown"


class InferenceError(ValueError):
    """Bad input to an estimator or a malformed estimator result (shapes, lengths, options)."""


class SpecError(ValueError):
    """An inconsistent ModelSpec / Family, or a registry lookup that fails."""


# ------------------------------------------------------------------------------------------------ families
def _decode_hrnet(heatmaps: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    hm_h, hm_w = heatmaps.shape[-2:]
    coords, scores = decode_hrnet(heatmaps)
    # heatmap px -> image px with the heatmap-size inverse affine, as released (no half-cell offset)
    return coords, scores, (hm_w, hm_h)


def _decode_mspn(heatmaps: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    hm_w = heatmaps.shape[-1]
    coords, scores = decode_mspn(heatmaps, kernel=MSPN_TEST_KERNEL, stride=input_size[0] / hm_w)
    return coords, scores, (int(input_size[0]), int(input_size[1]))


def _pose_scores_hrnet(box_scores: np.ndarray, joint_scores: np.ndarray) -> np.ndarray:
    keep = joint_scores > HRNET_JOINT_SCORE_THRESHOLD
    cnt = keep.sum(axis=1)
    mean = np.where(cnt > 0, (joint_scores * keep).sum(axis=1) / np.maximum(cnt, 1), 0.0)
    return box_scores * mean


def _pose_scores_mean(box_scores: np.ndarray, joint_scores: np.ndarray) -> np.ndarray:
    return box_scores * joint_scores.mean(axis=1)


@dataclass(frozen=True)
class Family:
    """The conventions one top-down family shares (see the module table). Values and pure functions only.

    rgb: convert the BGR crop to RGB before normalising. mean, std: per channel of the network input (in the
    input's channel order), on [0, 1] pixel values. flip_shift: shift the flipped-back heatmaps one pixel
    right (HRNet). box_to_center_scale(boxes (N, 4) xyxy px, aspect w/h) -> centres (N, 2) px, scales (N, 2)
    in 200 px units, float32 as released (the crop padding). decode(heatmaps (N, K, h, w), input_size (w, h))
    -> points (N, K, 2) in the pixels of a crop of size ``frame`` (w, h), raw joint scores (N, K), frame.
    to_image(points (N, K, 2) px of the ``frame`` crop, centres (N, 2), scales (N, 2), frame (w, h)) -> (N, K, 2)
    float64 image px (the released back-projection). pose_score(box_scores (N,), raw joint scores (N, K)) ->
    (N,). target: the training target kind ("gaussian" or "mspn").
    score_offset: calibrated joint score = raw - score_offset.
    """

    name: str
    rgb: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    flip_shift: bool
    box_to_center_scale: Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray]]
    decode: Callable[[np.ndarray, tuple[int, int]], tuple[np.ndarray, np.ndarray, tuple[int, int]]]
    to_image: Callable[[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]], np.ndarray]
    pose_score: Callable[[np.ndarray, np.ndarray], np.ndarray]
    target: str
    score_offset: float = 0.0

    def calibrate(self, raw_scores: np.ndarray) -> np.ndarray:
        """Raw joint scores (N, K) -> the shared unit (float32; HRNet: unchanged)."""
        raw = np.asarray(raw_scores, dtype=np.float32)
        return raw if self.score_offset == 0.0 else raw - np.float32(self.score_offset)


HRNET = Family(name="hrnet", rgb=True, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), flip_shift=True,
               box_to_center_scale=box_to_center_scale, decode=_decode_hrnet, to_image=crop_to_image,
               pose_score=_pose_scores_hrnet,
               target="gaussian", score_offset=0.0)
MSPN = Family(name="mspn", rgb=False, mean=(0.406, 0.456, 0.485), std=(0.225, 0.224, 0.229), flip_shift=False,
              box_to_center_scale=box_to_center_scale_mspn, decode=_decode_mspn,
              to_image=input_to_image_linear, pose_score=_pose_scores_mean,
              target="mspn", score_offset=MSPN_SCORE_OFFSET)
FAMILIES: Mapping[str, Family] = MappingProxyType({f.name: f for f in (HRNET, MSPN)})


def get_family(name: str) -> Family:
    """The family called ``name`` ("hrnet" or "mspn")."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise SpecError(f"unknown estimator family {name!r}; valid: {', '.join(FAMILIES)}") from None


# ------------------------------------------------------------------------------------------------ specs
@dataclass(frozen=True)
class ModelSpec:
    """Everything known about one registered model name.

    name: the registry name. builder: kind "topdown": ``builder(**model_kwargs) -> nn.Module`` mapping
    normalised crops (B, 3, h, w) float32 to heatmaps (B, K, h/4, w/4); any other kind: ``builder(checkpoint,
    *, device, max_batch, **model_kwargs) -> estimator`` (an object with the estimator contract, see
    ``estimators.topdown.TopDownEstimator``). family: the top-down :class:`Family` (None for other kinds).
    layout: the keypoint layout of its outputs (a checkpoint's own layout overrides it, see
    ``estimators.checkpoints.load_weights``). input_size: (w, h) network input pixels.
    checkpoint_remaps: source format -> function renaming a released state dict to ours. kind: "topdown" or
    another estimator kind. description: one line. embedded_weights: True when the model runs with weights
    shipped or fetched by the project (no checkpoint needed). score_offset: for models without a family,
    calibrated keypoint score = raw - score_offset.
    """

    name: str
    builder: Callable[..., Any]
    family: Family | None
    layout: KeypointLayout = COCO17
    input_size: tuple[int, int] = (192, 256)
    checkpoint_remaps: Mapping[str, Callable] = field(default_factory=lambda: MappingProxyType({}))
    kind: str = TOPDOWN
    description: str = ""
    embedded_weights: bool = False
    score_offset: float = 0.0

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise SpecError(f"ModelSpec.name must be a non-empty string, got {self.name!r}")
        if self.kind == TOPDOWN and not isinstance(self.family, Family):
            raise SpecError(f"ModelSpec {self.name!r}: a top-down model needs a Family, got {self.family!r}")
        w, h = self.input_size
        if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
            raise SpecError(f"ModelSpec {self.name!r}: input_size must be positive ints (w, h), got {self.input_size}")
        object.__setattr__(self, "checkpoint_remaps", MappingProxyType(dict(self.checkpoint_remaps)))

    @property
    def rgb(self) -> bool:
        return bool(self.family.rgb) if self.family is not None else True

    @property
    def mean(self) -> tuple[float, float, float] | None:
        return self.family.mean if self.family is not None else None

    @property
    def std(self) -> tuple[float, float, float] | None:
        return self.family.std if self.family is not None else None

    def calibrate(self, raw_scores: np.ndarray) -> np.ndarray:
        """Raw keypoint scores (N, K) of this model -> the shared unit, float32."""
        if self.family is not None:
            return self.family.calibrate(raw_scores)
        raw = np.asarray(raw_scores, dtype=np.float32)
        return raw if self.score_offset == 0.0 else raw - np.float32(self.score_offset)


# ------------------------------------------------------------------------------------------------ results
@dataclass
class Poses:
    """Poses of N persons in one image, as every estimator returns them.

    keypoints: (N, K, 2) float32 image pixels (x, y). keypoint_scores: (N, K) float32, CALIBRATED to the
    shared unit (see the module table; 1 = a perfect target peak). pose_scores: (N,) float32, the model's
    released pose score. roi_points: (N, 2, 2) float32 image pixels or None: alignment points for the next
    frame's crop ([:, 0] centre, [:, 1] scale/rotation point; BlazePose), None for other estimators.
    extras: optional per-person arrays (N, ...).
    """

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    pose_scores: np.ndarray
    roi_points: np.ndarray | None = None
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
        if self.roi_points is not None:
            self.roi_points = np.asarray(self.roi_points, dtype=np.float32)
            if self.roi_points.shape != (n, 2, 2):
                raise InferenceError(f"Poses.roi_points: expected shape ({n}, 2, 2), got {self.roi_points.shape}")

    def __len__(self) -> int:
        return len(self.pose_scores)

    @classmethod
    def empty(cls, num_keypoints: int) -> Poses:
        return cls(np.zeros((0, num_keypoints, 2), np.float32), np.zeros((0, num_keypoints), np.float32),
                   np.zeros(0, np.float32))


def check_input_size(input_size: Sequence[int], what: str = "input_size",
                     error: type[Exception] = InferenceError) -> tuple[int, int]:
    """(w, h) positive ints, or ``error`` naming ``what``."""
    try:
        w, h = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise error(f"{what}: expected (w, h), got {input_size!r}") from None
    if w <= 0 or h <= 0:
        raise error(f"{what} must be positive (w, h), got {tuple(input_size)}")
    return w, h


__all__ = ["FAMILIES", "HRNET", "MSPN", "TOPDOWN", "Family", "InferenceError", "ModelSpec", "Poses", "SpecError",
           "check_input_size", "get_family"]
