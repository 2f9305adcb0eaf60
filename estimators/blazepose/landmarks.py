"""The BlazePose-full landmark model (MediaPipe 0.10.14 ``pose_landmark_full.tflite``) as an estimator.

A square, optionally rotated ROI around each person is resampled to 256x256 RGB in [0, 1] (replicate border);
the model returns 39 landmarks (x, y, z, visibility logit, presence logit) in crop pixels, a pose-presence
probability, and 64x64 heatmap logits used to refine x, y (MediaPipe's ``RefineLandmarksFromHeatmapCalculator``:
7x7 window, sigmoid, weighted mean of the cell indices without a +0.5 offset, when the window max >= 0.5).
Landmarks 33/34 are the alignment points (body centre, a point beyond the head) from which the next frame's
ROI is built (``pose_landmarks_to_roi``); they are returned as ``Poses.roi_points``. COCO-17 keypoints are a
fixed subset of the 33 body landmarks; keypoint scores are sigmoid(visibility), a probability in [0, 1].

Not an ``nn.Module``: the TFLite interpreter runs on the CPU only. Its :data:`SPEC` (kind "blazepose") is
registered by the package; ``create_blazepose_estimator`` is the spec's builder.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from association.arrays import check_boxes, check_image
from association.keypoints import COCO17

from ..spec import ModelSpec, Poses
from .rois import (
    ROI_SCALE,
    BlazePoseInputError,
    Rois,
    check_roi_points,
    crop_rois,
    crop_to_image,
    rois_for_boxes,
    rois_from_alignment_points,
)
from .tflite import TFLiteModel, sigmoid

LANDMARK_INPUT_SIZE = 256  # crop side in pixels
HEATMAP_SIZE = 64
NUM_LANDMARKS = 39  # 33 body + 2 alignment + 4 undocumented
NUM_BODY_LANDMARKS = 33
AUX_CENTER, AUX_SCALE = 33, 34  # alignment points: body centre (~mid-hip), size/rotation point beyond the head
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


def refine_from_heatmap(xy_norm: np.ndarray, heatmaps: np.ndarray, kernel: int = REFINE_KERNEL,
                        min_confidence: float = REFINE_MIN_CONFIDENCE) -> np.ndarray:
    """MediaPipe's RefineLandmarksFromHeatmap.

    xy_norm: (N, L, 2) crop coordinates normalised to [0, 1]; heatmaps: (N, Hm, Wm, L) logits (HWC).
    For each landmark the cell (int(x Wm), int(y Hm)) (C truncation) is taken, points whose cell lies
    outside the map are left alone, a kernel x kernel window (clipped at the border) is passed through a
    sigmoid and, when its max >= min_confidence, x = sum(col p) / sum(p) / Wm (no +0.5 cell offset, as in
    MediaPipe; a +0.5 offset lowers COCO AP). Returns the refined (N, L, 2) float32.
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


@dataclass
class BlazePoseResult:
    """Everything the landmark model gives for the N people of one image (rows aligned with the input).

    poses: ``Poses`` with COCO-17 keypoints (N, 17, 2) image px, keypoint_scores = sigmoid(visibility)
    (N, 17), pose_scores = box score x mean keypoint score (N,), roi_points (N, 2, 2) image px = landmarks
    33 (body centre) and 34 (size/rotation point), the next frame's ROI hints.
    landmarks33: (N, 33, 3) float32 image pixels x, y and relative depth z (pixels, same scale as x).
    visibility33 / presence33: (N, 33) float32 probabilities. pose_flag: (N,) float32 probability that a
    person is in the ROI (< 0.5: MediaPipe drops the pose). rois: the ROIs that were cropped (image px).
    extra_landmarks: (N, 4, 3) float32 image px, the model's undocumented landmarks 35-38.
    """

    poses: Poses
    landmarks33: np.ndarray
    visibility33: np.ndarray
    presence33: np.ndarray
    pose_flag: np.ndarray
    rois: Rois
    extra_landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 3), np.float32))


