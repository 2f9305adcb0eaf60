"""MoveNet + CenterNet figures, one JSON line per setting: COCO keypoint AP on MMPose's 4 COCO test images
(thunder / lightning on the ground-truth boxes, CenterNet person boxes + thunder), and on the real PoseTrack clip
how many of its 3 players CenterNet finds and MoveNet poses per frame.

Usage: ``python benchmarks/movenet.py [--data DIR] [--threads N] [--paddings 1.25 ...]``. Needs the TF.js models in
the weights cache (``posetrack weights fetch``) and MMPose's test data folder (``--data``, default
``$POSETRACK_SHARED/data/mmpose_testdata``). No timings here.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from blazepose import CLIP, CLIP_PLAYERS, DEFAULT_DATA, coco_ap, players_found  # noqa: E402

from estimators.registry import get_spec  # noqa: E402
from estimators.tfjs.movenet import DEFAULT_PADDING  # noqa: E402
from tracker.build import build_tracker  # noqa: E402
from tracker.config import load_track_config  # noqa: E402
from tracker.detectors import create_detector  # noqa: E402
from tracker.sources import Frame  # noqa: E402

POSED_SCORE = 0.3  # a player counts as posed when his pose's mean keypoint score reaches it


def to_coco(img_id: int, poses) -> list[dict]:
    out = []
    for k in range(len(poses)):
        kp = np.concatenate([poses.keypoints[k], poses.keypoint_scores[k][:, None]], 1)
        out.append(dict(image_id=int(img_id), category_id=1, keypoints=kp.ravel().tolist(),
                        score=float(poses.pose_scores[k])))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paddings", type=float, nargs="+", default=[DEFAULT_PADDING])
    ap.add_argument("--flip", action="store_true", help="also measure thunder with the flip test")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from pycocotools.coco import COCO

    coco_dir = args.data / "coco"
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(coco_dir / "test_coco.json"))
    images = {i: cv2.imread(str(coco_dir / gt.loadImgs(i)[0]["file_name"])) for i in gt.getImgIds()}
    gt_boxes = {}
    for img_id in images:
        anns = [a for a in gt.loadAnns(gt.getAnnIds(imgIds=img_id, iscrowd=False)) if a["num_keypoints"] > 0]
        gt_boxes[img_id] = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                      a["bbox"][1] + a["bbox"][3]] for a in anns], np.float32).reshape(-1, 4)
    detector = create_detector("centernet")
    detections = dict(zip(images, detector.detect(list(images.values()))))
    print(json.dumps({"coco_people_annotated": int(sum(len(b) for b in gt_boxes.values())),
                      "centernet_people_detected": int(sum(len(d) for d in detections.values()))}))

    ids = list(images)
    settings = [(name, pad, False) for name in ("movenet_thunder", "movenet_lightning") for pad in args.paddings]
    if args.flip:
        settings.append(("movenet_thunder", args.paddings[0], True))
    for name, pad, flip in settings:
        est = get_spec(name).builder(None, max_batch=16, padding=pad, flip_test=flip)
        on_gt = est.estimate_batch([images[i] for i in ids], [gt_boxes[i] for i in ids],
                                   [np.ones(len(gt_boxes[i]), np.float32) for i in ids])
        on_det = est.estimate_batch([images[i] for i in ids], [detections[i].boxes for i in ids],
                                    [detections[i].scores for i in ids])
        res: dict[str, object] = {"estimator": name, "padding": pad, "flip_test": flip}
        res["coco_ap_gt_boxes"], res["coco_ar_gt_boxes"] = coco_ap(
            gt, [d for i, p in zip(ids, on_gt) for d in to_coco(i, p)])
        res["coco_ap_centernet"], res["coco_ar_centernet"] = coco_ap(
            gt, [d for i, p in zip(ids, on_det) for d in to_coco(i, p)])
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()}))

    clip_dir = args.data / CLIP
    frames = [cv2.imread(str(clip_dir / f"{i:06d}.jpg")) for i in range(len(CLIP_PLAYERS))]
    est = get_spec("movenet_thunder").builder(None, padding=args.paddings[0])
    dets = detector.detect(frames)
    found, posed, extra = [], [], []
    for img, players, d in zip(frames, CLIP_PLAYERS, dets):
        poses = est.estimate(img, d.boxes, d.scores)
        good = poses.keypoint_scores.mean(axis=1) >= POSED_SCORE
        found.append(players_found(np.array(players, np.float32), d.boxes))
        posed.append(players_found(np.array(players, np.float32), d.boxes[good]))
        extra.append(int(good.sum()) - posed[-1])
    # the whole tracker (CenterNet every frame + thunder + DIS flow propagation + OKS pose NMS), as a preset runs it
    cfg = load_track_config(None, settings=[("estimator.kind", "topdown"), ("estimator.name", "movenet_thunder"),
                                            ("detector.kind", "centernet"), ("flow.kind", "dis")])
    tracker = build_tracker(cfg, estimator=est, detector=detector)
    clip = [Frame(i, i / 25.0, im, f"{i:06d}") for i, im in enumerate(frames)]
    live = [r for _, r in tracker.run(clip, final=False)]  # every pose the pipeline keeps, as tracked
    tracker = build_tracker(cfg, estimator=est, detector=detector)
    records = [r for _, r in tracker.run(clip)]  # the written records (confirmed tracks only)
    print(json.dumps({"clip": CLIP, "centernet_detections_per_frame": [len(d) for d in dets],
                      "players_detected_per_frame": found, "players_posed_per_frame": posed,
                      "extra_poses_per_frame": extra, "posed_if_mean_keypoint_score_at_least": POSED_SCORE,
                      "tracker_live_poses_per_frame": [len(r.boxes) for r in live],
                      "tracker_live_players_posed_per_frame": [
                          players_found(np.array(p, np.float32), r.boxes) for p, r in zip(CLIP_PLAYERS, live)],
                      "tracker_final_poses_per_frame": [len(r.boxes) for r in records],
                      "tracker_final_players_posed_per_frame": [
                          players_found(np.array(p, np.float32), r.boxes) for p, r in zip(CLIP_PLAYERS, records)],
                      "threads": args.threads, "load_avg_1min": round(os.getloadavg()[0], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
