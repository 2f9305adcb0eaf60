"""Crop geometry shared by top-down inference and training: box -> (center, scale) -> affine -> crop.

Conventions (those of the released HRNet code, which MSPN/RSN share):
- ``center``: (2,) or (N, 2) float, image pixels (x, y).
- ``scale``: (2,) or (N, 2) float, the crop region's (width, height) in units of ``PIXEL_STD`` = 200 image
  pixels. The affine is a similarity: only ``scale[..., 0]`` (the width) sets the zoom, the height follows
  from the output aspect ratio, exactly as in the released ``get_affine_transform``. The box helpers below
  always return scales whose aspect equals the output aspect, so nothing is lost.
- ``output_size``: (w, h) pixels of the crop (network input or heatmap).
- The forward affine ``M`` (2, 3) maps image pixels -> crop pixels: ``M @ [x, y, 1]``; it sends ``center``
  to ``(w/2, h/2)``. ``inv=True`` gives crop pixels -> image pixels.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

PIXEL_STD = 200.0
HRNET_PADDING = 1.25
# MSPN/RSN test-time enlargement (released code: 1 + 0.09 in width, 1 + 0.135 in height, no 1.25 padding).
MSPN_TEST_ENLARGE = (1.09, 1.135)


class GeometryError(ValueError):
    """Bad input to a geometry helper (wrong shape, non-positive size)."""


def _as_boxes(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise GeometryError(f"boxes: expected shape (N, 4) xyxy, got {b.shape}")
    return b


def _fix_aspect(w: np.ndarray, h: np.ndarray, aspect_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Enlarge the short side so that w / h == aspect_ratio (never shrink)."""
    wider = w > aspect_ratio * h
    h2 = np.where(wider, w / aspect_ratio, h)
    w2 = np.where(wider, w, h * aspect_ratio)
    return w2, h2


