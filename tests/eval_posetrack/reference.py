"""A slow, literal re-statement of poseval's evaluation: the test oracle and the benchmark baseline.

It walks the 2017 dict structures with per-frame / per-person / per-joint Python loops in the order
poseval does (``load_data_dir`` -> ``cleanupData`` -> ``removeIgnoredPoints`` -> ``assignGTmulti`` ->
``computeMetrics``), converts 2018 files the way ``convert.Video.from_new(...)[0].to_old()`` does, and
feeds one real ``motmetrics.MOTAccumulator`` per joint per sequence. Shapely's ``contains`` is replaced by
:func:`eval_posetrack.points_in_polygon`. No validation beyond what the algorithm needs: feed it
only inputs that :func:`eval_posetrack.evaluate` accepts.
"""
from __future__ import annotations

import copy
import glob
import json
import os

import numpy as np

from eval_posetrack import JOINT_NAMES, MIN_SCORE, NUM_JOINTS, parse_posetrack18_file_name, points_in_polygon


def _to_old(data: dict) -> dict:
    names = data["categories"][0]["keypoints"]
    table = [JOINT_NAMES.index(n) if n in JOINT_NAMES else None for n in names]
    info = {}
    for im in data["images"]:
        info.setdefault(im["id"], im)
    video = None
    annolist = []
    for im0 in data["images"]:
        im = info[im0["id"]]
        vid = parse_posetrack18_file_name(im["file_name"])[0]
        if video is None:
            video = vid
        elif vid != video:
            continue
        entry = {"image": [{"name": im["file_name"]}], "annorect": []}
        if "ignore_regions_x" in im and "ignore_regions_y" in im:
            regs = [{"point": [{"x": [x], "y": [y]} for x, y in zip(xs, ys)]}
                    for xs, ys in zip(im["ignore_regions_x"], im["ignore_regions_y"])]
            if regs:
                entry["ignore_regions"] = regs
        for a in data["annotations"]:
            if a["image_id"] != im0["id"]:
                continue
            kps = np.array(a["keypoints"]).reshape(len(table), 3)
            sc = a.get("scores")
            points = []
            for s, (x, y, v) in enumerate(kps):
                if table[s] is None or (x == 0 and y == 0 and v == 0):
                    continue
                pt = {"id": [table[s]], "x": [x], "y": [y], "is_visible": [v]}
                if sc:
                    pt["score"] = [sc[s]]
                points.append(pt)
            rect = {"track_id": [a["track_id"]], "annopoints": [{"point": points}]}
            if "bbox_head" in a:
                x, y, w, h = a["bbox_head"]
                rect.update(x1=[x], y1=[y], x2=[x + w], y2=[y + h])
            entry["annorect"].append(rect)
        annolist.append(entry)
    return {"annolist": annolist}


def _has_points(rect: dict) -> bool:
    return ("annopoints" in rect and len(rect["annopoints"]) > 0 and len(rect["annopoints"][0]) > 0
            and "point" in rect["annopoints"][0])


def _point(points: list, j: int):
    for p in points:
        if p["id"] is not None and p["id"][0] == j:
            return p
    return None


def load(gt_dir: str, pred_dir: str) -> tuple[list, list]:
    files = glob.glob(os.path.join(glob.escape(gt_dir), "*.json"))
    gt_all, pr_all = [], []
    for i, f in enumerate(files):
        with open(f) as fh:
            data = json.load(fh)
        gt = (data if "annolist" in data else _to_old(data))["annolist"]
        for fr in gt:
            fr["seq_id"] = i
        with open(os.path.join(pred_dir, os.path.basename(f))) as fh:
            data = json.load(fh)
        pr = (data if "annolist" in data else _to_old(data))["annolist"]
        assert len(pr) == len(gt)
        gt_all += gt
        pr_all += pr
    keep = [k for k in range(len(gt_all)) if len(gt_all[k]["annorect"]) > 0]
    gt_all = [gt_all[k] for k in keep]
    pr_all = [pr_all[k] for k in keep]
    for k in range(len(gt_all)):
        gt_all[k]["annorect"] = [r for r in gt_all[k]["annorect"] if _has_points(r)]
        pr_all[k]["annorect"] = [r for r in pr_all[k]["annorect"] if _has_points(r)]
    for k in range(len(gt_all)):
        regs = gt_all[k].get("ignore_regions", [])
        if len(regs) == 0:
            continue
        polys = [np.array([[p["x"][0], p["y"][0]] for p in r["point"]], dtype=np.float64).reshape(-1, 2)
                 for r in regs]
        for frames in (pr_all, gt_all):
            rects = []
            for r in frames[k]["annorect"]:
                pts = [p for p in r["annopoints"][0]["point"]
                       if not any(points_in_polygon(np.array([[p["x"][0], p["y"][0]]], dtype=np.float64), poly)[0]
                                  for poly in polys)]
                if pts:
                    r["annopoints"][0]["point"] = pts
                    rects.append(r)
            frames[k]["annorect"] = rects
    return gt_all, pr_all


