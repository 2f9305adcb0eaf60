"""Tracking quality on real human motion: the Bonn Multi-Person PoseTrack train sequences turned into
detector-like input, associated as the pipeline associates, scored with the official PoseTrack metrics.

Data: ``$POSETRACK_SHARED/data/bonn_posetrack_train/pt18`` (5 densely annotated sequences of the Bonn
Multi-Person PoseTrack data set, Iqbal, Milan, Gall, CVPR 2017, in PoseTrack 2018 JSON; 310 frames, 1,208
poses, 2-5 people each; no images). Per frame and noise level the ground truth becomes what a detector and
estimator would give (seeded numpy Generator, same input for every tracker at one level):

- the poses, shuffled, without ids, in the 17 PoseTrack18 / COCO-17 slots (joints absent in the GT are absent);
- Gaussian keypoint noise, per coordinate sigma = ``joint_noise`` x the person's head size (PoseTrack's
  head size: 0.6 x the diagonal of the GT head box);
- missed people: half of ``miss`` as single missed frames, half as bursts of 3-10 missed frames of one
  person (the realised share is printed);
- false positives: Poisson(``fp`` x people in the frame) poses copied from elsewhere in the sequence,
  rescaled (x0.5-1) and moved to a random place inside the area the sequence's people cover, joint
  scores 0.2-0.6 (true people 0.4-1.0);
- each joint dropped with probability ``drop``;
- the detector box: the box around the pose's joints scoring >= 0.2, enlarged by 15% (the pipeline's
  propagated-box rule, ``association.boxes_from_keypoints``), each side at least 2 head sizes (a pose with one
  usable joint would otherwise get a box of zero area, hence OKS 0 with everything).

Association: ``association.PoseAssociator`` with the paper's plain settings (HRNet section 4.3: greedy
matching, OKS >= 0.3, Q = 5 lost frames, joints >= 0.2, no life cycle, no re-identification), and ours (the
same matching plus the life cycle, re-identification of tracks lost up to 3 s by the motion gate, and the
files finalised as the pipeline finalises them: confirmed tracks only, their tentative frames written back,
gaps up to 5 frames interpolated, ``tracker.record.TrackFinaliser``); no flow (identity warp), no images
(so no appearance cue). Timestamps are frame / 25 s. Predictions are written as PoseTrack18 files into a
temporary folder and scored with ``eval_posetrack.evaluate`` (poseval's MOTA, Prec, Rec). The Totals are the
mean over the 14 joints the Bonn GT annotates: it has no nose, and poseval's per-joint MOTA of a joint without
any GT is NaN (skipped) until a frame without any prediction makes poseval add its dummy update (1 object,
1 miss, 1 false positive for every joint), which turns the nose's MOTA into -100 % and costs the Total 13
points for one empty frame. Identity figures come from the known source of each detection:
``idsw_per_100_tracks`` (a real track's detection gets another id than its previous detection,
per 100 GT tracks), ``frag_per_100_tracks`` (a real track, written before, is absent from the output and later
written again), ``ids_per_gt_track`` (distinct ids given to the detections of one real track, mean over GT
tracks), ``fp_ids`` (distinct ids that only false positives carry).

Finally the association time per frame with 30 people (the people of the busiest sequence replicated side by
side, middle noise), the median and 95th percentile over its frames, with the full OKS matrix and with
the gated pairs (``PoseAssociator(gate=True)``, the default: the same matches). The machine may be shared: timings
are an upper bound.

Each level is drawn ``--repeats`` times (seeds [seed, level index, repeat]); MOTA/Prec/Rec are the mean over
the draws (MOTA_min/max their range), the identity figures are pooled counts. Prints one JSON line per
(level, tracker) and one for the timing. Run:
    .venv/bin/python benchmarks/tracking_quality.py [--levels clean,low,mid,high] [--seed 0] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from association import PoseAssociator, boxes_from_keypoints
from association.keypoints import COCO17
from eval_posetrack import (
    JOINT_NAMES,
    MAX_TRACK_ID,
    PoseTrack18Writer,
    evaluate,
    joints15_to_coco17,
    read_sequence,
)
from tracker.record import PoseRecord, TrackFinaliser

_SHARED = Path(os.environ.get("POSETRACK_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DEFAULT_GT = _SHARED / "data" / "bonn_posetrack_train" / "pt18"
KP_THRESHOLD = 0.2  # joints below this are ignored by OKS and by the detector box


@dataclass(frozen=True)
class NoiseLevel:
    """joint_noise: sigma per coordinate / head size. miss: share of missed people. fp: false positives per
    real person. drop: share of dropped joints."""

    joint_noise: float
    miss: float
    fp: float
    drop: float


LEVELS = {
    "clean": NoiseLevel(0.0, 0.0, 0.0, 0.0),
    "low": NoiseLevel(0.05, 0.05, 0.02, 0.05),
    "mid": NoiseLevel(0.10, 0.15, 0.05, 0.10),  # the target level
    "high": NoiseLevel(0.20, 0.20, 0.10, 0.20),
}


def plain_tracker() -> PoseAssociator:
    """The paper's tracker: greedy, OKS 0.3, Q = 5, joints >= 0.2."""
    return PoseAssociator(min_similarity=0.3, max_lost_frames=5, keypoint_score_threshold=KP_THRESHOLD,
                          method="greedy", sigmas=COCO17.sigmas)


