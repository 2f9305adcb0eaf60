"""What the network is given and what it must produce, for one person crop (per the model's ``Family``).

- :func:`normalize_input`: the crop normalised exactly as the family's inference does it (colour order,
  mean/std of :class:`estimators.spec.Family`).
- :func:`make_targets`: ``Family.target`` "gaussian" (HRNet family) -> Gaussian heatmaps (sigma 2 at 256x192,
  scaled with the input height) with target weights, one map set for every stage; "mspn" (MSPN family) ->
  the 5 blurred maps of kernels ``MSPN_KERNELS`` (15, 11, 9, 7, 5), which
  :mod:`estimators.training.losses` assigns coarse-to-fine to the units of each stage.

No torch here.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from association.arrays import check_image

from ..codecs import MSPN_KERNELS, encode_gaussian, encode_mspn
from ..spec import Family

HRNET_SIGMA_AT_256 = 2.0  # HRNet: Gaussian sigma 2 heatmap px for a 256 px high input


class TargetError(ValueError):
    """A family whose target kind is unknown, or inputs that do not fit (names the field)."""


def normalize_input(crop_bgr: np.ndarray, family: Family) -> np.ndarray:
    """(h, w, 3) uint8 BGR crop -> (3, h, w) float32 network input, normalised as ``family``'s inference does
    (HRNet: RGB + ImageNet mean/std; MSPN/RSN: BGR + their mean/std)."""
    check_image(crop_bgr, "crop", TargetError)
    x = crop_bgr[:, :, ::-1] if family.rgb else crop_bgr
    x = x.astype(np.float32) / 255.0
    x = (x - np.asarray(family.mean, np.float32)) / np.asarray(family.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def hrnet_sigma(input_size: Sequence[int], base: float = HRNET_SIGMA_AT_256) -> float:
    """Gaussian sigma (heatmap px) for an input (w, h): 2 at 256 px height, proportional to it (3 at 384)."""
    return base * float(input_size[1]) / 256.0


def make_targets(family: Family, keypoints: np.ndarray, visible: np.ndarray, input_size: Sequence[int],
                 sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Training targets of one person.

    keypoints (K, 2) network-input px, visible (K,), input_size (w, h).
    ``family.target == "gaussian"``: returns (1, K, h/4, w/4) float32 Gaussian maps (peak 1) and target_weight
    (K,); sigma None = :func:`hrnet_sigma`. ``"mspn"``: returns (5, K, h/4, w/4) float32, map t blurred with
    ``MSPN_KERNELS[t]`` (15, 11, 9, 7, 5), peak 255, and target_weight (K,). The losses pick maps per stage
    and unit (coarse-to-fine).
    """
    hm_size = (int(input_size[0]) // 4, int(input_size[1]) // 4)
    if family.target == "gaussian":
        s = hrnet_sigma(input_size) if sigma is None else float(sigma)
        hm, w = encode_gaussian(keypoints, visible, hm_size, input_size, sigma=s)
        return hm[None], w
    if family.target == "mspn":
        maps, weight = [], None
        for k in MSPN_KERNELS:
            hm, weight = encode_mspn(keypoints, visible, hm_size, input_size, k)
            maps.append(hm)
        return np.stack(maps), weight
    raise TargetError(f"family {family.name!r}: unknown target kind {family.target!r} (known: 'gaussian', 'mspn')")


__all__ = ["HRNET_SIGMA_AT_256", "TargetError", "hrnet_sigma", "make_targets", "normalize_input"]
