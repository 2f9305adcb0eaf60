"""PoseTrack mAP and MOTA of a prediction folder against a ground-truth folder, as poseval computes them.

Python API::

    from eval_posetrack import evaluate
    summary = evaluate("gt_dir", "pred_dir")          # {"AP": {...}, "MOTA": {...}, ...}
    summary["AP"]["Total"], summary["MOTA"]["per_joint"]["head_top"]

Steps, as poseval's ``evaluate.py`` / ``eval_helpers.py`` / ``evaluateAP.py`` / ``evaluateTracking.py`` take
them: folder contract (one file per sequence, the prediction found by the same base name, frames matched by
index) -> every file read and validated before any computation -> (1) unlabeled GT frames dropped with their
predictions -> (2) keypoints strictly inside ignore regions removed, persons left without points removed
(``removeIgnoredPointsRects``) -> (3) head size (0.6 x head-box diagonal) and PCKh@0.5 distances per frame,
vectorised over frames -> (4) per-frame assignment (``assignGTmulti``) and VOC AP pooled over all frames ->
(5) MOT counts per joint per sequence (the last labeled frame skipped, dummy updates), MOTA/MOTP/Prec/Rec.
"""
from __future__ import annotations

import glob
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import ap as ap_mod
from . import mot as mot_mod
from .dispatch import read_sequence
from .geometry import points_in_any_polygon
from .records import JOINT_NAMES, NUM_JOINTS, Frame, PoseTrackFormatError, Sequence

# printed column -> poseval joint ids (eval_helpers.getCum)
GROUPS: dict[str, tuple[int, ...]] = {
    "Head": (14, 12, 13), "Shou": (8, 9), "Elb": (7, 10), "Wri": (6, 11), "Hip": (2, 3), "Knee": (1, 4),
    "Ankl": (0, 5),
}
COLUMNS = ("Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total")
METRICS = ("AP", "MOTA", "MOTP", "Prec", "Rec")


class PoseTrackEvalError(ValueError):
    """Inputs the evaluation cannot score (the message names the file, the frame and the field)."""


@dataclass
class PreparedSequence:
    """Labeled frames of one sequence after ignore regions, padded to G GT and Q predicted persons.

    gt_kp (T, G, 15, 2) / pr_kp (T, Q, 15, 2) float64 image pixels; gt_has / pr_has (T, G|Q, 15) bool;
    gt_tid / pr_tid (T, G|Q) int64; pr_score (T, Q, 15) float64; head_size (T, G) float64 pixels
    (0.6 x head-box diagonal, 1 for padding); n_gt / n_pr (T,) persons per frame; frame_index (T,) index
    of each labeled frame in the file.
    """

    name: str
    gt_path: str
    pred_path: str
    gt_kp: np.ndarray
    gt_has: np.ndarray
    gt_tid: np.ndarray
    head_size: np.ndarray
    pr_kp: np.ndarray
    pr_has: np.ndarray
    pr_tid: np.ndarray
    pr_score: np.ndarray
    n_gt: np.ndarray
    n_pr: np.ndarray
    frame_index: np.ndarray


# ---------------------------------------------------------------------------------------------- loading
def check_folder(folder: str | os.PathLike, what: str) -> None:
    """FileNotFoundError / NotADirectoryError naming ``folder`` unless it is a folder (``what``: its role)."""
    folder = os.fspath(folder)
    if os.path.isfile(folder):
        raise NotADirectoryError(f"{what} {folder} is a file; give the folder of *.json files that holds it "
                                 f"({os.path.dirname(folder) or '.'})")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{what} folder {folder} does not exist")


def list_sequence_files(gt_dir: str | os.PathLike) -> list[str]:
    """Every ``*.json`` of the GT folder in glob order (poseval's order; it only affects score ties)."""
    gt_dir = os.fspath(gt_dir)
    check_folder(gt_dir, "ground-truth")
    return glob.glob(os.path.join(glob.escape(gt_dir), "*.json"))


def load_pairs(gt_dir: str | os.PathLike, pred_dir: str | os.PathLike) -> list[tuple[Sequence, Sequence]]:
    """Read and validate every GT file and its prediction file (same base name), before computing."""
    files = list_sequence_files(gt_dir)
    check_folder(pred_dir, "prediction")
    if not files:
        raise PoseTrackEvalError(f"{gt_dir}: no *.json ground-truth files")
    pairs = []
    for gt_file in files:
        pred_file = os.path.join(os.fspath(pred_dir), os.path.basename(gt_file))
        if not os.path.isfile(pred_file):
            raise FileNotFoundError(f"prediction file {pred_file} does not exist (needed for ground truth "
                                    f"{gt_file})")
        gt = read_sequence(gt_file, role="gt")
        pr = read_sequence(pred_file, role="pred")
        if len(pr.frames) != len(gt.frames):
            raise PoseTrackEvalError(f"{pred_file}: {len(pr.frames)} prediction frames but {len(gt.frames)} "
                                     f"ground-truth frames in {gt_file} (frames are matched by index)")
        pairs.append((gt, pr))
    return pairs


