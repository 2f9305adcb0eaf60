"""MultiPoseNet speed against the number of people (the paper's Fig. 6), one JSON line per setting.

Usage: ``python benchmarks/multiposenet.py [--variant multiposenet_r50] [--people 1 5 20] [--size 576x384]
[--repeats 3] [--topdown hrnet_w32|none] [--threads N]``.

Random weights (no weights are shipped; the cost of the dense network does not depend on them) with
``torch.set_flush_denormal(True)`` (random-init activations would otherwise hit slow denormal arithmetic). The
frame is 576x384 (w x h, the paper's "384x576 sized inputs" of sec. 4.5), so the network input is exactly that
size. Per number of people N, synthesised: N person boxes laid out as an overlapping crowd over the frame.

- ``frame``: what the tracker's one-pass mode does per frame: ``detect(image)`` (the one network pass and the
  person subnet's boxes) then ``estimate(image, N boxes)`` (the cached heatmaps' peaks, N crops, one PRN
  forward on the N crops, argmax); a new image every call so the shared forward is never a cache hit.
  Frames/s and the ms of each half; ``fps_vs_1_person`` the ratio to N=1 measured in the same run.
- ``assign_synthetic``: the keypoint assignment alone on synthesised heatmaps of the N people (Gaussians at
  their 17 joints, the peaks the PRN sees with a trained network) - the same cost as the frame's estimate part.
- ``prn``: the PRN forward alone on N crops: ms, and ms per person.
- ``topdown`` (baseline, same run, random weights): a top-down estimator (default HRNet-W32 256x192 with its
  flip test, the tracker's default) on the same N boxes: its cost grows with N, MultiPoseNet's barely does.

Timing: every repeat runs each setting once in turn (interleaved, so a load change hits all alike); the median
and the best of the repeats are given (``frame_fps`` from medians, ``frame_fps_best`` from the best of each
half). Other processes share the CPU: compare ratios within one run. On a loaded machine use ``--threads 1``:
with 2 threads on 2 shared cores every op waits at its parallel barrier for a descheduled thread (measured here:
HRNet-W32 on one crop 0.37 s with 1 thread, 1.3-6.4 s with 2).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.macs import count_macs, count_params  # noqa: E402
from configs.loader import parse_wxh  # noqa: E402
from estimators.multiposenet import (  # noqa: E402
    KEYPOINT_STRIDE,
    NUM_KEYPOINTS,
    PRN_SIZE,
    VARIANTS,
    create_multiposenet_estimator,
    crop_maps,
)

# a standing person in box-normalised coordinates (x, y in [0, 1]) for the 17 COCO joints
TEMPLATE = np.array([
    [.50, .08], [.54, .06], [.46, .06], [.58, .08], [.42, .08], [.66, .22], [.34, .22], [.74, .38], [.26, .38],
    [.78, .52], [.22, .52], [.60, .55], [.40, .55], [.62, .75], [.38, .75], [.62, .94], [.38, .94]])


def crowd_boxes(n: int, width: int, height: int) -> np.ndarray:
    """(n, 4) float32 xyxy px: n person boxes (aspect 1:2 at most) on a grid over the frame, each 1.3x its cell
    so that neighbours overlap as in a crowd."""
    cols = int(np.ceil(np.sqrt(n * width / height / 2)))
    rows = int(np.ceil(n / cols))
    cw, ch = width / cols, height / rows
    bw, bh = min(1.3 * cw, 0.65 * ch * 1.3), 1.3 * ch
    boxes = []
    for i in range(n):
        cx, cy = (i % cols + 0.5) * cw, (i // cols + 0.5) * ch
        boxes.append([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
    return np.clip(np.array(boxes, np.float32), 0, [width, height, width, height]).astype(np.float32)


def crowd_heatmaps(boxes: np.ndarray, width: int, height: int) -> torch.Tensor:
    """(17, h/4, w/4) heatmaps: a Gaussian (std 1 cell, peak 1) at each joint of each person of ``boxes``."""
    h, w = height // KEYPOINT_STRIDE, width // KEYPOINT_STRIDE
    yy, xx = np.mgrid[0:h, 0:w]
    hm = np.zeros((NUM_KEYPOINTS, h, w), np.float32)
    for x1, y1, x2, y2 in boxes:
        pts = TEMPLATE * [x2 - x1, y2 - y1] + [x1, y1]
        for k, (x, y) in enumerate(pts / KEYPOINT_STRIDE - 0.5):
            hm[k] = np.maximum(hm[k], np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 2))
    return torch.from_numpy(hm)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _stats(seconds: list[float]) -> dict:
    return {"ms_median": round(1000 * statistics.median(seconds), 2), "ms_best": round(1000 * min(seconds), 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", default="multiposenet_r50", choices=sorted(VARIANTS))
    ap.add_argument("--people", nargs="+", type=int, default=[1, 5, 20])
    ap.add_argument("--size", default="576x384", help="frame = network input, WxH (default 576x384)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--topdown", default="hrnet_w32", help="top-down baseline on the same boxes, or 'none'")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = ap.parse_args(argv)
    width, height = parse_wxh(args.size, "--size")
    if args.repeats < 1 or any(n < 1 for n in args.people):
        ap.error("--repeats and --people must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    est = create_multiposenet_estimator(None, variant=args.variant, random_weights=True, input_size=(width, height))
    est.network.requires_grad_(False)
    est.prn.requires_grad_(False)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (height, width, 3), dtype=np.uint8) for _ in range(2)]
    topdown = None
    if args.topdown != "none":
        from estimators.factory import create_estimator

        topdown = create_estimator(args.topdown, random_weights=True)

    print(json.dumps({
        "model": args.variant, "input": f"{width}x{height}", "threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
        "network_params": count_params(est.network), "prn_params": count_params(est.prn),
        "network_macs": count_macs(est.network, (height, width)),
        "network_macs_480x480": count_macs(est.network, (480, 480)),
        "prn_macs_per_person": count_macs(est.prn, PRN_SIZE, in_channels=NUM_KEYPOINTS),
        **({"topdown": args.topdown, "topdown_input": f"{topdown.input_size[0]}x{topdown.input_size[1]}",
            "topdown_flip_test": bool(topdown.flip_test)} if topdown is not None else {}),
    }), flush=True)

    people = sorted(set(args.people))
    boxes = {n: crowd_boxes(n, width, height) for n in people}
    scores = {n: np.full(n, 0.9, np.float32) for n in people}
    heatmaps = {n: crowd_heatmaps(boxes[n], width, height) for n in people}
    crops = {n: crop_maps(heatmaps[n], torch.from_numpy(boxes[n]), KEYPOINT_STRIDE) for n in people}
    times: dict[str, list[float]] = {}

    def add(key: str, dt: float) -> None:
        times.setdefault(key, []).append(dt)

    with torch.inference_mode():
        est.detect(images[1])  # warm-up (oneDNN primitives)
        for n in people:
            est.estimate(images[1], boxes[n], scores[n])
            if topdown is not None:
                topdown.estimate(images[1], boxes[n], scores[n])
        for r in range(args.repeats):
            for n in people:
                image = images[(r * len(people) + people.index(n)) % 2]  # a new image: no cached forward
                add(f"detect/{n}", _timed(lambda image=image: est.detect(image)))
                add(f"estimate/{n}", _timed(lambda image=image, n=n: est.estimate(image, boxes[n], scores[n])))
                add(f"assign/{n}", _timed(lambda n=n: est.assign_keypoints(heatmaps[n], boxes[n], scores[n])))
                add(f"prn/{n}", _timed(lambda n=n: est.prn(crops[n])))
                if topdown is not None:
                    add(f"topdown/{n}", _timed(lambda image=image, n=n: topdown.estimate(image, boxes[n], scores[n])))
            print(f"# repeat {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    def frame_s(n: int, pick=statistics.median) -> float:
        return pick(times[f"detect/{n}"]) + pick(times[f"estimate/{n}"])

    base, base_best = frame_s(people[0]), frame_s(people[0], min)
    td_base = statistics.median(times[f"topdown/{people[0]}"]) if topdown is not None else None
    for n in people:
        line = {
            "people": n, "frame_fps": round(1 / frame_s(n), 3), "fps_vs_first": round(base / frame_s(n), 3),
            "frame_fps_best": round(1 / frame_s(n, min), 3), "fps_vs_first_best": round(base_best / frame_s(n, min), 3),
            "frame": {"detect": _stats(times[f"detect/{n}"]), "estimate": _stats(times[f"estimate/{n}"])},
            "assign_synthetic": _stats(times[f"assign/{n}"]),
            "prn": {**_stats(times[f"prn/{n}"]),
                    "ms_per_person": round(1000 * statistics.median(times[f"prn/{n}"]) / n, 3)},
        }
        if topdown is not None:
            td = statistics.median(times[f"topdown/{n}"])
            line["topdown"] = {**_stats(times[f"topdown/{n}"]), "fps_estimate_only": round(1 / td, 3),
                               "cost_vs_first": round(td / td_base, 2)}
        print(json.dumps(line), flush=True)
    print(json.dumps({"load_average_1min_end": round(os.getloadavg()[0], 2)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
