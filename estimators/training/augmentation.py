"""Training augmentation of the top-down estimators (per person, values in, values out).

Per person (the released HRNet / MSPN recipes, values from the papers):
- random scale: ``clip(1 + N(0, sigma), lo, hi)`` of the crop region (HRNet [0.65, 1.35]; MSPN/RSN [0.7, 1.35]);
- random rotation ``clip(N(0, r), -r, r)`` degrees with probability 0.6 (r = 45 in both papers). The released
  HRNet code clips at 2r; we clip at r so the range is the paper's stated range;
- horizontal flip with the left/right pairs of the keypoint layout (the image is mirrored, ``x -> W - 1 - x``,
  as released; PoseTrack-18's head_bottom / head_top are not a pair and stay in their slots);
- half-body crops: a person with more than 8 labelled joints is, with probability 0.3, cropped to the upper or
  lower body (equal odds, the other half when the chosen one has < 2 joints). Unlike the released code, the
  joints of the other half get weight 0 (half-body crops keep only the chosen joints);
- the crop is the one affine of :mod:`estimators.geometry` that inference uses.

Every function takes values and a ``numpy.random.Generator``; there is no global random state. No torch here.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from association.keypoints import COCO17, KeypointLayout

from ..geometry import PIXEL_STD, crop, get_affine_transform

LOWER_BODY_PARTS = ("hip", "knee", "ankle")  # keypoint names ending in these are the lower body
HALF_BODY_PADDING = 1.5  # the released code enlarges the half-body box by 1.5


def body_halves(layout: KeypointLayout) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(upper, lower) keypoint indices of a layout: lower = hips, knees, ankles (by name); upper = the rest."""
    lower = tuple(i for i, n in enumerate(layout.names) if n.endswith(LOWER_BODY_PARTS))
    upper = tuple(i for i in range(layout.num_keypoints) if i not in lower)
    return upper, lower


COCO_UPPER_BODY, COCO_LOWER_BODY = body_halves(COCO17)  # (0..10: head, arms), (11..16: hips, knees, ankles)


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
                   layout: KeypointLayout) -> tuple[np.ndarray, np.ndarray]:
    """Mirror keypoints (K, 2) image px (x -> W - 1 - x, as the released code) and swap the layout's
    left/right pairs.

    visible (K,) is permuted with them. Returns new arrays; applying it twice gives the input back.
    """
    kp = np.array(keypoints, dtype=np.float64, copy=True)
    vis = np.array(visible, dtype=np.float64, copy=True).reshape(-1)
    if len(kp) != layout.num_keypoints or len(vis) != len(kp):
        raise AugmentError(f"flip_keypoints: {len(kp)} keypoints and {len(vis)} visibilities for layout "
                           f"{layout.name!r} of {layout.num_keypoints}")
    perm = layout.flip_permutation()
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
                     layout: KeypointLayout) -> tuple[PersonTransform, np.ndarray, np.ndarray]:
    """Draw one augmentation for a person.

    center (2,) image px, scale (2,) 200-px units (from the person box), keypoints (K, 2) image px,
    visible (K,), layout: the keypoints' layout (flip pairs, body halves). Returns the transform and the
    keypoints / visibility it implies (mirrored when flipped, non-chosen joints dropped for a half-body crop),
    still in (mirrored) image px.
    """
    c = np.asarray(center, dtype=np.float64).copy()
    s = np.asarray(scale, dtype=np.float64).copy()
    kp = np.asarray(keypoints, dtype=np.float64).copy()
    vis = np.asarray(visible, dtype=np.float64).reshape(-1).copy()
    if params.half_body_prob > 0 and (vis > 0).sum() > params.half_body_min_joints \
            and rng.random() < params.half_body_prob:
        upper, lower = body_halves(layout)
        region = half_body_region(kp, vis, aspect_ratio, use_upper=bool(rng.random() < 0.5), upper=upper,
                                  lower=lower)
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
        kp, vis = flip_keypoints(kp, vis, image_width, layout)
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


__all__ = [
    "AugmentError", "AugmentParams", "COCO_LOWER_BODY", "COCO_UPPER_BODY", "NO_AUGMENT", "PersonTransform",
    "body_halves", "flip_center", "flip_image", "flip_keypoints", "half_body_region", "make_input",
    "sample_transform",
]
