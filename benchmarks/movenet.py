"""MoveNet + person detector figures, one JSON line per setting: COCO keypoint AP on MMPose's 4 COCO test images
(thunder / lightning on the ground-truth boxes; CenterNet, NanoDet or MoveNet multipose boxes + thunder, and the
multipose poses themselves), the people each detector finds, and on the real PoseTrack clip the players each
detector finds and the whole tracker (the default preset with that detector) poses per frame, live and final,
with the extra poses per frame (``--thresholds`` sweeps the detector score thresholds).

Speed (``--speed``, printed first; ``--speed-only`` skips the rest): thunder and lightning crops/s at batch 8
through the converted torch.fx networks (inference_mode, channels_last), CenterNet ms per 512x512 image, NanoDet
per 416x416, and the achieved convolution rate 2 x MACs x crops/s as a fraction of the fp32 GEMM rate (torch.mm
of two 2048x2048 matrices) measured in the same run, interleaved round by round; each figure is the best of
``--rounds`` rounds so that a shared machine's load spikes drop out (the 1-minute load average is printed).

Usage: ``python benchmarks/movenet.py [--data DIR] [--threads N] [--paddings 1.25 ...] [--detectors ...]
[--thresholds 0.2 0.3] [--speed]``. Needs the TF.js models in the weights cache (``posetrack weights fetch``)
and MMPose's test data folder (``--data``, default ``$POSETRACK_SHARED/data/mmpose_testdata``).
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

# OpenMP's wait policy is left as the environment has it, so the figures are what `posetrack track` gives. Measured
# on this 2-core machine near idle (load 1-2), realtime preset at 640x360: 31.0 frames/s with the runtime's default
# (libgomp: spin a while, then sleep), 20.7 with OMP_WAIT_POLICY=PASSIVE, 1.7 with ACTIVE (spinning threads starve
# the decoder and OpenCV's threads). On a machine loaded by other jobs PASSIVE avoids the worst (lightning batch 2 at
# load 11: 1,000 ms CPU per call spinning, 25 ms passive): set it in the environment there.
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


def to_coco(img_id: int, poses) -> list[dict]:
    out = []
    for k in range(len(poses)):
        kp = np.concatenate([poses.keypoints[k], poses.keypoint_scores[k][:, None]], 1)
        out.append(dict(image_id=int(img_id), category_id=1, keypoints=kp.ravel().tolist(),
                        score=float(poses.pose_scores[k])))
    return out


def conv_macs(network: torch.nn.Module, example: torch.Tensor) -> int:
    """MACs of one forward of ``example`` (batch 1): weight.numel() x output positions of every convolution
    (``TfConv2d``), the convention of ``benchmarks/macs.py``."""
    from estimators.tfjs.ops import TfConv2d

    total = [0]

    def hook(module, inputs, output):
        total[0] += module.conv.weight.numel() * output.shape[2] * output.shape[3]

    handles = [m.register_forward_hook(hook) for m in network.modules() if isinstance(m, TfConv2d)]
    with torch.inference_mode():
        network(example)
    for h in handles:
        h.remove()
    return total[0]


def speed(rounds: int, batch: int = 8) -> dict:
    """Best-of-``rounds`` throughput of the converted networks and the GEMM rate, measured interleaved."""
    from estimators.tfjs.centernet import CenterNetPersons
    from estimators.tfjs.fetch import model_json
    from estimators.tfjs.known import load_heads
    from estimators.tfjs.nanodet import NanoDetPersons

    nets = {name: load_heads(model_json(name)) for name in ("movenet-thunder", "movenet-lightning")}
    centernet = CenterNetPersons(model_json("centernet")).network
    nanodet = NanoDetPersons(model_json("nanodet")).network
    gen = torch.Generator().manual_seed(0)
    crops = {name: torch.rand(batch, s, s, 3, generator=gen) * 255
             for name, s in (("movenet-thunder", 256), ("movenet-lightning", 192))}
    image = torch.rand(1, 512, 512, 3, generator=gen) * 255
    image_nanodet = torch.rand(1, 3, 416, 416, generator=gen)
    macs = {name: conv_macs(net, crops[name][:1]) for name, net in nets.items()}
    a, b = torch.randn(2048, 2048, generator=gen), torch.randn(2048, 2048, generator=gen)
    best: dict[str, float] = {}

    def timed(key: str, fn) -> None:
        t = time.perf_counter()
        fn()
        best[key] = min(best.get(key, float("inf")), time.perf_counter() - t)

    with torch.inference_mode():
        for name, net in nets.items():  # warm-up (oneDNN primitive creation)
            net(crops[name])
        centernet(image)
        nanodet(image_nanodet)
        torch.mm(a, b)
        for _ in range(rounds):
            timed("gemm", lambda: torch.mm(a, b))
            for name, net in nets.items():
                timed(name, lambda net=net, x=crops[name]: net(x))
            timed("centernet", lambda: centernet(image))
            timed("nanodet", lambda: nanodet(image_nanodet))
    gemm = 2 * 2048 ** 3 / best["gemm"]
    out: dict[str, object] = {"threads": torch.get_num_threads(), "rounds": rounds, "batch": batch,
                              "gemm_fp32_gflops": round(gemm / 1e9, 1)}
    for name in nets:
        rate = batch / best[name]
        key = name.replace("-", "_")
        out[f"{key}_gmac_per_crop"] = round(macs[name] / 1e9, 3)
        out[f"{key}_crops_per_s"] = round(rate, 1)
        out[f"{key}_ms_per_crop"] = round(1000 / rate, 1)
        out[f"{key}_conv_rate_of_gemm"] = round(2 * macs[name] * rate / gemm, 3)
    out["centernet_ms_per_512_image"] = round(1000 * best["centernet"], 1)
    out["nanodet_ms_per_416_image"] = round(1000 * best["nanodet"], 1)
    out["load_avg_1min"] = round(os.getloadavg()[0], 2)
    out["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
    return out


DETECTORS = ("centernet", "nanodet", "movenet_multipose")


def bf16_figures(fp32, images, gt_boxes, ap_of, rounds: int) -> dict:
    """Thunder with precision bf16 against fp32 (``fp32``, the estimator) on the ground-truth boxes: COCO AP,
    keypoint drift (px of the 256 px crop) and score change per keypoint, and ms per crop at batch 8 (best of
    ``rounds``, interleaved with fp32 in the same run)."""
    from estimators.tfjs.movenet import crop_square, square_regions

    bf16 = get_spec("movenet_thunder").builder(None, max_batch=16, padding=fp32.padding, precision="bf16")
    scores = [np.ones(len(b), np.float32) for b in gt_boxes]
    crops = np.stack([crop_square(np.ascontiguousarray(im[:, :, ::-1]), r, 256)
                      for im, b in zip(images, gt_boxes) for r in square_regions(b, fp32.padding)])
    a, b = fp32.run_crops(crops), bf16.run_crops(crops)
    drift = np.linalg.norm((a[..., :2] - b[..., :2]) * 256, axis=-1)
    best = {"fp32": float("inf"), "bf16": float("inf")}
    batch = crops[:8]
    for _ in range(rounds):
        for key, est in (("fp32", fp32), ("bf16", bf16)):
            t0 = time.perf_counter()
            est.run_crops(batch)
            best[key] = min(best[key], time.perf_counter() - t0)
    return {"estimator": "movenet_thunder", "precision": "bf16 vs fp32", "boxes": "ground truth",
            "coco_ap_bf16": round(ap_of(bf16.estimate_batch(images, gt_boxes, scores))[0], 4),
            "coco_ap_fp32": round(ap_of(fp32.estimate_batch(images, gt_boxes, scores))[0], 4),
            "drift_px_median": round(float(np.median(drift)), 3),
            "drift_px_p90": round(float(np.quantile(drift, 0.9)), 3),
            "drift_px_max": round(float(drift.max()), 2),
            "score_change_max": round(float(np.abs(a[..., 2] - b[..., 2]).max()), 3),
            "ms_per_crop_fp32": round(1000 * best["fp32"] / len(batch), 1),
            "ms_per_crop_bf16": round(1000 * best["bf16"] / len(batch), 1),
            "crops": len(crops), "load_avg_1min": round(os.getloadavg()[0], 2)}


def _clip_figures(cfg, est, detector, frames) -> dict:
    """The whole tracker on the clip (the default preset's settings with this detector): poses per frame and
    the players among them, live (every pose kept) and final (the written records, confirmed tracks)."""
    clip = [Frame(i, i / 25.0, im, f"{i:06d}") for i, im in enumerate(frames)]
    out: dict[str, object] = {}
    for key, final in (("live", False), ("final", True)):
        records = [r for _, r in build_tracker(cfg, estimator=est, detector=detector).run(clip, final=final)]
        posed = [players_found(np.array(p, np.float32), r.boxes) for p, r in zip(CLIP_PLAYERS, records)]
        out[f"tracker_{key}_players_posed_per_frame"] = posed
        out[f"tracker_{key}_extra_poses_per_frame"] = [len(r.boxes) - n for r, n in zip(records, posed)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paddings", type=float, nargs="+", default=[DEFAULT_PADDING])
    ap.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    ap.add_argument("--thresholds", type=float, nargs="+", default=None,
                    help="detector score thresholds to sweep (default: each detector's configured one)")
    ap.add_argument("--flip", action="store_true", help="also measure thunder with the flip test")
    ap.add_argument("--bf16", action="store_true",
                    help="also measure thunder in bf16 (opt-in precision): COCO AP, keypoint drift from fp32, speed")
    ap.add_argument("--speed", action="store_true", help="also print the throughput figures (first)")
    ap.add_argument("--speed-only", action="store_true", help="print only the throughput figures")
    ap.add_argument("--no-clip", action="store_true", help="skip the tracker runs on the clip")
    ap.add_argument("--rounds", type=int, default=5, help="timing rounds; the best of them is reported")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.speed or args.speed_only:
        print(json.dumps(speed(args.rounds)), flush=True)
        if args.speed_only:
            return 0
    from pycocotools.coco import COCO

    coco_dir = args.data / "coco"
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(coco_dir / "test_coco.json"))
    ids = list(gt.getImgIds())
    images = [cv2.imread(str(coco_dir / gt.loadImgs(i)[0]["file_name"])) for i in ids]
    gt_boxes = []
    for img_id in ids:
        anns = [a for a in gt.loadAnns(gt.getAnnIds(imgIds=img_id, iscrowd=False)) if a["num_keypoints"] > 0]
        gt_boxes.append(np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                   a["bbox"][1] + a["bbox"][3]] for a in anns], np.float32).reshape(-1, 4))

    def ap_of(poses_list) -> tuple[float, float]:
        return coco_ap(gt, [d for i, p in zip(ids, poses_list) for d in to_coco(i, p)])

    # 1. the estimators on the ground-truth boxes
    estimators = {}
    for name in ("movenet_thunder", "movenet_lightning"):
        for pad in args.paddings:
            est = get_spec(name).builder(None, max_batch=16, padding=pad)
            estimators[(name, pad)] = est
            res = ap_of(est.estimate_batch(images, gt_boxes, [np.ones(len(b), np.float32) for b in gt_boxes]))
            print(json.dumps({"estimator": name, "padding": pad, "boxes": "ground truth",
                              "coco_ap": round(res[0], 4), "coco_ar": round(res[1], 4)}), flush=True)
    if args.bf16:
        print(json.dumps(bf16_figures(estimators[("movenet_thunder", args.paddings[0])], images, gt_boxes, ap_of,
                                      args.rounds)), flush=True)
    if args.flip:
        est = get_spec("movenet_thunder").builder(None, max_batch=16, padding=args.paddings[0], flip_test=True)
        res = ap_of(est.estimate_batch(images, gt_boxes, [np.ones(len(b), np.float32) for b in gt_boxes]))
        print(json.dumps({"estimator": "movenet_thunder", "flip_test": True, "boxes": "ground truth",
                          "coco_ap": round(res[0], 4)}), flush=True)

    # 2. each detector (at each threshold) + thunder: COCO AP, and the tracker on the clip
    clip_dir = args.data / CLIP
    frames = [cv2.imread(str(clip_dir / f"{i:06d}.jpg")) for i in range(len(CLIP_PLAYERS))]
    thunder = estimators[("movenet_thunder", args.paddings[0])]
    for kind in args.detectors:
        defaults = load_track_config(None, settings=[("detector.kind", kind)]).detector
        for thr in args.thresholds or [defaults.score_threshold]:
            modes = ["seed", "replace"] if kind == "movenet_multipose" else [None]
            for mode in modes:
                settings = [("detector.kind", kind), ("detector.score_threshold", thr)]
                if mode is not None:
                    settings.append(("detector.poses", mode))
                cfg = load_track_config(None, settings=settings)
                det = create_detector(kind, **{k: v for k, v in vars(cfg.detector).items() if k != "kind"})
                t0 = time.perf_counter()
                dets = det.detect(images)
                det_ms = 1000 * (time.perf_counter() - t0) / len(images)
                if mode == "replace":  # the detector's own poses, no top-down pass
                    poses = [d.poses for d in dets]
                else:
                    poses = thunder.estimate_batch(images, [d.boxes for d in dets], [d.scores for d in dets])
                res = {"detector": kind, "score_threshold": thr, "poses": mode or "top-down thunder",
                       "people_annotated": int(sum(len(b) for b in gt_boxes)),
                       "boxes": int(sum(len(d) for d in dets)),
                       "people_found_iou_0.5": int(sum(players_found(g, d.boxes, 0.5) for g, d in zip(gt_boxes, dets))),
                       "detect_ms_per_image": round(det_ms, 1)}
                res["coco_ap"], res["coco_ar"] = (round(v, 4) for v in ap_of(poses))
                if not args.no_clip:
                    clip_dets = det.detect(frames)
                    res["clip_players_detected_per_frame"] = [
                        players_found(np.array(p, np.float32), d.boxes) for p, d in zip(CLIP_PLAYERS, clip_dets)]
                    res["clip_boxes_per_frame"] = [len(d) for d in clip_dets]
                    res.update(_clip_figures(cfg, thunder, det, frames))
                res["threads"], res["load_avg_1min"] = args.threads, round(os.getloadavg()[0], 2)
                print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
