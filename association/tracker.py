"""Track bookkeeping: flow-warped OKS association of each frame's poses with the recent tracks.

Per frame (HRNet section 4.3, following FlowTrack / SimpleBaseline):
  1. every stored track's last pose is moved into the current frame by ``warp`` (the pipeline passes
     ``lambda p: flow.warp_points(p, flow_field)`` with the flow from the previous to the current frame);
  2. OKS between the current poses and the warped track poses (area = the track's last box);
  3. one-to-one matching (greedy by default) with similarity >= min_similarity;
  4. matched poses inherit the track id, the others open new tracks with fresh ids;
  5. unmatched tracks are kept as "lost" for up to ``max_lost_frames`` frames, their pose warped forward
     frame by frame, so a person missed for a few frames gets the old id back.
Active and lost tracks compete in one matching: a lost track's pose, carried only by the flow, usually
scores lower than an active one's, so no separate priority pass is needed.

This module holds no video logic and imports no flow code; the pipeline owns frames and flow fields.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from association.matching import MATCHERS
from association.oks import box_areas, oks_matrix

Warp = Callable[[np.ndarray], np.ndarray]


class AssociationInputError(ValueError):
    """Poses, boxes, the warp or the settings given to PoseAssociator are inconsistent."""


@dataclass(frozen=True)
class TrackSnapshot:
    """The stored tracks, in the image frame of the last ``update`` (or of the current frame after ``predict``).

    track_ids: (T,) int64. keypoints: (T, K, 2) float32 image pixels. keypoint_scores: (T, K) float32.
    areas: (T,) float64 px^2 (box area at the last match). lost_frames: (T,) int64, 0 = matched in the
    last update, n = not seen for n frames.
    """

    track_ids: np.ndarray
    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    areas: np.ndarray
    lost_frames: np.ndarray

    def __len__(self) -> int:
        return int(self.track_ids.shape[0])


class PoseAssociator:
    """Assigns track ids to the poses of consecutive frames of one video.

    min_similarity: OKS a pose needs with a (warped) track to inherit its id (pairs below never match).
    max_lost_frames: Q, how many consecutive frames a track may go unmatched and still be recovered.
    keypoint_score_threshold: keypoints scoring below this are ignored in OKS (on both sides).
    method: "greedy" (the paper's) or "hungarian".
    sigmas: (K,) OKS sigmas of the estimator's keypoint layout (``KeypointLayout.sigmas``).
    first_id: the first track id handed out; ids then increase by one and are never reused until reset().
    Every setting is explicit (the tracking config holds the defaults). Each instance owns its id counter and
    its tracks: two associators never interfere.

    Per frame, either ``update(..., warp)`` or, when the caller needs the warped tracks itself (the tracking
    pipeline propagates boxes from them), ``predict(warp)`` then ``update(...)``: the tracks are warped once.
    """

    def __init__(
        self,
        *,
        min_similarity: float,
        max_lost_frames: int,
        keypoint_score_threshold: float,
        method: str,
        sigmas: Sequence[float],
        first_id: int = 0,
    ) -> None:
        if method not in MATCHERS:
            raise AssociationInputError(f"method: unknown matcher {method!r}; valid: {sorted(MATCHERS)}")
        if not (np.isfinite(min_similarity) and 0.0 <= min_similarity <= 1.0):
            raise AssociationInputError(f"min_similarity: expected an OKS in [0, 1], got {min_similarity}")
        if int(max_lost_frames) < 0:
            raise AssociationInputError(f"max_lost_frames: expected >= 0, got {max_lost_frames}")
        sigmas = tuple(float(s) for s in sigmas)
        if not sigmas or not all(np.isfinite(s) and s > 0 for s in sigmas):
            raise AssociationInputError(f"sigmas: expected (K,) positive OKS sigmas, got {sigmas}")
        self.min_similarity = float(min_similarity)
        self.max_lost_frames = int(max_lost_frames)
        self.keypoint_score_threshold = float(keypoint_score_threshold)
        self.method = method
        self.sigmas = sigmas
        self.first_id = int(first_id)
        self._match = MATCHERS[method]
        self.reset()

    # -- state ---------------------------------------------------------------------------------------
    def reset(self, restart_ids: bool = True) -> None:
        """Forget every track (e.g. a new video). restart_ids=False keeps counting (ids stay unique)."""
        num_kp = len(self.sigmas)
        self._ids = np.zeros(0, np.int64)
        self._keypoints = np.zeros((0, num_kp, 2), np.float32)
        self._scores = np.zeros((0, num_kp), np.float32)
        self._areas = np.zeros(0, np.float64)
        self._lost = np.zeros(0, np.int64)
        self._predicted = False
        if restart_ids or not hasattr(self, "_next_id"):
            self._next_id = self.first_id

    @property
    def next_id(self) -> int:
        """The id the next new track will get."""
        return self._next_id

    def __len__(self) -> int:
        """Number of stored tracks (active and lost)."""
        return int(self._ids.shape[0])

    def previous_poses(self, include_lost: bool = False) -> TrackSnapshot:
        """The tracks as of the last update, in that frame's pixels (copies).

        include_lost=False: only tracks matched in the last update (the poses of the previous frame, from
        which the pipeline propagates boxes); True: lost ones too (their poses already warped forward).
        """
        keep = np.ones(len(self), bool) if include_lost else self._lost == 0
        return TrackSnapshot(self._ids[keep].copy(), self._keypoints[keep].copy(), self._scores[keep].copy(),
                             self._areas[keep].copy(), self._lost[keep].copy())

    def predict(self, warp: Warp | None) -> TrackSnapshot:
        """Move every stored track (active and lost) into the current frame by ``warp`` and return them.

        warp: maps (..., 2) pixels of the previous frame to the current frame (e.g.
            ``lambda p: warp_points(p, flow)``); None = no motion compensation (identity).
        The next ``update`` (called without a warp) matches against these poses; calling predict twice
        without an update in between raises AssociationInputError (the tracks would move twice).
        """
        if self._predicted:
            raise AssociationInputError("predict: already called for this frame; call update() first")
        if warp is not None and len(self):
            self._keypoints = self._apply_warp(warp, self._keypoints)
        self._predicted = True
        return TrackSnapshot(self._ids.copy(), self._keypoints.copy(), self._scores.copy(), self._areas.copy(),
                             self._lost.copy())

    # -- per frame -----------------------------------------------------------------------------------
    def update(
        self,
        keypoints: np.ndarray,
        keypoint_scores: np.ndarray,
        boxes: np.ndarray,
        warp: Warp | None = None,
    ) -> np.ndarray:
        """Associate the current frame's poses with the tracks and advance the state by one frame.

        keypoints: (N, K, 2) image pixels of the current frame. keypoint_scores: (N, K).
        boxes: (N, 4) xyxy image pixels of the current poses (their areas scale OKS in the next frame).
        warp: as in :meth:`predict`, which update calls with it unless predict was already called for this
            frame (then warp must be None).
        Returns track_ids: (N,) int64, all >= first_id, distinct within the frame.
        """
        kps, scores, areas = self._check_inputs(keypoints, keypoint_scores, boxes)
        if not self._predicted:
            self.predict(warp)
        elif warp is not None:
            raise AssociationInputError("warp: the tracks were already moved by predict() for this frame")
        self._predicted = False
        num_new = kps.shape[0]
        prev_kps = self._keypoints
        track_ids = np.full(num_new, -1, np.int64)
        matched_tracks = np.zeros(len(self), bool)
        if num_new and len(self):
            similarity = oks_matrix(kps, prev_kps, areas_b=self._areas, scores_a=scores, scores_b=self._scores,
                                    score_threshold=self.keypoint_score_threshold, sigmas=self.sigmas)
            rows, cols = self._match(similarity, self.min_similarity)
            track_ids[rows] = self._ids[cols]
            matched_tracks[cols] = True
        fresh = track_ids < 0
        track_ids[fresh] = np.arange(self._next_id, self._next_id + int(fresh.sum()), dtype=np.int64)
        self._next_id += int(fresh.sum())

        # unmatched tracks age; those lost for more than Q frames are forgotten
        lost = self._lost[~matched_tracks] + 1
        keep = lost <= self.max_lost_frames
        self._ids = np.concatenate([track_ids, self._ids[~matched_tracks][keep]])
        self._keypoints = np.concatenate([kps, prev_kps[~matched_tracks][keep]]).astype(np.float32)
        self._scores = np.concatenate([scores, self._scores[~matched_tracks][keep]]).astype(np.float32)
        self._areas = np.concatenate([areas, self._areas[~matched_tracks][keep]])
        self._lost = np.concatenate([np.zeros(num_new, np.int64), lost[keep]])
        return track_ids

    # -- helpers -------------------------------------------------------------------------------------
    def _check_inputs(self, keypoints, keypoint_scores, boxes):
        num_kp = len(self.sigmas)
        kps = np.asarray(keypoints, dtype=np.float32)
        if kps.ndim != 3 or kps.shape[1:] != (num_kp, 2):
            raise AssociationInputError(f"keypoints: expected shape (N, {num_kp}, 2) pixels, got shape {kps.shape}")
        scores = np.asarray(keypoint_scores, dtype=np.float32)
        if scores.shape != kps.shape[:2]:
            raise AssociationInputError(f"keypoint_scores: expected shape {kps.shape[:2]}, got shape {scores.shape}")
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.shape != (kps.shape[0], 4):
            raise AssociationInputError(f"boxes: expected shape ({kps.shape[0]}, 4) xyxy pixels, "
                                        f"got shape {boxes.shape}")
        areas = box_areas(boxes)
        if not np.isfinite(areas).all():
            raise AssociationInputError("boxes: every box must be finite")
        return kps, scores, areas

    @staticmethod
    def _apply_warp(warp: Warp, points: np.ndarray) -> np.ndarray:
        moved = np.asarray(warp(points.copy()), dtype=np.float32)
        if moved.shape != points.shape:
            raise AssociationInputError(f"warp: returned shape {moved.shape} for points of shape {points.shape}")
        return moved
