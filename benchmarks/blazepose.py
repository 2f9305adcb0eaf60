"""BlazePose figures in one JSON line: COCO keypoint AP (embedded tiled detector vs ground-truth boxes), player
recall on the real PoseTrack clip, and milliseconds per frame of the detector and landmark paths.

Usage: ``python benchmarks/blazepose.py [--data DIR] [--threads N] [--repeats R]``. Needs the weights in the
cache (``posetrack weights fetch``) and MMPose's test data folder (``--data``, default
``$POSETRACK_SHARED/data/mmpose_testdata``). Timings depend on machine load: they are medians over ``--repeats``
passes, measured in this run.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision.ops import box_iou

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from estimators.blazepose import POSE_FLAG_THRESHOLD, BlazePoseDetector, BlazePoseEstimator  # noqa: E402

_SHARED = Path(os.environ.get("POSETRACK_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DEFAULT_DATA = _SHARED / "data" / "mmpose_testdata"
CLIP = "posetrack18/videos/000001_mpiinew_test"
# The three players of the clip, per frame, xyxy image pixels (placed by eye; see the file's _doc).
CLIP_PLAYERS = json.loads((Path(__file__).resolve().parents[1] / "tests" / "data" / "clip_players.json")
                          .read_text())["players"]


def players_found(players: np.ndarray, boxes: np.ndarray, min_iou: float = 0.1) -> int:
    """How many players get their own detection: one-to-one assignment maximising IoU, a pair counts when
    IoU >= min_iou (detection boxes are loose squares, hence the low bar; one-to-one stops a single box
    from counting for two overlapping players)."""
    from scipy.optimize import linear_sum_assignment

    if len(boxes) == 0:
        return 0
    m = box_iou(torch.as_tensor(np.asarray(players, np.float64)),
                torch.as_tensor(np.asarray(boxes, np.float64))).numpy()
    r, c = linear_sum_assignment(-m)
    return int((m[r, c] >= min_iou).sum())


def coco_ap(gt, dets: list[dict]) -> tuple[float, float]:
    from pycocotools.cocoeval import COCOeval

    if not dets:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[5])


def to_coco(img_id: int, result, keep: np.ndarray) -> list[dict]:
    p = result.poses
    out = []
    for k in np.nonzero(keep)[0]:
        kp = np.concatenate([p.keypoints[k], p.keypoint_scores[k][:, None]], 1)
        out.append(dict(image_id=int(img_id), category_id=1, keypoints=kp.ravel().tolist(),
                        score=float(p.pose_scores[k])))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    from pycocotools.coco import COCO

    coco_dir = args.data / "coco"
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(coco_dir / "test_coco.json"))
    est = BlazePoseEstimator(num_threads=args.threads)
    est_refined = BlazePoseEstimator(num_threads=args.threads, refine_passes=1)
    det = BlazePoseDetector(num_threads=args.threads)
    single = BlazePoseDetector(num_threads=args.threads, tiles=False)

    images = {i: cv2.imread(str(coco_dir / gt.loadImgs(i)[0]["file_name"])) for i in gt.getImgIds()}
    res: dict[str, object] = {"images": len(images)}
    for name, estimator in (("", est), ("_refine1", est_refined)):
        dets_gt, dets_tiled, dets_single = [], [], []
        for img_id, img in images.items():
            anns = [a for a in gt.loadAnns(gt.getAnnIds(imgIds=img_id, iscrowd=False)) if a["num_keypoints"] > 0]
            boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                              for a in anns], np.float32).reshape(-1, 4)
            r = estimator.estimate_full(img, boxes, np.ones(len(boxes), np.float32))
            dets_gt += to_coco(img_id, r, np.ones(len(boxes), bool))
            for detector, sink in ((det, dets_tiled), (single, dets_single)):
                people = detector.detect_rois(img)
                r = estimator.estimate_full(img, people.boxes, people.scores, people.roi_points)
                sink += to_coco(img_id, r, r.pose_flag >= POSE_FLAG_THRESHOLD)
        res[f"coco_ap_gt_boxes{name}"], res[f"coco_ar_gt_boxes{name}"] = coco_ap(gt, dets_gt)
        res[f"coco_ap_tiled_detector{name}"], res[f"coco_ar_tiled_detector{name}"] = coco_ap(gt, dets_tiled)
        res[f"coco_ap_single_detector{name}"], res[f"coco_ar_single_detector{name}"] = coco_ap(gt, dets_single)
    res["coco_people_detected_tiled"] = int(sum(len(det.detect_rois(im)) for im in images.values()))
    res["coco_people_annotated"] = int(sum(1 for a in gt.dataset["annotations"] if a["num_keypoints"] > 0))

    clip_dir = args.data / CLIP
    frames = [cv2.imread(str(clip_dir / f"{i:06d}.jpg")) for i in range(len(CLIP_PLAYERS))]
    found, ndet = [], []
    for img, players in zip(frames, CLIP_PLAYERS):
        people = det.detect_rois(img)
        found.append(players_found(np.array(players, np.float32), people.boxes))
        ndet.append(len(people))
    res["clip_players_found_per_frame"] = found
    res["clip_detections_per_frame"] = ndet
    res["clip_players_found_single_detector"] = [
        players_found(np.array(p, np.float32), single.detect_rois(im).boxes) for im, p in zip(frames, CLIP_PLAYERS)]

    def median_ms(fn, items) -> float:
        times = []
        for _ in range(args.repeats):
            for it in items:
                t0 = time.perf_counter()
                fn(it)
                times.append(time.perf_counter() - t0)
        return float(np.median(times) * 1e3)

    res["ms_detector_tiled_per_frame_1280x720"] = median_ms(det.detect_rois, frames)
    res["detector_views_1280x720"] = len(det.views(1280, 720))
    res["ms_detector_single_per_frame_1280x720"] = median_ms(single.detect_rois, frames)
    res["ratio_tiled_vs_single_detector"] = (res["ms_detector_tiled_per_frame_1280x720"]
                                             / res["ms_detector_single_per_frame_1280x720"])
    one = np.array([[360, 275, 565, 580]], np.float32)
    three = np.array(CLIP_PLAYERS[0], np.float32)
    res["ms_landmarks_1_person"] = median_ms(lambda im: est.estimate_full(im, one), frames)
    res["ms_landmarks_3_people"] = median_ms(lambda im: est.estimate_full(im, three), frames)
    res["threads"] = args.threads
    res["load_avg_1min"] = os.getloadavg()[0]
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
