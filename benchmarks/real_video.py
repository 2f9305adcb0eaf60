"""Tracking on a real video without ground truth: proxy metrics of our tracker and of the paper's plain tracker,
side by side in one run (same frames, same detections).

Video: by default OpenCV's sample ``vtest.avi`` (768x576, 795 frames, 10 frames/s, a fixed camera over a
campus road; Debian package opencv-doc 4.6.0+dfsg-12), fetched into ``~/.cache/posetrack/videos`` by
``make sample-video`` (``scripts/fetch_sample_video.sh``). Any other video: ``--video PATH --people N``.

The people of vtest.avi, counted by eye on the frames (full-resolution crops: y 40-420 px every 25th frame from
0 to 200, y 40-576 px every 50th frame from 250 to 750; each person followed by clothing and position from one
look to the next): in frames 0-99 there are 7 distinct people: A (dark jacket, jeans, left of the lamp at frame
0), B (brown jacket, jeans, top centre), C (black, walking left), the three meeting at the lamp post and sign
from frame 25 to 125 and partly hidden by them; D (navy/red jacket, with a sheet of paper) and E (blonde, black
coat) walking in from the right at frame 25; F (dark jacket, jeans) from the right at frame 50; H (small, on the
far path top left) from frame 80. People visible (at least half of the body) on each looked-at frame are in
:data:`VISIBLE`. People enter and leave all the time (12 different ones by frame 250 alone), so the ids per
person are measured over frames 0-99 (:data:`WINDOW`, :data:`WINDOW_PEOPLE`), where all 7 stay in view once in.

Printed per tracker (one JSON line each; ``ours`` = the preset as configured, ``paper_plain`` = the same
detector, estimator and flow with the paper's association: greedy OKS >= 0.3, Q = 5 frames, no life cycle,
no re-identification, no appearance, no dying propagation, no gap filling):

- ``poses_per_frame``, ``distinct_ids``, ``track_length_histogram``, ``low_score_share`` (mean calibrated
  keypoint score < 0.5): ``tracker.record.TrackStats`` over the written (finalised) frames;
- ``visible_frames``: on the frames of :data:`VISIBLE` (when the video is vtest.avi), the people counted and
  the poses written, ``count_abs_error`` (mean |poses - people|) and ``count_exact_share``;
- ``window_ids``, ``ids_per_person``: distinct ids written in frames :data:`WINDOW` / the people counted there
  (for another video: distinct ids over the whole video / ``--people``);
- ``fps``: frames / the tracker's own seconds (detection counted for ``ours`` only: the detector runs once
  per frame and both trackers get its boxes; the estimator's poses of an identical box are shared too, so
  ``paper_plain``'s timing is a lower bound and only ``ours`` is a speed figure; the machine may be shared).

Run:  .venv/bin/python benchmarks/real_video.py [--video PATH] [--people N] [--max-frames N] [--preset movenet]
      [KEY=VALUE ...]   (overrides of ``ours``, e.g. association.min_hits=5)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# the repository first: this folder's estimators.py (a benchmark script) must not shadow the estimators package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_VIDEO = Path(os.environ.get("POSETRACK_VIDEO_CACHE", Path.home() / ".cache" / "posetrack" / "videos")) \
    / "vtest.avi"
VTEST_FRAMES = 795
WINDOW = (0, 100)  # frames [start, stop) over which the ids per person are counted
WINDOW_PEOPLE = 7  # distinct people in WINDOW (see the module docstring)
# frame index -> people visible (at least half of the body) in vtest.avi, counted by eye (module docstring)
VISIBLE = {0: 3, 25: 5, 50: 6, 75: 6, 100: 7, 125: 8, 150: 8, 175: 7, 200: 7, 250: 7, 300: 6, 350: 5,
           400: 3, 450: 3, 500: 4, 550: 6, 600: 6, 650: 6, 700: 8, 750: 8}

# the paper's plain tracker (HRNet section 4.3, FlowTrack): every extra of ours switched off
PAPER_PLAIN = [
    "association.match=greedy", "association.min_similarity=0.3", "association.max_lost_frames=5",
    "association.min_hits=1", "association.confirm_score=null", "association.max_lost_seconds=0",
    "association.appearance=false", "association.cut_threshold=null",
    "propagation.min_score=0", "propagation.duplicate_oks=1", "propagation.max_frames=1000000",
    "propagation.pose_nms_oks=null", "output.fill_gaps=0",
]


class SharedDetector:
    """The detector run once per frame for every tracker of the run: ``detect`` returns the stored result of
    the frame (by ``Frame.index``) when there is one. Only the current frame is kept."""

    def __init__(self, detector) -> None:
        self.detector = detector
        self._index: int | None = None
        self._result = None
        self.seconds = 0.0

    def detect(self, frames):
        if len(frames) != 1:
            raise ValueError("SharedDetector: one frame per call")
        if frames[0].index != self._index:
            t0 = time.perf_counter()
            self._result = self.detector.detect(frames)[0]
            self.seconds += time.perf_counter() - t0
            self._index = frames[0].index
        return [self._result]


class SharedEstimator:
    """The estimator shared by the trackers of the run: a pose estimated for a box (its xyxy px rounded to
    0.01 px and its score) in the current frame is computed once (top-down: a crop's pose depends on its box
    only). ``frame(index)`` starts a frame (forgets the previous one's poses)."""

    def __init__(self, estimator) -> None:
        self.estimator = estimator
        self.layout = estimator.layout
        self.num_keypoints = estimator.num_keypoints
        self._store: dict[bytes, tuple] = {}
        self.computed = 0
        self.reused = 0

    def frame(self) -> None:
        self._store = {}

    def estimate(self, image: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray, roi_points=None):
        from estimators.spec import Poses

        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(box_scores, np.float32).reshape(-1)
        keys = [np.round(b, 2).astype(np.float32).tobytes() + s.tobytes() for b, s in zip(boxes, scores)]
        todo = [i for i, k in enumerate(keys) if k not in self._store]
        self.computed += len(todo)
        self.reused += len(keys) - len(todo)
        if todo:
            hints = None if roi_points is None else np.asarray(roi_points)[todo]
            poses = self.estimator.estimate(image, boxes[todo], scores[todo], roi_points=hints)
            for j, i in enumerate(todo):
                self._store[keys[i]] = (poses.keypoints[j], poses.keypoint_scores[j], poses.pose_scores[j])
        rows = [self._store[k] for k in keys]
        k = self.num_keypoints
        return Poses(np.stack([r[0] for r in rows]).reshape(-1, k, 2), np.stack([r[1] for r in rows]).reshape(-1, k),
                     np.array([r[2] for r in rows], np.float32))


def _summary(name: str, stats, records: dict[int, object], seconds: float, frames: int, vtest: bool,
             people: int | None) -> dict:
    out = {"tracker": name, **stats.summary(), "frames": frames}
    if vtest:
        looked = {i: n for i, n in VISIBLE.items() if i in records}
        pairs = [(n, len(records[i])) for i, n in sorted(looked.items())]
        out["visible_frames"] = {str(i): {"people": n, "poses": p} for i, (n, p) in zip(sorted(looked), pairs)}
        if pairs:
            err = np.array([abs(p - n) for n, p in pairs], np.float64)
            out["count_abs_error"] = round(float(err.mean()), 3)
            out["count_exact_share"] = round(float((err == 0).mean()), 3)
        window = {int(t) for i, r in records.items() if WINDOW[0] <= i < WINDOW[1] for t in r.track_ids}
        if frames >= WINDOW[1]:
            out["window"] = list(WINDOW)
            out["window_people"] = WINDOW_PEOPLE
            out["window_ids"] = len(window)
            out["ids_per_person"] = round(len(window) / WINDOW_PEOPLE, 3)
    elif people:
        out["ids_per_person"] = round(out["distinct_ids"] / people, 3)
    out["fps"] = round(frames / max(seconds, 1e-9), 3)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides of 'ours'")
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help=f"video file (default: {DEFAULT_VIDEO})")
    ap.add_argument("--people", type=int, default=None,
                    help="distinct people in the video (another video than vtest.avi: ids per person)")
    ap.add_argument("--preset", default="movenet", help="tracking preset of both trackers (default: movenet)")
    ap.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    args = ap.parse_args(argv)
    if not args.video.is_file():
        if args.video == DEFAULT_VIDEO:
            sys.exit(f"real_video: the sample video {args.video} is not there; fetch it with `make sample-video` "
                     f"(bash scripts/fetch_sample_video.sh: Debian's opencv-doc package, sha256-checked)")
        sys.exit(f"real_video: --video {args.video}: no such file")
    if args.people is not None and args.people < 1:
        ap.error("--people: expected >= 1")

    from tracker.build import build_detector, build_estimator, build_tracker
    from tracker.config import load_track_config
    from tracker.record import TrackStats
    from tracker.sources import open_source

    configs = {"ours": load_track_config(args.preset, list(args.overrides)),
               "paper_plain": load_track_config(args.preset, PAPER_PLAIN)}
    first = configs["ours"]
    estimator = SharedEstimator(build_estimator(first))
    detector = SharedDetector(build_detector(first))
    trackers = {name: build_tracker(cfg, estimator=estimator, detector=detector) for name, cfg in configs.items()}
    stats = {name: TrackStats() for name in trackers}
    written: dict[str, dict[int, object]] = {name: {} for name in trackers}
    seconds = dict.fromkeys(trackers, 0.0)
    source = open_source(args.video)
    vtest = args.video.name == "vtest.avi" and source.num_frames == VTEST_FRAMES
    frames = 0

    def keep(name: str, done) -> None:
        for frame, record in done:
            stats[name].add(record)
            written[name][frame.index] = record

    with source:
        for frame in source:
            if args.max_frames is not None and frames >= args.max_frames:
                break
            estimator.frame()
            for name, tracker in trackers.items():  # "ours" first: it pays for the detection and the poses
                t0 = time.perf_counter()
                record = tracker.step(frame)
                seconds[name] += time.perf_counter() - t0
                keep(name, tracker.finalise(frame, record))
            frames += 1
    for name, tracker in trackers.items():
        keep(name, tracker.finish())
        print(json.dumps({"video": str(args.video), "preset": args.preset,
                          **_summary(name, stats[name], written[name], seconds[name], frames, vtest, args.people)}),
              flush=True)


if __name__ == "__main__":
    main()
