"""BlazePose full (MediaPipe 0.10.14 ``pose_landmark_full.tflite``) as a top-down estimator, run with ai-edge-litert.

The only pose weights reachable offline (see ``estimators/weights.py``). Facts used here are in
``../shared/reference/blazepose.md``: a square, optionally rotated ROI around each person is resampled to
256x256 RGB in [0, 1] (replicate border); the model returns 39 landmarks (x, y, z, visibility logit,
presence logit) in crop pixels, a pose-presence probability, and 64x64 heatmap logits used to refine x, y
(7x7 window, sigmoid, weighted mean of the cell indices without a +0.5 offset, when the window max >= 0.5).
Landmarks 33/34 are alignment points (body centre and a point beyond the head) from which the next frame's
ROI is built (``next_rois``). COCO-17 keypoints are a fixed subset of the 33 body landmarks.

Unlike the torch estimators this is not an ``nn.Module`` and is not in the model registry: the TFLite
interpreter runs on the CPU only. ``create_blazepose_estimator`` is what ``estimators.inference`` calls.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

LANDMARK_INPUT_SIZE = 256  # crop side in pixels
HEATMAP_SIZE = 64
NUM_LANDMARKS = 39  # 33 body + 2 alignment + 4 undocumented
NUM_BODY_LANDMARKS = 33
AUX_CENTER, AUX_SCALE = 33, 34  # alignment points: body centre (~mid-hip), size/rotation point beyond the head
ROI_SCALE = 1.25  # pose_detection_to_roi / pose_landmarks_to_roi in the compiled 0.10.14 graph
ROI_TARGET_ANGLE = math.pi / 2  # an upright person (centre -> head point pointing up) gets rotation 0
POSE_FLAG_THRESHOLD = 0.5  # below it MediaPipe treats the pose as absent
INTERPRETER_BATCH_CAP = 4
REFINE_KERNEL = 7
REFINE_MIN_CONFIDENCE = 0.5

# COCO-17 index -> BlazePose-33 index (both use the person's own left/right).
COCO_FROM_BLAZEPOSE = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28], dtype=np.int64)
BLAZEPOSE33_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index")


class BlazePoseInputError(ValueError):
    """Bad image / box / ROI input to the BlazePose estimator or detector."""


# ----------------------------------------------------------------------------------------------------------
# ROI geometry (pure numpy; shared with tracker/blazepose_detector.py)
# ----------------------------------------------------------------------------------------------------------
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

    def __getitem__(self, idx) -> "Rois":
        return Rois(self.centers[idx], self.sizes[idx], self.rotations[idx])

    @staticmethod
    def empty() -> "Rois":
        return Rois(np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32))

    @staticmethod
    def concatenate(parts: Sequence["Rois"]) -> "Rois":
        if not parts:
            return Rois.empty()
        return Rois(np.concatenate([p.centers for p in parts]), np.concatenate([p.sizes for p in parts]),
                    np.concatenate([p.rotations for p in parts]))

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

    boxes: (N, 4) xyxy image pixels. A stand-in for the detector ROI when boxes come from another detector
    (blazepose.md section 6: 1.25-1.5 x the long side of a tight box).
    """
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    centers = (b[:, :2] + b[:, 2:]) / 2
    side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * scale
    return Rois(centers, side, np.zeros(len(b), np.float32))


