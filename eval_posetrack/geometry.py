"""Point-in-polygon with shapely's ``Polygon.contains`` semantics (strictly inside), vectorised.

poseval removes a keypoint iff ``shapely.geometry.Polygon(region).contains(Point(x, y))``: the point is in
the interior, never on the boundary. GEOS decides this with a ray-crossing count (even-odd rule, also for
self-intersecting rings) and an exact on-segment test. We do the same: even-odd crossings of a ray to
+x with half-open edges in y, and an explicit boundary test. Orientation signs are computed in float64
and recomputed exactly with ``fractions.Fraction`` when they are within rounding error of 0, so points
exactly on an edge are always excluded (matplotlib's ``Path.contains_points`` gives no such guarantee).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np


def _exact_orient(ax: float, ay: float, bx: float, by: float, px: float, py: float) -> int:
    v = ((Fraction(bx) - Fraction(ax)) * (Fraction(py) - Fraction(ay))
         - (Fraction(px) - Fraction(ax)) * (Fraction(by) - Fraction(ay)))
    return (v > 0) - (v < 0)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Strict interior test.

    points:  (N, 2) float64 x, y image pixels.
    polygon: (V, 2) float64 vertices image pixels (closed implicitly; a repeated last vertex is fine).
    Returns (N,) bool, True iff the point lies strictly inside (boundary -> False). Fewer than 3
    vertices -> all False.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    n = len(pts)
    if n == 0 or len(poly) < 3:
        return np.zeros(n, bool)
    a = poly  # edge a -> b
    b = np.roll(poly, -1, axis=0)
    px = pts[:, 0:1]
    py = pts[:, 1:2]
    ax, ay, bx, by = a[None, :, 0], a[None, :, 1], b[None, :, 0], b[None, :, 1]
    # orientation of p relative to the edge a->b (cross product), (N, V)
    orient = (bx - ax) * (py - ay) - (px - ax) * (by - ay)
    scale = (np.abs(bx - ax) * np.abs(py - ay) + np.abs(px - ax) * np.abs(by - ay))
    unsure = np.abs(orient) <= 8 * np.finfo(np.float64).eps * scale
    sign = np.sign(orient).astype(np.int64)
    in_box = ((px >= np.minimum(ax, bx)) & (px <= np.maximum(ax, bx))
              & (py >= np.minimum(ay, by)) & (py <= np.maximum(ay, by)))
    need = unsure & (in_box | ((ay > py) != (by > py)))
    if need.any():
        for i, v in zip(*np.nonzero(need)):
            sign[i, v] = _exact_orient(a[v, 0], a[v, 1], b[v, 0], b[v, 1], pts[i, 0], pts[i, 1])
    on_edge = (sign == 0) & in_box
    # upward edge (ay <= py < by) crossed to the right of p iff p is left of it (orient > 0);
    # downward edge (by <= py < ay) iff p is right of it (orient < 0).
    up = (ay <= py) & (by > py)
    down = (by <= py) & (ay > py)
    crossings = (up & (sign > 0)) | (down & (sign < 0))
    inside = (np.count_nonzero(crossings, axis=1) % 2) == 1
    return inside & ~on_edge.any(axis=1)


def points_in_any_polygon(points: np.ndarray, polygons: tuple[np.ndarray, ...] | list[np.ndarray]) -> np.ndarray:
    """(N, 2) points -> (N,) bool, strictly inside at least one of ``polygons`` (each (V, 2))."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    out = np.zeros(len(pts), bool)
    for poly in polygons:
        if len(pts) == 0:
            break
        out |= points_in_polygon(pts, poly)
    return out
