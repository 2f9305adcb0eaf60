"""warp_points: bilinear sampling of the flow field, border clamping, NaN handling (property tests)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flow import FlowInputError, warp_points

coord = st.floats(min_value=-50.0, max_value=150.0, allow_nan=False, width=64)
sizes = st.tuples(st.integers(1, 40), st.integers(1, 40))  # (H, W)
coef = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False, width=64)


def _points(shape_prefix):
    return hnp.arrays(np.float64, shape_prefix + (2,), elements=coord)


def _linear_field(h, w, a, b):
    """flow[y, x] = A @ (x, y) + b, an affine field: bilinear interpolation reproduces it exactly."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    flow = np.empty((h, w, 2))
    flow[..., 0] = a[0][0] * xs + a[0][1] * ys + b[0]
    flow[..., 1] = a[1][0] * xs + a[1][1] * ys + b[1]
    return flow


@settings(max_examples=60, deadline=None)
@given(size=sizes, d=st.tuples(coef, coef), pts=_points((3, 4)))
def test_constant_field_translates_every_point(size, d, pts):
    h, w = size
    flow = np.broadcast_to(np.array(d), (h, w, 2)).copy()
    out = warp_points(pts, flow)
    assert out.shape == pts.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, pts + np.array(d), rtol=0, atol=1e-9)


@settings(max_examples=80, deadline=None)
@given(size=sizes, a=st.tuples(st.tuples(coef, coef), st.tuples(coef, coef)), b=st.tuples(coef, coef),
       pts=_points((7,)))
def test_linear_field_is_sampled_exactly_at_clamped_location(size, a, b, pts):
    h, w = size
    flow = _linear_field(h, w, a, b)
    out = warp_points(pts, flow)
    cx = np.clip(pts[:, 0], 0, w - 1)  # sampling location clamps to the border, the point does not
    cy = np.clip(pts[:, 1], 0, h - 1)
    expected = pts + np.stack([a[0][0] * cx + a[0][1] * cy + b[0], a[1][0] * cx + a[1][1] * cy + b[1]], -1)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-8)


@settings(max_examples=40, deadline=None)
@given(pts=_points((5, 17)), nan_rows=st.lists(st.integers(0, 4), max_size=3),
       flow=hnp.arrays(np.float32, (6, 9, 2), elements=st.floats(-5, 5, width=32)))
def test_nan_points_stay_nan_and_others_are_finite(pts, nan_rows, flow):
    pts = pts.astype(np.float32)
    for r in nan_rows:
        pts[r, r % 17, r % 2] = np.nan
    out = warp_points(pts, flow)
    assert out.dtype == np.float32 and out.shape == pts.shape
    bad = np.isnan(pts).any(-1)
    assert np.isnan(out[bad]).all()
    assert np.isfinite(out[~bad]).all()


@settings(max_examples=40, deadline=None)
@given(flow=hnp.arrays(np.float64, (5, 7, 2), elements=st.floats(-10, 10, width=64)))
def test_integer_locations_read_the_field_and_interpolation_stays_in_hull(flow):
    ys, xs = np.mgrid[0:5, 0:7]
    grid = np.stack([xs, ys], -1).astype(np.float64)
    np.testing.assert_allclose(warp_points(grid, flow) - grid, flow, atol=1e-12)
    # the midpoint of a cell gets the mean of its 4 corners
    mid = np.array([[2.5, 1.5]])
    expected = flow[1:3, 2:4].reshape(4, 2).mean(0)
    np.testing.assert_allclose(warp_points(mid, flow)[0] - mid[0], expected, atol=1e-12)


def test_points_outside_take_border_flow():
    flow = np.zeros((4, 4, 2), np.float32)
    flow[:, -1] = (1.0, 2.0)  # right column
    flow[0, :] = (-3.0, 0.5)  # top row (overrides the top-right corner)
    out = warp_points(np.array([[100.0, 2.0], [1.0, -20.0], [50.0, -50.0]], np.float32), flow)
    np.testing.assert_allclose(out, [[101.0, 4.0], [-2.0, -19.5], [47.0, -49.5]])


def test_empty_and_bad_inputs():
    flow = np.zeros((4, 4, 2), np.float32)
    assert warp_points(np.zeros((0, 17, 2), np.float32), flow).shape == (0, 17, 2)
    with pytest.raises(FlowInputError, match="points"):
        warp_points(np.zeros((3, 3)), flow)
    with pytest.raises(FlowInputError, match="flow"):
        warp_points(np.zeros((3, 2)), np.zeros((4, 4)))
