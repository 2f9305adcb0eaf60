"""Benchmark of ``eval_posetrack.evaluate`` (AP + MOTA): a large synthetic workload, and a small evaluation
timed as whole processes against a stand-in of the official tool with the challenge-era motmetrics.

Part 1 (synthetic, in-process): builds N sequences x F frames x P people (jitter, id switches, misses, false
positives, unlabeled frames, ignore regions; GT coordinates with 2 decimals, predictions with 3), then times:
  * ours: ``evaluate(gt, pred)`` end to end (reading + validation + AP + MOTA);
  * the same with ``mot_engine="motmetrics"`` (one real MOTAccumulator per joint per sequence);
  * the literal baseline ``tests/eval_posetrack/reference.py`` (poseval's per-frame x person x person x joint
    Python loops + real MOTAccumulators), on the first ``--baseline-seqs`` sequences only (it is slow).

Part 2 (small evaluation, whole processes, ``--small-gt``; default: the five Bonn PoseTrack train sequences of
the shared data, 310 frames, against a perturbed copy written here): the wall time of each command from
process start to exit, the best of ``--small-repeats`` interleaved runs:
  * ours: ``python -m tracker.cli eval --gt G --pred P`` (default fast engine), and with
    ``--mot-engine motmetrics``; our fixed start-up (interpreter + the imports ``posetrack eval`` needs);
  * the baseline, run by ``--baseline-python``: a Python with motmetrics 1.1.x (the 2018 challenge era; the
    official poseval cannot be installed from PyPI) running ``tests/eval_posetrack/reference.py``, our
    loop-by-loop restatement of poseval's protocol with one ``motmetrics.MOTAccumulator`` per joint per
    sequence, as poseval does. motmetrics 1.1.3 does not import on Python >= 3.10 as released; two names of
    the standard library it uses are aliased back first (``collections.Iterable``, ``inspect.getargspec``).
    It is a stand-in: poseval's own file handling and shapely are not in it. The official tool's speed is
    not measured here. A throw-away Python for it (outside the project)::

        python -m venv /tmp/mm11 && /tmp/mm11/bin/pip install motmetrics==1.1.3 "pandas<2" "numpy<2" scipy

Prints one JSON line per part (seconds, frames per second, ratios measured in the same run).

    python benchmarks/eval.py [--seqs 50 --frames 150 --people 8 --baseline-seqs 3]
    python benchmarks/eval.py --small-only --baseline-python /tmp/mm11/bin/python
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
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

SHARED = Path(os.environ.get("POSETRACK_SHARED", REPO.parent / "shared"))
BONN_PT18 = SHARED / "data" / "bonn_posetrack_train" / "pt18"

# the baseline process: motmetrics 1.1.x + the literal restatement of poseval (tests/eval_posetrack/reference.py)
BASELINE_CHILD = """
import collections, collections.abc, importlib.util, inspect, json, sys, warnings
# motmetrics 1.1.x predates Python 3.10: alias back two standard-library names it uses (no behaviour change)
if not hasattr(collections, "Iterable"):
    collections.Iterable = collections.abc.Iterable
if not hasattr(inspect, "getargspec"):
    inspect.getargspec = inspect.getfullargspec
warnings.simplefilter("ignore")
repo, gt, pred = sys.argv[1:4]
sys.path.insert(0, repo)
import motmetrics
spec = importlib.util.spec_from_file_location("reference", repo + "/tests/eval_posetrack/reference.py")
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)
if gt != "-":
    out = reference.evaluate_reference(gt, pred)
    print(json.dumps({"motmetrics": motmetrics.__version__} | {k: float(v[-1]) for k, v in out.items()}))
"""
# our fixed start-up: the interpreter and every import `posetrack eval` makes before it reads a file
OURS_STARTUP = ("import tracker.cli, eval_posetrack.cli; from eval_posetrack.evaluate import evaluate; "
                "from eval_posetrack.records import PoseTrackWarning")


def _subset(src: Path, dst: Path, names: list[str]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(src / n, dst / n)
    return dst


def perturb(gt: Path, pred: Path, seed: int = 0) -> Path:
    """A prediction folder from a PoseTrack 2018 ground-truth folder: every visible joint moved by N(0, 4 px)
    with a score in [0.2, 1), 5 % of the persons dropped, the track ids of two persons swapped on 10 % of the
    frames with two or more."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pred.mkdir(parents=True, exist_ok=True)
    for path in sorted(gt.glob("*.json")):
        data = json.loads(path.read_text())
        kept = []
        for ann in data["annotations"]:
            if rng.random() < 0.05:
                continue
            kps = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)
            seen = kps[:, 2] > 0
            kps[seen, :2] += rng.normal(0, 4.0, (int(seen.sum()), 2))
            ann["keypoints"] = [round(float(v), 3) for v in kps.reshape(-1)]
            ann["scores"] = [round(float(v), 4) for v in rng.uniform(0.2, 1.0, len(kps))]
            kept.append(ann)
        by_image: dict = {}
        for ann in kept:
            by_image.setdefault(ann["image_id"], []).append(ann)
        for anns in by_image.values():
            if len(anns) >= 2 and rng.random() < 0.1:
                a, b = rng.choice(len(anns), 2, replace=False)
                anns[a]["track_id"], anns[b]["track_id"] = anns[b]["track_id"], anns[a]["track_id"]
        data["annotations"] = kept
        (pred / path.name).write_text(json.dumps(data))
    return pred


