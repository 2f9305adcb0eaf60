"""The one image/box validator: what it accepts, and errors that name the item, the row and the field."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from association.arrays import check_boxes, check_image


class MyError(ValueError):
    pass


def test_image_must_be_hw3_uint8():
    assert check_image(np.zeros((2, 3, 3), np.uint8)).shape == (2, 3, 3)
    for bad in (np.zeros((2, 3), np.uint8), np.zeros((2, 3, 3), np.float32), np.zeros((0, 3, 3), np.uint8), [1]):
        with pytest.raises(MyError, match="frame 4: expected a .H, W, 3. uint8 BGR image"):
            check_image(bad, "frame 4", MyError)


def test_boxes_checked_row_and_field_named():
    b, s = check_boxes([[0, 0, 10, 10]], None)
    assert b.shape == (1, 4) and s.tolist() == [1.0]
    assert check_boxes([], None)[0].shape == (0, 4)
    with pytest.raises(MyError, match=r"image 2 boxes\[1\]: non-finite"):
        check_boxes([[0, 0, 1, 1], [0, np.nan, 1, 1]], [1, 1], "image 2", MyError)
    with pytest.raises(MyError, match=r"box_scores\[0\]: not a finite number"):
        check_boxes([[0, 0, 1, 1]], [np.inf], "image 2", MyError)
    with pytest.raises(MyError, match="expected 1 scores"):
        check_boxes([[0, 0, 1, 1]], [1, 2], "image 2", MyError)
    with pytest.raises(MyError, match=r"boxes\[0\]: x2 > x1 and y2 > y1 required"):
        check_boxes([[5, 0, 5, 1]], None, "image 2", MyError)


def test_zero_side_allowed_only_when_asked_and_never_both():
    b, _ = check_boxes([[5, 0, 5, 10], [0, 3, 4, 3]], None, allow_zero_side=True)
    assert len(b) == 2
    for bad in ([[5, 5, 5, 5]], [[5, 0, 4, 10]]):
        with pytest.raises(ValueError, match="one side > 0"):
            check_boxes(bad, None, allow_zero_side=True)


@given(st.lists(st.tuples(*[st.floats(-1e4, 1e4)] * 4), max_size=6))
def test_accepts_exactly_the_boxes_with_positive_sides(rows):
    arr = np.array(rows, np.float64).reshape(-1, 4)
    ok = bool(np.all((arr[:, 2] > arr[:, 0]) & (arr[:, 3] > arr[:, 1])))
    if ok:
        assert np.array_equal(check_boxes(arr, None)[0], arr)
    else:
        with pytest.raises(ValueError):
            check_boxes(arr, None)