FPS = 25.0  # the Bonn files carry no frame rate; timestamps are frame / FPS


def our_tracker() -> PoseAssociator:
    """Ours: the paper's matching plus the life cycle (confirmed after 3 matched frames in a row or a
    confirmation score >= 0.85, the input pose score standing in for a box score; tentative tracks die at
    their first miss) and re-identification of tracks lost up to 3 s
    (motion gate only: the benchmark has no images, hence no appearance cue)."""
    return PoseAssociator(min_similarity=0.3, max_lost_frames=5, keypoint_score_threshold=KP_THRESHOLD,
                          method="greedy", sigmas=COCO17.sigmas, min_hits=3, confirm_score=0.85,
                          max_lost_seconds=3.0, reid_min_similarity=0.3, reid_gate=1.0, reid_gate_rate=1.0)


# name -> (associator factory, gaps of at most this many frames interpolated in the files)
TRACKERS = {"paper_plain": (plain_tracker, 0), "ours_no_gap_fill": (our_tracker, 0), "ours": (our_tracker, 5)}


# ------------------------------------------------------------------------------------------ detector input
@dataclass
class FrameInput:
    """One frame of detector-like input. keypoints (N, 17, 2) px in PoseTrack18 slots, scores (N, 17)
    (0 = joint absent), boxes (N, 4) xyxy px, source (N,) int64 GT track id or -1 for a false positive."""

    image_name: str
    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    source: np.ndarray


def _head_size(head_boxes: np.ndarray) -> np.ndarray:
    """(P, 4) xyxy px GT head boxes -> (P,) px PoseTrack head size (0.6 x diagonal); 40 px where absent."""
    head = 0.6 * np.hypot(head_boxes[:, 2] - head_boxes[:, 0], head_boxes[:, 3] - head_boxes[:, 1])
    return np.where(np.isfinite(head), head, 40.0)


