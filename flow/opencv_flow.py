"""OpenCV optical flow backends: DIS (the default, fast on a CPU) and Farneback.

Both work on grayscale versions of the BGR frames. The paper's pipeline uses FlowNet 2.0 (HRNet section
4.3, following SimpleBaseline/FlowTrack); we default to DIS because it runs in real time on a CPU without
weights, and keep RAFT (flow/raft.py) as the learned option.
"""
from __future__ import annotations

import cv2
import numpy as np

from flow.base import FlowBackend, FlowConfigError

DIS_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOpticalFlow_PRESET_ULTRAFAST,
    "fast": cv2.DISOpticalFlow_PRESET_FAST,
    "medium": cv2.DISOpticalFlow_PRESET_MEDIUM,
}


def _gray(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR -> (H, W) uint8 gray."""
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


class DISFlow(FlowBackend):
    """Dense Inverse Search flow (Kroeger et al. 2016) via ``cv2.DISOpticalFlow``.

    preset: "ultrafast" | "fast" | "medium" (OpenCV's presets: patch size/stride, gradient-descent and
        variational refinement iterations). Default "fast": on a real 1280x720 PoseTrack frame shifted by
        a known sub-pixel translation it is off by ~0.13 px (median, textured pixels) at ~1/5 the time of
        "medium" (~0.03-0.07 px), ample for moving keypoints.
    scale: resize factor in (0, 1] for computing the flow (see flow.base.FlowBackend).
    """

    name = "dis"

    def __init__(self, preset: str = "fast", scale: float = 1.0) -> None:
        super().__init__(scale)
        if preset not in DIS_PRESETS:
            raise FlowConfigError(f"preset: unknown DIS preset {preset!r}; valid presets: {sorted(DIS_PRESETS)}")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow.create(DIS_PRESETS[preset])

    def _compute(self, prev: np.ndarray, curr: np.ndarray) -> np.ndarray:
        return self._dis.calc(_gray(prev), _gray(curr), None)  # type: ignore[call-overload]  # None: allocate

    def __repr__(self) -> str:
        return f"DISFlow(preset={self.preset!r}, scale={self.scale})"


class FarnebackFlow(FlowBackend):
    """Farneback polynomial-expansion flow via ``cv2.calcOpticalFlowFarneback`` (parameters as in OpenCV).

    pyr_scale: pyramid scale (< 1) between levels; levels: number of pyramid levels (1 = no pyramid);
    winsize: averaging window (px); iterations: per level; poly_n: neighbourhood of the polynomial
    expansion (5 or 7); poly_sigma: Gaussian std of that expansion (OpenCV suggests 1.1 for poly_n=5,
    1.5 for 7); gaussian_window: use a Gaussian instead of a box averaging window (OPTFLOW_FARNEBACK_GAUSSIAN).
    scale: resize factor in (0, 1] for computing the flow.
    """

    name = "farneback"

    def __init__(
        self,
        pyr_scale: float = 0.5,
        levels: int = 4,
        winsize: int = 15,
        iterations: int = 3,
        poly_n: int = 5,
        poly_sigma: float = 1.1,
        gaussian_window: bool = False,
        scale: float = 1.0,
    ) -> None:
        super().__init__(scale)
        if not (0.0 < pyr_scale < 1.0):
            raise FlowConfigError(f"pyr_scale: expected 0 < pyr_scale < 1, got {pyr_scale}")
        if int(levels) < 1 or int(winsize) < 1 or int(iterations) < 1:
            raise FlowConfigError(
                f"levels, winsize, iterations: expected positive integers, got {levels}, {winsize}, {iterations}")
        if int(poly_n) not in (5, 7):
            raise FlowConfigError(f"poly_n: expected 5 or 7, got {poly_n}")
        if poly_sigma <= 0:
            raise FlowConfigError(f"poly_sigma: expected > 0, got {poly_sigma}")
        self.pyr_scale = float(pyr_scale)
        self.levels = int(levels)
        self.winsize = int(winsize)
        self.iterations = int(iterations)
        self.poly_n = int(poly_n)
        self.poly_sigma = float(poly_sigma)
        self.gaussian_window = bool(gaussian_window)

    def _compute(self, prev: np.ndarray, curr: np.ndarray) -> np.ndarray:
        flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if self.gaussian_window else 0
        # flow=None lets OpenCV allocate the output (OpenCV's stubs do not list None for it)
        return cv2.calcOpticalFlowFarneback(  # type: ignore[call-overload]
            _gray(prev), _gray(curr), None, self.pyr_scale, self.levels, self.winsize, self.iterations,
            self.poly_n, self.poly_sigma, flags)

    def __repr__(self) -> str:
        return (f"FarnebackFlow(pyr_scale={self.pyr_scale}, levels={self.levels}, winsize={self.winsize}, "
                f"iterations={self.iterations}, poly_n={self.poly_n}, poly_sigma={self.poly_sigma}, "
                f"gaussian_window={self.gaussian_window}, scale={self.scale})")
