"""A weight-free appearance cue for re-identification: colour histograms sampled along the pose's limbs.

For every person, points are sampled along each skeleton segment (``KeypointLayout.skeleton``) whose two
joints score at least ``score_threshold``; around each point a fixed stencil of pixels within a radius
proportional to the person's size (the larger side of the box around its usable keypoints) is read. Each
segment belongs to one body part (head, torso, upper arm, lower arm, upper leg, lower leg; left and right
are pooled, so a left/right swap of the estimator does not change the descriptor). Per part, a colour
histogram in HSV (OpenCV ranges: H 0..179, S and V 0..255):

- chromatic pixels (S >= sat_min and V >= val_min): ``hue_bins`` x ``sat_bins`` hue-saturation bins (hue and
  saturation do not change with the brightness of the light);
- the others (white, grey, black, dark): ``value_bins`` brightness bins, because their hue is noise.

The histogram of a part is normalised to sum 1 and stored as its square root, so the dot product of two
parts is their Bhattacharyya coefficient (1 = same distribution, 0 = disjoint). A part without samples is
all zeros. The similarity of two people is the mean Bhattacharyya coefficient over the parts both have
(0 when they share none), in [0, 1].

Inputs are image pixels of one BGR uint8 frame (OpenCV's order); numpy and cv2 only.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from association.arrays import check_image
from association.keypoints import COCO17, KeypointLayout

PARTS: tuple[str, ...] = ("head", "torso", "upper_arm", "lower_arm", "upper_leg", "lower_leg")
_LIMBS = {frozenset(("shoulder", "elbow")): "upper_arm", frozenset(("elbow", "wrist")): "lower_arm",
          frozenset(("hip", "knee")): "upper_leg", frozenset(("knee", "ankle")): "lower_leg",
          frozenset(("shoulder",)): "torso", frozenset(("hip",)): "torso", frozenset(("shoulder", "hip")): "torso"}
_BODY_JOINTS = ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")


class AppearanceInputError(ValueError):
    """The image, keypoints, scores, descriptors or settings given to the appearance cue are invalid."""


def _joint_kind(name: str) -> str:
    for kind in _BODY_JOINTS:
        if kind in name:
            return kind
    return "head"  # nose, eyes, ears, head_bottom, head_top


def segment_parts(layout: KeypointLayout) -> np.ndarray:
    """(S,) int64 index into PARTS of each segment of ``layout.skeleton``; -1 = not used.

    A segment touching a head keypoint (e.g. ear-shoulder) is "head"; shoulder/hip pairs are "torso".
    """
    out = []
    for a, b in layout.skeleton:
        kinds = (_joint_kind(layout.names[a]), _joint_kind(layout.names[b]))
        if "head" in kinds:
            out.append(PARTS.index("head"))
        else:
            part = _LIMBS.get(frozenset(kinds))
            out.append(PARTS.index(part) if part is not None else -1)
    return np.asarray(out, dtype=np.int64)


def _stencil() -> np.ndarray:
    """(17, 2) offsets in units of the radius: the centre, 8 points at r/2 and 8 at r."""
    ang = np.arange(8) * (math.pi / 4)
    ring = np.stack([np.cos(ang), np.sin(ang)], 1)
    return np.concatenate([np.zeros((1, 2)), 0.5 * ring, ring])


class PoseAppearance:
    """Per-person colour descriptors along the skeleton, and their similarity.

    layout: the keypoint layout of the poses (its names decide the body parts, its skeleton the segments).
    score_threshold: joints scoring below this (or non-finite) are not used.
    samples_per_segment: points per segment, at (i + 0.5) / n of its length.
    radius_fraction: stencil radius as a fraction of the person's size (the larger side, px, of the box
        around its usable keypoints); at least min_radius px.
    hue_bins, sat_bins, value_bins, sat_min, val_min: the histogram (see the module docstring).
    The object holds settings only (no state): describe() of the same input always gives the same output.
    """

    def __init__(self, layout: KeypointLayout = COCO17, *, score_threshold: float = 0.3,
                 samples_per_segment: int = 6, radius_fraction: float = 0.04, min_radius: float = 1.0,
                 hue_bins: int = 12, sat_bins: int = 3, value_bins: int = 4, sat_min: int = 40,
                 val_min: int = 40) -> None:
        for name, value in (("samples_per_segment", samples_per_segment), ("hue_bins", hue_bins),
                            ("sat_bins", sat_bins), ("value_bins", value_bins)):
            if int(value) != value or value < 1:
                raise AppearanceInputError(f"{name}: expected an integer >= 1, got {value!r}")
        if not (math.isfinite(radius_fraction) and radius_fraction >= 0 and math.isfinite(min_radius)
                and min_radius >= 0):
            raise AppearanceInputError(f"radius_fraction / min_radius: expected finite values >= 0, got "
                                       f"{radius_fraction!r} / {min_radius!r}")
        if not (0 <= sat_min <= 255 and 0 <= val_min <= 255):
            raise AppearanceInputError(f"sat_min / val_min: expected values in [0, 255], got {sat_min} / {val_min}")
        self.layout = layout
        self.score_threshold = float(score_threshold)
        self.samples_per_segment = int(samples_per_segment)
        self.radius_fraction = float(radius_fraction)
        self.min_radius = float(min_radius)
        self.hue_bins, self.sat_bins, self.value_bins = int(hue_bins), int(sat_bins), int(value_bins)
        self.sat_min, self.val_min = int(sat_min), int(val_min)
        self._seg = np.asarray(layout.skeleton, dtype=np.int64).reshape(-1, 2)  # (S, 2)
        self._part = segment_parts(layout)  # (S,)
        self._stencil = _stencil()  # (O, 2)

    @property
    def num_parts(self) -> int:
        return len(PARTS)

    @property
    def bins_per_part(self) -> int:
        return self.hue_bins * self.sat_bins + self.value_bins

    @property
    def descriptor_size(self) -> int:
        """D = num_parts * bins_per_part."""
        return self.num_parts * self.bins_per_part

    # ------------------------------------------------------------------------------------------ descriptors
    def describe(self, image: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Descriptors of the people in one frame.

        image: (H, W, 3) uint8 BGR. keypoints: (N, K, 2) image px of that frame (x right, y down).
        scores: (N, K) keypoint scores.
        Returns (N, D) float32, D = descriptor_size: per part (PARTS order) the square root of its normalised
        histogram, or zeros when the person has no usable segment of that part.
        """
        check_image(image, "image", AppearanceInputError)
        k = self.layout.num_keypoints
        kps = np.asarray(keypoints, dtype=np.float64)
        if kps.ndim != 3 or kps.shape[1:] != (k, 2):
            raise AppearanceInputError(f"keypoints: expected shape (N, {k}, 2) pixels for layout "
                                       f"{self.layout.name!r}, got shape {kps.shape}")
        sc = np.asarray(scores, dtype=np.float64)
        if sc.shape != kps.shape[:2]:
            raise AppearanceInputError(f"scores: expected shape {kps.shape[:2]}, got shape {sc.shape}")
        n, g, b = kps.shape[0], self.num_parts, self.bins_per_part
        hist = np.zeros((n, g, b), np.float64)
        if n == 0 or len(self._seg) == 0:
            return hist.reshape(n, g * b).astype(np.float32)
        h, w = image.shape[:2]

        usable = np.isfinite(kps).all(-1) & np.isfinite(sc) & (sc >= self.score_threshold)  # (N, K)
        lo = np.where(usable[..., None], kps, np.inf).min(axis=1)  # (N, 2)
        hi = np.where(usable[..., None], kps, -np.inf).max(axis=1)
        size = np.where(usable.any(1), (hi - lo).max(axis=-1), 0.0)  # (N,) px
        radius = np.maximum(self.radius_fraction * size, self.min_radius)  # (N,)

        a, c = self._seg[:, 0], self._seg[:, 1]
        seg_ok = usable[:, a] & usable[:, c] & (self._part >= 0)  # (N, S)
        t = (np.arange(self.samples_per_segment) + 0.5) / self.samples_per_segment  # (n,)
        ka, kc = np.nan_to_num(kps[:, a]), np.nan_to_num(kps[:, c])  # (N, S, 2)
        along = ka[:, :, None] + t[None, None, :, None] * (kc - ka)[:, :, None]  # (N, S, n, 2)
        offs = self._stencil[None] * radius[:, None, None]  # (N, O, 2)
        xy = np.floor(along[:, :, :, None] + offs[:, None, None] + 0.5).astype(np.int64)  # (N, S, n, O, 2)
        inside = (xy[..., 0] >= 0) & (xy[..., 0] < w) & (xy[..., 1] >= 0) & (xy[..., 1] < h)
        take = inside & seg_ok[:, :, None, None]  # (N, S, n, O)
        if not take.any():
            return hist.reshape(n, g * b).astype(np.float32)
        person = np.broadcast_to(np.arange(n)[:, None, None, None], take.shape)[take]
        part = np.broadcast_to(self._part[None, :, None, None], take.shape)[take]
        pix = image[xy[..., 1][take], xy[..., 0][take]]  # (M, 3) BGR
        hsv = cv2.cvtColor(np.ascontiguousarray(pix.reshape(-1, 1, 3)), cv2.COLOR_BGR2HSV).reshape(-1, 3)
        bins = self._bin(hsv)
        flat = (person * g + part) * b + bins
        hist = np.bincount(flat, minlength=n * g * b).astype(np.float64).reshape(n, g, b)
        total = hist.sum(-1, keepdims=True)
        hist = np.sqrt(np.divide(hist, total, out=np.zeros_like(hist), where=total > 0))
        return hist.reshape(n, g * b).astype(np.float32)

    __call__ = describe

    def _bin(self, hsv: np.ndarray) -> np.ndarray:
        hue, sat, val = (hsv[:, i].astype(np.int64) for i in range(3))
        chroma = (sat >= self.sat_min) & (val >= self.val_min)
        hb = np.minimum(hue * self.hue_bins // 180, self.hue_bins - 1)
        span = 256 - self.sat_min
        sb = np.clip((sat - self.sat_min) * self.sat_bins // max(span, 1), 0, self.sat_bins - 1)
        vb = np.minimum(val * self.value_bins // 256, self.value_bins - 1)
        return np.where(chroma, hb * self.sat_bins + sb, self.hue_bins * self.sat_bins + vb)

    # ------------------------------------------------------------------------------------------- similarity
    def similarity(self, desc_a: np.ndarray, desc_b: np.ndarray) -> np.ndarray:
        """(N, D), (M, D) descriptors of describe() -> (N, M) float32 similarity in [0, 1] (see module doc)."""
        return appearance_similarity(desc_a, desc_b, self.num_parts)


def appearance_similarity(desc_a: np.ndarray, desc_b: np.ndarray, num_parts: int = len(PARTS)) -> np.ndarray:
    """Mean per-part Bhattacharyya coefficient of two sets of descriptors, over the parts both people have.

    desc_a: (N, D), desc_b: (M, D) float, D divisible by num_parts, each part the square root of a normalised
    histogram or all zeros (PoseAppearance.describe). Returns (N, M) float32 in [0, 1]; 0 where a pair shares
    no part.
    """
    a = np.asarray(desc_a, dtype=np.float64)
    bb = np.asarray(desc_b, dtype=np.float64)
    for name, d in (("desc_a", a), ("desc_b", bb)):
        if d.ndim != 2 or d.shape[1] % num_parts or not np.isfinite(d).all() or (d < 0).any():
            raise AppearanceInputError(f"{name}: expected (N, D) finite non-negative descriptors with D divisible "
                                       f"by {num_parts} parts, got shape {d.shape}")
    if a.shape[1] != bb.shape[1]:
        raise AppearanceInputError(f"desc_a / desc_b: descriptor sizes differ ({a.shape[1]} vs {bb.shape[1]})")
    a = a.reshape(a.shape[0], num_parts, -1)
    bb = bb.reshape(bb.shape[0], num_parts, -1)
    coeff = np.einsum("ngb,mgb->nmg", a, bb)  # (N, M, G)
    both = (a.sum(-1) > 0)[:, None, :] & (bb.sum(-1) > 0)[None, :, :]
    count = both.sum(-1)
    sim = np.divide((coeff * both).sum(-1), count, out=np.zeros(count.shape), where=count > 0)
    return np.clip(sim, 0.0, 1.0).astype(np.float32)