def assign(gt_frames: list, pr_frames: list):
    n = len(gt_frames)
    scores = {j: {k: np.zeros([0, 0], dtype=np.float32) for k in range(n)} for j in range(NUM_JOINTS)}
    labels = {j: {k: np.zeros([0, 0], dtype=np.int8) for k in range(n)} for j in range(NUM_JOINTS)}
    n_gt = np.zeros([NUM_JOINTS, n])
    mot_all = {}
    for k in range(n):
        gts, prs = gt_frames[k]["annorect"], pr_frames[k]["annorect"]
        dist = np.full((len(prs), len(gts), NUM_JOINTS), np.inf)
        score = np.full((len(prs), NUM_JOINTS), np.nan)
        has_pr = np.zeros((len(prs), NUM_JOINTS), bool)
        has_gt = np.zeros((len(gts), NUM_JOINTS), bool)
        tid_gt = [r["track_id"][0] for r in gts]
        tid_pr = [r["track_id"][0] for r in prs]
        for g, r in enumerate(gts):
            for j in range(NUM_JOINTS):
                has_gt[g, j] = _point(r["annopoints"][0]["point"], j) is not None
        for q, r in enumerate(prs):
            for j in range(NUM_JOINTS):
                p = _point(r["annopoints"][0]["point"], j)
                if p is not None:
                    score[q, j] = p["score"][0] if "score" in p else MIN_SCORE
                    has_pr[q, j] = True
        if len(prs) and len(gts):
            for g, rg in enumerate(gts):
                head = 0.6 * np.linalg.norm(np.subtract([rg["x2"][0], rg["y2"][0]], [rg["x1"][0], rg["y1"][0]]))
                for q, rp in enumerate(prs):
                    for j in range(NUM_JOINTS):
                        if has_pr[q, j] and has_gt[g, j]:
                            a = _point(rg["annopoints"][0]["point"], j)
                            b = _point(rp["annopoints"][0]["point"], j)
                            with np.errstate(divide="ignore", invalid="ignore"):
                                dist[q, g, j] = np.linalg.norm(np.subtract([a["x"][0], a["y"][0]],
                                                                           [b["x"][0], b["y"][0]])) / head
            n_gtp = np.sum(has_gt, axis=1)
            match = dist <= 0.5
            pck = 1.0 * np.sum(match, axis=2)
            for q in range(len(prs)):
                for g in range(len(gts)):
                    if n_gtp[g] > 0:
                        pck[q, g] = pck[q, g] / n_gtp[g]
            idx = np.argmax(pck, axis=1)
            for q in range(pck.shape[0]):
                for g in range(pck.shape[1]):
                    if g != idx[q]:
                        pck[q, g] = 0
            pr_to_gt = np.argmax(pck, axis=0)
            pr_to_gt[np.max(pck, axis=0) == 0] = -1
            mot = {}
            for j in range(NUM_JOINTS):
                rg_ = np.argwhere(has_gt[:, j]).flatten().tolist()
                rp_ = np.argwhere(has_pr[:, j]).flatten().tolist()
                d = np.full((len(rg_), len(rp_)), np.nan)
                for a, q in enumerate(rp_):
                    for b, g in enumerate(rg_):
                        if match[q, g, j]:
                            d[b, a] = dist[q, g, j]
                mot[j] = {"gt": [tid_gt[x] for x in rg_], "pr": [tid_pr[x] for x in rp_], "dist": d}
            for q in range(len(prs)):
                if q in pr_to_gt:
                    g = np.argwhere(pr_to_gt == q)[0, 0]
                    m = match[q, g, :]
                else:
                    m = np.zeros(NUM_JOINTS, bool)
                for j in range(NUM_JOINTS):
                    if has_pr[q, j]:
                        scores[j][k] = np.append(scores[j][k], score[q, j])
                        labels[j][k] = np.append(labels[j][k], m[j])
        else:
            if not len(gts):
                for q in range(len(prs)):
                    for j in range(NUM_JOINTS):
                        if has_pr[q, j]:
                            scores[j][k] = np.append(scores[j][k], score[q, j])
                            labels[j][k] = np.append(labels[j][k], False)
            mot = {j: {"gt": [0], "pr": [0], "dist": np.full((1, 1), np.nan)} for j in range(NUM_JOINTS)}
        for g in range(has_gt.shape[0]):
            n_gt[:, k] += has_gt[g, :]
        mot_all[k] = mot
    return scores, labels, n_gt, mot_all


