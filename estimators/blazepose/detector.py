"""The BlazePose person detector (MediaPipe 0.10.14 ``pose_detection.tflite``) made multi-person by tiling.

The model (MediaPipe's ``pose_detection`` graph) finds the ONE most prominent person of its 224x224 RGB input
in [-1, 1]: 2254 SSD anchors (strides 8, 16, 32, 32, 32, two anchors per cell per layer, fixed size 1), raw
rows [cx, cy, w, h, 4 x (x, y)] in input pixels relative to the anchor, score logits. Keypoint 0 is the
mid-hip, keypoint 1 a point beyond the head (|kp1 - kp0| = body radius), 2 the mid-shoulder, 3 an upper-body
scale point; its box output is a constant square and useless as a person box. To find several people without
new weights we run it on square views of the frame - the whole frame (letterboxed, as MediaPipe does) plus
overlapping square tiles at one or two scales - in one batched interpreter call, map every detection back to
image pixels and merge them with MediaPipe's weighted NMS. Each person gets the landmark model's ROI
(``pose_detection_to_roi``: centre kp0, side 2 |kp1 - kp0| x 1.25, rotation from kp0 -> kp1), its alignment
points (kp0, kp1) and a person box. Torch-free; the tracker wraps it as a person detector.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from association.arrays import check_image

from .rois import BlazePoseInputError, Rois, crop_rois, rois_from_alignment_points
from .tflite import TFLiteModel, sigmoid

DETECTOR_INPUT_SIZE = 224
NUM_ANCHORS = 2254
DETECTOR_STRIDES = (8, 16, 32, 32, 32)
NMS_IOU = 0.3  # min_suppression_threshold of the compiled graph
MAX_VIEWS = 32  # views (full frame + tiles) per frame at most: bounded work whatever the frame's shape


def ssd_anchors(input_size: int = DETECTOR_INPUT_SIZE, strides: Sequence[int] = DETECTOR_STRIDES) -> np.ndarray:
    """(2254, 2) float32 anchor centres, normalised to the input square (fixed_anchor_size: w = h = 1).

    Layers with the same stride are merged; every layer adds 2 anchors per cell (aspect ratio 1 plus the
    interpolated scale). Order: stride groups, then row, then column, then the anchors of the cell.
    """
    centers = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n = math.ceil(input_size / strides[i])
        per_cell = 2 * (j - i)
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        grid = np.stack([xs, ys], -1).reshape(-1, 1, 2)
        centers.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
        i = j
    return np.concatenate(centers).astype(np.float32)


def anchor_group_sizes(input_size: int = DETECTOR_INPUT_SIZE,
                       strides: Sequence[int] = DETECTOR_STRIDES) -> tuple[int, ...]:
    """Anchors per stride group in output order: (1568, 392, 294) for the BlazePose detector."""
    sizes: dict[int, int] = {}
    for s in strides:
        sizes[s] = sizes.get(s, 0) + 2 * math.ceil(input_size / s) ** 2
    return tuple(sizes.values())


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU) -> list[np.ndarray]:
    """MediaPipe's weighted (blending) NMS: the clusters, best first.

    boxes: (M, 4) xyxy; scores: (M,). Take the best remaining detection; every remaining one (itself
    included) with IoU > threshold to it forms its cluster and is removed. Returns index arrays, the first
    index of each being the cluster's best. The caller averages whatever it needs with score weights.
    """
    order = np.argsort(-scores, kind="stable")
    remaining = order
    clusters = []
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    while len(remaining):
        best = remaining[0]
        b = boxes[remaining]
        iw = np.clip(np.minimum(b[:, 2], boxes[best, 2]) - np.maximum(b[:, 0], boxes[best, 0]), 0, None)
        ih = np.clip(np.minimum(b[:, 3], boxes[best, 3]) - np.maximum(b[:, 1], boxes[best, 1]), 0, None)
        inter = iw * ih
        union = area[remaining] + area[best] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        member = iou > iou_threshold
        member[0] = True
        clusters.append(remaining[member])
        remaining = remaining[~member]
    return clusters


class ViewCapWarning(RuntimeWarning):
    """The frame's shape asked for more detector views than ``max_views``: tiles were made larger."""


