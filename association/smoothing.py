"""One-Euro keypoint smoothing per track and joint (Casiez, Roussel, Vogel, "1 Euro Filter: A Simple
Speed-based Low-pass Filter for Noisy Input in Interactive Systems", CHI 2012).

For one coordinate stream x_i sampled at times t_i (step Te = t_i - t_{i-1} seconds):

    alpha(fc, Te) = 1 / (1 + tau / Te),   tau = 1 / (2 pi fc)          (first-order low-pass)
    dx_i   = (x_i - x_{i-1}) / Te                                       (raw speed, px/s)
    edx_i  = edx_{i-1} + alpha(d_cutoff, Te) (dx_i - edx_{i-1})         (smoothed speed)
    fc_i   = min_cutoff + beta |edx_i|                                  (adaptive cutoff, Hz)
    xh_i   = xh_{i-1} + alpha(fc_i, Te) (x_i - xh_{i-1})                (output)

The first sample of a stream is passed through (xh_0 = x_0, edx_0 = 0). dx uses the previous *raw* sample, as
the authors' reference implementation (``OneEuroFilter.py``, ``LowPassFilter.lastValue``) does. A keypoint is
one 2-D stream: both coordinates share one cutoff, driven by the speed magnitude |edx| (px/s), so the filter
does not depend on the image axes.

Lag on a constant-velocity motion (speed v px/s), for any sequence of time steps: the error e_i = x_i - xh_i obeys
e_i = tau_i / (Te + tau_i) * (e_{i-1} + v Te); with e_0 = 0 it never exceeds v * tau_max, tau_max =
1 / (2 pi min_cutoff), and once edx has converged to v it settles at

    lag = v / (2 pi (min_cutoff + beta v))   <  min(v / (2 pi min_cutoff), 1 / (2 pi beta)).

Units: keypoints in image pixels, timestamps in seconds, min_cutoff and d_cutoff in Hz, beta in Hz per (px/s).
Numpy only; imports nothing of this project.
"""
from __future__ import annotations

import math

import numpy as np


class SmoothingInputError(ValueError):
    """Settings, track ids, keypoints, scores or the timestamp given to KeypointSmoother are invalid."""


def one_euro_alpha(cutoff: np.ndarray | float, dt: np.ndarray | float) -> np.ndarray:
    """Smoothing factor of a first-order low-pass: 1 / (1 + tau / dt), tau = 1 / (2 pi cutoff).

    cutoff: Hz (> 0), dt: seconds (> 0); broadcast together. Returns float64 in (0, 1).
    """
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / np.asarray(dt, dtype=np.float64))


def steady_state_lag(speed: float, min_cutoff: float, beta: float) -> float:
    """Lag in px of the converged filter behind a constant-velocity motion of ``speed`` px/s (see module doc)."""
    speed = abs(float(speed))
    return speed / (2.0 * math.pi * (min_cutoff + beta * speed))


