"""Synthetic PoseTrack sequences (GT + predictions with jitter, id switches, misses, false positives).

Used by the benchmark and by the tests that compare the vectorised evaluation with the literal one.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from eval_posetrack import NUM_JOINTS, Frame, Sequence, write_posetrack17, write_posetrack18

# a rough standing pose in poseval joint order, in units of the head size, y down
_TEMPLATE = np.array([
    [-0.6, 6.5], [-0.6, 4.8], [-0.6, 3.2], [0.6, 3.2], [0.6, 4.8], [0.6, 6.5],  # r ankle .. l ankle
    [-1.4, 3.2], [-1.2, 2.0], [-1.0, 0.9], [1.0, 0.9], [1.2, 2.0], [1.4, 3.2],  # r wrist .. l wrist
    [0.0, 0.5], [0.0, -0.3], [0.0, -1.0],  # head_bottom, nose, head_top
])


def make_workload(out_dir: str | os.PathLike, n_seq: int = 50, n_frames: int = 150, n_people: int = 8,
                  seed: int = 0, jitter: float = 0.25, p_switch: float = 0.01, p_fp: float = 0.05,
                  p_miss: float = 0.05, p_joint_missing: float = 0.1, p_unlabeled: float = 0.1,
                  p_ignore: float = 0.2, fmt_pred: str = "2018", fmt_gt: str = "2018",
                  integer_coords: bool = False, spread: float = 1.0) -> tuple[Path, Path]:
    """Write ``out_dir/gt`` and ``out_dir/pred`` (one file per sequence); returns both folders.

    Distances are in head-size units (``jitter`` = std of the prediction noise). Scores are distinct.
    ``spread`` < 1 packs people into a smaller area (crowds: overlapping candidates, id confusions).
    """
    rng = np.random.default_rng(seed)
    gt_dir, pr_dir = Path(out_dir) / "gt", Path(out_dir) / "pred"
    gt_dir.mkdir(parents=True, exist_ok=True)
    pr_dir.mkdir(parents=True, exist_ok=True)
    score_pool = rng.permutation(n_seq * n_frames * (n_people + 3) * NUM_JOINTS + 1) / 1e6
    sp = 0
    for s in range(n_seq):
        video = f"{10000 + s:06d}_mpii_test"
        head = rng.uniform(20, 50, n_people)
        pos = 400 + rng.uniform([0, 0], [1300 * spread, 600 * spread], (n_people, 2))
        vel = rng.normal(0, 3, (n_people, 2))
        pid = np.arange(n_people) + 100 * (s % 7)  # prediction ids (own namespace)
        gframes, pframes = [], []
        for t in range(n_frames):
            name = f"images/val/{video}/{t:06d}.jpg"
            pos += vel
            kp = pos[:, None, :] + _TEMPLATE[None] * head[:, None, None] + rng.normal(0, 1, (n_people, NUM_JOINTS, 2))
            kp = np.round(kp) if integer_coords else np.round(kp, 2)  # GT: clicked pixels, few decimals
            present = rng.random((n_people, NUM_JOINTS)) > p_joint_missing
            hb = np.stack([pos[:, 0] - head / 2, pos[:, 1] - head * 1.2, pos[:, 0] + head / 2,
                           pos[:, 1] - head * 0.2], axis=1)
            # head size = 0.6 * diag(head box)
            hs = 0.6 * np.hypot(hb[:, 2] - hb[:, 0], hb[:, 3] - hb[:, 1])
            labeled = t < 2 or rng.random() > p_unlabeled  # >= 2 labeled frames (tracking needs them)
            polys = ()
            if labeled and rng.random() < p_ignore:
                c = rng.uniform([100, 100], [1700, 700])
                r = rng.uniform(30, 150)
                ang = np.sort(rng.uniform(0, 2 * np.pi, 6))
                polys = (np.round(c + r * np.stack([np.cos(ang), np.sin(ang)], 1)),)
            if labeled:
                gframes.append(Frame(name, np.where(present[..., None], kp, 0), present,
                                     np.full((n_people, NUM_JOINTS), np.nan), np.arange(n_people),
                                     hb, ignore_regions=polys))
            else:
                gframes.append(Frame(name, np.zeros((0, NUM_JOINTS, 2)), np.zeros((0, NUM_JOINTS), bool),
                                     np.zeros((0, NUM_JOINTS)), np.zeros(0, np.int64), np.zeros((0, 4))))
            # predictions
            if rng.random() < p_switch * n_people:
                a, b = rng.choice(n_people, 2, replace=False)
                pid[[a, b]] = pid[[b, a]]
            if rng.random() < p_switch:
                pid[rng.integers(n_people)] = rng.integers(5000, 9999)
                pid = np.where(np.bincount(pid, minlength=10000)[pid] > 1, np.arange(n_people) + 9000, pid)
            keep = rng.random(n_people) > p_miss
            pk = kp + rng.normal(0, 1, kp.shape) * jitter * hs[:, None, None]
            pk = np.round(pk) if integer_coords else np.round(pk, 3)
            ppres = rng.random((n_people, NUM_JOINTS)) > p_joint_missing / 2
            n_fp = rng.binomial(3, p_fp)
            fk = rng.uniform([0, 0], [1900, 1000], (n_fp, NUM_JOINTS, 2))
            fk = np.round(fk) if integer_coords else np.round(fk, 3)
            tids = np.concatenate([pid[keep], 9500 + np.arange(n_fp)])
            allk = np.concatenate([pk[keep], fk])
            allp = np.concatenate([ppres[keep], np.ones((n_fp, NUM_JOINTS), bool)])
            n = len(tids)
            sc = score_pool[sp:sp + n * NUM_JOINTS].reshape(n, NUM_JOINTS)
            sp += n * NUM_JOINTS
            pframes.append(Frame(name, np.where(allp[..., None], allk, 0), allp, np.where(allp, sc, np.nan),
                                 tids, np.full((n, 4), np.nan)))
        gseq = Sequence(video, gframes, vid_id=f"{10000 + s:06d}")
        pseq = Sequence(video, pframes, vid_id=f"{10000 + s:06d}")
        (write_posetrack18 if fmt_gt == "2018" else write_posetrack17)(gt_dir / f"{video}.json", gseq)
        (write_posetrack18 if fmt_pred == "2018" else write_posetrack17)(pr_dir / f"{video}.json", pseq)
    return gt_dir, pr_dir
