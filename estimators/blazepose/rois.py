"""Square, rotated regions of interest (ROIs) of both BlazePose models: the ROI rules, the crop and its inverse.

Pure numpy + OpenCV. The rules are MediaPipe 0.10.14's: ``pose_detection_to_roi`` and ``pose_landmarks_to_roi``
(modules/pose_landmark) both build the ROI from two alignment points (centre, and a point whose distance is
the body radius and whose direction is the body's "up"), side = 2 x radius x 1.25, rotation = 90 degrees minus
the angle of the centre -> point vector. The crop follows ``ImageToTensorCalculator``'s OpenCV converter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

ROI_SCALE = 1.25  # pose_detection_to_roi / pose_landmarks_to_roi (MediaPipe 0.10.14)
ROI_TARGET_ANGLE = math.pi / 2  # an upright person (centre -> scale point pointing up) gets rotation 0


class BlazePoseInputError(ValueError):
    """Bad image / box / ROI input to the BlazePose estimator or detector."""


@dataclass(frozen=True)
class Rois:
    """Square, rotated regions of interest, one per person.

    centers: (N, 2) float32 image pixels (x, y). sizes: (N,) float32 side length in image pixels.
    rotations: (N,) float32 radians in [-pi, pi); the crop's x axis in the image is (cos r, sin r) and its
    y axis (-sin r, cos r) (image y down, so positive r turns the crop clockwise on screen).
    """

    centers: np.ndarray
    sizes: np.ndarray
    rotations: np.ndarray

    def __post_init__(self) -> None:
        c = np.asarray(self.centers, dtype=np.float32).reshape(-1, 2)
        s = np.asarray(self.sizes, dtype=np.float32).reshape(-1)
        r = np.asarray(self.rotations, dtype=np.float32).reshape(-1)
        if not (len(c) == len(s) == len(r)):
            raise BlazePoseInputError(f"Rois: centers {len(c)}, sizes {len(s)}, rotations {len(r)} rows differ")
        object.__setattr__(self, "centers", c)
        object.__setattr__(self, "sizes", s)
        object.__setattr__(self, "rotations", r)

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, idx) -> Rois:
        return Rois(self.centers[idx], self.sizes[idx], self.rotations[idx])

    @staticmethod
    def empty() -> Rois:
        return Rois(np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32))

    def corners(self) -> np.ndarray:
        """(N, 4, 2) float32 image pixels: the rotated square's corners (top-left, top-right, bottom-right,
        bottom-left in crop orientation)."""
        half = self.sizes[:, None, None] / 2
        unit = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float32)[None] * half
        c, s = np.cos(self.rotations)[:, None], np.sin(self.rotations)[:, None]
        x = c * unit[..., 0] - s * unit[..., 1]
        y = s * unit[..., 0] + c * unit[..., 1]
        return (np.stack([x, y], -1) + self.centers[:, None, :]).astype(np.float32)

    def boxes(self) -> np.ndarray:
        """(N, 4) float32 xyxy image pixels: the axis-aligned box around each rotated square."""
        pts = self.corners()
        return np.concatenate([pts.min(1), pts.max(1)], axis=1).astype(np.float32)


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Radians wrapped to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def rois_from_alignment_points(centers: np.ndarray, scale_points: np.ndarray, scale: float = ROI_SCALE,
                               target_angle: float = ROI_TARGET_ANGLE) -> Rois:
    """MediaPipe's detection/landmarks -> ROI rule.

    centers: (N, 2) image pixels (detector kp0 or landmark 33, the body centre); scale_points: (N, 2) image
    pixels (detector kp1 or landmark 34). Side = 2 |p1 - p0| * scale (already square); rotation =
    target - atan2(-(y1 - y0), x1 - x0) wrapped to [-pi, pi) (y flipped because image y points down).
    """
    p0 = np.asarray(centers, np.float32).reshape(-1, 2)
    p1 = np.asarray(scale_points, np.float32).reshape(-1, 2)
    d = p1 - p0
    side = 2.0 * np.hypot(d[:, 0], d[:, 1]) * scale
    rot = wrap_angle(target_angle - np.arctan2(-d[:, 1], d[:, 0]))
    return Rois(p0, side, rot)


def rois_from_boxes(boxes: np.ndarray, scale: float = ROI_SCALE) -> Rois:
    """Upright squares around person boxes: centre = box centre, side = scale * max(w, h).

    boxes: (N, 4) xyxy image pixels. A stand-in for the detector ROI when boxes come from another detector:
    the detector's ROI of a person is 1.25-1.5 x the long side of a tight box around them.
    """
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    centers = (b[:, :2] + b[:, 2:]) / 2
    side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * scale
    return Rois(centers, side, np.zeros(len(b), np.float32))


def crop_matrices(rois: Rois, out_size: int) -> np.ndarray:
    """(N, 2, 3) float64 affine maps from output pixel (u, v) to source image pixel (x, y), OpenCV indexing.

    As MediaPipe's OpenCV ImageToTensor does (cv::RotatedRect corners -> (0, 0) and (out, out) through
    getPerspectiveTransform), the square's corners map to output coordinates 0 and ``out_size`` with both
    sides in OpenCV's pixel indexing - no half-pixel shifts. The "exact" continuous version (+0.5 on both
    sides) lowers COCO keypoint AP on ground-truth boxes of the 4 MMPose test images from 0.476 to 0.456.
    ``crop_to_image`` is its exact inverse.
    """
    n = len(rois)
    s = rois.sizes.astype(np.float64) / out_size
    c, sn = np.cos(rois.rotations.astype(np.float64)), np.sin(rois.rotations.astype(np.float64))
    a = np.empty((n, 2, 2))
    a[:, 0, 0], a[:, 0, 1], a[:, 1, 0], a[:, 1, 1] = c * s, -sn * s, sn * s, c * s
    half = out_size / 2.0
    b = rois.centers.astype(np.float64) - a @ np.array([half, half])
    return np.concatenate([a, b[:, :, None]], axis=2)


def crop_rois(image: np.ndarray, rois: Rois, out_size: int, border: int = cv2.BORDER_REPLICATE,
              out: np.ndarray | None = None) -> np.ndarray:
    """(N, out_size, out_size, 3) uint8 crops of ``image`` (H, W, 3) uint8, same channel order, bilinear."""
    mats = crop_matrices(rois, out_size)
    if out is None:
        out = np.empty((len(rois), out_size, out_size, image.shape[2]), np.uint8)
    for i, m in enumerate(mats):
        cv2.warpAffine(image, m, (out_size, out_size), dst=out[i],
                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border, borderValue=(0, 0, 0))
    return out


def crop_to_image(points: np.ndarray, rois: Rois, crop_size: float) -> np.ndarray:
    """Map (N, L, 2) crop pixels (0..crop_size) to (N, L, 2) float32 image pixels (inverse of the crop)."""
    p = np.asarray(points, np.float64) / crop_size - 0.5
    s = rois.sizes.astype(np.float64)[:, None]
    c, sn = np.cos(rois.rotations)[:, None], np.sin(rois.rotations)[:, None]
    x = (c * p[..., 0] - sn * p[..., 1]) * s + rois.centers[:, None, 0]
    y = (sn * p[..., 0] + c * p[..., 1]) * s + rois.centers[:, None, 1]
    return np.stack([x, y], -1).astype(np.float32)




def check_roi_points(roi_points: object, n: int, what: str = "roi_points") -> np.ndarray | None:
    """``roi_points`` as (n, 2, 2) float32 image px ([:, 0] centre, [:, 1] scale/rotation point), or None.

    A row with any NaN means "no hint"; infinite values are an error.
    """
    if roi_points is None:
        return None
    p = np.asarray(roi_points, dtype=np.float32)
    if p.size == 0 and n == 0:
        return p.reshape(0, 2, 2)
    if p.shape != (n, 2, 2):
        raise BlazePoseInputError(f"{what}: expected shape ({n}, 2, 2) image px (one row per box), got {p.shape}")
    if np.isinf(p).any():
        bad = int(np.nonzero(np.isinf(p).any(axis=(1, 2)))[0][0])
        raise BlazePoseInputError(f"{what}[{bad}]: infinite coordinates {p[bad].tolist()}")
    return p


def rois_for_boxes(boxes: np.ndarray, roi_points: np.ndarray | None, box_scale: float = ROI_SCALE) -> Rois:
    """The ROI of each box: from its alignment points where the row is finite and not degenerate, else the
    upright square around the box (``rois_from_boxes``).

    boxes: (N, 4) xyxy image px; roi_points: (N, 2, 2) image px or None (see ``check_roi_points``).
    """
    box_rois = rois_from_boxes(boxes, box_scale)
    if roi_points is None or len(roi_points) == 0:
        return box_rois
    pts = np.asarray(roi_points, np.float32)
    hinted = rois_from_alignment_points(np.nan_to_num(pts[:, 0]), np.nan_to_num(pts[:, 1]))
    use = np.isfinite(pts).all(axis=(1, 2)) & (hinted.sizes > 1.0)
    return Rois(np.where(use[:, None], hinted.centers, box_rois.centers), np.where(use, hinted.sizes, box_rois.sizes),
                np.where(use, hinted.rotations, box_rois.rotations))
