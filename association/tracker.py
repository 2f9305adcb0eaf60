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

Beyond the paper (every extra is off with the default arguments, which give the paper's tracker):

- life cycle: a new track is *tentative*; it becomes *confirmed* after ``min_hits`` matched frames in a row,
  or at once when its confirmation score reaches ``confirm_score`` (the tracking pipeline passes the
  detector's box score of a detected pose: a unit shared by every estimator, unlike pose scores). A
  tentative track that misses one frame is removed (a false positive rarely recurs at the same place); a
  confirmed one becomes *lost*.
  ``last_confirmed`` says, after each update, which of its poses belong to confirmed tracks;
- re-identification: a confirmed track lost for more than ``max_lost_frames`` frames is remembered until
  ``max_lost_seconds`` have passed since it was last seen. Poses left over by the OKS matching are matched
  to the confirmed tracks it left (lost for seconds; with descriptors also those lost for a frame or a few)
  in a second pass, only inside a motion gate (around the segment from its last centre to that centre moved
  by its velocity: the person stopped or walked on; radius ``reid_gate`` person sizes + ``reid_gate_rate``
  person sizes per second lost; a pose at most ``REID_MAX_SCALE`` times larger or smaller than the track), by
  a similarity that is
  the appearance similarity (``descriptors`` given to update, e.g. ``association.appearance``) averaged
  with the closeness inside the gate, or the closeness alone without descriptors; pairs below
  ``reid_min_similarity``, or with descriptors below ``reid_min_appearance`` in appearance alone, never match;
- ``camera_cut()``: every track keeps its appearance but loses its motion (velocity, position gate) and
  can come back only by the re-identification pass.

This module holds no video logic and imports no flow code; the pipeline owns frames and flow fields.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from association.matching import MATCHERS
from association.oks import box_areas, oks_candidates, oks_matrix

Warp = Callable[[np.ndarray], np.ndarray]
REID_MAX_SCALE = 2.0  # the motion gate refuses a pose whose size (larger box side) differs more from the track's


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
    min_hits: matched frames in a row that confirm a track (1 = every track is confirmed at once, the paper).
    confirm_score: a confirmation score (``update(confirm_scores=)``, e.g. the detector's box score of a
        detected pose) at or above which a track is confirmed at once; None = never.
    max_lost_seconds: how long (``update(timestamp=)`` seconds) a confirmed track lost for more than
        max_lost_frames stays recoverable by re-identification; 0 = off (the paper).
    reid_min_similarity: the re-identification similarity a pair needs (see the module docstring), in [0, 1].
    reid_min_appearance: the appearance similarity a pair with descriptors on both sides needs on its own, in
        [0, 1] (0 = none: the average with the closeness decides alone). On OpenCV's vtest.avi (CenterNet +
        MoveNet poses, 1.5 s apart) 0.8 keeps 87 % of the same-person pairs and 13 % of the others.
    reid_gate, reid_gate_rate: the motion gate's radius, in person sizes (the larger side of the track's last
        box), plus person sizes per second lost.
    gate: compute OKS only for the pairs that can reach min_similarity (``association.oks.oks_candidates``,
        a keypoint-extent overlap test): the same matches as the full matrix, at a fraction of the cost with
        many people; False = the full (N, T) matrix.
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
        min_hits: int = 1,
        confirm_score: float | None = None,
        max_lost_seconds: float = 0.0,
        reid_min_similarity: float = 0.5,
        reid_gate: float = 1.0,
        reid_gate_rate: float = 1.0,
        reid_min_appearance: float = 0.0,
        gate: bool = True,
    ) -> None:
        if method not in MATCHERS:
            raise AssociationInputError(f"method: unknown matcher {method!r}; valid: {sorted(MATCHERS)}")
        if not (np.isfinite(min_similarity) and 0.0 <= min_similarity <= 1.0):
            raise AssociationInputError(f"min_similarity: expected an OKS in [0, 1], got {min_similarity}")
        if int(max_lost_frames) < 0:
            raise AssociationInputError(f"max_lost_frames: expected >= 0, got {max_lost_frames}")
        if int(min_hits) < 1:
            raise AssociationInputError(f"min_hits: expected >= 1, got {min_hits}")
        if confirm_score is not None and not np.isfinite(confirm_score):
            raise AssociationInputError(f"confirm_score: expected a finite pose score or None, got {confirm_score}")
        for name, value in (("max_lost_seconds", max_lost_seconds), ("reid_gate", reid_gate),
                            ("reid_gate_rate", reid_gate_rate)):
            if not (np.isfinite(value) and value >= 0):
                raise AssociationInputError(f"{name}: expected a finite number >= 0, got {value}")
        for name, value in (("reid_min_similarity", reid_min_similarity),
                            ("reid_min_appearance", reid_min_appearance)):
            if not (np.isfinite(value) and 0.0 <= value <= 1.0):
                raise AssociationInputError(f"{name}: expected a value in [0, 1], got {value}")
        sigmas = tuple(float(s) for s in sigmas)
        if not sigmas or not all(np.isfinite(s) and s > 0 for s in sigmas):
            raise AssociationInputError(f"sigmas: expected (K,) positive OKS sigmas, got {sigmas}")
        self.min_similarity = float(min_similarity)
        self.max_lost_frames = int(max_lost_frames)
        self.keypoint_score_threshold = float(keypoint_score_threshold)
        self.method = method
        self.sigmas = sigmas
        self.first_id = int(first_id)
        self.min_hits = int(min_hits)
        self.confirm_score = None if confirm_score is None else float(confirm_score)
        self.max_lost_seconds = float(max_lost_seconds)
        self.reid_min_similarity = float(reid_min_similarity)
        self.reid_gate = float(reid_gate)
        self.reid_gate_rate = float(reid_gate_rate)
        self.reid_min_appearance = float(reid_min_appearance)
        self.gate = bool(gate)
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
        self._hits = np.zeros(0, np.int64)  # (T,) matched frames in a row
        self._confirmed = np.zeros(0, bool)  # (T,)
        self._seen = np.zeros(0, np.float64)  # (T,) s, time of the last match
        self._centre = np.zeros((0, 2), np.float64)  # (T, 2) px, box centre at the last match
        self._size = np.zeros(0, np.float64)  # (T,) px, larger box side at the last match
        self._velocity = np.zeros((0, 2), np.float64)  # (T, 2) px/s
        self._moving = np.zeros(0, bool)  # (T,) False after a camera cut: no motion gate until matched again
        self._desc: np.ndarray | None = None  # (T, D) appearance descriptors (all zeros = none)
        self._frames = 0
        self.last_confirmed = np.zeros(0, bool)
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
        *,
        confirm_scores: np.ndarray | None = None,
        timestamp: float | None = None,
        descriptors: np.ndarray | None = None,
    ) -> np.ndarray:
        """Associate the current frame's poses with the tracks and advance the state by one frame.

        keypoints: (N, K, 2) image pixels of the current frame. keypoint_scores: (N, K).
        boxes: (N, 4) xyxy image pixels of the current poses (their areas scale OKS in the next frame).
        warp: as in :meth:`predict`, which update calls with it unless predict was already called for this
            frame (then warp must be None).
        confirm_scores: (N,) scores compared with ``confirm_score`` (None = no early confirmation); the
            pipeline gives the detector's box score of each detected pose and 0 for propagated ones.
        timestamp: seconds since the start of the video, increasing; None = the update count (frames), which
            makes ``max_lost_seconds`` a number of frames.
        descriptors: (N, D) appearance descriptors of the poses (``association.appearance.PoseAppearance``),
            or None; stored per track for re-identification.
        Returns track_ids: (N,) int64, all >= first_id, distinct within the frame. ``last_confirmed`` (N,) bool
        then says which of them belong to confirmed tracks.
        """
        kps, scores, areas = self._check_inputs(keypoints, keypoint_scores, boxes)
        num_new = kps.shape[0]
        pscores = None if confirm_scores is None else np.asarray(confirm_scores, np.float64).reshape(-1)
        if pscores is not None and pscores.shape != (num_new,):
            raise AssociationInputError(f"confirm_scores: expected shape ({num_new},), got {pscores.shape}")
        desc = None if descriptors is None else np.asarray(descriptors, np.float32)
        if desc is not None and (desc.ndim != 2 or desc.shape[0] != num_new):
            raise AssociationInputError(f"descriptors: expected shape ({num_new}, D), got {desc.shape}")
        now = float(self._frames if timestamp is None else timestamp)
        if not np.isfinite(now):
            raise AssociationInputError(f"timestamp: expected finite seconds, got {timestamp}")
        if not self._predicted:
            self.predict(warp)
        elif warp is not None:
            raise AssociationInputError("warp: the tracks were already moved by predict() for this frame")
        self._predicted = False
        self._frames += 1
        if desc is not None and (self._desc is None or self._desc.shape[1] != desc.shape[1]):
            self._desc = np.zeros((len(self), desc.shape[1]), np.float32)
        prev_kps = self._keypoints
        track_ids = np.full(num_new, -1, np.int64)
        match_of = np.full(num_new, -1, np.int64)  # the track row each pose matched
        recent = self._lost <= self.max_lost_frames  # tracks OKS may match
        if num_new and recent.any():
            cand = np.flatnonzero(recent)
            kw: dict[str, Any] = dict(scores_a=scores, scores_b=self._scores[cand],
                                      score_threshold=self.keypoint_score_threshold, sigmas=self.sigmas)
            if self.gate:  # only the pairs that can reach min_similarity: the same matches, far fewer OKS
                pairs = oks_candidates(kps, prev_kps[cand], self._areas[cand], self.min_similarity, **kw)
                similarity = np.zeros((num_new, cand.size))
                similarity[pairs] = oks_matrix(kps, prev_kps[cand], areas_b=self._areas[cand], pairs=pairs, **kw)
            else:
                similarity = oks_matrix(kps, prev_kps[cand], areas_b=self._areas[cand], **kw)
            rows, cols = self._match(similarity, self.min_similarity)
            match_of[rows] = cand[cols]
        centre, size = _centres(boxes)
        if self.max_lost_seconds > 0 and num_new:
            self._reidentify(match_of, centre, size, desc, now)
        matched = match_of >= 0
        track_ids[matched] = self._ids[match_of[matched]]
        fresh = ~matched
        track_ids[fresh] = np.arange(self._next_id, self._next_id + int(fresh.sum()), dtype=np.int64)
        self._next_id += int(fresh.sum())

        # life cycle of the poses' tracks
        hits = np.ones(num_new, np.int64)
        hits[matched] = self._hits[match_of[matched]] + 1
        confirmed = hits >= self.min_hits
        confirmed[matched] |= self._confirmed[match_of[matched]]
        if self.confirm_score is not None and pscores is not None:
            confirmed |= pscores >= self.confirm_score
        velocity = np.zeros((num_new, 2))
        if matched.any():
            rows = match_of[matched]
            dt = now - self._seen[rows]
            step = (centre[matched] - self._centre[rows]) / np.where(dt > 0, dt, 1.0)[:, None]
            prior = np.where(self._moving[rows, None], self._velocity[rows], step)
            velocity[matched] = np.where((dt > 0)[:, None], 0.5 * prior + 0.5 * step, prior)
        new_desc = None
        if self._desc is not None:
            new_desc = np.zeros((num_new, self._desc.shape[1]), np.float32)
            if matched.any():
                new_desc[matched] = self._desc[match_of[matched]]
            if desc is not None:  # a running mean keeps a person's colours through poses with fewer parts
                has = desc.sum(1) > 0
                old = new_desc.sum(1) > 0
                new_desc[has] = np.where(old[has, None], 0.7 * new_desc[has] + 0.3 * desc[has], desc[has])

        # unmatched tracks: tentative ones are removed; confirmed ones age and are kept while recoverable
        unmatched = np.ones(len(self), bool)
        unmatched[match_of[matched]] = False
        lost = self._lost[unmatched] + 1
        keep = self._confirmed[unmatched] & ((lost <= self.max_lost_frames)
                                             | (now - self._seen[unmatched] <= self.max_lost_seconds))
        old = np.flatnonzero(unmatched)[keep]
        self._ids = np.concatenate([track_ids, self._ids[old]])
        self._keypoints = np.concatenate([kps, prev_kps[old]]).astype(np.float32)
        self._scores = np.concatenate([scores, self._scores[old]]).astype(np.float32)
        self._areas = np.concatenate([areas, self._areas[old]])
        self._lost = np.concatenate([np.zeros(num_new, np.int64), lost[keep]])
        self._hits = np.concatenate([hits, np.zeros(len(old), np.int64)])
        self._confirmed = np.concatenate([confirmed, self._confirmed[old]])
        self._seen = np.concatenate([np.full(num_new, now), self._seen[old]])
        self._centre = np.concatenate([centre, self._centre[old]])
        self._size = np.concatenate([size, self._size[old]])
        self._velocity = np.concatenate([velocity, self._velocity[old]])
        self._moving = np.concatenate([np.ones(num_new, bool), self._moving[old]])
        if self._desc is not None and new_desc is not None:
            self._desc = np.concatenate([new_desc, self._desc[old]])
        self.last_confirmed = confirmed.copy()
        return track_ids

    def camera_cut(self) -> None:
        """The view changed abruptly: every track keeps its appearance but loses its motion. Tracks leave the
        OKS matching (their poses no longer fit the image) and can come back only by re-identification,
        without a position gate; tentative tracks are dropped."""
        if self._predicted:
            raise AssociationInputError("camera_cut: call it before predict() / update() of the new frame")
        keep = self._confirmed.copy()
        for name in ("_ids", "_keypoints", "_scores", "_areas", "_lost", "_hits", "_confirmed", "_seen",
                     "_centre", "_size", "_velocity", "_moving"):
            setattr(self, name, getattr(self, name)[keep])
        if self._desc is not None:
            self._desc = self._desc[keep]
        self._lost = np.maximum(self._lost, self.max_lost_frames + 1)
        self._hits[:] = 0
        self._velocity[:] = 0.0
        self._moving[:] = False

    def _reidentify(self, match_of: np.ndarray, centre: np.ndarray, size: np.ndarray, desc: np.ndarray | None,
                    now: float) -> None:
        """Second pass: poses left by the OKS matching vs the confirmed tracks it left (in place on
        ``match_of``)."""
        free = np.flatnonzero(match_of < 0)
        taken = np.zeros(len(self), bool)
        taken[match_of[match_of >= 0]] = True
        # every confirmed track the OKS pass left, the recently lost ones too, but those only by appearance: a
        # person hidden behind a post for a few frames has walked on from where the flow left the pose (OKS
        # fails), a detected person's garbled pose fails OKS; by the gate alone (no appearance, the Bonn
        # benchmark) a false positive next to a person missed for a frame would take the id (switches x2)
        cand = np.flatnonzero(self._confirmed & ~taken & (now - self._seen <= self.max_lost_seconds))
        if not len(free) or not len(cand):
            return
        dt = np.maximum(now - self._seen[cand], 0.0)  # (C,) s
        start = self._centre[cand]  # (C, 2) px
        step = self._velocity[cand] * dt[:, None]  # (C, 2) px, where its last velocity would have taken it
        radius = self._size[cand] * (self.reid_gate + self.reid_gate_rate * dt)  # (C,) px
        # distance to the segment from the last centre to the extrapolated one: a person hidden behind a post
        # may have stopped there (people meet and talk) or walked on at their speed, or anything in between
        along = ((centre[free, None, :] - start[None]) * step[None]).sum(-1) / np.maximum((step ** 2).sum(-1), 1e-9)
        nearest = start[None] + np.clip(along, 0.0, 1.0)[..., None] * step[None]  # (F, C, 2)
        dist = np.linalg.norm(centre[free, None, :] - nearest, axis=-1)  # (F, C)
        moving = self._moving[cand][None, :]
        closeness = np.where(moving, 1.0 - dist / np.maximum(radius, 1e-6)[None], 0.0)
        # a person's size changes slowly in one shot: a pose of another scale is someone else (on vtest.avi a
        # far-away walker, 26 px, would otherwise take the id of a person of 66 px lost 200 px nearer)
        scale = size[free, None] / np.maximum(self._size[cand], 1e-6)[None]  # (F, C)
        inside = ~moving | ((dist <= radius[None]) & (scale <= REID_MAX_SCALE) & (scale >= 1.0 / REID_MAX_SCALE))
        has_app = np.zeros((len(free), len(cand)), bool)
        similarity = closeness
        if desc is not None and self._desc is not None and self._desc.shape[1] == desc.shape[1]:
            from association.appearance import PARTS, appearance_similarity  # cv2 only when descriptors come

            app = appearance_similarity(desc[free], self._desc[cand], len(PARTS)).astype(np.float64)
            has_app = (desc[free].sum(1) > 0)[:, None] & (self._desc[cand].sum(1) > 0)[None, :]
            similarity = np.where(has_app, np.where(moving, 0.5 * (app + closeness), app), closeness)
            similarity = np.where(has_app & (app < self.reid_min_appearance), -1.0, similarity)
        old = (self._lost[cand] > self.max_lost_frames)[None, :]
        similarity = np.where(inside & (moving | has_app) & (old | has_app), similarity, -1.0)
        rows, cols = self._match(similarity, self.reid_min_similarity)
        match_of[free[rows]] = cand[cols]

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


def _centres(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) xyxy px -> centres (N, 2) px and sizes (N,) px (the larger side)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return (b[:, :2] + b[:, 2:]) / 2.0, np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