def prepare_gt(src: Path, dst: Path) -> tuple[Path, list[str]]:
    """A copy of a PoseTrack 2018 ground-truth folder that motmetrics 1.1.x can score: its accumulator fails
    (IndexError) on a joint with no event in a whole sequence, so the official tool with it could not
    evaluate the Bonn sequences (no nose anywhere). The nose is put midway between head_bottom and head_top
    where both are annotated; a sequence still lacking a joint is left out. Returns (folder, names left out)."""
    import numpy as np

    from eval_posetrack import JOINT_NAMES

    dst.mkdir(parents=True, exist_ok=True)
    left_out = []
    for path in sorted(src.glob("*.json")):
        data = json.loads(path.read_text())
        names = data["categories"][0]["keypoints"]
        nose, bottom, top = (names.index(n) for n in ("nose", "head_bottom", "head_top"))
        seen = np.zeros(len(names), bool)
        for ann in data["annotations"]:
            kps = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)
            if kps[nose, 2] == 0 and kps[bottom, 2] > 0 and kps[top, 2] > 0:
                kps[nose] = [*np.round((kps[bottom, :2] + kps[top, :2]) / 2, 2), 1]
                ann["keypoints"] = [float(v) for v in kps.reshape(-1)]
            seen |= kps[:, 2] > 0
        if not all(seen[names.index(n)] for n in JOINT_NAMES):
            left_out.append(path.name)
            continue
        (dst / path.name).write_text(json.dumps(data))
    return dst, left_out


def _wall(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, **kw)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds, proc


def small_evaluation(gt: Path, tmp: Path, baseline_python: str | None, repeats: int, seed: int) -> dict:
    """Whole-process wall times of a small evaluation: ours (two engines), our start-up, the baseline."""
    gt_source = gt
    gt, left_out = prepare_gt(gt, tmp / "small_gt")
    pred = perturb(gt, tmp / "small_pred", seed)
    frames = sum(len(json.loads(p.read_text())["images"]) for p in gt.glob("*.json"))
    summary_path = tmp / "small_summary.json"
    ours = [sys.executable, "-m", "tracker.cli", "eval", "--gt", str(gt), "--pred", str(pred)]
    commands = {
        "python_bare": [sys.executable, "-c", "pass"],
        "ours_startup": [sys.executable, "-c", OURS_STARTUP],
        "ours_fast": [*ours, "--json", str(summary_path)],
        "ours_motmetrics_engine": [*ours, "--mot-engine", "motmetrics"],
    }
    if baseline_python:
        commands["baseline_startup"] = [baseline_python, "-c", BASELINE_CHILD, str(REPO), "-", "-"]
        commands["baseline"] = [baseline_python, "-c", BASELINE_CHILD, str(REPO), str(gt), str(pred)]
    times: dict[str, list[float]] = {name: [] for name in commands}
    outputs: dict[str, subprocess.CompletedProcess] = {}
    for _ in range(max(1, repeats)):            # interleaved: the machine's load hits every command alike
        for name, cmd in commands.items():
            seconds, outputs[name] = _wall(cmd)
            times[name].append(seconds)
    best = {name: min(t) for name, t in times.items()}
    ours_summary = json.loads(summary_path.read_text())
    out: dict = {
        "benchmark": "small evaluation, whole processes (wall s, best of runs)",
        "gt": str(gt_source), "sequences": len(list(gt.glob("*.json"))), "left_out": left_out, "frames": frames,
        "seconds": {name: round(t, 3) for name, t in best.items()},
        "seconds_all_runs": {name: [round(x, 3) for x in t] for name, t in times.items()},
        "ours_fixed_startup_s": round(best["ours_startup"], 3),
        "ours_fast_totals": {k: ours_summary[k]["Total"] for k in ("AP", "MOTA", "MOTP", "Prec", "Rec")},
        "cpu_count": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
    }
    if baseline_python:
        base = json.loads(outputs["baseline"].stdout.strip().splitlines()[-1])
        out["baseline"] = (f"{baseline_python}: motmetrics {base['motmetrics']} (two stdlib aliases), "
                           f"tests/eval_posetrack/reference.py (poseval's protocol, loop by loop; one "
                           f"MOTAccumulator per joint per sequence)")
        out["baseline_totals"] = {k: base[k] for k in ("AP", "MOTA", "MOTP", "Prec", "Rec")}
        out["max_abs_diff_ours_vs_baseline"] = max(abs(out["ours_fast_totals"][k] - base[k])
                                                   for k in out["baseline_totals"])
        out["baseline_fixed_startup_s"] = round(best["baseline_startup"], 3)
        out["speedup_whole_process_vs_baseline"] = round(best["baseline"] / best["ours_fast"], 1)
        out["speedup_motmetrics_engine_vs_baseline"] = round(best["baseline"] / best["ours_motmetrics_engine"], 1)
    return out


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
    ap.add_argument("--small-gt", type=Path, default=BONN_PT18,
                    help="ground-truth folder of the small whole-process comparison (PoseTrack 2018 files)")
    ap.add_argument("--small-repeats", type=int, default=3)
    ap.add_argument("--baseline-python", help="a Python with motmetrics 1.1.x for the baseline (see above)")
    ap.add_argument("--small-only", action="store_true", help="only the small whole-process comparison")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if args.small_gt.is_dir():
        with tempfile.TemporaryDirectory(prefix="posetrack_eval_small_") as tmp:
            print(json.dumps(small_evaluation(args.small_gt, Path(tmp), args.baseline_python, args.small_repeats,
                                              args.seed)), flush=True)
    else:
        print(json.dumps({"benchmark": "small evaluation", "skipped": f"{args.small_gt} not found"}), flush=True)
    if args.small_only:
        return
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
            "max_abs_diff_vs_reference": agree, "max_abs_diff_vs_motmetrics_engine": agree_mm,
            "cpu_count": os.cpu_count(),
        }
        print(json.dumps(out))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