def _centers_sizes(boxes: np.ndarray, aspect_ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """boxes (N, 4) xyxy px -> centers (N, 2) px, widths (N,) px, heights (N,) px (validated)."""
    b = _as_boxes(boxes)
    if not aspect_ratio > 0:
        raise GeometryError(f"aspect_ratio must be > 0, got {aspect_ratio}")
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    return np.stack([b[:, 0] + 0.5 * w, b[:, 1] + 0.5 * h], axis=1), w, h


def box_to_center_scale(
    boxes: np.ndarray, aspect_ratio: float, padding: float = HRNET_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """HRNet convention: center = box center; enlarge one side to ``aspect_ratio``; /200; x ``padding``.

    boxes: (N, 4) xyxy image pixels. aspect_ratio: crop width / height (192/256 for 256x192 inputs).
    Returns centers (N, 2) float64 image pixels and scales (N, 2) float64 in units of 200 px.
    """
    centers, w, h = _centers_sizes(boxes, aspect_ratio)
    w, h = _fix_aspect(w, h, aspect_ratio)
    scales = np.stack([w, h], axis=1) / PIXEL_STD * padding
    return centers, scales


def box_to_center_scale_mspn(
    boxes: np.ndarray, aspect_ratio: float, enlarge: Sequence[float] = MSPN_TEST_ENLARGE
) -> tuple[np.ndarray, np.ndarray]:
    """MSPN/RSN test-time convention: width x ``enlarge[0]``, height x ``enlarge[1]``, then aspect-fix.

    No 1.25 padding. Same shapes/units as :func:`box_to_center_scale`.
    """
    centers, w, h = _centers_sizes(boxes, aspect_ratio)
    w, h = _fix_aspect(w * enlarge[0], h * enlarge[1], aspect_ratio)
    scales = np.stack([w, h], axis=1) / PIXEL_STD
    return centers, scales


def get_affine_transforms(
    centers: np.ndarray,
    scales: np.ndarray,
    rot_deg: np.ndarray | float,
    output_size: Sequence[int],
    shift: Sequence[float] = (0.0, 0.0),
    inv: bool = False,
) -> np.ndarray:
    """Batched similarity transforms (N, 2, 3) float64.

    centers (N, 2) image px; scales (N, 2) in 200 px units; rot_deg scalar or (N,) degrees (positive: the
    image content appears rotated counter-clockwise on screen in the crop, e.g. at +90 a point right of the
    center lands above the crop center; as the released code's augmentation); output_size (w, h) px; shift
    (2,) fraction of the 200*scale region size. Closed form of the released three-point construction: the linear
    part is ``(w_out / (200 * scale_x)) * R(-rot)`` and ``center + 200 * scale * shift`` maps to
    ``(w_out/2, h_out/2)``.
    """
    c = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(scales, dtype=np.float64).reshape(-1, 2)
    if len(c) != len(s):
        raise GeometryError(f"centers ({len(c)}) and scales ({len(s)}) disagree in length")
    if np.any(s[:, 0] <= 0):
        raise GeometryError("scales: width must be > 0 for every crop")
    out_w, out_h = float(output_size[0]), float(output_size[1])
    rot = np.broadcast_to(np.asarray(rot_deg, dtype=np.float64), (len(c),)) * (math.pi / 180.0)
    src_c = c + PIXEL_STD * s * np.asarray(shift, dtype=np.float64)
    dst_c = np.array([out_w * 0.5, out_h * 0.5])
    cos, sin = np.cos(rot), np.sin(rot)
    n = len(c)
    m = np.empty((n, 2, 3), dtype=np.float64)
    if not inv:
        k = out_w / (PIXEL_STD * s[:, 0])
        a = np.stack([np.stack([cos, sin], 1), np.stack([-sin, cos], 1)], 1) * k[:, None, None]
        m[:, :, :2] = a
        m[:, :, 2] = dst_c[None] - np.einsum("nij,nj->ni", a, src_c)
    else:
        k = (PIXEL_STD * s[:, 0]) / out_w
        a = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1) * k[:, None, None]
        m[:, :, :2] = a
        m[:, :, 2] = src_c - np.einsum("nij,j->ni", a, dst_c)
    return m


def get_affine_transform(
    center: np.ndarray,
    scale: np.ndarray,
    rot_deg: float,
    output_size: Sequence[int],
    shift: Sequence[float] = (0.0, 0.0),
    inv: bool = False,
) -> np.ndarray:
    """Single-crop version of :func:`get_affine_transforms`: center (2,), scale (2,) -> (2, 3) float64."""
    return get_affine_transforms(
        np.asarray(center, dtype=np.float64).reshape(1, 2),
        np.asarray(scale, dtype=np.float64).reshape(1, 2),
        rot_deg,
        output_size,
        shift,
        inv,
    )[0]


def crop(image: np.ndarray, m: np.ndarray, out_size: Sequence[int]) -> np.ndarray:
    """Warp ``image`` (H, W, C) uint8 by ``m`` (2, 3) image px -> crop px into (out_h, out_w, C).

    Bilinear interpolation, constant border 0 (as the released code's cv2.warpAffine defaults).
    """
    if image.ndim != 3:
        raise GeometryError(f"image: expected (H, W, C), got shape {image.shape}")
    w, h = int(out_size[0]), int(out_size[1])
    return cv2.warpAffine(
        image, np.asarray(m, dtype=np.float64), (w, h), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )


def crop_batch(image: np.ndarray, ms: np.ndarray, out_size: Sequence[int]) -> np.ndarray:
    """All crops of one image: ms (N, 2, 3) -> (N, out_h, out_w, C) uint8 (one warpAffine per crop)."""
    w, h = int(out_size[0]), int(out_size[1])
    out = np.zeros((len(ms), h, w, image.shape[2]), dtype=image.dtype)
    for i, m in enumerate(ms):  # the only per-person loop: OpenCV warps one crop at a time
        out[i] = crop(image, m, out_size)
    return out


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply affine(s) to points.

    points (..., 2) px; m either (2, 3) (same transform for all points) or (N, 2, 3) with points (N, ..., 2)
    (one transform per leading item). Returns (..., 2) float64.
    """
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    if p.shape[-1] != 2:
        raise GeometryError(f"points: last axis must be 2 (x, y), got shape {p.shape}")
    if m.shape == (2, 3):
        return p @ m[:, :2].T + m[:, 2]
    if m.ndim != 3 or m.shape[1:] != (2, 3) or p.shape[0] != m.shape[0]:
        raise GeometryError(f"transform_points: transforms {m.shape} do not match points {p.shape}")
    flat = p.reshape(p.shape[0], -1, 2)
    out = np.einsum("npj,nij->npi", flat, m[:, :, :2]) + m[:, None, :, 2]
    return out.reshape(p.shape)


def crop_to_image(
    points: np.ndarray, centers: np.ndarray, scales: np.ndarray, output_size: Sequence[int]
) -> np.ndarray:
    """Inverse mapping: points (N, K, 2) in pixels of an ``output_size`` (w, h) crop (heatmap or network
    input) of the region (centers (N, 2), scales (N, 2)) -> (N, K, 2) float64 image pixels."""
    inv = get_affine_transforms(centers, scales, 0.0, output_size, inv=True)
    return transform_points(points, inv)
