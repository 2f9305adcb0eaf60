"""boxes_from_keypoints: extent of the confident keypoints enlarged 15% about the centre (hypothesis)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from association import BoxInputError, boxes_from_keypoints

K = 17
kps = hnp.arrays(np.float64, (4, K, 2), elements=st.floats(-200, 900, width=64))
scores = hnp.arrays(np.float64, (4, K), elements=st.floats(0, 1, width=64))


@settings(max_examples=80, deadline=None)
@given(k=kps, s=scores, thr=st.floats(0, 1), enlarge=st.floats(0, 0.5))
def test_box_is_enlarged_extent_of_confident_keypoints(k, s, thr, enlarge):
    boxes = boxes_from_keypoints(k, s, thr, enlarge=enlarge)
    assert boxes.shape == (4, 4) and boxes.dtype == np.float32
    for i in range(4):
        use = s[i] >= thr
        if not use.any():
            assert np.isnan(boxes[i]).all()
            continue
        x, y = k[i, use, 0], k[i, use, 1]
        w, h = x.max() - x.min(), y.max() - y.min()
        np.testing.assert_allclose(boxes[i, 2] - boxes[i, 0], w * (1 + enlarge), rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(boxes[i, 3] - boxes[i, 1], h * (1 + enlarge), rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose((boxes[i, 0] + boxes[i, 2]) / 2, (x.max() + x.min()) / 2, rtol=1e-5, atol=1e-3)
        tol = 1e-3 + 1e-5 * 900
        assert boxes[i, 0] <= x.min() + tol and boxes[i, 2] >= x.max() - tol
        assert boxes[i, 1] <= y.min() + tol and boxes[i, 3] >= y.max() - tol


@settings(max_examples=40, deadline=None)
@given(k=kps, size=st.tuples(st.integers(1, 800), st.integers(1, 800)))
def test_clipping_to_image(k, size):
    boxes = boxes_from_keypoints(k, None, 0.0, image_size=size)
    w, h = size
    assert np.all((boxes[:, 0::2] >= 0) & (boxes[:, 0::2] <= w))
    assert np.all((boxes[:, 1::2] >= 0) & (boxes[:, 1::2] <= h))


def test_nan_keypoints_empty_and_errors():
    k = np.zeros((1, K, 2))
    k[0, :, 0] = np.arange(K) * 10.0
    k[0, 3] = np.nan
    k[0, 16] = np.nan  # the right-most keypoint is unknown -> extent 0..150
    box = boxes_from_keypoints(k, None, 0.0, enlarge=0.0)
    np.testing.assert_allclose(box[0], [0, 0, 150, 0])
    assert boxes_from_keypoints(np.zeros((0, K, 2)), np.zeros((0, K)), 0.2).shape == (0, 4)
    with pytest.raises(BoxInputError, match="scores"):
        boxes_from_keypoints(k, np.ones((1, 3)), 0.2)
    with pytest.raises(BoxInputError, match="keypoints"):
        boxes_from_keypoints(np.zeros((K, 2)), None, 0.2)
