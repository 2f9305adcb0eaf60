"""Benchmark of ``eval_posetrack.evaluate`` (AP + MOTA) on a synthetic PoseTrack18 workload.

Builds N sequences x F frames x P people (jitter, id switches, misses, false positives, unlabeled
frames, ignore regions; GT coordinates with 2 decimals, predictions with 3), then times:
  * ours: ``evaluate(gt, pred)`` end to end (reading + validation + AP + MOTA, fast MOT engine);
  * the same with ``mot_engine="motmetrics"`` (one real MOTAccumulator per joint per sequence);
  * the literal baseline ``tests/eval_posetrack/reference.py`` (poseval's per-frame x person x person x joint
    Python loops + real MOTAccumulators), on the first ``--baseline-seqs`` sequences only (it is slow).
Prints one JSON line: seconds, frames per second, and speed ratios (frames/s over frames/s). The
official poseval reportedly needs ~25 s per 300 frames (12 frames/s) with its original motmetrics;
that figure is quoted, not measured here.

    python benchmarks/eval.py [--seqs 50 --frames 150 --people 8 --baseline-seqs 3]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eval_posetrack import evaluate  # noqa: E402


def _test_module(name: str) -> ModuleType:
    """A module of tests/eval_posetrack/ (the literal oracle and the workload builder are test material)."""
    path = REPO / "tests" / "eval_posetrack" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"eval_posetrack_tests_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


evaluate_reference = _test_module("reference").evaluate_reference
make_workload = _test_module("synthetic").make_workload

OFFICIAL_FPS = 300 / 25.0


def _subset(src: Path, dst: Path, names: list[str]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(src / n, dst / n)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seqs", type=int, default=50)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--people", type=int, default=8)
    ap.add_argument("--baseline-seqs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of ours (best is reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mot-engine", choices=("motmetrics", "fast"), default="motmetrics",
        help="MOT engine of the timed runs (the default is the real motmetrics accumulator)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import motmetrics  # noqa: F401  (import costs are not part of the timings)
    import scipy.optimize  # noqa: F401

    tmp = Path(tempfile.mkdtemp(prefix="posetrack_eval_bench_"))
    try:
        t0 = time.perf_counter()
        gt, pred = make_workload(tmp / "full", n_seq=args.seqs, n_frames=args.frames, n_people=args.people,
                                 seed=args.seed)
        t_gen = time.perf_counter() - t0
        n_frames = args.seqs * args.frames
        times = []
        for _ in range(max(1, args.repeats)):
            t0 = time.perf_counter()
            summary = evaluate(gt, pred, mot_engine=args.mot_engine)
            times.append(time.perf_counter() - t0)
        ours = min(times)
        names = sorted(os.listdir(gt))[: args.baseline_seqs]
        sgt = _subset(gt, tmp / "sub" / "gt", names)
        spr = _subset(pred, tmp / "sub" / "pred", names)
        n_sub = len(names) * args.frames
        t0 = time.perf_counter()
        sub_ours = evaluate(sgt, spr, mot_engine=args.mot_engine)
        t_sub_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        sub_mm = evaluate(sgt, spr, mot_engine="motmetrics")
        t_mm = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = evaluate_reference(str(sgt), str(spr))
        t_ref = time.perf_counter() - t0
        agree = max(abs(sub_ours[m]["Total"] - float(ref[m][-1])) for m in ("AP", "MOTA", "MOTP", "Prec", "Rec"))
        agree_mm = max(abs(sub_ours[m]["Total"] - sub_mm[m]["Total"]) for m in ("MOTA", "MOTP", "Prec", "Rec"))
        fps = n_frames / ours
        out = {
            "benchmark": "eval_posetrack.evaluate",
            "workload": {"sequences": args.seqs, "frames_per_sequence": args.frames, "people": args.people,
                         "frames": n_frames, "generation_s": round(t_gen, 2)},
            "seconds": round(ours, 3), "seconds_all_runs": [round(t, 3) for t in times],
            "mot_engine": args.mot_engine, "frames_per_s": round(fps, 1),
            "AP_total": round(summary["AP"]["Total"], 4), "MOTA_total": round(summary["MOTA"]["Total"], 4),
            "subset_frames": n_sub, "subset_ours_s": round(t_sub_ours, 3),
            "subset_motmetrics_engine_s": round(t_mm, 3), "subset_naive_reference_s": round(t_ref, 3),
            "naive_reference_frames_per_s": round(n_sub / t_ref, 1),
            "motmetrics_engine_frames_per_s": round(n_sub / t_mm, 1),
            "speedup_vs_naive_reference": round(fps / (n_sub / t_ref), 1),
            "speedup_vs_motmetrics_engine": round(fps / (n_sub / t_mm), 1),
            "official_poseval_quoted_frames_per_s": OFFICIAL_FPS,
            "speedup_vs_official_quoted": round(fps / OFFICIAL_FPS, 1),
            "max_abs_diff_vs_reference": agree, "max_abs_diff_vs_motmetrics_engine": agree_mm,
            "cpu_count": os.cpu_count(),
        }
        print(json.dumps(out))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
