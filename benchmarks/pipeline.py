"""Pipeline speed: frames/s and milliseconds per stage for a source and a preset, and association time
for 1-100 people per frame. Prints one JSON line per measurement.

    python benchmarks/pipeline.py --source VIDEO [--preset default] [overrides ...] [--repeat 2]
    python benchmarks/pipeline.py --association-only

VIDEO: e.g. the 5-frame PoseTrack18 clip ``000001_mpiinew_test.mp4`` of MMPose's test data
(``tests/data/posetrack18/videos/000001_mpiinew_test/`` in MMPose).
"""
from __future__ import annotations

import argparse
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
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bench_pipeline(source: str, preset: str, overrides: list[str], repeat: int, resize: int | None) -> dict:
    import tempfile

    import cv2
    import torch

    from tracker.build import build_tracker
    from tracker.config import load_track_config
    from tracker.sources import Frame, open_source

    cfg = load_track_config(preset, overrides)
    tracker = build_tracker(cfg)
    if resize:
        # a real video at the target resolution, so decoding is measured at that size too
        tmp = Path(tempfile.mkdtemp()) / "resized.mp4"
        writer = None
        with open_source(source) as src:
            for f in src:
                h, w = f.image.shape[:2]
                img = cv2.resize(f.image, (resize, round(h * resize / w)), interpolation=cv2.INTER_AREA)
                if writer is None:
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), 25, img.shape[1::-1])
                writer.write(img)
        writer.release()
        source = str(tmp)
    with open_source(source) as src:  # open once before timing (container parsing is not per frame)
        pass
    t0 = time.perf_counter()
    frames = []
    with open_source(source) as src:
        for f in src:
            frames.append(Frame(f.index, f.timestamp, f.image, f.name))
    decode_ms = 1000 * (time.perf_counter() - t0) / max(len(frames), 1)
    # warm-up pass (first-call costs: thread pools, interpreter allocation), then timed passes
    for f in frames[:2]:
        tracker.step(f)
    tracker.reset()
    tracker.times.seconds.clear()
    tracker.times.frames = 0
    t0 = time.perf_counter()
    c0 = time.process_time()  # CPU seconds of every thread of this process: what the frames cost, whatever the load
    persons = 0
    for r in range(repeat):
        tracker.reset()
        for i, f in enumerate(frames):
            # consecutive repeats continue the clip forwards and backwards so the motion stays smooth
            persons += len(tracker.step(Frame(r * len(frames) + i, f.timestamp, f.image, f.name)))
        frames = frames[::-1]
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0
    n = tracker.times.frames
    stages = tracker.times.ms_per_frame()
    stages["decode"] = decode_ms
    return {
        "bench": "pipeline", "source": str(source), "preset": preset, "overrides": overrides,
        "resolution": list(frames[0].image.shape[1::-1]), "frames": n, "persons_per_frame": round(persons / n, 2),
        "fps_end_to_end": round(n / (seconds + decode_ms * n / 1000), 2), "fps_without_decode": round(n / seconds, 2),
        "ms_per_frame": {k: round(v, 2) for k, v in stages.items()},
        # CPU ms per frame summed over threads; / threads = the wall time of an idle machine if the threads were
        # busy all along (a lower bound: an estimate for a loaded machine, not a measurement)
        "cpu_ms_per_frame": round(1000 * cpu_seconds / n, 1),
        "fps_if_idle_estimate": round(n / (cpu_seconds / torch.get_num_threads()), 2),
        "det_interval": cfg.propagation.det_interval, "estimator": getattr(cfg.estimator, "name", cfg.estimator.kind),
        "detector": cfg.detector.kind, "threads": torch.get_num_threads(),
        "load_avg_1min": round(os.getloadavg()[0], 2),  # a shared machine: say how loaded it was
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


def bench_association(people: list[int], frames: int = 50, seed: int = 0) -> list[dict]:
    from association import PoseAssociator
    from association.keypoints import COCO17
    from tracker.build import build_associator
    from tracker.config import load_track_config

    cfg = load_track_config(None)
    rng = np.random.default_rng(seed)
    out = []
    for n in people:
        base = rng.uniform(0, 1500, (n, 1, 2)) + rng.normal(0, 30, (n, 17, 2))
        vel = rng.normal(0, 3, (n, 1, 2))
        assoc: PoseAssociator = build_associator(cfg, COCO17.sigmas)  # the config's settings
        scores = np.full((n, 17), 0.9, np.float32)
        shift = lambda p: p + 1.0  # noqa: E731  (a cheap warp: the flow lookup is timed in the pipeline bench)
        t0 = time.perf_counter()
        for t in range(frames):
            kp = (base + vel * t + rng.normal(0, 1, base.shape)).astype(np.float32)
            lo, hi = kp.min(axis=1), kp.max(axis=1)
            assoc.update(kp, scores, np.concatenate([lo, hi], axis=1), shift if t else None)
        ms = 1000 * (time.perf_counter() - t0) / frames
        out.append({"bench": "association", "people": n, "ms_per_frame": round(ms, 3)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source", help="a video file (required unless --association-only)")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--repeat", type=int, default=4, help="passes over the clip (short clips need several)")
    ap.add_argument("--resize", type=int, default=None, help="resize frames to this width first (e.g. 640)")
    ap.add_argument("--association-only", action="store_true")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    if not args.association_only:
        if not args.source:
            ap.error("--source VIDEO is required (or --association-only)")
        print(json.dumps(bench_pipeline(args.source, args.preset, args.overrides, args.repeat, args.resize)))
    for row in bench_association([1, 3, 10, 30, 100]):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
