"""The optical flow interface shared by every backend, input checks, reduced-resolution computation.

A backend maps two consecutive frames to a dense displacement field::

    flow = backend.compute(prev, curr)
    prev, curr: (H, W, 3) uint8 BGR images of the same size (OpenCV channel order)
    flow:       (H, W, 2) float32 image pixels; flow[y, x] = (dx, dy) moves the point (x, y) of ``prev``
                to (x + dx, y + dy) in ``curr`` (pixel centres at integer coordinates, x right, y down)

``scale`` < 1 computes the flow on both frames resized by ``scale`` and brings the field back to full
size (bilinear resize of the field, vectors divided by the per-axis resize factor), trading accuracy for
speed.
"""
from __future__ import annotations

import cv2
import numpy as np


class FlowInputError(ValueError):
    """A frame given to a flow backend (or a flow field) has the wrong shape, dtype or size."""


class FlowConfigError(ValueError):
    """A flow backend was built with an invalid argument (unknown name, preset, scale out of range)."""


def check_frame(image: np.ndarray, name: str) -> np.ndarray:
    """Validate one frame: (H, W, 3) uint8 BGR. Returns it unchanged; raises FlowInputError naming ``name``."""
    if not isinstance(image, np.ndarray):
        raise FlowInputError(f"{name}: expected a numpy array (H, W, 3) uint8 BGR, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise FlowInputError(f"{name}: expected shape (H, W, 3) uint8 BGR, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise FlowInputError(f"{name}: expected dtype uint8 (BGR 0..255), got dtype {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise FlowInputError(f"{name}: empty image of shape {image.shape}")
    return image


def check_flow_field(flow: np.ndarray, name: str = "flow") -> np.ndarray:
    """Validate a flow field: (H, W, 2) floating point image pixels. Raises FlowInputError naming ``name``."""
    if not isinstance(flow, np.ndarray):
        raise FlowInputError(f"{name}: expected a numpy array (H, W, 2) float32, got {type(flow).__name__}")
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[0] < 1 or flow.shape[1] < 1:
        raise FlowInputError(f"{name}: expected shape (H, W, 2) (dx, dy) in pixels, got shape {flow.shape}")
    if not np.issubdtype(flow.dtype, np.floating):
        raise FlowInputError(f"{name}: expected a floating dtype, got dtype {flow.dtype}")
    return flow


def check_scale(scale: float) -> float:
    """Validate ``scale`` (resize factor for computing the flow): 0 < scale <= 1."""
    scale = float(scale)
    if not (0.0 < scale <= 1.0):
        raise FlowConfigError(f"scale: expected 0 < scale <= 1 (e.g. 0.5 = half resolution), got {scale}")
    return scale


MIN_WORKING_SIDE = 32  # px: the smallest side a flow is computed at when scale < 1


class FlowBackend:
    """Base class of the flow backends. Subclasses implement ``_compute`` at the working resolution.

    scale: resize factor in (0, 1] applied to both frames before the flow is computed; the field is
        resized back to the full frame and its vectors divided by the actual per-axis resize factor.
    """

    name: str = "base"

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = check_scale(scale)

    def compute(self, prev: np.ndarray, curr: np.ndarray) -> np.ndarray:
        """Dense flow from ``prev`` to ``curr``.

        prev, curr: (H, W, 3) uint8 BGR frames of the same size.
        Returns (H, W, 2) float32 image pixels, flow[y, x] = (dx, dy) of the point (x, y) of prev.
        """
        check_frame(prev, "prev")
        check_frame(curr, "curr")
        if prev.shape != curr.shape:
            raise FlowInputError(f"curr: shape {curr.shape} differs from prev shape {prev.shape}")
        height, width = prev.shape[:2]
        if self.scale == 1.0:
            flow = self._compute(prev, curr)
        else:
            # never below MIN_WORKING_SIDE px per side (DIS fails on images of a few px: its coarsest
            # pyramid level needs room for a patch), nor above the frame itself
            small_w = min(width, max(MIN_WORKING_SIDE, int(round(width * self.scale))))
            small_h = min(height, max(MIN_WORKING_SIDE, int(round(height * self.scale))))
            small_prev = cv2.resize(prev, (small_w, small_h), interpolation=cv2.INTER_AREA)
            small_curr = cv2.resize(curr, (small_w, small_h), interpolation=cv2.INTER_AREA)
            small_flow = self._compute(small_prev, small_curr)
            flow = cv2.resize(small_flow, (width, height), interpolation=cv2.INTER_LINEAR)
            # cv2.resize maps pixel centres consistently in both directions, so only the vector lengths
            # need the inverse of the per-axis factor (exact, rather than 1/scale after rounding).
            flow[..., 0] *= width / small_w
            flow[..., 1] *= height / small_h
        flow = np.ascontiguousarray(flow, dtype=np.float32)
        if flow.shape != (height, width, 2):  # a backend bug, not bad input
            raise RuntimeError(f"{self.name}: produced flow of shape {flow.shape}, expected {(height, width, 2)}")
        return flow

    def _compute(self, prev: np.ndarray, curr: np.ndarray) -> np.ndarray:
        """prev, curr: (h, w, 3) uint8 BGR at the working resolution -> (h, w, 2) float32 pixels."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale})"

