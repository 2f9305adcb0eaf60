"""Person boxes from keypoints (for propagating boxes from the previous frame's flow-warped poses)."""
from __future__ import annotations

import numpy as np


class BoxInputError(ValueError):
    """Keypoints/scores/image size given to boxes_from_keypoints are inconsistent."""


def boxes_from_keypoints(
    keypoints: np.ndarray,
    scores: np.ndarray | None,
    score_threshold: float,
    enlarge: float = 0.15,
    image_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Box around each pose's confident keypoints, each side enlarged by ``enlarge`` about the centre.

    HRNet section 4.3 / SimpleBaseline: the box of all keypoints of a person "extended by 15% in length",
    i.e. width and height x (1 + enlarge) keeping the centre.
    keypoints: (N, K, 2) image pixels. scores: (N, K) confidences or None (all keypoints count).
    score_threshold: keypoints with score < threshold (or a NaN coordinate) are ignored.
    image_size: (width, height) in pixels; when given, boxes are clipped to [0, W] x [0, H]
        (torchvision.ops.clip_boxes_to_image's convention).
    Returns (N, 4) float32 xyxy image pixels; a pose with no usable keypoint gets a row of NaN.
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    if kps.ndim != 3 or kps.shape[-1] != 2:
        raise BoxInputError(f"keypoints: expected shape (N, K, 2) pixels, got shape {kps.shape}")
    usable = np.isfinite(kps).all(-1)
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != kps.shape[:2]:
            raise BoxInputError(f"scores: expected shape {kps.shape[:2]}, got shape {scores.shape}")
        usable &= scores >= score_threshold
    if enlarge < 0:
        raise BoxInputError(f"enlarge: expected >= 0, got {enlarge}")
    x = np.where(usable, kps[..., 0], np.nan)
    y = np.where(usable, kps[..., 1], np.nan)
    boxes = np.full((kps.shape[0], 4), np.nan)
    has = usable.any(-1)
    if has.any():
        x, y = x[has], y[has]
        x0, x1 = np.nanmin(x, -1), np.nanmax(x, -1)
        y0, y1 = np.nanmin(y, -1), np.nanmax(y, -1)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half_w, half_h = (x1 - x0) * (1 + enlarge) / 2, (y1 - y0) * (1 + enlarge) / 2
        boxes[has] = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], -1)
    if image_size is not None:
        width, height = image_size
        if width <= 0 or height <= 0:
            raise BoxInputError(f"image_size: expected positive (width, height), got {image_size}")
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    return boxes.astype(np.float32)