# ------------------------------------------------------------------------------------------ preparation
def _apply_ignore(fr: Frame, polygons: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """poseval's removeIgnoredPointsRects on one frame's persons.

    Returns keypoints (P, 15, 2), present (P, 15), scores (P, 15), keep (P,) bool (persons with >= 1
    point left; a person that had no point at all is removed too).
    """
    kp = fr.keypoints.copy()
    has = fr.present.copy()
    sc = fr.scores.copy()
    P = fr.num_persons
    if P == 0:
        return kp, has, sc, np.zeros(0, bool)
    pi, ji = np.nonzero(has)
    inside = points_in_any_polygon(kp[pi, ji], polygons)
    has[pi[inside], ji[inside]] = False
    alive = np.asarray(has.any(axis=1))
    ex = fr.extra_points
    if len(ex):
        ex_in = points_in_any_polygon(ex[:, 2:4], polygons)
        for e in range(len(ex)):  # additional points, in file order after the first of their joint
            if ex_in[e]:
                continue
            p, j = int(ex[e, 0]), int(ex[e, 1])
            alive[p] = True
            if j >= 0 and not has[p, j]:
                kp[p, j] = ex[e, 2:4]
                sc[p, j] = fr.extra_scores[e]
                has[p, j] = True
    return kp, has, sc, alive


def prepare_sequence(gt: Sequence, pr: Sequence) -> PreparedSequence:
    """Steps (1)-(3) above for one sequence; validates head boxes where poseval needs them."""
    labeled = [i for i, f in enumerate(gt.frames) if f.labeled]
    rows = []
    for fi in labeled:
        g, p = gt.frames[fi], pr.frames[fi]
        if g.ignore_regions:
            gk, gh, _, gkeep = _apply_ignore(g, g.ignore_regions)
            pk, ph, ps, pkeep = _apply_ignore(p, g.ignore_regions)
            gk, gh, gtid, ghead = gk[gkeep], gh[gkeep], g.track_ids[gkeep], g.head_boxes[gkeep]
            pk, ph, ps, ptid = pk[pkeep], ph[pkeep], ps[pkeep], p.track_ids[pkeep]
            gidx = np.nonzero(gkeep)[0]
        else:
            gk, gh, gtid, ghead = g.keypoints, g.present, g.track_ids, g.head_boxes
            pk, ph, ps, ptid = p.keypoints, p.present, p.scores, p.track_ids
            gidx = np.arange(g.num_persons)
        if len(gtid) and len(ptid):
            bad = ~np.isfinite(ghead).all(axis=1)
            if bad.any():
                raise PoseTrackEvalError(
                    f"{gt.path}, frame {fi}, person {int(gidx[np.argmax(bad)])}, field 'bbox_head' (2017: "
                    f"'x1','y1','x2','y2'): ground-truth person without a head box in a frame with "
                    f"predictions (poseval needs it for the head size)")
        rows.append((gk, gh, gtid, ghead, pk, ph, ps, ptid))
    T = len(rows)
    G = max([len(r[2]) for r in rows], default=0)
    Q = max([len(r[7]) for r in rows], default=0)
    gt_kp = np.zeros((T, G, NUM_JOINTS, 2))
    gt_has = np.zeros((T, G, NUM_JOINTS), bool)
    gt_tid = np.zeros((T, G), np.int64)
    head = np.ones((T, G))
    pr_kp = np.zeros((T, Q, NUM_JOINTS, 2))
    pr_has = np.zeros((T, Q, NUM_JOINTS), bool)
    pr_tid = np.zeros((T, Q), np.int64)
    pr_score = np.full((T, Q, NUM_JOINTS), np.nan)
    n_gt = np.zeros(T, np.int64)
    n_pr = np.zeros(T, np.int64)
    for t, (gk, gh, gtid, ghead, pk, ph, ps, ptid) in enumerate(rows):
        ng, nq = len(gtid), len(ptid)
        n_gt[t], n_pr[t] = ng, nq
        gt_kp[t, :ng], gt_has[t, :ng], gt_tid[t, :ng] = gk, gh, gtid
        if ng:
            dx = ghead[:, 2] - ghead[:, 0]
            dy = ghead[:, 3] - ghead[:, 1]
            hs = ap_mod.HEAD_SIZE_FACTOR * np.sqrt(dx * dx + dy * dy)
            head[t, :ng] = np.where(np.isfinite(hs), hs, 1.0)
        pr_kp[t, :nq], pr_has[t, :nq], pr_tid[t, :nq], pr_score[t, :nq] = pk, ph, ptid, ps
    return PreparedSequence(name=gt.name, gt_path=str(gt.path), pred_path=str(pr.path), gt_kp=gt_kp,
                            gt_has=gt_has, gt_tid=gt_tid, head_size=head, pr_kp=pr_kp, pr_has=pr_has,
                            pr_tid=pr_tid, pr_score=pr_score, n_gt=n_gt, n_pr=n_pr,
                            frame_index=np.asarray(labeled, np.int64))


# ------------------------------------------------------------------------------------------- evaluation
def _group_columns(per_joint: np.ndarray, total: float) -> dict[str, float]:
    cols = {name: float(np.mean(per_joint[list(idx)])) for name, idx in GROUPS.items()}
    cols["Total"] = float(total)
    return cols


def nan_skipping_mean(v: np.ndarray) -> float:
    """poseval's Total: mean over the joints that are not NaN (NaN if all are)."""
    v = np.asarray(v, dtype=np.float64)
    ok = ~np.isnan(v)
    return float(v[ok].mean()) if ok.any() else float("nan")


def _entry(per_joint: np.ndarray, total: float) -> dict[str, Any]:
    entry: dict[str, Any] = {"per_joint": {JOINT_NAMES[j]: float(per_joint[j]) for j in range(NUM_JOINTS)}}
    entry.update(_group_columns(per_joint, total))
    return entry


def evaluate_prepared(prepared: list[PreparedSequence], ap: bool = True, track: bool = True,
                      mot_engine: str = "fast") -> dict[str, Any]:
    """AP and/or MOT metrics of prepared sequences (in poseval's sequence order)."""
    scores: list[list[np.ndarray]] = [[] for _ in range(NUM_JOINTS)]
    labels: list[list[np.ndarray]] = [[] for _ in range(NUM_JOINTS)]
    n_gt = np.zeros(NUM_JOINTS)
    counts = mot_mod.MotCounts()
    for s in prepared:
        d = ap_mod.normalized_distances(s.pr_kp, s.pr_has, s.gt_kp, s.gt_has, s.head_size)
        match = d <= ap_mod.DIST_THRESH
        if ap:
            assigned = ap_mod.assign_frames(match, s.gt_has)
            lab = ap_mod.frame_labels(match, assigned)
            for j in range(NUM_JOINTS):
                sel = s.pr_has[:, :, j]
                scores[j].append(s.pr_score[:, :, j][sel])
                labels[j].append(lab[:, :, j][sel])
            n_gt += s.gt_has.sum(axis=(0, 1))
        if track:
            counts.add(mot_mod.sequence_counts(s.gt_tid, s.gt_has, s.pr_tid, s.pr_has, d, match, s.n_gt,
                                               s.n_pr, engine=mot_engine))
    out: dict[str, Any] = {k: None for k in METRICS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN means are part of the protocol
        if ap:
            apj = ap_mod.pooled_ap([np.concatenate(x) if x else np.zeros(0) for x in scores],
                                   [np.concatenate(x) if x else np.zeros(0, bool) for x in labels], n_gt)
            out["AP"] = _entry(apj, nan_skipping_mean(apj))
        if track:
            fm = mot_mod.final_metrics(counts)
            for key, name in (("mota", "MOTA"), ("motp", "MOTP"), ("pre", "Prec"), ("rec", "Rec")):
                out[name] = _entry(fm[key], nan_skipping_mean(fm[key]))
    return out


def evaluate(gt_dir: str | os.PathLike, pred_dir: str | os.PathLike, ap: bool = True, track: bool = True,
             mot_engine: str = "fast") -> dict[str, Any]:
    """Evaluate a prediction folder against a GT folder like ``poseval --evalPoseEstimation
    --evalPoseTracking``.

    Returns {"AP", "MOTA", "MOTP", "Prec", "Rec"} -> {"per_joint": {joint name: value}, "Head", "Shou",
    "Elb", "Wri", "Hip", "Knee", "Ankl", "Total": value} with unrounded floats (NaN where poseval has
    NaN); a metric that was not requested maps to None. ``mot_engine`` "fast" (default) or "motmetrics" (the
    real MOTAccumulator per joint per sequence, the cross-check engine; same numbers, slower).
    """
    pairs = load_pairs(gt_dir, pred_dir)
    if track:
        for gt, _ in pairs:
            for fi, f in enumerate(gt.frames):
                if len(np.unique(f.track_ids)) != f.num_persons:
                    vals, cnt = np.unique(f.track_ids, return_counts=True)
                    dup = int(vals[cnt > 1][0])
                    raise PoseTrackEvalError(
                        f"{gt.path}, frame {fi}, person {int(np.nonzero(f.track_ids == dup)[0][1])}, field "
                        f"'track_id': duplicate ground-truth track id {dup} in one frame (motmetrics, used by "
                        f"the official tracking evaluation, fails or mis-counts on it)")
            n_lab = sum(1 for f in gt.frames if f.labeled)
            if n_lab == 1:
                raise PoseTrackEvalError(
                    f"{gt.path}: only 1 labeled frame; the official tracking evaluation skips the last "
                    f"labeled frame of every sequence and crashes on such a sequence. Evaluate AP only "
                    f"(--no-track / track=False)")
    prepared = [prepare_sequence(gt, pr) for gt, pr in pairs]
    return evaluate_prepared(prepared, ap=ap, track=track, mot_engine=mot_engine)


# -------------------------------------------------------------------------------------------- reporting
def _cell(v: float, delim: str) -> str:
    return f"{v:>5.1f}" + delim


def _row(values: list[float]) -> str:
    return "&" + "".join(_cell(v, " &") for v in values[:-1]) + _cell(values[-1], " \\\\")


def _val(v: Any) -> float:
    return float("nan") if v is None else float(v)


def format_tables(summary: dict[str, Any]) -> str:
    """poseval's printed tables (eval_helpers.printTable) for the metrics present in ``summary``."""
    lines = []
    if summary.get("AP") is not None:
        lines.append("Average Precision (AP) metric:")
        lines.append("& Head & Shou & Elb  & Wri  & Hip  & Knee & Ankl & Total\\\\")
        lines.append(_row([_val(summary["AP"][c]) for c in COLUMNS]))
    if summary.get("MOTA") is not None:
        lines.append("Multiple Object Tracking (MOT) metrics:")
        lines.append("& MOTA & MOTA & MOTA & MOTA & MOTA & MOTA & MOTA & MOTA & MOTP & Prec & Rec  \\\\")
        lines.append("& Head & Shou & Elb  & Wri  & Hip  & Knee & Ankl & Total& Total& Total& Total\\\\")
        vals = [_val(summary["MOTA"][c]) for c in COLUMNS]
        vals += [_val(summary[m]["Total"]) for m in ("MOTP", "Prec", "Rec")]
        lines.append(_row(vals))
    return "\n".join(lines)


def to_json_ready(summary: dict[str, Any]) -> dict[str, Any]:
    """NaN -> None (JSON null), recursively."""
    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, float) and not np.isfinite(v) and np.isnan(v):
            return None
        return v
    return conv(summary)


def plot_summary(summary: dict[str, Any], path: str | os.PathLike) -> None:
    """Per-joint bar chart (AP and MOTA side by side) as a PNG."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ModuleNotFoundError("--plot needs matplotlib: pip install 'posetrack-pipeline[plot]' "
                                  "(make setup installs it)", name="matplotlib") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("AP", "MOTA") if summary.get(m) is not None]
    if not metrics:
        raise PoseTrackEvalError("nothing to plot: neither AP nor MOTA was computed")
    fig, ax = plt.subplots(figsize=(12, 4.5))
    x = np.arange(NUM_JOINTS + 1)
    w = 0.8 / len(metrics)
    labels = list(JOINT_NAMES) + ["Total"]
    for k, m in enumerate(metrics):
        vals = [_val(summary[m]["per_joint"][n]) for n in JOINT_NAMES] + [_val(summary[m]["Total"])]
        vals = [0.0 if np.isnan(v) else v for v in vals]
        ax.bar(x + (k - (len(metrics) - 1) / 2) * w, vals, w, label=m)
    ax.set_xticks(x, labels, rotation=45, ha="right")
    ax.set_ylabel("%")
    ax.set_title("PoseTrack evaluation per joint (NaN shown as 0)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["evaluate", "evaluate_prepared", "prepare_sequence", "load_pairs", "format_tables",
           "to_json_ready", "plot_summary", "PoseTrackEvalError", "PoseTrackFormatError", "GROUPS",
           "COLUMNS", "METRICS"]
