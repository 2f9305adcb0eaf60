"""Small builders for hand-made PoseTrack scenarios (real files on disk, read back by the evaluation)."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from eval_posetrack import JOINT_NAMES, NUM_JOINTS, Frame, Sequence, write_posetrack17, write_posetrack18

HEAD = 30.0  # head size of every GT person: 0.6 * diag of a 30 x 40 head box = 0.6 * 50
VIDEO = "000001_mpii_test"


def name(t: int, video: str = VIDEO) -> str:
    return f"images/val/{video}/{t:06d}.jpg"


class Scores:
    """Distinct, decreasing scores (poseval's AP depends on numpy's unstable sort for ties)."""

    def __init__(self, start: float = 0.99, step: float = 1e-4):
        self._it = itertools.count()
        self.start, self.step = start, step

    def take(self, n: int) -> np.ndarray:
        return np.array([self.start - self.step * next(self._it) for _ in range(n)])


def pose(cx: float, cy: float) -> np.ndarray:
    """(15, 2) joints of a person centred at (cx, cy), 3 px apart (all within one head size)."""
    return np.array([[cx + 3.0 * (j % 5), cy + 3.0 * (j // 5)] for j in range(NUM_JOINTS)])


def gt_frame(t: int, persons: list[tuple[float, float, int]], joints=None, ignore=(), video: str = VIDEO) -> Frame:
    """persons: (cx, cy, track id); head box 30 x 40 around the centre; ``joints`` annotated joint ids."""
    P = len(persons)
    present = np.zeros((P, NUM_JOINTS), bool)
    present[:, list(range(NUM_JOINTS) if joints is None else joints)] = True
    kp = np.array([pose(cx, cy) for cx, cy, _ in persons]).reshape(P, NUM_JOINTS, 2)
    heads = np.array([[cx - 15, cy - 20, cx + 15, cy + 20] for cx, cy, _ in persons]).reshape(P, 4)
    return Frame(name(t, video), np.where(present[..., None], kp, 0), present, np.full((P, NUM_JOINTS), np.nan),
                 [tid for *_, tid in persons], heads, ignore_regions=ignore)


def pred_frame(t: int, persons: list[tuple[float, float, int]], scores: Scores, joints=None,
               offset=(0.0, 0.0), video: str = VIDEO, score_rows=None) -> Frame:
    P = len(persons)
    present = np.zeros((P, NUM_JOINTS), bool)
    present[:, list(range(NUM_JOINTS) if joints is None else joints)] = True
    kp = np.array([pose(cx, cy) + np.asarray(offset) for cx, cy, _ in persons]).reshape(P, NUM_JOINTS, 2)
    sc = scores.take(P * NUM_JOINTS).reshape(P, NUM_JOINTS) if score_rows is None else np.asarray(score_rows)
    return Frame(name(t, video), np.where(present[..., None], kp, 0), present, np.where(present, sc, np.nan),
                 [tid for *_, tid in persons], np.full((P, 4), np.nan))


def write_pair(root: Path, gt_frames: list[Frame], pred_frames: list[Frame], video: str = VIDEO,
               fmt_gt: str = "2018", fmt_pred: str = "2018") -> tuple[Path, Path]:
    gdir, pdir = root / "gt", root / "pred"
    gdir.mkdir(parents=True, exist_ok=True)
    pdir.mkdir(parents=True, exist_ok=True)
    writers = {"2018": write_posetrack18, "2017": write_posetrack17}
    writers[fmt_gt](gdir / f"{video}.json", Sequence(video, gt_frames))
    writers[fmt_pred](pdir / f"{video}.json", Sequence(video, pred_frames))
    return gdir, pdir


def per_joint(summary: dict, metric: str) -> np.ndarray:
    return np.array([np.nan if summary[metric]["per_joint"][n] is None else summary[metric]["per_joint"][n]
                     for n in JOINT_NAMES], dtype=np.float64)
