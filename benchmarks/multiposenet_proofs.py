"""Proofs that MultiPoseNet's training learns (issue 13, item 5); prints JSON lines.

    python benchmarks/multiposenet_proofs.py prn      # (a) PRN vs the Max / UCR baselines, held-out persons
    python benchmarks/multiposenet_proofs.py overfit  # (b) the whole network overfits the 4 COCO images

(a) ``prn``: the PRN stage recipe (``train_multiposenet_r50_coco_prn_56x36_adam_lr1e-4_curriculum``) trained on
    the 4-image COCO keypoint file plus the Bonn PoseTrack sequences 000001, 000026 and 8454334 (joints mapped to
    COCO-17 where they exist); held out: the Bonn sequences 47476901 and 5997927 (other people, other scenes).
    Evaluated persons: held-out persons whose box overlaps another person's box in the frame (IoU > 0.1, the
    paper's Fig. 4 c-d case). Inputs are ground truth (the paper's Table 3 "Both GT" setting): heatmaps with a
    unit peak at every labelled joint of every person of the frame, the GT boxes of all persons; the estimator's
    own assignment path (``MultiPoseNetEstimator.assign_keypoints``) with assign = prn | max | ucr (UCR's prior
    learned from the training persons). Metrics: OKS AP by pycocotools (area = box area: the Bonn files have no
    segment areas) and the assignment accuracy: the share of labelled joints whose output lies within 2 heatmap
    cells of its own joint and nearer to it than to any other person's joint of that type.
(b) ``overfit``: the three stage recipes in a row on the 4 images (CPU, small input; no ImageNet weights here, so
    the backbone starts random, BatchNorm on batch statistics; no augmentation and the inference framing so that
    training and test inputs agree), then ``create_multiposenet_estimator`` on the final checkpoint, ``predict``
    (its own person boxes) per image, ``eval_posetrack.coco_keypoint_results`` and pycocotools COCOeval.

Data: ``POSETRACK_SHARED`` or the ``shared`` folder beside the clone (mmpose's test COCO file, the Bonn tracks).
Timings are wall-clock on whatever machine runs it (state its load).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("POSETRACK_SHARED", ROOT.parent / "shared"))
COCO_DIR = SHARED / "data" / "mmpose_testdata" / "coco"
COCO_ANN = COCO_DIR / "test_coco.json"
BONN = SHARED / "data" / "bonn_posetrack_train" / "pt18"
BONN_TRAIN = ("000001_bonn_train", "000026_bonn_train", "8454334_bonn_train")
BONN_HELD_OUT = ("47476901_bonn_train", "5997927_bonn_train")
OVERLAP_IOU = 0.1
KPT = "multiposenet_r50_coco_kpt_480x480_adam_lr1e-4_plateau"
DET = "multiposenet_r50_coco_det_800_frozen_adam_lr1e-5_focal"
PRN = "multiposenet_r50_coco_prn_56x36_adam_lr1e-4_curriculum"


def emit(**kw) -> None:
    print(json.dumps(kw), flush=True)


def _common(out: str) -> list[str]:
    return [f"data.train_annotations=[{COCO_ANN}]", f"data.train_images={COCO_DIR}", "data.workers=0",
            "device=cpu", "progress=false", f"output_dir={out}"]


# ---------------------------------------------------------------------------------------------- (a)
def _coco_eval(gt_people: list[tuple], pred: list[tuple]) -> float:
    """OKS AP (pycocotools) of pred [(image id, Poses)] against gt [(image id, keypoints (17, 2) continuous px,
    visible (17,), box (4,) xyxy)]."""
    from pycocotools.coco import COCO

    from estimators.training.coco_eval import coco_keypoint_eval
    from eval_posetrack import coco_keypoint_results

    images, anns = {}, []
    for n, (img, kps, vis, box) in enumerate(gt_people):
        images[img] = {"id": img, "width": 2000, "height": 2000, "file_name": f"{img}.jpg"}
        k = np.concatenate([kps - 0.5, 2.0 * vis[:, None]], axis=1) * vis[:, None]
        w, h = box[2] - box[0], box[3] - box[1]
        anns.append({"id": n + 1, "image_id": img, "category_id": 1, "iscrowd": 0, "area": float(w * h),
                     "bbox": [float(box[0]), float(box[1]), float(w), float(h)], "keypoints": k.ravel().tolist(),
                     "num_keypoints": int(vis.sum())})
    coco = COCO()
    coco.dataset = {"images": list(images.values()), "annotations": anns,
                    "categories": [{"id": 1, "name": "person"}]}
    coco.createIndex()
    results = []
    for img, poses in pred:
        results += coco_keypoint_results(img, poses.keypoints, poses.keypoint_scores,
                                         np.ones(len(poses.keypoints)))
    return coco_keypoint_eval(coco, results)["AP"]


def proof_prn(args) -> None:
    from torchvision.ops import box_iou

    from estimators.multiposenet import create_multiposenet_estimator
    from estimators.training.config import load_config
    from estimators.training.multiposenet_data import frame_peak_maps, frame_scale, posetrack_prn_frames
    from estimators.training.multiposenet_loop import train_multiposenet

    out = tempfile.mkdtemp(prefix="mpn_prn_")
    train_files = [str(BONN / f"{s}.json") for s in BONN_TRAIN]
    cfg = load_config(PRN, _common(out) + [f"multiposenet.posetrack_annotations=[{','.join(train_files)}]",
                                           f"batch_size={args.batch}", f"epochs={args.epochs}",
                                           f"schedule.lr={args.lr:.12f}",
                                           "model.init_checkpoint=null", "multiposenet.save_every=0"])
    t0 = time.time()
    res = train_multiposenet(cfg)
    n_ep = len(res.epoch_losses)
    emit(proof="prn", what="training", steps=len(res.steps), epochs=n_ep, batch=args.batch, lr=args.lr,
         first_epoch_loss=res.epoch_losses[0], last_epoch_loss=res.epoch_losses[-1], seconds=round(time.time() - t0, 1))
    frames = posetrack_prn_frames([str(BONN / f"{s}.json") for s in BONN_HELD_OUT])
    input_size = tuple(cfg.input_size)
    results = {}
    for mode in ("prn", "max", "ucr"):
        est = create_multiposenet_estimator(res.checkpoint, assign=mode, input_size=input_size)
        gt, pred, correct, total = [], [], 0, 0
        for fi, fr in enumerate(frames):
            if len(fr.boxes) < 2:
                continue
            iou = box_iou(torch.from_numpy(fr.boxes), torch.from_numpy(fr.boxes)).fill_diagonal_(0).numpy()
            sel = np.nonzero((iou.max(1) > OVERLAP_IOU) & (fr.visible.sum(1) >= 2))[0]
            if len(sel) == 0:
                continue
            s = frame_scale(fr, input_size)
            hm = frame_peak_maps(fr, input_size, est.sigma)
            poses = est.assign_keypoints(hm, fr.boxes[sel].astype(np.float32), np.ones(len(sel), np.float32), s)
            img = fi + 1
            pred.append((img, poses))
            tol = 2 * 4 / s  # 2 heatmap cells in frame px
            for n, p in enumerate(sel):
                gt.append((img, fr.keypoints[p], fr.visible[p], fr.boxes[p]))
                for k in np.nonzero(fr.visible[p])[0]:
                    q = poses.keypoints[n, k] + 0.5
                    others = [fr.keypoints[o, k] for o in range(len(fr.boxes)) if fr.visible[o, k] and o != p]
                    d_own = np.linalg.norm(q - fr.keypoints[p, k])
                    d_other = min((np.linalg.norm(q - o) for o in others), default=np.inf)
                    correct += int(d_own <= tol and d_own < d_other)
                    total += 1
        results[mode] = {"oks_ap": _coco_eval(gt, pred), "assignment_accuracy": correct / max(total, 1),
                         "persons": len(gt), "joints": total}
        emit(proof="prn", what="held-out overlapping persons", assign=mode, **results[mode])
    emit(proof="prn", what="verdict", prn_beats_max_and_ucr=bool(
        results["prn"]["oks_ap"] > max(results["max"]["oks_ap"], results["ucr"]["oks_ap"])
        and results["prn"]["assignment_accuracy"] > max(results["max"]["assignment_accuracy"],
                                                        results["ucr"]["assignment_accuracy"])))


# ---------------------------------------------------------------------------------------------- (b)
def proof_overfit(args) -> None:
    from estimators.multiposenet import create_multiposenet_estimator
    from estimators.training.coco_eval import coco_keypoint_eval
    from estimators.training.config import load_config
    from estimators.training.datasets import read_image
    from estimators.training.multiposenet_data import load_coco_images
    from estimators.training.multiposenet_loop import train_multiposenet
    from eval_posetrack import coco_keypoint_results

    torch.set_flush_denormal(True)
    tmp = Path(tempfile.mkdtemp(prefix="mpn_overfit_"))
    s = args.size
    no_aug = ["augment.scale_range=[1.0,1.0]", "augment.scale_sigma=0.0", "augment.rotation=0.0",
              "augment.rotation_prob=0.0", "augment.flip_prob=0.0"]
    t0 = time.time()
    # stage 1: random backbone (no ImageNet weights here) -> BatchNorm on batch statistics
    kpt = load_config(KPT, _common(str(tmp / "kpt")) + no_aug + [
        f"input_size=[{s},{s}]", "batch_size=4", f"epochs={args.kpt_steps}", "batchnorm=batch",
        "multiposenet.backbone_weights=null", "multiposenet.patch=full", f"multiposenet.heatmap_sigma={args.sigma}",
        "multiposenet.patience=30", "multiposenet.save_every=0", f"schedule.lr={args.kpt_lr:.12f}"])
    r1 = train_multiposenet(kpt)
    head = float(np.mean(r1.final_losses[:3]))
    tail = float(np.mean(r1.final_losses[-3:]))
    emit(proof="overfit", stage="keypoint", steps=len(r1.steps), input=s, lr=args.kpt_lr,
         final_loss_first3=head, final_loss_last3=tail, final_loss_ratio=head / tail,
         total_loss_first3=float(np.mean(r1.losses[:3])), total_loss_last3=float(np.mean(r1.losses[-3:])),
         seconds=round(r1.seconds, 1))
    # stage 2: the person subnet at the inference scale (longer side s for these landscape images)
    det = load_config(DET, _common(str(tmp / "det")) + [
        f"model.init_checkpoint={r1.checkpoint}", f"multiposenet.shorter_side={s}", f"multiposenet.max_side={s}",
        "augment.flip_prob=0.0", "batch_size=4", f"epochs={args.det_steps}", f"schedule.lr={args.det_lr:.12f}",
        "multiposenet.patience=30", "multiposenet.save_every=0"])
    r2 = train_multiposenet(det)
    emit(proof="overfit", stage="detection", steps=len(r2.steps), lr=args.det_lr,
         loss_first3=float(np.mean(r2.losses[:3])), loss_last3=float(np.mean(r2.losses[-3:])),
         seconds=round(r2.seconds, 1))
    # stage 3: the PRN from the 4 images' annotations on the same input grid
    prn = load_config(PRN, _common(str(tmp / "prn")) + [
        f"model.init_checkpoint={r2.checkpoint}", f"input_size=[{s},{s}]", "batch_size=12",
        f"epochs={args.prn_steps}", "multiposenet.save_every=0", f"schedule.lr={args.prn_lr:.12f}"])
    r3 = train_multiposenet(prn)
    emit(proof="overfit", stage="prn", steps=len(r3.steps), loss_first3=float(np.mean(r3.losses[:3])),
         loss_last3=float(np.mean(r3.losses[-3:])), seconds=round(r3.seconds, 1))
    _, images = load_coco_images(COCO_ANN, COCO_DIR)
    for mode in ("prn", "max", "ucr"):
        est = create_multiposenet_estimator(r3.checkpoint, assign=mode, input_size=(s, s), max_detections=20)
        results, n_boxes = [], 0
        for im in images:
            boxes, scores, poses = est.predict(read_image(im.image_path))
            n_boxes += len(boxes)
            if len(boxes):
                results += coco_keypoint_results(im.image_id, poses.keypoints, poses.keypoint_scores,
                                                 poses.pose_scores)
        stats = coco_keypoint_eval(str(COCO_ANN), results)
        emit(proof="overfit", what="COCO keypoint AP, own boxes", assign=mode, AP=stats["AP"], AP50=stats["AP .5"],
             AR=stats["AR"], boxes=n_boxes, gt_persons=int(sum(len(im.keypoints) for im in images)))
    emit(proof="overfit", what="total", seconds=round(time.time() - t0, 1), torch_threads=torch.get_num_threads())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="proof", required=True)
    a = sub.add_parser("prn")
    a.add_argument("--epochs", type=int, default=4)
    a.add_argument("--batch", type=int, default=32)
    a.add_argument("--lr", type=float, default=1e-4)  # the paper's (the authors' opt.py: 1e-3, batch 8: worse here)
    b = sub.add_parser("overfit")
    b.add_argument("--size", type=int, default=192)
    b.add_argument("--sigma", type=float, default=1.5)
    b.add_argument("--kpt-steps", type=int, default=60)
    b.add_argument("--kpt-lr", type=float, default=2e-4)  # 1e-3 diverges from random init
    b.add_argument("--det-steps", type=int, default=20)
    b.add_argument("--det-lr", type=float, default=1e-4)
    b.add_argument("--prn-steps", type=int, default=60)
    b.add_argument("--prn-lr", type=float, default=1e-4)
    args = p.parse_args()
    if not COCO_ANN.is_file():
        print(f"missing data: {COCO_ANN}", file=sys.stderr)
        return 2
    (proof_prn if args.proof == "prn" else proof_overfit)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