def _detector_boxes(kps: np.ndarray, scores: np.ndarray, head_size: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy px: the box around the joints >= KP_THRESHOLD enlarged by 15%, each side at least 2 head
    sizes about its centre (a detector boxes the visible person, never a single point)."""
    boxes = boxes_from_keypoints(kps, scores, KP_THRESHOLD, enlarge=0.15).astype(np.float64)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = np.maximum((boxes[:, 2:] - boxes[:, :2]) / 2, head_size[:, None])
    return np.concatenate([centre - half, centre + half], axis=1)


def _missing_mask(track_ids: list[np.ndarray], miss: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Per frame (P,) bool "missed": independent misses (miss / 2) plus bursts of 3-10 frames (miss / 2)."""
    burst_left: dict[int, int] = {}
    mean_burst = 6.5
    start_p = (miss / 2) / mean_burst
    out = []
    for ids in track_ids:
        missed = rng.random(len(ids)) < miss / 2
        for p, tid in enumerate(ids.tolist()):
            if burst_left.get(tid, 0) == 0 and rng.random() < start_p:
                burst_left[tid] = int(rng.integers(3, 11))
            if burst_left.get(tid, 0) > 0:
                missed[p] = True
                burst_left[tid] -= 1
        out.append(missed)
    return out


def make_input(seq, level: NoiseLevel, rng: np.random.Generator) -> tuple[list[FrameInput], dict]:
    """Detector-like frames of one GT sequence (see the module docstring) and counts of what was done."""
    frames = seq.frames
    all_kp = [joints15_to_coco17(f.keypoints, f.present.astype(np.float64)) for f in frames]
    present_all = np.concatenate([s for _, s in all_kp]) > 0
    pts_all = np.concatenate([k for k, _ in all_kp])[present_all]
    area_lo, area_hi = pts_all.min(0), pts_all.max(0)
    pool = [(fi, p) for fi, f in enumerate(frames) for p in range(f.num_persons)]
    missing = _missing_mask([f.track_ids for f in frames], level.miss, rng)
    counts = {"gt_poses": 0, "missed": 0, "false_positives": 0}
    out = []
    for fi, f in enumerate(frames):
        kp17, present17 = all_kp[fi]
        present17 = present17 > 0
        size = _head_size(f.head_boxes)
        kps = kp17 + rng.normal(0.0, 1.0, kp17.shape) * (level.joint_noise * size)[:, None, None]
        scores = rng.uniform(0.4, 1.0, present17.shape)
        keep_joint = present17 & (rng.random(present17.shape) >= level.drop)
        scores = np.where(keep_joint, scores, 0.0)
        keep = ~missing[fi]
        counts["gt_poses"] += f.num_persons
        counts["missed"] += int((~keep).sum())
        kps, scores, source = kps[keep], scores[keep], f.track_ids[keep].astype(np.int64)
        # false positives: a pose from elsewhere, rescaled and moved into the covered area
        n_fp = int(rng.poisson(level.fp * f.num_persons)) if level.fp > 0 else 0
        fps_k, fps_s, fps_size = [], [], []
        for _ in range(n_fp):
            sfi, sp = pool[int(rng.integers(len(pool)))]
            k, pr = all_kp[sfi][0][sp], all_kp[sfi][1][sp] > 0
            if not pr.any():
                continue
            centre = k[pr].mean(0)
            target = rng.uniform(area_lo, area_hi)
            scale = rng.uniform(0.5, 1.0)
            moved = (k - centre) * scale + target
            fps_k.append(moved)
            fps_size.append(_head_size(frames[sfi].head_boxes[sp:sp + 1])[0] * scale)
            fps_s.append(np.where(pr & (rng.random(pr.shape) >= level.drop), rng.uniform(0.2, 0.6, pr.shape), 0.0))
        counts["false_positives"] += len(fps_k)
        if fps_k:
            kps = np.concatenate([kps, np.stack(fps_k)])
            scores = np.concatenate([scores, np.stack(fps_s)])
            source = np.concatenate([source, np.full(len(fps_k), -1, np.int64)])
        usable = (scores >= KP_THRESHOLD).any(1)  # a detection has at least one usable joint
        kps, scores, source = kps[usable], scores[usable], source[usable]
        order = rng.permutation(len(source))
        kps, scores, source = kps[order], scores[order], source[order]
        kps = np.where(scores[..., None] > 0, kps, 0.0)
        sizes = np.concatenate([size[keep], np.asarray(fps_size, np.float64)])[usable][order]
        boxes = _detector_boxes(kps, scores, sizes)
        out.append(FrameInput(f.image_name, kps, scores, boxes, source))
    return out, counts


# ------------------------------------------------------------------------------------------------ scoring
def identity_metrics(frames: list[FrameInput], ids: list[np.ndarray], gt_seq) -> dict[str, float]:
    """Counts from the known source of each detection (see the module docstring), summed for one sequence."""
    last_id: dict[int, int] = {}
    given: dict[int, set] = {}
    written_before: set = set()
    gap: set = set()
    switches = frags = 0
    fp_ids: set = set()
    real_ids: set = set()
    for fr, tid, gt in zip(frames, ids, gt_seq.frames):
        seen_now = {}
        for s, t in zip(fr.source.tolist(), tid.tolist()):
            if s < 0:
                fp_ids.add(t)
                continue
            real_ids.add(t)
            seen_now[s] = t
        for s in gt.track_ids.tolist():
            if s in seen_now:
                t = seen_now[s]
                if s in last_id and last_id[s] != t:
                    switches += 1
                if s in gap:
                    frags += 1
                    gap.discard(s)
                last_id[s] = t
                given.setdefault(s, set()).add(t)
                written_before.add(s)
            elif s in written_before:
                gap.add(s)
    gt_tracks = len({int(t) for f in gt_seq.frames for t in f.track_ids})
    return {"switches": switches, "frags": frags, "gt_tracks": gt_tracks,
            "ids_given": sum(len(v) for v in given.values()), "tracks_given": len(given),
            "fp_ids": len(fp_ids - real_ids)}


def pose_scores(scores: np.ndarray) -> np.ndarray:
    """(N, 17) joint scores -> (N,) pose score: the mean over the joints >= KP_THRESHOLD (0 without any)."""
    usable = scores >= KP_THRESHOLD
    return np.where(usable.any(1), (scores * usable).sum(1) / np.maximum(usable.sum(1), 1), 0.0)


def annotated_mean(per_joint: dict[str, float], annotated: list[str]) -> float:
    """poseval's Total over the joints the GT annotates (see the module docstring)."""
    return float(np.nanmean([per_joint[name] for name in annotated]))


def run_tracker(make_tracker, inputs: list[list[FrameInput]], max_gap: int = 0
                ) -> tuple[list[list[FrameInput]], list[list[np.ndarray]], float]:
    """Associate every sequence with a fresh tracker and finalise the files as the pipeline does
    (``tracker.record.TrackFinaliser``: only confirmed tracks, their tentative frames written back, gaps of at
    most ``max_gap`` frames interpolated). Returns per sequence the written frames (interpolated poses carry
    their track's source) and their ids, and the mean association ms per frame (finalising not timed)."""
    all_out, all_ids, elapsed, n = [], [], 0.0, 0
    for frames in inputs:
        tracker = make_tracker()
        finaliser = TrackFinaliser(delay=max(tracker.min_hits - 1, max_gap + 1 if max_gap else 0), max_gap=max_gap)
        final = []
        for fi, fr in enumerate(frames):
            t0 = time.perf_counter()
            tid = tracker.update(fr.keypoints, fr.scores, fr.boxes, None, confirm_scores=pose_scores(fr.scores),
                                 timestamp=fi / FPS)
            elapsed += time.perf_counter() - t0
            n += 1
            rec = PoseRecord(fr.boxes, np.ones(len(tid)), fr.keypoints, fr.scores, pose_scores(fr.scores),
                             track_ids=tid, extras={"source": fr.source})
            final += finaliser.push(fr, rec, tracker.last_confirmed)
        final += finaliser.flush()
        out = [FrameInput(fr.image_name, r.keypoints.astype(np.float64), r.keypoint_scores.astype(np.float64),
                          r.boxes.astype(np.float64), r.extras["source"]) for fr, r in final]
        all_out.append(out)
        all_ids.append([r.track_ids for _, r in final])
    return all_out, all_ids, 1000.0 * elapsed / max(n, 1)


def write_predictions(pred_dir: Path, seqs, inputs, ids) -> None:
    for seq, frames, seq_ids in zip(seqs, inputs, ids):
        with PoseTrack18Writer(pred_dir / Path(seq.path).name, flush_every=10**9, vid_id=seq.vid_id,
                               nframes=len(frames)) as writer:
            for fr, tid, gt in zip(frames, seq_ids, seq.frames):
                if len(tid) and tid.max() >= MAX_TRACK_ID:
                    raise RuntimeError(f"{seq.path}: track id {int(tid.max())} >= {MAX_TRACK_ID}")
                writer.add_frame(fr.image_name, fr.keypoints, fr.scores, tid, boxes=fr.boxes,
                                 image_id=gt.image_id, keypoint_mask=fr.scores > 0)


def timing_30_people(seq, level: NoiseLevel, rng: np.random.Generator, make_tracker, people: int = 30) -> dict:
    """Association ms per frame with ``people`` people: the sequence's people replicated side by side."""
    frames, _ = make_input(seq, level, rng)
    span = max(float(np.max([f.boxes[:, 2].max() for f in frames if len(f.boxes)])), 1.0) + 100.0
    tracker = make_tracker()
    times = []
    for fi, fr in enumerate(frames):
        n = len(fr.source)
        if n == 0:
            continue
        copies = -(-people // n)
        shift = np.arange(copies, dtype=np.float64)[:, None, None] * span
        kps = (fr.keypoints[None] + shift[..., None] * np.array([1.0, 0.0])).reshape(-1, 17, 2)[:people]
        kps = np.where(np.tile(fr.scores, (copies, 1))[:people, :, None] > 0, kps, 0.0)
        scores = np.tile(fr.scores, (copies, 1))[:people]
        boxes = (fr.boxes[None] + shift * np.array([1.0, 0.0, 1.0, 0.0])).reshape(-1, 4)[:people]
        t0 = time.perf_counter()
        tracker.update(kps, scores, boxes, None, confirm_scores=pose_scores(scores), timestamp=fi / FPS)
        times.append(1000.0 * (time.perf_counter() - t0))
    times_a = np.asarray(times)
    return {"people": people, "frames": int(len(times_a)), "ms_median": round(float(np.median(times_a)), 3),
            "ms_p95": round(float(np.percentile(times_a, 95)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gt", type=Path, default=DEFAULT_GT, help="folder of PoseTrack18 GT sequence files")
    ap.add_argument("--levels", default="clean,low,mid,high", help=f"comma-separated, of {', '.join(LEVELS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5, help="noise draws per level (figures pooled over them)")
    ap.add_argument("--no-timing", action="store_true", help="skip the 30-people timing")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats: expected >= 1")
    levels = [s.strip() for s in args.levels.split(",") if s.strip()]
    for name in levels:
        if name not in LEVELS:
            ap.error(f"--levels: unknown level {name!r}; valid: {', '.join(LEVELS)}")
    files = sorted(args.gt.glob("*.json"))
    if not files:
        ap.error(f"--gt: no *.json sequence files in {args.gt}")
    seqs = [read_sequence(p, role="gt") for p in files]
    annotated = [name for j, name in enumerate(JOINT_NAMES)
                 if any(f.present[:, j].any() for s in seqs for f in s.frames)]
    for li, name in enumerate(levels):
        level = LEVELS[name]
        runs: dict[str, list[dict]] = {t: [] for t in TRACKERS}
        counts = {"gt_poses": 0, "missed": 0, "false_positives": 0}
        for rep in range(args.repeats):
            rng = np.random.default_rng([args.seed, li, rep])
            made = [make_input(s, level, rng) for s in seqs]
            inputs = [m[0] for m in made]
            for k in counts:
                counts[k] += sum(m[1][k] for m in made)
            for tname, (make, max_gap) in TRACKERS.items():
                written, ids, ms = run_tracker(make, inputs, max_gap)
                with tempfile.TemporaryDirectory(prefix="tracking_quality_") as tmp:
                    write_predictions(Path(tmp), seqs, written, ids)
                    summary = evaluate(args.gt, tmp, ap=False, track=True, mot_engine="fast")
                idm = [identity_metrics(fr, i, s) for fr, i, s in zip(written, ids, seqs)]
                run = {k: sum(d[k] for d in idm) for k in idm[0]}
                run.update({m: annotated_mean(summary[m]["per_joint"], annotated) for m in ("MOTA", "Prec", "Rec")},
                           ms=ms)
                runs[tname].append(run)
        for tname, rs in runs.items():
            tot = {k: sum(r[k] for r in rs) for k in ("switches", "frags", "gt_tracks", "ids_given", "tracks_given",
                                                       "fp_ids")}
            mota = [r["MOTA"] for r in rs]
            print(json.dumps({
                "level": name, **{k: getattr(level, k) for k in ("joint_noise", "miss", "fp", "drop")},
                "tracker": tname, "seed": args.seed, "repeats": args.repeats, "sequences": len(seqs),
                "missed_share": round(counts["missed"] / max(counts["gt_poses"], 1), 4),
                "false_positives_per_run": round(counts["false_positives"] / args.repeats, 1),
                "MOTA": round(float(np.mean(mota)), 2), "MOTA_min": round(min(mota), 2),
                "MOTA_max": round(max(mota), 2), "Prec": round(float(np.mean([r["Prec"] for r in rs])), 2),
                "Rec": round(float(np.mean([r["Rec"] for r in rs])), 2),
                "gt_tracks_per_run": tot["gt_tracks"] // args.repeats,
                "idsw_per_100_tracks": round(100.0 * tot["switches"] / tot["gt_tracks"], 1),
                "frag_per_100_tracks": round(100.0 * tot["frags"] / tot["gt_tracks"], 1),
                "ids_per_gt_track": round(tot["ids_given"] / max(tot["tracks_given"], 1), 3),
                "fp_ids_per_run": round(tot["fp_ids"] / args.repeats, 1),
                "assoc_ms_per_frame": round(float(np.mean([r["ms"] for r in rs])), 3),
            }), flush=True)
    if not args.no_timing:
        busiest = max(seqs, key=lambda s: sum(f.num_persons for f in s.frames))
        for tname, (make, _) in TRACKERS.items():
            for gate in (False, True):  # the full OKS matrix vs the gated pairs (same matches), in one run
                res = timing_30_people(busiest, LEVELS["mid"], np.random.default_rng([args.seed, 99]),
                                       lambda make=make, gate=gate: _with_gate(make(), gate))
                print(json.dumps({"timing": "association", "tracker": tname, "oks_gate": gate,
                                  "sequence": busiest.name, **res}), flush=True)


def _with_gate(tracker: PoseAssociator, gate: bool) -> PoseAssociator:
    tracker.gate = gate
    return tracker


if __name__ == "__main__":
    main()