class KeypointSmoother:
    """One-Euro filters for the keypoints of many tracks, vectorised over tracks and joints.

    min_cutoff: Hz, the cutoff at rest (lower = smoother still poses, more lag when slow).
    beta: Hz per (px/s), how fast the cutoff rises with speed (higher = less lag when fast, more jitter).
    d_cutoff: Hz, cutoff of the speed estimate.
    score_threshold: joints scoring below this (or with a NaN/inf coordinate or score) are not filtered: the
        output is the input, and the joint's filter state is left as it was.
    forget_after: seconds; a track not updated for longer is dropped (its id restarts fresh), and a joint not
        updated for longer restarts from its next sample (no smoothing across long gaps).
    All settings are explicit. Each instance owns its state; nothing is shared between instances.
    """

    def __init__(self, *, min_cutoff: float, beta: float, d_cutoff: float, score_threshold: float,
                 forget_after: float) -> None:
        for name, value, positive in (("min_cutoff", min_cutoff, True), ("beta", beta, False),
                                      ("d_cutoff", d_cutoff, True), ("forget_after", forget_after, True)):
            v = float(value)
            if not math.isfinite(v) or v < 0 or (positive and v == 0):
                raise SmoothingInputError(f"{name}: expected a finite {'positive' if positive else 'non-negative'} "
                                          f"number, got {value!r}")
        if not math.isfinite(float(score_threshold)):
            raise SmoothingInputError(f"score_threshold: expected a finite number, got {score_threshold!r}")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.score_threshold = float(score_threshold)
        self.forget_after = float(forget_after)
        self.reset()

    def reset(self) -> None:
        """Forget every track and the keypoint count (e.g. a new video); the next update may use any K."""
        self._num_kp: int | None = None
        self._last_time: float | None = None
        self._alloc(0)

    def _alloc(self, k: int) -> None:
        self._row: dict[int, int] = {}  # track id -> row of the state arrays
        self._ids = np.zeros(0, np.int64)  # (T,)
        self._seen = np.zeros(0, np.float64)  # (T,) s, last update of the track
        self._raw = np.zeros((0, k, 2), np.float64)  # (T, K, 2) px, last raw sample
        self._out = np.zeros((0, k, 2), np.float64)  # (T, K, 2) px, last output
        self._speed = np.zeros((0, k, 2), np.float64)  # (T, K, 2) px/s, smoothed speed
        self._t = np.full((0, k), np.nan)  # (T, K) s, last update of the joint; NaN = no state

    def __len__(self) -> int:
        """Number of tracks with state."""
        return int(self._ids.shape[0])

    @property
    def track_ids(self) -> np.ndarray:
        """(T,) int64 ids of the tracks with state (a copy)."""
        return self._ids.copy()

    def forget(self, track_ids) -> None:
        """Drop the state of these track ids (unknown ids are ignored)."""
        drop = np.isin(self._ids, np.asarray(track_ids, dtype=np.int64).reshape(-1))
        self._keep(~drop)

    # -------------------------------------------------------------------------------------------- per frame
    def update(self, track_ids, keypoints, scores, timestamp: float) -> np.ndarray:
        """Filter one frame's poses.

        track_ids: (N,) integer ids, distinct. keypoints: (N, K, 2) image pixels. scores: (N, K) keypoint scores.
        timestamp: seconds, strictly greater than the previous call's.
        Returns (N, K, 2) float32 image pixels: smoothed keypoints; joints below score_threshold or non-finite
        are returned as given.
        """
        ids, kps, sc, t = self._check(track_ids, keypoints, scores, timestamp)
        self._last_time = t
        # forget tracks not seen for too long
        if len(self):
            self._keep(t - self._seen <= self.forget_after)
        rows = self._rows_for(ids)
        valid = np.isfinite(kps).all(-1) & np.isfinite(sc) & (sc >= self.score_threshold)  # (N, K)
        out = kps.copy()
        if len(ids):
            self._seen[rows] = t
        if not valid.any():
            return out.astype(np.float32)

        t_prev = self._t[rows]  # (N, K)
        dt = t - t_prev
        fresh = valid & ~(dt <= self.forget_after)  # no state, or state too old (NaN compares False)
        cont = valid & ~fresh
        dt_safe = np.where(cont, dt, 1.0)[..., None]  # (N, K, 1)
        raw_prev, out_prev, speed_prev = self._raw[rows], self._out[rows], self._speed[rows]

        dx = (kps - raw_prev) / dt_safe
        a_d = one_euro_alpha(self.d_cutoff, dt_safe)
        speed = speed_prev + a_d * (dx - speed_prev)
        cutoff = self.min_cutoff + self.beta * np.linalg.norm(speed, axis=-1, keepdims=True)
        a = one_euro_alpha(cutoff, dt_safe)
        smooth = out_prev + a * (kps - out_prev)

        new_out = np.where(cont[..., None], smooth, kps)
        new_speed = np.where(cont[..., None], speed, 0.0)
        sel = valid[..., None]
        self._out[rows] = np.where(sel, new_out, out_prev)
        self._speed[rows] = np.where(sel, new_speed, speed_prev)
        self._raw[rows] = np.where(sel, kps, raw_prev)
        self._t[rows] = np.where(valid, t, t_prev)
        out[valid] = new_out[valid]
        return out.astype(np.float32)

    # ---------------------------------------------------------------------------------------------- helpers
    def _keep(self, keep: np.ndarray) -> None:
        self._ids, self._seen = self._ids[keep], self._seen[keep]
        self._raw, self._out, self._speed, self._t = self._raw[keep], self._out[keep], self._speed[keep], self._t[keep]
        self._row = {int(i): r for r, i in enumerate(self._ids.tolist())}

    def _rows_for(self, ids: np.ndarray) -> np.ndarray:
        new = [int(i) for i in ids.tolist() if int(i) not in self._row]
        if new:
            k = int(self._num_kp or 0)
            m = len(new)
            self._ids = np.concatenate([self._ids, np.asarray(new, np.int64)])
            self._seen = np.concatenate([self._seen, np.full(m, np.nan)])
            self._raw = np.concatenate([self._raw, np.zeros((m, k, 2))])
            self._out = np.concatenate([self._out, np.zeros((m, k, 2))])
            self._speed = np.concatenate([self._speed, np.zeros((m, k, 2))])
            self._t = np.concatenate([self._t, np.full((m, k), np.nan)])
            start = len(self._row)
            self._row.update({i: start + j for j, i in enumerate(new)})
        return np.asarray([self._row[int(i)] for i in ids.tolist()], dtype=np.int64)

    def _check(self, track_ids, keypoints, scores, timestamp):
        ids_in = np.asarray(track_ids)
        if ids_in.ndim != 1 or not (ids_in.size == 0 or np.issubdtype(ids_in.dtype, np.integer)):
            raise SmoothingInputError(f"track_ids: expected (N,) integers, got shape {ids_in.shape} "
                                      f"dtype {ids_in.dtype}")
        ids = ids_in.astype(np.int64)
        if len(np.unique(ids)) != len(ids):
            vals, counts = np.unique(ids, return_counts=True)
            raise SmoothingInputError(f"track_ids: id {int(vals[counts > 1][0])} appears twice in one frame")
        kps = np.asarray(keypoints, dtype=np.float64)
        if kps.ndim != 3 or kps.shape[0] != len(ids) or kps.shape[2] != 2:
            raise SmoothingInputError(f"keypoints: expected shape ({len(ids)}, K, 2) pixels, got shape {kps.shape}")
        if self._num_kp is not None and kps.shape[1] != self._num_kp:
            raise SmoothingInputError(f"keypoints: this smoother holds K={self._num_kp} keypoints per pose, got "
                                      f"shape {kps.shape}")
        sc = np.asarray(scores, dtype=np.float64)
        if sc.shape != kps.shape[:2]:
            raise SmoothingInputError(f"scores: expected shape {kps.shape[:2]}, got shape {sc.shape}")
        try:
            t = float(timestamp)
        except (TypeError, ValueError):
            raise SmoothingInputError(f"timestamp: expected seconds as a number, got {timestamp!r}") from None
        if not math.isfinite(t):
            raise SmoothingInputError(f"timestamp: expected a finite number of seconds, got {timestamp!r}")
        if self._last_time is not None and not t > self._last_time:
            raise SmoothingInputError(f"timestamp: {t} s is not after the previous update's {self._last_time} s")
        if self._num_kp is None:  # everything checked: the first update fixes K
            self._num_kp = kps.shape[1]
            self._alloc(self._num_kp)
        return ids, kps, sc, t