def _rpc_ap(scores: np.ndarray, labels: np.ndarray, total: float) -> float:
    order = np.array(scores).argsort()[::-1]
    lab = labels[order]
    prec = np.zeros(len(order))
    rec = np.zeros(len(order))
    npos = 0
    for s in range(len(order)):
        npos += lab[s] == 1
        with np.errstate(divide="ignore", invalid="ignore"):
            rec[s] = 1.0 * npos / total
        prec[s] = 1.0 * npos / (s + 1)
    mpre = np.zeros(len(prec) + 2)
    mpre[1:-1] = prec
    mrec = np.zeros(len(rec) + 2)
    mrec[1:-1] = rec
    mrec[-1] = 1.0
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    i = np.argwhere(~np.equal(mrec[1:], mrec[:-1])).flatten() + 1
    return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))


def evaluate_reference(gt_dir: str, pred_dir: str, ap: bool = True, track: bool = True) -> dict:
    """Per-joint arrays {"AP", "MOTA", "MOTP", "Prec", "Rec"} -> (16,) (15 joints + Total), in %."""
    import motmetrics as mm

    gt_frames, pr_frames = load(gt_dir, pred_dir)
    gt_frames, pr_frames = copy.deepcopy(gt_frames), copy.deepcopy(pr_frames)
    scores, labels, n_gt, mot_all = assign(gt_frames, pr_frames)
    out = {}
    if ap:
        ap_all = np.zeros(NUM_JOINTS + 1)
        for j in range(NUM_JOINTS):
            s = np.zeros([0, 0], dtype=np.float32)
            lab = np.zeros([0, 0], dtype=np.int8)
            for k in range(len(gt_frames)):
                s = np.append(s, scores[j][k])
                lab = np.append(lab, labels[j][k])
            if len(s):
                ap_all[j] = _rpc_ap(s, lab, sum(n_gt[j, :])) * 100
        ok = ~np.isnan(ap_all[:NUM_JOINTS])
        ap_all[NUM_JOINTS] = ap_all[:NUM_JOINTS][ok].mean() if ok.any() else np.nan
        out["AP"] = ap_all
    if track:
        seq = np.array([f["seq_id"] for f in gt_frames])
        mid = {n: np.zeros(NUM_JOINTS) for n in ("num_misses", "num_switches", "num_false_positives",
                                                 "num_objects", "num_detections", "sumD")}
        mh = mm.metrics.create()
        for si in np.unique(seq):
            accs = [mm.MOTAccumulator(auto_id=True) for _ in range(NUM_JOINTS)]
            idxs = np.argwhere(seq == si)[:-1, 0]
            for k in idxs:
                for j in range(NUM_JOINTS):
                    accs[j].update(mot_all[k][j]["gt"], mot_all[k][j]["pr"], mot_all[k][j]["dist"])
            for j in range(NUM_JOINTS):
                r = mh.compute(accs[j], metrics=["num_misses", "num_switches", "num_false_positives",
                                                 "num_objects", "num_detections"],
                               return_dataframe=False, name="acc")
                for n in r:
                    mid[n][j] += r[n]
                s = accs[j].events["D"].sum()
                mid["sumD"][j] += 0 if np.isnan(s) else s
        res = {k: np.zeros(NUM_JOINTS + 1) for k in ("MOTA", "MOTP", "Prec", "Rec")}
        for j in range(NUM_JOINTS):
            obj = mid["num_objects"][j] if mid["num_objects"][j] > 0 else np.nan
            fp = mid["num_false_positives"][j]
            det = mid["num_detections"][j]
            res["MOTA"][j] = 100 * (1.0 - (mid["num_misses"][j] + mid["num_switches"][j] + fp) / obj)
            res["MOTP"][j] = 0.0 if det == 0 else 100 * (1.0 - mid["sumD"][j] / det)
            res["Prec"][j] = 100 * det / (fp + det if fp + det > 0 else np.nan)
            res["Rec"][j] = 100 * det / obj
        for k, v in res.items():
            ok = ~np.isnan(v[:NUM_JOINTS])
            v[NUM_JOINTS] = v[:NUM_JOINTS][ok].mean() if ok.any() else np.nan
            out[k] = v
    return out
