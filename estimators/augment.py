"""Training augmentation and targets for the top-down estimators.

Per person (the released HRNet / MSPN recipes, values from the papers):
- random scale: ``clip(1 + N(0, sigma), lo, hi)`` of the crop region (HRNet [0.65, 1.35]; MSPN/RSN [0.7, 1.35]);
- random rotation ``clip(N(0, r), -r, r)`` degrees with probability 0.6 (r = 45 in both papers). The released
  HRNet code clips at 2r; we clip at r so the range is the paper's stated range;
- horizontal flip with the COCO left/right pairs (the image is mirrored, ``x -> W - 1 - x``, as released);
- half-body crops: a person with more than 8 labelled joints is, with probability 0.3, cropped to the upper or
  lower body (equal odds, the other half when the chosen one has < 2 joints). Unlike the released code, the
  joints of the other half get weight 0 (the issue's contract "half-body crops keep only the chosen joints");
- the crop is the one affine of :mod:`estimators.geometry` that inference uses.

Targets: HRNet family -> Gaussian heatmaps (sigma 2 at 256x192, scaled with the input height) with target
weights, one map set for every stage; MSPN family -> the 5 blurred maps of kernels ``MSPN_KERNELS``
(15, 11, 9, 7, 5), which :mod:`estimators.losses` assigns coarse-to-fine to the units of each stage.
Every function takes values and a ``numpy.random.Generator``; there is no global random state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .codecs import MSPN_KERNELS, encode_gaussian, encode_mspn
from .geometry import PIXEL_STD, crop, get_affine_transform
from .inference import COCO_FLIP_PAIRS, FAMILIES, flip_permutation

COCO_UPPER_BODY: tuple[int, ...] = tuple(range(11))  # nose, eyes, ears, shoulders, elbows, wrists
COCO_LOWER_BODY: tuple[int, ...] = tuple(range(11, 17))  # hips, knees, ankles
HALF_BODY_PADDING = 1.5  # the released code enlarges the half-body box by 1.5


class AugmentError(ValueError):
    """Bad augmentation settings or inputs (names the field)."""


@dataclass(frozen=True)
class AugmentParams:
    """Training augmentation settings (values, not a config object).

    scale_range: (lo, hi) multiplier of the crop region size; scale_sigma: std of the normal draw.
    rotation: max |angle| in degrees; rotation_prob: probability of rotating at all.
    flip_prob: probability of a horizontal flip. half_body_prob / half_body_min_joints: half-body crop for
    persons with MORE than ``half_body_min_joints`` labelled joints.
    """

    scale_range: tuple[float, float] = (0.65, 1.35)
    scale_sigma: float = 0.35
    rotation: float = 45.0
    rotation_prob: float = 0.6
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8

    def __post_init__(self) -> None:
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise AugmentError(f"scale_range: expected 0 < lo <= hi, got {self.scale_range}")
        for name in ("rotation_prob", "flip_prob", "half_body_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise AugmentError(f"{name}: expected a probability in [0, 1], got {v}")
        if self.rotation < 0 or self.scale_sigma < 0:
            raise AugmentError("rotation and scale_sigma must be >= 0")


NO_AUGMENT = AugmentParams(scale_range=(1.0, 1.0), scale_sigma=0.0, rotation=0.0, rotation_prob=0.0,
                           flip_prob=0.0, half_body_prob=0.0)


# ------------------------------------------------------------------------------------------------ flip
def flip_image(image: np.ndarray) -> np.ndarray:
    """(H, W, C) -> the horizontally mirrored image (a new contiguous array)."""
    return np.ascontiguousarray(image[:, ::-1])


def flip_keypoints(keypoints: np.ndarray, visible: np.ndarray, image_width: int,
                   flip_pairs: Sequence[Sequence[int]] = COCO_FLIP_PAIRS) -> tuple[np.ndarray, np.ndarray]:
    """Mirror keypoints (K, 2) image px (x -> W - 1 - x, as the released code) and swap left/right pairs.

    visible (K,) is permuted with them. Returns new arrays; applying it twice gives the input back.
    """
    kp = np.array(keypoints, dtype=np.float64, copy=True)
    vis = np.array(visible, dtype=np.float64, copy=True).reshape(-1)
    perm = flip_permutation(len(kp), flip_pairs)
    kp[:, 0] = image_width - 1 - kp[:, 0]
    return kp[perm], vis[perm]


def flip_center(center: np.ndarray, image_width: int) -> np.ndarray:
    """Crop center (2,) image px in the mirrored image."""
    c = np.array(center, dtype=np.float64, copy=True)
    c[0] = image_width - 1 - c[0]
    return c


# ------------------------------------------------------------------------------------------ half body
def half_body_region(keypoints: np.ndarray, visible: np.ndarray, aspect_ratio: float, use_upper: bool,
                     upper: Sequence[int] = COCO_UPPER_BODY, lower: Sequence[int] = COCO_LOWER_BODY,
                     padding: float = HALF_BODY_PADDING) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Crop region of the upper (``use_upper``) or lower body.

    keypoints (K, 2) image px, visible (K,). Falls back to the other half when the chosen one has fewer than
    2 labelled joints. Returns (center (2,) image px, scale (2,) in 200 px units, keep (K,) bool: the joints of
    the chosen half) or None when neither half has 2 labelled joints.
    """
    vis = np.asarray(visible).reshape(-1) > 0
    halves = [np.asarray(upper), np.asarray(lower)]
    if not use_upper:
        halves.reverse()
    for ids in halves:
        ids = ids[ids < len(vis)]
        chosen = ids[vis[ids]]
        if len(chosen) >= 2:
            break
    else:
        return None
    pts = np.asarray(keypoints, dtype=np.float64)[chosen]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    center = (lo + hi) / 2.0
    w, h = hi - lo
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    if w <= 0 or h <= 0:
        return None
    scale = np.array([w, h]) / PIXEL_STD * padding
    keep = np.zeros(len(vis), dtype=bool)
    keep[chosen] = True
    return center, scale, keep


