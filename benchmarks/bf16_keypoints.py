"""Effect of the bf16 fast path on decoded keypoints, measured on an HRNet with PEAKED heatmaps. One JSON line.

Random weights give flat heatmaps whose argmax is noise, so bf16-vs-fp32 keypoint differences measured on them
mean nothing. This script first makes a peaked model: it trains the network briefly (``--steps``, default
150, batch ``--batch``) on person crops of the real COCO images of MMPose's test data
(``mmpose_testdata/coco`` under ``$POSETRACK_SHARED/data``; test_coco.json, the people with labelled joints)
with Gaussian heatmap targets (sigma 2, peak 1, centre int(x/4 + 0.5), JointsMSELoss = 0.5 * weighted MSE, Adam,
``--lr`` 1e-3) and light scale/rotation jitter. It then runs the un-jittered crops through fp32 eager, the fp32
fast path and the bf16 fast path (``estimators.optimize``),
decodes each joint by argmax + quarter-pixel offset toward the higher neighbour (HRNet convention), and
reports the displacement between fp32 and bf16 keypoints in input-crop pixels and in image pixels
(labelled joints), how often the argmax cell changed, the max heatmap difference, and how peaked the heatmaps
are (the training memorises 14 people, which is the point: peaked maps, not accuracy).

Usage: ``python benchmarks/bf16_keypoints.py [--model hrnet_w32] [--steps 150] [--batch 4]
[--lr 1e-3] [--time-budget 480] [--threads N] [--load ckpt.pth] [--save ckpt.pth]``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from estimators import build_model  # noqa: E402
from estimators.optimize import max_abs_diff, optimize_for_inference  # noqa: E402
from estimators.spec import HRNET  # noqa: E402

_SHARED = Path(os.environ.get("POSETRACK_SHARED", Path(__file__).resolve().parents[2] / "shared"))
COCO_DIR = _SHARED / "data" / "mmpose_testdata" / "coco"
MEAN = np.array(HRNET.mean, np.float32)  # RGB order (HRNET.rgb)
STD = np.array(HRNET.std, np.float32)
STRIDE = 4
SIGMA = 2.0


def load_people(coco_dir: Path) -> list[dict]:
    """Annotated people: image (H, W, 3) uint8 BGR, bbox xywh image px, keypoints (17, 3) image px + visibility."""
    ann_file = coco_dir / "test_coco.json"
    try:
        data = json.loads(ann_file.read_text())
    except OSError as exc:
        raise OSError(f"{ann_file}: cannot read COCO annotations ({exc})") from exc
    files = {im["id"]: im["file_name"] for im in data["images"]}
    images: dict[int, np.ndarray] = {}
    people = []
    for ann in data["annotations"]:
        if ann.get("iscrowd") or ann.get("num_keypoints", 0) == 0:
            continue
        iid = ann["image_id"]
        if iid not in images:
            path = coco_dir / files[iid]
            img = cv2.imread(str(path))
            if img is None:
                raise OSError(f"{path}: cannot decode image (annotation {ann['id']})")
            images[iid] = img
        people.append({"image": images[iid], "bbox": np.asarray(ann["bbox"], np.float32),
                       "keypoints": np.asarray(ann["keypoints"], np.float32).reshape(-1, 3)})
    return people


def crop_transform(bbox_xywh: np.ndarray, size_hw: tuple[int, int], scale_mult: float = 1.0,
                   rot_deg: float = 0.0) -> np.ndarray:
    """(2, 3) affine image px -> crop px: HRNet box convention (aspect fix, x1.25), centre to crop centre."""
    h, w = size_hw
    x, y, bw, bh = bbox_xywh
    cx, cy = x + bw / 2, y + bh / 2
    aspect = w / h
    if bw > aspect * bh:
        bh = bw / aspect
    else:
        bw = bh * aspect
    box_w = bw * 1.25 * scale_mult  # crop width in image px
    s = w / box_w  # crop px per image px
    a = math.radians(rot_deg)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], np.float32) * s
    t = np.array([w / 2, h / 2], np.float32) - r @ np.array([cx, cy], np.float32)
    return np.concatenate([r, t[:, None]], axis=1)


def make_sample(person: dict, size_hw: tuple[int, int], rng: np.random.Generator | None):
    """-> input (3, H, W) float32 normalised RGB, target (K, H/4, W/4) float32, weight (K,), affine (2, 3)."""
    h, w = size_hw
    scale_mult, rot = (1.0, 0.0) if rng is None else (float(rng.uniform(0.85, 1.15)), float(rng.uniform(-20, 20)))
    m = crop_transform(person["bbox"], size_hw, scale_mult, rot)
    crop = cv2.warpAffine(person["image"], m, (w, h), flags=cv2.INTER_LINEAR)
    x = ((crop[:, :, ::-1].astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)
    kp = person["keypoints"]
    pts = kp[:, :2] @ m[:, :2].T + m[:, 2]
    hh, hw = h // STRIDE, w // STRIDE
    ys, xs = np.mgrid[0:hh, 0:hw].astype(np.float32)
    target = np.zeros((len(kp), hh, hw), np.float32)
    weight = (kp[:, 2] > 0).astype(np.float32)
    for k, (px, py) in enumerate(pts):
        mu_x, mu_y = int(px / STRIDE + 0.5), int(py / STRIDE + 0.5)
        if weight[k] == 0 or not (0 <= mu_x < hw and 0 <= mu_y < hh):
            weight[k] = 0
            continue
        target[k] = np.exp(-((xs - mu_x) ** 2 + (ys - mu_y) ** 2) / (2 * SIGMA**2))
    return np.ascontiguousarray(x), target, weight, m


def decode_argmax_quarter(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """heatmaps (N, K, h, w) -> coords (N, K, 2) heatmap px (x, y) with +/-0.25 toward the higher neighbour,
    maxvals (N, K)."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    idx = flat.argmax(-1)
    maxvals = flat.max(-1)
    coords = np.stack([idx % w, idx // w], -1).astype(np.float32)
    for i in range(n):
        for j in range(k):
            hm = heatmaps[i, j]
            px, py = int(coords[i, j, 0]), int(coords[i, j, 1])
            if 1 < px < w - 1 and 1 < py < h - 1:
                coords[i, j] += np.sign([hm[py, px + 1] - hm[py, px - 1], hm[py + 1, px] - hm[py - 1, px]]) * 0.25
    return coords, maxvals


def train(model: torch.nn.Module, people: list[dict], size_hw, steps: int, batch: int, budget_s: float,
          seed: int, lr: float) -> dict:
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses, t0, done = [], time.perf_counter(), 0
    for step in range(steps):
        if time.perf_counter() - t0 > budget_s:
            break
        picks = rng.choice(len(people), size=batch, replace=len(people) < batch)
        xs, ts, ws, _ = zip(*(make_sample(people[i], size_hw, rng) for i in picks))
        x, t, w = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ts)), torch.from_numpy(np.stack(ws))
        out = model(x)
        loss = 0.5 * (((out - t) ** 2).mean(dim=(2, 3)) * w).mean()  # JointsMSELoss with target weights
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        done = step + 1
        if step % 10 == 0:
            print(f"# step {step} loss {losses[-1]:.6f} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
    model.eval()
    return {"steps": done, "seconds": round(time.perf_counter() - t0, 1), "loss_first10": float(np.mean(losses[:10])),
            "loss_last10": float(np.mean(losses[-10:]))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="hrnet_w32")
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--time-budget", type=float, default=480.0, help="stop training after this many seconds")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=COCO_DIR)
    ap.add_argument("--save", type=Path, default=None, help="write the trained state dict here")
    ap.add_argument("--load", type=Path, default=None,
                    help="start from this state dict (with --steps 0: measure only, no training)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    size = (args.height, args.width)
    people = load_people(args.data)
    model = build_model(args.model)
    line: dict = {"model": args.model, "input": f"{size[0]}x{size[1]}", "people": len(people)}
    if args.load:
        model.load_state_dict(torch.load(args.load, weights_only=True))
        line["loaded"] = str(args.load)
    model.eval()
    if args.steps > 0:
        line["training"] = train(model, people, size, args.steps, args.batch, args.time_budget, args.seed, args.lr)
        if args.save:
            torch.save(model.state_dict(), args.save)

    samples = [make_sample(p, size, None) for p in people]
    x = torch.from_numpy(np.stack([s[0] for s in samples]))
    weight = np.stack([s[2] for s in samples]) > 0  # (N, K) labelled joints inside the crop
    fp32 = optimize_for_inference(model, example_shape=(1, 3, *size))
    bf16 = optimize_for_inference(model, precision="bf16", example_shape=(1, 3, *size))
    with torch.inference_mode():
        hm = {"eager": model(x).float(), "fp32": fp32(x), "bf16": bf16(x)}
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hm["bf16_autocast"] = model(x).float()
    coords = {k: decode_argmax_quarter(v.numpy()) for k, v in hm.items()}
    ref_xy, ref_max = coords["eager"]
    # Image px per input px for each person: the crop scale (no rotation at test time).
    img_per_input = np.array([1.0 / np.hypot(*s[3][0, :2]) for s in samples], np.float32)[:, None]
    line["peakedness"] = {
        "heatmap_max_mean_labelled": round(float(ref_max[weight].mean()), 4),
        "heatmap_max_median_labelled": round(float(np.median(ref_max[weight])), 4),
        "fraction_labelled_max_gt_0.5": round(float((ref_max[weight] > 0.5).mean()), 3),
        "labelled_joints": int(weight.sum()),
    }
    # Accuracy of the memorised model against the labels (input px), to show the peaks are where joints are.
    gt_in = np.stack([p["keypoints"][:, :2] @ s[3][:, :2].T + s[3][:, 2] for p, s in zip(people, samples)])
    line["eager_error_vs_labels_input_px_median"] = round(float(np.median(
        np.linalg.norm(ref_xy * STRIDE - gt_in, axis=-1)[weight])), 2)
    for name in ("fp32", "bf16", "bf16_autocast"):
        xy, _ = coords[name]
        d_in = np.linalg.norm((xy - ref_xy) * STRIDE, axis=-1)  # (N, K) input-crop px
        d_img = d_in * img_per_input  # image px
        line[name] = {
            "max_abs_heatmap_diff": float(f"{max_abs_diff(hm[name], hm['eager']):.3g}"),
            "keypoint_shift_input_px": {"mean": round(float(d_in[weight].mean()), 4),
                                        "max": round(float(d_in[weight].max()), 3),
                                        "max_all_joints": round(float(d_in.max()), 3)},
            "keypoint_shift_image_px": {"mean": round(float(d_img[weight].mean()), 4),
                                        "max": round(float(d_img[weight].max()), 3)},
            "joints_moved": int((d_in[weight] > 0).sum()),
            "joints_moved_more_than_1_input_px": int((d_in[weight] > 1.0).sum()),
        }
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
