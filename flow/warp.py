"""Moving points through a dense flow field (bilinear sampling of the field at each point)."""
from __future__ import annotations

import numpy as np

from flow.base import FlowInputError, check_flow_field


def warp_points(points: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Displace points of the previous frame by the flow sampled bilinearly at their location.

    points: (..., 2) image pixels (x, y) in the previous frame (pixel centres at integer coordinates).
        Points outside the image take the flow at the nearest border location (coordinates clamped to
        [0, W-1] x [0, H-1] for the sampling only; the point itself is not clamped). A point with any NaN
        coordinate stays NaN.
    flow: (H, W, 2) float image pixels, flow[y, x] = (dx, dy) from the previous to the current frame.
    Returns (..., 2) image pixels in the current frame; float32 for float32 input, else float64.
    """
    check_flow_field(flow)
    points = np.asarray(points)
    if points.ndim < 1 or points.shape[-1] != 2:
        raise FlowInputError(f"points: expected shape (..., 2) (x, y) pixels, got shape {points.shape}")
    if not (np.issubdtype(points.dtype, np.floating) or np.issubdtype(points.dtype, np.integer)):
        raise FlowInputError(f"points: expected a numeric dtype, got dtype {points.dtype}")
    out_dtype = np.float32 if points.dtype == np.float32 else np.float64
    height, width = flow.shape[:2]
    pts = points.reshape(-1, 2).astype(np.float64)
    finite = np.isfinite(pts).all(axis=1)
    x = np.clip(np.where(finite, pts[:, 0], 0.0), 0.0, width - 1.0)
    y = np.clip(np.where(finite, pts[:, 1], 0.0), 0.0, height - 1.0)
    x0 = np.floor(x).astype(np.intp)
    y0 = np.floor(y).astype(np.intp)
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    fx = (x - x0)[:, None]
    fy = (y - y0)[:, None]
    def f(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:  # gather first, then widen (no full-field copy)
        return flow[yy, xx].astype(np.float64)

    top = f(y0, x0) * (1.0 - fx) + f(y0, x1) * fx
    bottom = f(y1, x0) * (1.0 - fx) + f(y1, x1) * fx
    displacement = top * (1.0 - fy) + bottom * fy
    warped = pts + displacement
    warped[~finite] = np.nan
    return warped.reshape(points.shape).astype(out_dtype, copy=False)