def crop_matrices(rois: Rois, out_size: int) -> np.ndarray:
    """(N, 2, 3) float64 affine maps from output pixel (u, v) to source image pixel (x, y), OpenCV indexing.

    As MediaPipe's OpenCV ImageToTensor does (cv::RotatedRect corners -> (0, 0) and (out, out) through
    getPerspectiveTransform), the square's corners map to output coordinates 0 and ``out_size`` with both
    sides in OpenCV's pixel indexing - no half-pixel shifts. We first wrote the "exact" continuous version
    (+0.5 on both sides): it lowered COCO AP on GT boxes from 0.476 to 0.456, the MediaPipe form gives
    blazepose.md's 0.476. ``crop_to_image`` is its exact inverse.
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


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function; logits clipped to [-100, 100] as MediaPipe does, computed in float64."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -100.0, 100.0)))


def refine_from_heatmap(xy_norm: np.ndarray, heatmaps: np.ndarray, kernel: int = REFINE_KERNEL,
                        min_confidence: float = REFINE_MIN_CONFIDENCE) -> np.ndarray:
    """MediaPipe's RefineLandmarksFromHeatmap.

    xy_norm: (N, L, 2) crop coordinates normalised to [0, 1]; heatmaps: (N, Hm, Wm, L) logits (HWC).
    For each landmark the cell (int(x Wm), int(y Hm)) (C truncation) is taken, points whose cell lies
    outside the map are left alone, a kernel x kernel window (clipped at the border) is passed through a
    sigmoid and, when its max >= min_confidence, x = sum(col p) / sum(p) / Wm (no +0.5 cell offset, as in
    MediaPipe; blazepose.md notes +0.5 lowers AP). Returns the refined (N, L, 2) float32.
    """
    xy = np.asarray(xy_norm, np.float32)
    n, hm_h, hm_w, nl = heatmaps.shape
    col = np.trunc(xy[..., 0] * hm_w).astype(np.int64)
    row = np.trunc(xy[..., 1] * hm_h).astype(np.int64)
    inside = (col >= 0) & (col < hm_w) & (row >= 0) & (row < hm_h)
    off = (kernel - 1) // 2
    steps = np.arange(-off, off + 1)
    rows = row[..., None] + steps  # (N, L, k)
    cols = col[..., None] + steps
    rvalid = (rows >= 0) & (rows < hm_h)
    cvalid = (cols >= 0) & (cols < hm_w)
    rc = np.clip(rows, 0, hm_h - 1)
    cc = np.clip(cols, 0, hm_w - 1)
    ni = np.arange(n)[:, None, None, None]
    li = np.arange(nl)[None, :, None, None]
    logits = heatmaps[ni, rc[:, :, :, None], cc[:, :, None, :], li]  # (N, L, k, k)
    p = sigmoid(logits.astype(np.float64)) * (rvalid[:, :, :, None] & cvalid[:, :, None, :])
    total = p.sum(axis=(2, 3))
    pmax = p.max(axis=(2, 3))
    ok = inside & (pmax >= min_confidence) & (total > 0)
    safe = np.where(total > 0, total, 1.0)
    new_x = (p * cols[:, :, None, :]).sum(axis=(2, 3)) / safe / hm_w
    new_y = (p * rows[:, :, :, None]).sum(axis=(2, 3)) / safe / hm_h
    out = xy.copy()
    out[..., 0] = np.where(ok, new_x, xy[..., 0])
    out[..., 1] = np.where(ok, new_y, xy[..., 1])
    return out


# ----------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------
def _poses_type():
    """``estimators.inference.Poses`` when it exists, else the compatible fallback below."""
    try:
        from .inference import Poses  # noqa: PLC0415  (lazy: inference imports torch)
    except ImportError:
        return FallbackPoses
    return Poses


@dataclass
class FallbackPoses:
    """Same fields as ``estimators.inference.Poses`` (used only when that module is absent).

    keypoints: (N, K, 2) float32 image pixels; keypoint_scores: (N, K) float32 in [0, 1];
    pose_scores: (N,) float32.
    """

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    pose_scores: np.ndarray
    extras: dict = field(default_factory=dict)


def make_poses(keypoints: np.ndarray, keypoint_scores: np.ndarray, pose_scores: np.ndarray,
               extras: dict | None = None):
    return _poses_type()(keypoints=np.ascontiguousarray(keypoints, np.float32),
                         keypoint_scores=np.ascontiguousarray(keypoint_scores, np.float32),
                         pose_scores=np.ascontiguousarray(pose_scores, np.float32), extras=dict(extras or {}))


@dataclass
class BlazePoseResult:
    """Everything the landmark model gives for the N people of one image (rows aligned with the input).

    poses: ``Poses`` with COCO-17 keypoints (N, 17, 2) image px, keypoint_scores = sigmoid(visibility)
    (N, 17), pose_scores = box score x mean keypoint score (N,).
    landmarks33: (N, 33, 3) float32 image pixels x, y and relative depth z (pixels, same scale as x).
    visibility33 / presence33: (N, 33) float32 probabilities. aux: (N, 2, 2) float32 image pixels,
    alignment points 33 (body centre) and 34 (size/rotation point). pose_flag: (N,) float32 probability
    that a person is in the ROI (< 0.5: MediaPipe drops the pose). rois: the ROIs that were cropped.
    """

    poses: object
    landmarks33: np.ndarray
    visibility33: np.ndarray
    presence33: np.ndarray
    aux: np.ndarray
    pose_flag: np.ndarray
    rois: Rois
    extra_landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 3), np.float32))

    def next_rois(self, scale: float = ROI_SCALE) -> Rois:
        return next_rois(self.aux[:, 0], self.aux[:, 1], scale=scale)


def next_rois_from_extras(extras: dict, scale: float = ROI_SCALE) -> Rois:
    """``next_rois`` from ``Poses.extras`` / ``PoseRecord.extras`` ("aux_points": (N, 2, 2) image pixels)."""
    try:
        aux = np.asarray(extras["aux_points"], np.float32)
    except KeyError:
        raise BlazePoseInputError("extras: no 'aux_points' field (not BlazePose poses?)") from None
    if aux.ndim != 3 or aux.shape[1:] != (2, 2):
        raise BlazePoseInputError(f"extras['aux_points']: expected (N, 2, 2) image pixels, got {aux.shape}")
    return next_rois(aux[:, 0], aux[:, 1], scale=scale)


def next_rois(aux_center: np.ndarray, aux_scale: np.ndarray, scale: float = ROI_SCALE) -> Rois:
    """The next frame's ROI per person from this frame's alignment landmarks (MediaPipe's tracking rule).

    aux_center: (N, 2) image pixels of landmark 33; aux_scale: (N, 2) image pixels of landmark 34.
    Centre = 33, side = 2 |34 - 33| * 1.25, rotation from the 33 -> 34 vector (target 90 degrees).
    """
    return rois_from_alignment_points(aux_center, aux_scale, scale=scale)


# ----------------------------------------------------------------------------------------------------------
# The estimator
# ----------------------------------------------------------------------------------------------------------
def _check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise BlazePoseInputError(f"{what}: expected an (H, W, 3) uint8 BGR array, got shape {shape} dtype {dtype}")
    return image


def _check_boxes(boxes, scores, what: str = "boxes") -> tuple[np.ndarray, np.ndarray]:
    b = np.asarray(boxes, np.float32)
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise BlazePoseInputError(f"{what}: expected (N, 4) xyxy image pixels, got shape {b.shape}")
    if not np.isfinite(b).all():
        raise BlazePoseInputError(f"{what}: contains NaN or infinite coordinates")
    s = np.ones(len(b), np.float32) if scores is None else np.asarray(scores, np.float32).reshape(-1)
    if len(s) != len(b):
        raise BlazePoseInputError(f"{what}: {len(b)} boxes but {len(s)} box_scores")
    return b, s


class BlazePoseEstimator:
    """BlazePose-full landmarks on square person ROIs; same ``estimate``/``estimate_batch`` as TopDownEstimator.

    landmark_path: the ``pose_landmark_full.tflite`` file (default: the weights cache, see
    ``estimators.weights.blazepose_paths``). num_threads: TFLite CPU threads. max_batch: upper bound on ROIs per
    interpreter call (resized copies of the interpreter run power-of-two chunks, so no padding is wasted).
    The interpreter batch is the largest power of two <= min(max_batch, 4).
    box_scale: ROI side / long box side for person boxes. refine_passes: extra passes that re-crop each
    person from its own alignment landmarks 33/34 (blazepose.md section 5: raises COCO AP on GT boxes).
    heatmap_refine: apply the heatmap refinement of x, y.
    """

    def __init__(self, landmark_path: str | os.PathLike | None = None, *,
                 weights_dir: str | os.PathLike | None = None,
                 num_threads: int = 2, max_batch: int = 4, box_scale: float = ROI_SCALE, refine_passes: int = 0,
                 heatmap_refine: bool = True, verify_weights: bool = True) -> None:
        if landmark_path is None:
            from .weights import blazepose_paths

            landmark_path = blazepose_paths(weights_dir, verify=verify_weights)[1]
        self.landmark_path = Path(landmark_path)
        if not self.landmark_path.is_file():
            raise FileNotFoundError(f"{self.landmark_path}: BlazePose landmark model not found; "
                                    f"run `posetrack weights fetch`")
        if max_batch < 1 or num_threads < 1 or refine_passes < 0 or box_scale <= 0:
            raise BlazePoseInputError(f"BlazePoseEstimator: bad argument (max_batch={max_batch}, "
                                      f"num_threads={num_threads}, refine_passes={refine_passes}, "
                                      f"box_scale={box_scale})")
        self.name = "blazepose"
        self.num_keypoints = 17
        self.num_threads = int(num_threads)
        self.max_batch = int(max_batch)
        # Batching helps the landmark model only up to a few crops on this CPU (measured: 4 per call ~25%
        # faster per crop than 1, 8 no better than 1), so the interpreter batch is capped.
        self.interpreter_batch = 1 << (min(self.max_batch, INTERPRETER_BATCH_CAP).bit_length() - 1)
        self.box_scale = float(box_scale)
        self.refine_passes = int(refine_passes)
        self.heatmap_refine = bool(heatmap_refine)
        self._interpreters: dict[int, tuple] = {}  # batch size -> (interpreter, input index, output indices)
        self._get_interpreter(1)

    # -- TFLite plumbing --------------------------------------------------------------------------------------
    def _get_interpreter(self, batch: int):
        if batch in self._interpreters:
            return self._interpreters[batch]
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415  (lazy: only when a model is built)

        it = Interpreter(model_path=str(self.landmark_path), num_threads=self.num_threads)
        inp = it.get_input_details()[0]
        if tuple(inp["shape"][1:]) != (LANDMARK_INPUT_SIZE, LANDMARK_INPUT_SIZE, 3):
            raise ValueError(f"{self.landmark_path}: input {inp['name']} has shape {inp['shape']}, expected "
                             f"[1, 256, 256, 3]; is it pose_landmark_full.tflite?")
        if batch != 1:
            it.resize_tensor_input(inp["index"], [batch, LANDMARK_INPUT_SIZE, LANDMARK_INPUT_SIZE, 3])
        it.allocate_tensors()
        # The interpreter does not list outputs in model order: pick them by shape.
        outs = {}
        for d in it.get_output_details():
            shp = tuple(int(v) for v in d["shape"][1:])
            key = {(195,): "landmarks", (1,): "flag", (64, 64, 39): "heatmap", (117,): "world",
                   (256, 256, 1): "segmentation"}.get(shp)
            if key is not None:
                outs[key] = d["index"]
        missing = {"landmarks", "flag", "heatmap"} - set(outs)
        if missing:
            raise ValueError(f"{self.landmark_path}: outputs {sorted(missing)} not found by shape; "
                             f"is it pose_landmark_full.tflite?")
        self._interpreters[batch] = (it, inp["index"], outs)
        return self._interpreters[batch]

    def _invoke(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """crops (B, 256, 256, 3) float32 RGB [0, 1] -> (landmarks (B, 195), flag (B,), heatmap (B, 64, 64, 39))."""
        it, inp, outs = self._get_interpreter(len(crops))
        it.set_tensor(inp, crops)
        it.invoke()
        return (it.get_tensor(outs["landmarks"]).copy(), it.get_tensor(outs["flag"]).reshape(-1).copy(),
                it.get_tensor(outs["heatmap"]).copy())

    def _run_crops(self, crops_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(crops_bgr)
        lm = np.zeros((n, 195), np.float32)
        flag = np.zeros(n, np.float32)
        hm = np.zeros((n, HEATMAP_SIZE, HEATMAP_SIZE, NUM_LANDMARKS), np.float32)
        x = crops_bgr[..., ::-1].astype(np.float32) * np.float32(1.0 / 255.0)  # BGR -> RGB, [0, 1]
        start = 0
        while start < n:
            # largest power of two <= min(remaining, interpreter_batch): e.g. 7 people -> 4 + 2 + 1, so no
            # padded (wasted) rows and at most log2(cap) + 1 interpreters
            b = 1 << (min(n - start, self.interpreter_batch).bit_length() - 1)
            lm[start:start + b], flag[start:start + b], hm[start:start + b] = self._invoke(
                np.ascontiguousarray(x[start:start + b]))
            start += b
        return lm, flag, hm

    # -- the model on ROIs ------------------------------------------------------------------------------------
    def landmarks_on_rois(self, images: Sequence[np.ndarray], rois_list: Sequence[Rois]):
        """Raw decoded landmarks for ROIs of several images in one batch.

        Returns per image a tuple (landmarks (N, 39, 3) float32 image px x, y, z; visibility (N, 39);
        presence (N, 39); pose_flag (N,)).
        """
        counts = [len(r) for r in rois_list]
        total = sum(counts)
        crops = np.empty((total, LANDMARK_INPUT_SIZE, LANDMARK_INPUT_SIZE, 3), np.uint8)
        k = 0
        for img, rois in zip(images, rois_list):
            if len(rois):
                crop_rois(img, rois, LANDMARK_INPUT_SIZE, cv2.BORDER_REPLICATE, out=crops[k:k + len(rois)])
            k += len(rois)
        lm, flag, hm = self._run_crops(crops)
        raw = lm.reshape(total, NUM_LANDMARKS, 5)
        xy_norm = raw[..., :2] / LANDMARK_INPUT_SIZE
        if self.heatmap_refine and total:
            xy_norm = refine_from_heatmap(xy_norm, hm)
        out = []
        k = 0
        for rois, n in zip(rois_list, counts):
            sl = slice(k, k + n)
            xy = crop_to_image(xy_norm[sl] * LANDMARK_INPUT_SIZE, rois, LANDMARK_INPUT_SIZE)
            z = raw[sl, :, 2] / LANDMARK_INPUT_SIZE * rois.sizes[:, None]
            lms = np.concatenate([xy, z[..., None].astype(np.float32)], axis=-1)
            out.append((lms, sigmoid(raw[sl, :, 3]).astype(np.float32), sigmoid(raw[sl, :, 4]).astype(np.float32),
                        flag[sl].astype(np.float32)))
            k += n
        return out

    def _resolve_rois(self, boxes: np.ndarray, rois: Rois | None, what: str) -> Rois:
        box_rois = rois_from_boxes(boxes, self.box_scale)
        if rois is None:
            return box_rois
        if not isinstance(rois, Rois):
            raise BlazePoseInputError(f"{what}: rois must be a blazepose.Rois, got {type(rois).__name__}")
        if len(rois) != len(boxes):
            raise BlazePoseInputError(f"{what}: {len(rois)} rois for {len(boxes)} boxes")
        use = np.isfinite(rois.sizes) & (rois.sizes > 0) & np.isfinite(rois.centers).all(1)
        return Rois(np.where(use[:, None], rois.centers, box_rois.centers), np.where(use, rois.sizes, box_rois.sizes),
                    np.where(use & np.isfinite(rois.rotations), rois.rotations, 0.0))

    def estimate_full_batch(self, images: Sequence[np.ndarray], boxes_list: Sequence[np.ndarray],
                            scores_list: Sequence[np.ndarray] | None = None,
                            rois_list: Sequence[Rois | None] | None = None) -> list[BlazePoseResult]:
        """``BlazePoseResult`` per image; all crops of all images go through the interpreter together.

        images: (H, W, 3) uint8 BGR each; boxes_list: (N_i, 4) float32 xyxy image px; scores_list: (N_i,) box
        scores (None: ones); rois_list: optional ``Rois`` per image (N_i rows; rows with NaN/0 size use the
        box) that override the box ROI, e.g. detector ROIs or ``next_rois`` of the previous frame.
        """
        if scores_list is None:
            scores_list = [None] * len(images)
        if rois_list is None:
            rois_list = [None] * len(images)
        if not (len(images) == len(boxes_list) == len(scores_list) == len(rois_list)):
            raise BlazePoseInputError(f"estimate_batch: {len(images)} images, {len(boxes_list)} box arrays, "
                                      f"{len(scores_list)} score arrays, {len(rois_list)} roi sets")
        imgs, bxs, scs, rois = [], [], [], []
        for i, (img, b, s, r) in enumerate(zip(images, boxes_list, scores_list, rois_list)):
            imgs.append(_check_image(img, f"images[{i}]"))
            b, s = _check_boxes(b, s, f"boxes[{i}]")
            bxs.append(b)
            scs.append(s)
            rois.append(self._resolve_rois(b, r, f"rois[{i}]"))
        raw = self.landmarks_on_rois(imgs, rois)
        for _ in range(self.refine_passes):
            # Re-crop each person from its own alignment points; keep the old ROI where the pose vanished.
            new = []
            for (lms, _, _, flag), r in zip(raw, rois):
                nr = next_rois(lms[:, AUX_CENTER, :2], lms[:, AUX_SCALE, :2])
                keep = (flag >= POSE_FLAG_THRESHOLD) & (nr.sizes > 1)
                new.append(Rois(np.where(keep[:, None], nr.centers, r.centers), np.where(keep, nr.sizes, r.sizes),
                                np.where(keep, nr.rotations, r.rotations)))
            rois = new
            raw = self.landmarks_on_rois(imgs, rois)
        results = []
        for (lms, vis, pres, flag), r, s in zip(raw, rois, scs):
            kps = lms[:, COCO_FROM_BLAZEPOSE, :2]
            kp_scores = vis[:, COCO_FROM_BLAZEPOSE]
            pose_scores = s * (kp_scores.mean(1) if len(kp_scores) else np.zeros(0, np.float32))
            # Per-person extras travel with the poses into the tracker's record (PoseRecord.extras): the
            # 33 landmarks and what the next frame needs to re-crop each person (next_rois_from_extras).
            extras = {"landmarks33": np.ascontiguousarray(lms[:, :NUM_BODY_LANDMARKS]),
                      "visibility33": np.ascontiguousarray(vis[:, :NUM_BODY_LANDMARKS]),
                      "presence33": np.ascontiguousarray(pres[:, :NUM_BODY_LANDMARKS]),
                      "aux_points": np.ascontiguousarray(lms[:, [AUX_CENTER, AUX_SCALE], :2]),
                      "pose_flag": flag,
                      "roi_centers": r.centers, "roi_sizes": r.sizes, "roi_rotations": r.rotations}
            results.append(BlazePoseResult(
                poses=make_poses(kps, kp_scores, pose_scores, extras),
                landmarks33=np.ascontiguousarray(lms[:, :NUM_BODY_LANDMARKS]),
                visibility33=np.ascontiguousarray(vis[:, :NUM_BODY_LANDMARKS]),
                presence33=np.ascontiguousarray(pres[:, :NUM_BODY_LANDMARKS]),
                aux=np.ascontiguousarray(lms[:, [AUX_CENTER, AUX_SCALE], :2]),
                pose_flag=flag, rois=r,
                extra_landmarks=np.ascontiguousarray(lms[:, 35:39])))
        return results

    def estimate_full(self, image: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray | None = None,
                      rois: Rois | None = None) -> BlazePoseResult:
        """``BlazePoseResult`` for one image (see ``estimate_full_batch``)."""
        return self.estimate_full_batch([image], [boxes], [box_scores], [rois])[0]

    def estimate(self, image: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray | None = None,
                 rois: Rois | None = None):
        """COCO-17 ``Poses`` for the N boxes of one (H, W, 3) uint8 BGR image; rows aligned with ``boxes``."""
        return self.estimate_full(image, boxes, box_scores, rois).poses

    def estimate_batch(self, images: Sequence[np.ndarray], boxes_list: Sequence[np.ndarray],
                       scores_list: Sequence[np.ndarray] | None = None,
                       rois_list: Sequence[Rois | None] | None = None) -> list:
        """``Poses`` per image, all crops batched together."""
        return [r.poses for r in self.estimate_full_batch(images, boxes_list, scores_list, rois_list)]

    next_rois = staticmethod(next_rois)

    def __repr__(self) -> str:
        return (f"BlazePoseEstimator({str(self.landmark_path)!r}, num_threads={self.num_threads}, "
                f"max_batch={self.max_batch}, box_scale={self.box_scale}, refine_passes={self.refine_passes})")


def create_blazepose_estimator(device: str = "cpu", **kw) -> BlazePoseEstimator:
    """The BlazePose estimator (what ``estimators.inference.create_estimator("blazepose")`` calls).

    ``device`` must be "cpu": the TFLite interpreter has no GPU path here. Other keywords go to
    ``BlazePoseEstimator`` (landmark_path, weights_dir, num_threads, max_batch, box_scale, refine_passes, ...).
    """
    if str(device).split(":")[0] != "cpu":
        raise BlazePoseInputError(f"blazepose: device {device!r} is not supported; the TFLite model runs on the "
                                  f"CPU only (use device='cpu')")
    return BlazePoseEstimator(**kw)
