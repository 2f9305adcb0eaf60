"""Crop geometry shared by top-down inference and training: box -> (center, scale) -> affine -> crop.

Conventions (those of the released HRNet code, which MSPN/RSN share):
- ``center``: (2,) or (N, 2) image pixels (x, y). ``scale``: (2,) or (N, 2), the crop region's (width, height)
  in units of ``PIXEL_STD`` = 200 image pixels. The box helpers return both as float32, computed from the float64
  box exactly as the authors' data loaders do (HRNet ``lib/dataset/coco.py`` ``_xywh2cs``; MSPN/RSN
  ``dataset/COCO/coco.py`` ``_bbox_to_center_and_scale`` plus the test-time enlargement of
  ``dataset/JointsDataset.py``), so the crops are the authors' crops pixel for pixel.
- The affine is a similarity: only ``scale[..., 0]`` (the width) sets the zoom, the height follows from the output
  aspect ratio, as in the released ``get_affine_transform``. The box helpers always return scales whose aspect
  equals the output aspect, so nothing is lost.
- ``output_size``: (w, h) pixels of the crop (network input or heatmap).
- The forward affine ``M`` (2, 3) float64 maps image pixels -> crop pixels: ``M @ [x, y, 1]``; it sends ``center``
  to ``(w/2, h/2)``. ``inv=True`` gives crop pixels -> image pixels.

Two constructions of ``M``:
- ``released=True`` (default): the authors' ``get_affine_transform`` (HRNet ``lib/utils/transforms.py``; MSPN/RSN
  ``lib/utils/transforms.py`` is the same construction): centre and scale rounded to float32, three float32 point
  pairs (centre, a point half a crop width above it, the third point completing the right angle), then
  ``cv2.getAffineTransform``. Identical to the last bit to the authors' matrix for the same float32 centre/scale.
- ``released=False``: the float64 closed form of the same similarity, ``(w_out / (200 * scale_x)) * R(-rot)``
  with the centre mapped exactly. It differs from the released matrix by the float32 rounding of the three points:
  up to ~1e-4 in the matrix entries at COCO scales, which changes about 0.05 % of the crop pixels by one grey
  level (and, through them, can flip a heatmap's quarter-pixel offset). Kept for analysis; nothing uses it by
  default.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

PIXEL_STD = 200.0
HRNET_PADDING = 1.25
# MSPN/RSN test-time enlargement: the released config's X_EXTENTION = 0.01 * 9.0 and Y_EXTENTION = 0.015 * 9.0
# (``dataset/attribute.py``), applied as ``scale *= 1 + ext`` (no 1.25 padding).
MSPN_TEST_ENLARGE = (1 + 0.01 * 9.0, 1 + 0.015 * 9.0)

_F32 = np.float32


class GeometryError(ValueError):
    """Bad input to a geometry helper (wrong shape, non-positive size)."""


def _as_boxes(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise GeometryError(f"boxes: expected shape (N, 4) xyxy, got {b.shape}")
    return b


def _centers_sizes(boxes: np.ndarray, aspect_ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """boxes (N, 4) xyxy px -> centers (N, 2) float32 px, widths (N,) float64 px, heights (N,) float64 px.

    The centre is ``x1 + w * 0.5`` in float64 with ``w = x2 - x1`` (the authors compute it from the float64
    ``[x, y, w, h]`` box), rounded to float32 as their ``np.zeros(2, dtype=np.float32)`` centre stores it.
    """
    b = _as_boxes(boxes)
    if not aspect_ratio > 0:
        raise GeometryError(f"aspect_ratio must be > 0, got {aspect_ratio}")
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    return np.stack([b[:, 0] + w * 0.5, b[:, 1] + h * 0.5], axis=1).astype(_F32), w, h


def box_to_center_scale(
    boxes: np.ndarray, aspect_ratio: float, padding: float = HRNET_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """HRNet convention (released ``_xywh2cs``): center = box center; enlarge the short side to ``aspect_ratio``
    (float64); ``scale = float32(size / 200) * float32(padding)`` (the product in float32).

    boxes: (N, 4) xyxy image pixels (float64 kept: the authors round only centre and scale).
    aspect_ratio: crop width / height (192/256 for 256x192 inputs).
    Returns centers (N, 2) float32 image pixels and scales (N, 2) float32 in units of 200 px.
    """
    centers, w, h = _centers_sizes(boxes, aspect_ratio)
    wider = w > aspect_ratio * h
    narrower = w < aspect_ratio * h
    h2 = np.where(wider, w * 1.0 / aspect_ratio, h)
    w2 = np.where(narrower, h * aspect_ratio, w)
    scales = np.stack([w2 * 1.0 / PIXEL_STD, h2 * 1.0 / PIXEL_STD], axis=1).astype(_F32) * _F32(padding)
    return centers, scales


def box_to_center_scale_mspn(
    boxes: np.ndarray, aspect_ratio: float, enlarge: Sequence[float] = MSPN_TEST_ENLARGE
) -> tuple[np.ndarray, np.ndarray]:
    """MSPN/RSN test-time convention (released ``_bbox_to_center_and_scale`` and ``JointsDataset.__getitem__``):
    ``scale = float32(size / 200)``; width x ``enlarge[0]``, height x ``enlarge[1]``; then the aspect fix
    (``s0 > aspect * s1``: ``s1 = s0 / aspect``, else ``s0 = s1 * aspect``). No 1.25 padding.

    Each step is computed in float64 from the float32 value and stored back in float32, as NumPy 1.x (the
    authors' NumPy) evaluates ``float32_scalar * python_float``. Same shapes/units/dtypes as
    :func:`box_to_center_scale`.
    """
    centers, w, h = _centers_sizes(boxes, aspect_ratio)
    s = np.stack([w * 1.0 / PIXEL_STD, h * 1.0 / PIXEL_STD], axis=1).astype(_F32)
    s0 = (s[:, 0].astype(np.float64) * enlarge[0]).astype(_F32).astype(np.float64)
    s1 = (s[:, 1].astype(np.float64) * enlarge[1]).astype(_F32).astype(np.float64)
    wider = s0 > aspect_ratio * s1
    out0 = np.where(wider, s0, s1 * 1.0 * aspect_ratio)
    out1 = np.where(wider, s0 * 1.0 / aspect_ratio, s1)
    return centers, np.stack([out0, out1], axis=1).astype(_F32)


def _check_centers_scales(centers: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(centers).reshape(-1, 2)
    s = np.asarray(scales).reshape(-1, 2)
    if len(c) != len(s):
        raise GeometryError(f"centers ({len(c)}) and scales ({len(s)}) disagree in length")
    if np.any(~(s[:, 0] > 0)):
        raise GeometryError("scales: width must be > 0 for every crop")
    return c, s


def released_affine_points(
    center: np.ndarray, scale: np.ndarray, rot_deg: float, output_size: Sequence[int],
    shift: Sequence[float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """The three point pairs of the released ``get_affine_transform``: (src (3, 2), dst (3, 2)) float32, src in
    image px, dst in crop px. center (2,) and scale (2,) are rounded to float32 first (the authors' dtypes).

    Arithmetic as released: ``scale_tmp = scale * 200`` (float32); the rotated direction ``(0, -0.5 * src_w)``
    in float64 with ``rot_rad = pi * rot / 180``; ``src[1] = center + dir + scale_tmp * shift`` in float64 then
    stored in float32; the third points ``b + (-(a - b)_y, (a - b)_x)`` in float32.
    """
    c = np.asarray(center, dtype=_F32).reshape(2)
    st = np.asarray(scale, dtype=_F32).reshape(2) * _F32(PIXEL_STD)
    sh = np.asarray(shift, dtype=_F32).reshape(2)
    dst_w, dst_h = output_size[0], output_size[1]
    rot_rad = np.pi * rot_deg / 180
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    v = np.float64(st[0]) * -0.5
    src_dir = np.array([0 * cs - v * sn, 0 * sn + v * cs])
    src = np.zeros((3, 2), dtype=_F32)
    dst = np.zeros((3, 2), dtype=_F32)
    src[0] = c + st * sh
    src[1] = c.astype(np.float64) + src_dir + (st * sh).astype(np.float64)
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([0, dst_w * -0.5], _F32).astype(np.float64)
    for p in (src, dst):
        d = p[0] - p[1]
        p[2] = p[1] + np.array([-d[1], d[0]], dtype=_F32)
    return src, dst


def _released_affine(center, scale, rot_deg, output_size, shift, inv) -> np.ndarray:
    src, dst = released_affine_points(center, scale, rot_deg, output_size, shift)
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


def get_affine_transforms(
    centers: np.ndarray,
    scales: np.ndarray,
    rot_deg: np.ndarray | float,
    output_size: Sequence[int],
    shift: Sequence[float] = (0.0, 0.0),
    inv: bool = False,
    *,
    released: bool = True,
) -> np.ndarray:
    """Batched similarity transforms (N, 2, 3) float64.

    centers (N, 2) image px; scales (N, 2) in 200 px units; rot_deg scalar or (N,) degrees (positive: the
    image content appears rotated counter-clockwise on screen in the crop, e.g. at +90 a point right of the
    center lands above the crop center; as the released code's augmentation); output_size (w, h) px; shift
    (2,) fraction of the 200*scale region size. ``center + 200 * scale * shift`` maps to ``(w_out/2, h_out/2)``
    and the zoom is ``w_out / (200 * scale_x)``.

    released: True = the authors' float32 three-point construction and ``cv2.getAffineTransform`` (one call per
    crop); False = the float64 closed form (see the module docstring for the difference).
    """
    c, s = _check_centers_scales(centers, scales)
    n = len(c)
    rots = np.broadcast_to(np.asarray(rot_deg, dtype=np.float64), (n,))
    if released:
        out = np.empty((n, 2, 3), dtype=np.float64)
        for i in range(n):  # cv2.getAffineTransform solves one 6x6 system per crop
            out[i] = _released_affine(c[i], s[i], float(rots[i]), output_size, shift, inv)
        return out
    c = c.astype(np.float64)
    s = s.astype(np.float64)
    out_w, out_h = float(output_size[0]), float(output_size[1])
    rot = rots * (math.pi / 180.0)
    src_c = c + PIXEL_STD * s * np.asarray(shift, dtype=np.float64)
    dst_c = np.array([out_w * 0.5, out_h * 0.5])
    cos, sin = np.cos(rot), np.sin(rot)
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
    *,
    released: bool = True,
) -> np.ndarray:
    """Single-crop version of :func:`get_affine_transforms`: center (2,), scale (2,) -> (2, 3) float64."""
    return get_affine_transforms(
        np.asarray(center).reshape(1, 2), np.asarray(scale).reshape(1, 2), rot_deg, output_size, shift, inv,
        released=released,
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
    for i, m in enumerate(ms):  # OpenCV warps one crop at a time
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
    points: np.ndarray, centers: np.ndarray, scales: np.ndarray, output_size: Sequence[int], *,
    released: bool = True,
) -> np.ndarray:
    """Inverse mapping: points (N, K, 2) in pixels of an ``output_size`` (w, h) crop (heatmap or network
    input) of the region (centers (N, 2), scales (N, 2)) -> (N, K, 2) float64 image pixels.

    HRNet's ``transform_preds``: the inverse affine of :func:`get_affine_transforms` (``inv=True``, released
    construction by default) applied in float64."""
    inv = get_affine_transforms(centers, scales, 0.0, output_size, inv=True, released=released)
    return transform_points(points, inv)


def input_to_image_linear(
    points: np.ndarray, centers: np.ndarray, scales: np.ndarray, input_size: Sequence[int]
) -> np.ndarray:
    """MSPN/RSN back-projection (released ``exps/*/test.py`` ``get_results``): points (N, K, 2) network-input px
    -> (N, K, 2) float64 image px as ``x / w_in * S + c - S * 0.5`` with ``S = float32(scale * 200)`` (their
    ``scales *= 200`` on the float32 array) and the float32 centre, evaluated in float64 in that order.

    The same map as the input-size inverse affine up to float rounding (~1e-5 px); this is the authors' form."""
    c, s = _check_centers_scales(centers, scales)
    big = (s.astype(_F32) * _F32(PIXEL_STD)).astype(np.float64)[:, None, :]
    cc = c.astype(_F32).astype(np.float64)[:, None, :]
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] != len(c) or p.shape[2] != 2:
        raise GeometryError(f"points: expected shape ({len(c)}, K, 2), got {p.shape}")
    size = np.array([float(input_size[0]), float(input_size[1])])
    return p / size * big + cc - big * 0.5