def view_squares(width: int, height: int, scales: Sequence[float], overlap: float, full_frame: bool,
                 max_views: int | None = None) -> Rois:
    """The square views the detector looks at, as axis-aligned ``Rois`` in image pixels.

    Full frame: the square of side max(W, H) centred on the frame (MediaPipe's symmetric letterbox). Tiles:
    for each scale s, squares of side s x min(W, H), spread evenly from edge to edge so that neighbours
    overlap by at least ``overlap`` of the side. A tile as large as the frame is skipped (same as full frame).
    max_views: at most this many views in all (None = no cap): the work per frame stays bounded whatever the
    frame's shape (a 500 x 2 frame would otherwise ask for hundreds of 2-px tiles). When a scale's tiles do
    not fit in what is left, its tiles are enlarged (x1.25 steps) until they do, with a :class:`ViewCapWarning`.
    A 1280 x 720 frame with the default scales (1.0, 0.6) uses 12 views.
    """
    if max_views is not None and max_views < 1:
        raise BlazePoseInputError(f"BlazePoseDetector: max_views must be >= 1, got {max_views}")
    centers, sizes = [], []
    if full_frame:
        centers.append((width / 2, height / 2))
        sizes.append(max(width, height))
    short = min(width, height)
    for k, s in enumerate(scales):
        side = float(s) * short
        if side <= 0:
            raise BlazePoseInputError(f"BlazePoseDetector: tile scale {s} must be > 0")
        if max_views is not None:  # leave one view for each scale still to come
            budget = max(1, max_views - len(sizes) - (len(scales) - k - 1))
            asked = side
            while (side < max(width, height) and len(_tile_centres(width, side, overlap))
                   * len(_tile_centres(height, side, overlap)) > budget):
                side = min(side * 1.25, float(max(width, height)))
            if side != asked:
                warnings.warn(f"BlazePoseDetector: a {width}x{height} frame asks for more than {max_views} views; "
                              f"tiles of scale {s:g} enlarged from {asked:.0f} to {side:.0f} px", ViewCapWarning,
                              stacklevel=3)
            if len(sizes) >= max_views:
                break
        if side >= max(width, height) and full_frame:
            continue
        xs, ys = _tile_centres(width, side, overlap), _tile_centres(height, side, overlap)
        for cy in ys:
            for cx in xs:
                centers.append((cx, cy))
                sizes.append(side)
    n = len(sizes)
    return Rois(np.asarray(centers, np.float32).reshape(n, 2), np.asarray(sizes, np.float32), np.zeros(n, np.float32))


def _tile_centres(length: float, side: float, overlap: float) -> list[float]:
    if side >= length:
        return [length / 2]
    step_max = side * (1 - overlap)
    n = int(math.ceil((length - side) / step_max)) + 1
    step = (length - side) / (n - 1)
    return [side / 2 + i * step for i in range(n)]


@dataclass
class PersonRois:
    """The detector's people in one image (rows aligned, sorted by score).

    boxes: (N, 4) float32 xyxy image pixels (from kp0/kp1, see ``BlazePoseDetector``); scores: (N,) float32;
    keypoints: (N, 4, 2) float32 image pixels (0 mid-hip, 1 full-body scale point, 2 mid-shoulder,
    3 upper-body scale point); rois: the landmark-model ROIs (centre kp0, side 2|kp1-kp0| x 1.25, rotation);
    support: (N,) int32 number of raw detections (over all views) merged into each person.
    """

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray
    rois: Rois
    support: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def roi_points(self) -> np.ndarray:
        """(N, 2, 2) float32 image px: the alignment points (kp0, kp1) from which ``rois`` is built."""
        return np.ascontiguousarray(self.keypoints[:, :2], dtype=np.float32)