# ----------------------------------------------------------------------------------------- per person
@dataclass(frozen=True)
class PersonTransform:
    """The drawn augmentation of one person: center (2,) image px of the (possibly mirrored) image,
    scale (2,) in 200 px units, rotation degrees, flip flag."""

    center: np.ndarray
    scale: np.ndarray
    rotation: float
    flip: bool


def sample_transform(rng: np.random.Generator, params: AugmentParams, center: np.ndarray, scale: np.ndarray,
                     keypoints: np.ndarray, visible: np.ndarray, image_width: int, aspect_ratio: float,
                     flip_pairs: Sequence[Sequence[int]] = COCO_FLIP_PAIRS
                     ) -> tuple[PersonTransform, np.ndarray, np.ndarray]:
    """Draw one augmentation for a person.

    center (2,) image px, scale (2,) 200-px units (from the person box), keypoints (K, 2) image px,
    visible (K,). Returns the transform and the keypoints / visibility it implies (mirrored when flipped,
    non-chosen joints dropped for a half-body crop), still in (mirrored) image px.
    """
    c = np.asarray(center, dtype=np.float64).copy()
    s = np.asarray(scale, dtype=np.float64).copy()
    kp = np.asarray(keypoints, dtype=np.float64).copy()
    vis = np.asarray(visible, dtype=np.float64).reshape(-1).copy()
    if params.half_body_prob > 0 and (vis > 0).sum() > params.half_body_min_joints \
            and rng.random() < params.half_body_prob:
        region = half_body_region(kp, vis, aspect_ratio, use_upper=bool(rng.random() < 0.5))
        if region is not None:
            c, s, keep = region
            vis = np.where(keep, vis, 0.0)
    lo, hi = params.scale_range
    s = s * float(np.clip(1.0 + rng.standard_normal() * params.scale_sigma, lo, hi))
    rot = 0.0
    if params.rotation > 0 and rng.random() < params.rotation_prob:
        rot = float(np.clip(rng.standard_normal() * params.rotation, -params.rotation, params.rotation))
    flip = bool(params.flip_prob > 0 and rng.random() < params.flip_prob)
    if flip:
        kp, vis = flip_keypoints(kp, vis, image_width, flip_pairs)
        c = flip_center(c, image_width)
    return PersonTransform(c, s, rot, flip), kp, vis


def make_input(image: np.ndarray, transform: PersonTransform, input_size: Sequence[int]
               ) -> tuple[np.ndarray, np.ndarray]:
    """The network-input crop of one person.

    image (H, W, 3) uint8 BGR (un-mirrored; mirrored here when ``transform.flip``); input_size (w, h).
    Returns crop (h, w, 3) uint8 BGR and the affine (2, 3) float64 (mirrored) image px -> input px.
    """
    src = flip_image(image) if transform.flip else image
    m = get_affine_transform(transform.center, transform.scale, transform.rotation, input_size)
    return crop(src, m, input_size), m


def to_input_tensor(crop_bgr: np.ndarray, family: str) -> torch.Tensor:
    """(h, w, 3) uint8 BGR crop -> (3, h, w) float32 normalised as the family's inference does
    (HRNet: RGB + ImageNet mean/std; MSPN/RSN: BGR + their mean/std)."""
    if family not in FAMILIES:
        raise AugmentError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    conv = FAMILIES[family]
    x = crop_bgr[:, :, ::-1] if conv.rgb else crop_bgr
    x = x.astype(np.float32) / 255.0
    x = (x - np.asarray(conv.mean, np.float32)) / np.asarray(conv.std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


# -------------------------------------------------------------------------------------------- targets
def hrnet_sigma(input_size: Sequence[int], base: float = 2.0) -> float:
    """Gaussian sigma (heatmap px) for an input (w, h): 2 at 256 px height, proportional to it (3 at 384)."""
    return base * float(input_size[1]) / 256.0


def make_targets(family: str, keypoints: np.ndarray, visible: np.ndarray, input_size: Sequence[int],
                 sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Training targets of one person.

    keypoints (K, 2) network-input px, visible (K,), input_size (w, h).
    HRNet family: returns (1, K, h/4, w/4) float32 Gaussian maps (peak 1) and target_weight (K,).
    MSPN family: returns (5, K, h/4, w/4) float32, map t blurred with ``MSPN_KERNELS[t]`` (15, 11, 9, 7, 5),
    peak 255, and target_weight (K,). The losses pick maps per stage and unit (coarse-to-fine).
    """
    hm_size = (int(input_size[0]) // 4, int(input_size[1]) // 4)
    if family == "hrnet":
        s = hrnet_sigma(input_size) if sigma is None else float(sigma)
        hm, w = encode_gaussian(keypoints, visible, hm_size, input_size, sigma=s)
        return hm[None], w
    if family == "mspn":
        maps, weight = [], None
        for k in MSPN_KERNELS:
            hm, weight = encode_mspn(keypoints, visible, hm_size, input_size, k)
            maps.append(hm)
        return np.stack(maps), weight
    raise AugmentError(f"family must be 'hrnet' or 'mspn', got {family!r}")


__all__ = [
    "AugmentError", "AugmentParams", "COCO_LOWER_BODY", "COCO_UPPER_BODY", "NO_AUGMENT", "PersonTransform",
    "flip_center", "flip_image", "flip_keypoints", "half_body_region", "hrnet_sigma", "make_input",
    "make_targets", "sample_transform", "to_input_tensor",
]