class BlazePoseEstimator:
    """BlazePose-full landmarks on square person ROIs, with the estimator contract (``spec``, ``layout``,
    ``num_keypoints``, ``estimate``, ``estimate_batch``).

    landmark_path: the ``pose_landmark_full.tflite`` file (default: the weights cache, see
    ``estimators.blazepose.weights.blazepose_paths``). num_threads: TFLite CPU threads. max_batch: upper bound
    on ROIs per interpreter call; the interpreter batch is the largest power of two <= min(max_batch, 4)
    (batching helps this model only up to a few crops on a CPU: 4 per call ~25 % faster per crop than 1, 8 no
    better than 1). box_scale: ROI side / long box side for boxes without ROI hints. refine_passes: extra
    passes that re-crop each person from its own alignment landmarks 33/34 (raises COCO AP on ground-truth
    boxes). heatmap_refine: apply the heatmap refinement of x, y.
    """

    def __init__(self, landmark_path: str | os.PathLike | None = None, *,
                 weights_dir: str | os.PathLike | None = None,
                 num_threads: int = 2, max_batch: int = 4, box_scale: float = ROI_SCALE, refine_passes: int = 0,
                 heatmap_refine: bool = True, verify_weights: bool = True) -> None:
        if max_batch < 1 or num_threads < 1 or refine_passes < 0 or box_scale <= 0:
            raise BlazePoseInputError(f"BlazePoseEstimator: bad argument (max_batch={max_batch}, "
                                      f"num_threads={num_threads}, refine_passes={refine_passes}, "
                                      f"box_scale={box_scale})")
        if landmark_path is None:
            from .weights import blazepose_paths

            landmark_path = blazepose_paths(weights_dir, verify=verify_weights)[1]
        self.model = TFLiteModel(
            landmark_path, input_shape=(LANDMARK_INPUT_SIZE, LANDMARK_INPUT_SIZE, 3), what="pose_landmark_full",
            num_threads=num_threads,
            outputs=lambda b: {"landmarks": (b, NUM_LANDMARKS * 5), "flag": (b, 1),
                               "heatmap": (b, HEATMAP_SIZE, HEATMAP_SIZE, NUM_LANDMARKS)})
        self.landmark_path = Path(landmark_path)
        self.num_threads = int(num_threads)
        self.max_batch = int(max_batch)
        self.interpreter_batch = 1 << (min(self.max_batch, INTERPRETER_BATCH_CAP).bit_length() - 1)
        self.box_scale = float(box_scale)
        self.refine_passes = int(refine_passes)
        self.heatmap_refine = bool(heatmap_refine)

    @property
    def spec(self) -> ModelSpec:
        return SPEC

    @property
    def layout(self):
        return SPEC.layout

    @property
    def num_keypoints(self) -> int:
        return SPEC.layout.num_keypoints

    # -- the model on crops / ROIs ----------------------------------------------------------------------------
    def _run_crops(self, crops_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """crops (N, 256, 256, 3) uint8 BGR -> landmarks (N, 195), flag (N,), heatmap (N, 64, 64, 39)."""
        n = len(crops_bgr)
        lm = np.zeros((n, NUM_LANDMARKS * 5), np.float32)
        flag = np.zeros(n, np.float32)
        hm = np.zeros((n, HEATMAP_SIZE, HEATMAP_SIZE, NUM_LANDMARKS), np.float32)
        x = crops_bgr[..., ::-1].astype(np.float32) * np.float32(1.0 / 255.0)  # BGR -> RGB, [0, 1]
        start = 0
        while start < n:
            # largest power of two <= min(remaining, interpreter_batch): e.g. 7 people -> 4 + 2 + 1, so no
            # padded (wasted) rows and at most log2(cap) + 1 interpreters
            b = 1 << (min(n - start, self.interpreter_batch).bit_length() - 1)
            out = self.model.run(x[start:start + b])
            lm[start:start + b] = out["landmarks"]
            flag[start:start + b] = out["flag"].reshape(-1)
            hm[start:start + b] = out["heatmap"]
            start += b
        return lm, flag, hm

    def crops(self, images: Sequence[np.ndarray], rois_list: Sequence[Rois]) -> np.ndarray:
        """(sum N_i, 256, 256, 3) uint8 BGR: what the model sees for the ROIs of several images."""
        total = sum(len(r) for r in rois_list)
        out = np.empty((total, LANDMARK_INPUT_SIZE, LANDMARK_INPUT_SIZE, 3), np.uint8)
        k = 0
        for img, rois in zip(images, rois_list):
            if len(rois):
                crop_rois(img, rois, LANDMARK_INPUT_SIZE, cv2.BORDER_REPLICATE, out=out[k:k + len(rois)])
            k += len(rois)
        return out

    def landmarks_on_rois(self, images: Sequence[np.ndarray], rois_list: Sequence[Rois]
                          ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Raw decoded landmarks for ROIs of several images in one batch.

        Returns per image a tuple (landmarks (N, 39, 3) float32 image px x, y, z; visibility (N, 39);
        presence (N, 39); pose_flag (N,)).
        """
        counts = [len(r) for r in rois_list]
        total = sum(counts)
        lm, flag, hm = self._run_crops(self.crops(images, rois_list))
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

    # -- the estimator contract -------------------------------------------------------------------------------
    def resolve_rois(self, boxes: np.ndarray, roi_points: np.ndarray | None) -> Rois:
        """The ROIs cropped for ``boxes`` (N, 4) xyxy px: from ``roi_points`` (N, 2, 2) px where a row is
        finite, else the upright square of side ``box_scale`` x the long box side."""
        return rois_for_boxes(boxes, roi_points, self.box_scale)

    def estimate_full_batch(self, images: Sequence[np.ndarray], boxes_list: Sequence[np.ndarray],
                            scores_list: Sequence[np.ndarray | None] | None = None,
                            roi_points_list: Sequence[np.ndarray | None] | None = None) -> list[BlazePoseResult]:
        """``BlazePoseResult`` per image; all crops of all images go through the interpreter together.

        images: (H, W, 3) uint8 BGR each; boxes_list: (N_i, 4) xyxy image px; scores_list: (N_i,) box scores
        (None: ones); roi_points_list: (N_i, 2, 2) image px alignment points per box or None (a NaN row uses the
        box), e.g. the BlazePose detector's points or the previous frame's ``Poses.roi_points``.
        """
        if scores_list is None:
            scores_list = [None] * len(images)
        if roi_points_list is None:
            roi_points_list = [None] * len(images)
        if not (len(images) == len(boxes_list) == len(scores_list) == len(roi_points_list)):
            raise BlazePoseInputError(f"estimate_batch: {len(images)} images, {len(boxes_list)} box arrays, "
                                      f"{len(scores_list)} score arrays, {len(roi_points_list)} roi_points arrays")
        imgs, scs, rois = [], [], []
        for i, (img, b, s, p) in enumerate(zip(images, boxes_list, scores_list, roi_points_list)):
            imgs.append(check_image(img, f"images[{i}]", BlazePoseInputError))
            b, s = check_boxes(b, s, f"images[{i}]", BlazePoseInputError, positive=False, dtype=np.float32)
            scs.append(s)
            rois.append(self.resolve_rois(b, check_roi_points(p, len(b), f"roi_points[{i}]")))
        raw = self.landmarks_on_rois(imgs, rois)
        for _ in range(self.refine_passes):
            # Re-crop each person from its own alignment points; keep the old ROI where the pose vanished.
            new = []
            for (lms, _, _, flag), r in zip(raw, rois):
                nr = rois_from_alignment_points(lms[:, AUX_CENTER, :2], lms[:, AUX_SCALE, :2])
                keep = (flag >= POSE_FLAG_THRESHOLD) & (nr.sizes > 1)
                new.append(Rois(np.where(keep[:, None], nr.centers, r.centers), np.where(keep, nr.sizes, r.sizes),
                                np.where(keep, nr.rotations, r.rotations)))
            rois = new
            raw = self.landmarks_on_rois(imgs, rois)
        results = []
        for (lms, vis, pres, flag), r, s in zip(raw, rois, scs):
            kp_scores = vis[:, COCO_FROM_BLAZEPOSE]
            body = np.ascontiguousarray(lms[:, :NUM_BODY_LANDMARKS])
            vis33 = np.ascontiguousarray(vis[:, :NUM_BODY_LANDMARKS])
            pres33 = np.ascontiguousarray(pres[:, :NUM_BODY_LANDMARKS])
            poses = Poses(keypoints=np.ascontiguousarray(lms[:, COCO_FROM_BLAZEPOSE, :2]),
                          keypoint_scores=np.ascontiguousarray(kp_scores),
                          pose_scores=s * (kp_scores.mean(1) if len(kp_scores) else np.zeros(0, np.float32)),
                          roi_points=np.ascontiguousarray(lms[:, [AUX_CENTER, AUX_SCALE], :2]),
                          # per-person rows, carried into the tracker's records
                          extras={"landmarks33": body, "visibility33": vis33, "presence33": pres33,
                                  "pose_flag": flag})
            results.append(BlazePoseResult(poses=poses, landmarks33=body, visibility33=vis33, presence33=pres33,
                                           pose_flag=flag, rois=r,
                                           extra_landmarks=np.ascontiguousarray(lms[:, NUM_BODY_LANDMARKS + 2:])))
        return results

    def estimate_full(self, image: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray | None = None,
                      roi_points: np.ndarray | None = None) -> BlazePoseResult:
        """``BlazePoseResult`` for one image (see ``estimate_full_batch``)."""
        return self.estimate_full_batch([image], [boxes], [box_scores], [roi_points])[0]

    def estimate(self, image: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray | None = None,
                 roi_points: np.ndarray | None = None) -> Poses:
        """COCO-17 ``Poses`` for the N boxes (N, 4) xyxy px of one (H, W, 3) uint8 BGR image, rows aligned with
        ``boxes``; ``roi_points`` (N, 2, 2) px optional ROI hints (NaN row = use the box)."""
        return self.estimate_full(image, boxes, box_scores, roi_points).poses

    def estimate_batch(self, images: Sequence[np.ndarray], boxes_list: Sequence[np.ndarray],
                       scores_list: Sequence[np.ndarray | None] | None = None,
                       roi_points_list: Sequence[np.ndarray | None] | None = None) -> list[Poses]:
        """``Poses`` per image, all crops batched together."""
        return [r.poses for r in self.estimate_full_batch(images, boxes_list, scores_list, roi_points_list)]

    def __repr__(self) -> str:
        return (f"BlazePoseEstimator({str(self.landmark_path)!r}, num_threads={self.num_threads}, "
                f"max_batch={self.max_batch}, box_scale={self.box_scale}, refine_passes={self.refine_passes})")


def create_blazepose_estimator(checkpoint: str | os.PathLike | None = None, *, device: str = "cpu",
                               max_batch: int = 4, **kw: Any) -> BlazePoseEstimator:
    """The BlazePose estimator: the builder of :data:`SPEC` (``estimators.factory.create_estimator`` calls it).

    checkpoint: a ``pose_landmark_full.tflite`` file (None: the weights cache). ``device`` must be "cpu": the
    TFLite interpreter has no GPU path here. Other keywords go to ``BlazePoseEstimator`` (weights_dir,
    num_threads, box_scale, refine_passes, heatmap_refine, verify_weights).
    """
    if str(device).split(":")[0] != "cpu":
        raise BlazePoseInputError(f"blazepose: device {device!r} is not supported; the TFLite model runs on the "
                                  f"CPU only (use device='cpu')")
    return BlazePoseEstimator(checkpoint, max_batch=max_batch, **kw)


SPEC = ModelSpec(
    name="blazepose", builder=create_blazepose_estimator, family=None, layout=COCO17,
    input_size=(LANDMARK_INPUT_SIZE, LANDMARK_INPUT_SIZE), kind="blazepose", embedded_weights=True,
    score_offset=0.0,  # keypoint scores are sigmoid(visibility logit): probabilities, used as they are
    description="BlazePose full (MediaPipe 0.10.14, TFLite, CPU): 33 landmarks on rotated 256x256 ROIs, COCO-17 "
                "subset; keypoint score = visibility probability")