class BlazePoseDetector:
    """Multi-person detection with the BlazePose single-person detector on the full frame plus tiles.

    detector_path: ``pose_detection.tflite`` (default: the weights cache). tiles: also run on square tiles
    (False = MediaPipe's single full-frame pass). scales: tile side as fractions of the short image side.
    overlap: minimum overlap between neighbouring tiles (fraction of the side). score_threshold: on the
    sigmoid score of each raw detection; MediaPipe uses 0.5 on its single full-frame pass; on tiles that hold
    two overlapping people the model's best score drops to 0.4-0.5 (on the 3-player PoseTrack test clip, 0.5
    finds only 1 of 3 players in one frame). nms_threshold: IoU of the weighted NMS. box_mode: the person box
    returned - "body" = the square around the body circle (centre kp0, radius |kp1 - kp0|) or "roi" = the
    axis-aligned box around the rotated landmark ROI. truncation_margin: tile detections whose body circle,
    radius scaled by this, crosses a tile edge that is not an image edge are dropped (0 disables). min_size:
    people whose body radius is below this many pixels are dropped. All views run in one interpreter call.
    max_views: at most this many views per frame (see ``view_squares``; None = no cap).
    """

    def __init__(self, detector_path: str | os.PathLike | None = None, *,
                 weights_dir: str | os.PathLike | None = None,
                 tiles: bool = True, scales: Sequence[float] = (1.0, 0.6), overlap: float = 0.3,
                 full_frame: bool = True, score_threshold: float = 0.4, nms_threshold: float = NMS_IOU,
                 truncation_margin: float = 0.8, box_mode: str = "body", min_size: float = 8.0,
                 num_threads: int = 2, verify_weights: bool = True, max_views: int | None = MAX_VIEWS) -> None:
        if box_mode not in ("body", "roi"):
            raise BlazePoseInputError(f"BlazePoseDetector: box_mode must be 'body' or 'roi', got {box_mode!r}")
        if not 0 <= overlap < 1:
            raise BlazePoseInputError(f"BlazePoseDetector: overlap must be in [0, 1), got {overlap}")
        if not tiles and not full_frame:
            raise BlazePoseInputError("BlazePoseDetector: tiles=False and full_frame=False leave nothing to run")
        scales = tuple(float(s) for s in scales) if tiles else ()
        if any(not (math.isfinite(s) and s > 0) for s in scales):
            raise BlazePoseInputError(f"BlazePoseDetector: tile scales must be > 0, got {list(scales)}")
        if not 0 <= score_threshold <= 1:
            raise BlazePoseInputError(f"BlazePoseDetector: score_threshold must be in [0, 1], got {score_threshold}")
        if detector_path is None:
            from .weights import blazepose_paths

            detector_path = blazepose_paths(weights_dir, verify=verify_weights)[0]
        self.model = TFLiteModel(
            detector_path, input_shape=(DETECTOR_INPUT_SIZE, DETECTOR_INPUT_SIZE, 3), what="pose_detection",
            num_threads=num_threads,
            outputs=lambda b: {"regressors": (1, b * NUM_ANCHORS, 12), "scores": (1, b * NUM_ANCHORS, 1)})
        self.detector_path = Path(detector_path)
        self.tiles = bool(tiles)
        self.scales = scales
        self.overlap = float(overlap)
        self.full_frame = bool(full_frame)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.box_mode = box_mode
        self.min_size = float(min_size)
        self.truncation_margin = float(truncation_margin)
        self.num_threads = int(num_threads)
        if max_views is not None and max_views < 1:
            raise BlazePoseInputError(f"BlazePoseDetector: max_views must be >= 1, got {max_views}")
        self.max_views = max_views
        self.anchors = ssd_anchors()
        self.group_sizes = anchor_group_sizes()

    def _unbatch(self, out: np.ndarray, batch: int) -> np.ndarray:
        """(1, B x 2254, C) interpreter output -> (B, 2254, C).

        The model ends in reshapes to [1, -1, C] per stride group followed by a concat, so with the input
        resized to batch B the rows come group-major: all B images' stride-8 anchors, then all stride-16,
        then all stride-32 (checked against batch-1 runs: identical; see tests).
        """
        out = out.reshape(-1, out.shape[-1])
        parts, k = [], 0
        for g in self.group_sizes:
            parts.append(out[k:k + batch * g].reshape(batch, g, -1))
            k += batch * g
        return np.concatenate(parts, axis=1)

    def views(self, width: int, height: int) -> Rois:
        """The square views for a W x H frame (see ``view_squares``)."""
        return view_squares(width, height, self.scales, self.overlap, self.full_frame, self.max_views)

    def raw_detections(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every detection above the score threshold in every view of an (H, W, 3) uint8 BGR image, in image
        pixels, before merging.

        Returns scores (M,) float32, keypoints (M, 4, 2) float32 image px, view index (M,) int64.
        """
        check_image(image, "BlazePoseDetector image", BlazePoseInputError)
        h, w = image.shape[:2]
        views = self.views(w, h)
        crops = crop_rois(image, views, DETECTOR_INPUT_SIZE, cv2.BORDER_CONSTANT)  # black letterbox/padding
        x = crops[..., ::-1].astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0)  # RGB in [-1, 1]
        out = self.model.run(x)
        reg = self._unbatch(out["regressors"], len(views))  # (V, 2254, 12) input px rel. to the anchor
        logit = self._unbatch(out["scores"], len(views))[..., 0]  # (V, 2254)
        score = sigmoid(logit)
        v_idx, a_idx = np.nonzero(score >= self.score_threshold)
        kp = reg[v_idx, a_idx, 4:12].reshape(-1, 4, 2) / DETECTOR_INPUT_SIZE + self.anchors[a_idx][:, None, :]
        # normalised view coordinates -> image pixels (views are axis-aligned squares)
        sides = views.sizes[v_idx][:, None, None]
        kp_img = views.centers[v_idx][:, None, :] + (kp - 0.5) * sides
        keep = self._not_truncated(kp_img, views, v_idx, w, h)
        return (score[v_idx, a_idx][keep].astype(np.float32), kp_img[keep].astype(np.float32),
                v_idx[keep].astype(np.int64))

    def _not_truncated(self, kp: np.ndarray, views: Rois, v_idx: np.ndarray, width: int, height: int) -> np.ndarray:
        """(M,) bool: False for tile detections of a person cut by the tile's edge.

        A tile that cuts through a person still fires, with keypoints guessed for the visible part (wrong hip,
        wrong size); the same person is seen whole in a larger view. We keep a tile detection only when its
        body circle (centre kp0, radius |kp1 - kp0| x truncation_margin) stays inside the tile wherever the
        tile edge is not also the image edge. The full-frame view (MediaPipe's own pass) is never filtered.
        """
        c = kp[:, 0]
        r = np.hypot(*(kp[:, 1] - kp[:, 0]).T) * self.truncation_margin
        vc = views.centers[v_idx]
        half = views.sizes[v_idx] / 2
        lo, hi = vc - half[:, None], vc + half[:, None]
        img_hi = np.array([width, height], np.float32)
        # an edge at (or beyond) the image border cannot cut anybody
        lo_ok = (c - r[:, None] >= lo) | (lo <= 1.0)
        hi_ok = (c + r[:, None] <= hi) | (hi >= img_hi - 1.0)
        ok = (lo_ok & hi_ok).all(1)
        if self.full_frame:
            ok |= v_idx == 0
        return ok

    def detect_rois(self, image: np.ndarray) -> PersonRois:
        """The merged people of one (H, W, 3) uint8 BGR image: boxes, scores, keypoints and landmark ROIs."""
        scores, kps, _ = self.raw_detections(image)
        if len(scores) == 0:
            z = np.zeros(0, np.float32)
            return PersonRois(np.zeros((0, 4), np.float32), z, np.zeros((0, 4, 2), np.float32), Rois.empty(),
                              np.zeros(0, np.int32))
        # Departure from MediaPipe: its NMS runs on the detector's constant-size squares (0.2 x view side),
        # which do not compare across views of different sizes. We cluster on a person-scaled square instead:
        # centred on kp0 (mid-hip) with side |kp1 - kp0| (the body radius), so two detections merge when their
        # hips are close relative to the body size, whatever view they came from.
        radius = np.hypot(*(kps[:, 1] - kps[:, 0]).T)
        half = radius[:, None] / 2
        nms_boxes = np.concatenate([kps[:, 0] - half, kps[:, 0] + half], axis=1)
        clusters = weighted_nms(nms_boxes, scores, self.nms_threshold)
        out_kp, out_score, support = [], [], []
        for idx in clusters:
            wgt = scores[idx] / scores[idx].sum()
            out_kp.append((kps[idx] * wgt[:, None, None]).sum(0))
            out_score.append(scores[idx[0]])
            support.append(len(idx))
        kp = np.asarray(out_kp, np.float32)
        sc = np.asarray(out_score, np.float32)
        sup = np.asarray(support, np.int32)
        radius = np.hypot(*(kp[:, 1] - kp[:, 0]).T)
        keep = radius >= self.min_size
        kp, sc, sup, radius = kp[keep], sc[keep], sup[keep], radius[keep]
        rois = rois_from_alignment_points(kp[:, 0], kp[:, 1])
        if self.box_mode == "body":
            boxes = np.concatenate([kp[:, 0] - radius[:, None], kp[:, 0] + radius[:, None]], axis=1)
        else:
            boxes = rois.boxes()
        return PersonRois(boxes.astype(np.float32), sc, kp, rois, sup)

    def __repr__(self) -> str:
        return (f"BlazePoseDetector({str(self.detector_path)!r}, tiles={self.tiles}, scales={self.scales}, "
                f"overlap={self.overlap}, full_frame={self.full_frame}, score_threshold={self.score_threshold})")
