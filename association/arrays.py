"""Validators for the arrays every package passes around: images and person boxes.

One definition each; a caller passes its own exception class so its users keep catching what they catch.
Imports nothing of this project and no torch.
"""
from __future__ import annotations

import numpy as np


def check_image(image: object, what: str = "image", error: type[Exception] = ValueError) -> np.ndarray:
    """``image`` must be an (H, W, 3) uint8 BGR array with H, W >= 1; returns it unchanged."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 \
            or image.shape[0] < 1 or image.shape[1] < 1:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise error(f"{what}: expected a (H, W, 3) uint8 BGR image, got {desc}")
    return image


def check_boxes(boxes: object, scores: object | None = None, what: str = "boxes",
                error: type[Exception] = ValueError, *, positive: bool = True, allow_zero_side: bool = False,
                dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes and their scores, checked.

    boxes: (N, 4) xyxy image pixels (an empty input of any shape is (0, 4)); scores: (N,) or None (all 1).
    Coordinates must be finite; with ``positive`` every box must have x2 > x1 and y2 > y1; scores must be
    finite. With ``allow_zero_side`` one side may be 0 (x2 == x1 or y2 == y1, not both): a top-down crop takes
    its size from the other side through the aspect fix, as released HRNet does for such COCO boxes.
    Returns (boxes (N, 4), scores (N,)) as ``dtype``. Messages name ``what``, the row and the field.
    """
    b: np.ndarray = np.asarray(boxes, dtype=dtype)
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise error(f"{what} boxes: expected shape (N, 4) xyxy pixels, got {b.shape}")
    s: np.ndarray = np.ones(len(b), dtype) if scores is None else np.asarray(scores, dtype=dtype).reshape(-1)
    if len(s) != len(b):
        raise error(f"{what} box_scores: expected {len(b)} scores (one per box), got {len(s)}")
    if not np.isfinite(b).all():
        bad = int(np.nonzero(~np.isfinite(b).all(axis=1))[0][0])
        raise error(f"{what} boxes[{bad}]: non-finite coordinates {b[bad].tolist()}")
    if not np.isfinite(s).all():
        bad = int(np.nonzero(~np.isfinite(s))[0][0])
        raise error(f"{what} box_scores[{bad}]: not a finite number ({s[bad]})")
    if positive and len(b):
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        if allow_zero_side:
            empty = (w < 0) | (h < 0) | ((w == 0) & (h == 0))
            rule = "x2 >= x1, y2 >= y1 and one side > 0"
        else:
            empty = (w <= 0) | (h <= 0)
            rule = "x2 > x1 and y2 > y1"
        if empty.any():
            bad = int(np.nonzero(empty)[0][0])
            raise error(f"{what} boxes[{bad}]: {rule} required, got {b[bad].tolist()}")
    return b, s
