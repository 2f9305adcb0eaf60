"""Drawing tracked poses: skeletons and boxes coloured by track id, with id labels."""
from __future__ import annotations

import cv2
import numpy as np

from .record import ORIGIN_PROPAGATED, PoseRecord


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour per track id (golden-ratio hue walk); grey for -1."""
    if track_id < 0:
        return (160, 160, 160)
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 220, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_poses(image: np.ndarray, record: PoseRecord, keypoint_threshold: float,
               skeleton: tuple[tuple[int, int], ...], draw_boxes: bool = True) -> np.ndarray:
    """Return a copy of ``image`` (H,W,3) uint8 BGR with the record's poses drawn on it.

    Keypoints (N,K,2) image px with score >= ``keypoint_threshold`` are drawn; limbs (``skeleton``: the
    estimator's layout's 0-based index pairs, ``KeypointLayout.skeleton``) when both ends are.
    Propagated boxes (origin = flow) are drawn with a 1 px line, detected ones thicker.
    """
    out = image.copy()
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 300))
    for i in range(len(record)):
        tid = int(record.track_ids[i])
        color = track_color(tid)
        kp = record.keypoints[i]
        ok = (record.keypoint_scores[i] >= keypoint_threshold) & np.isfinite(kp).all(axis=1)
        for a, b in skeleton:
            if ok[a] and ok[b]:
                cv2.line(out, tuple(np.round(kp[a]).astype(int)), tuple(np.round(kp[b]).astype(int)),
                         color, thick + 1, cv2.LINE_AA)
        for j in np.flatnonzero(ok):
            cv2.circle(out, tuple(np.round(kp[j]).astype(int)), thick + 2, color, -1, cv2.LINE_AA)
        x1, y1, x2, y2 = np.round(record.boxes[i]).astype(int)
        if draw_boxes:
            cv2.rectangle(out, (x1, y1), (x2, y2), color, 1 if record.origin[i] == ORIGIN_PROPAGATED else thick)
        label = f"{tid}" if tid >= 0 else "?"
        scale = 0.5 * thick
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        cv2.rectangle(out, (x1, max(0, y1 - th - 4)), (x1 + tw + 4, max(th + 4, y1)), color, -1)
        cv2.putText(out, label, (x1 + 2, max(th + 2, y1 - 2)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick,
                    cv2.LINE_AA)
    return out
