"""Long-run writer benchmark: a synthetic run of N frames (default 100,000) through the real output writer
(``tracker.outputs.TrackOutputs``), poses from a fake estimator (random keypoints, a few persons per frame,
tracks that come and go). Prints one JSON line with:

- peak RSS (MiB, ``VmHWM``) after 10 % of the frames and after all of them (before the final assembly), and
  the peak after the assembly of the final files;
- the mean write cost of one flush window (the ``flush_every`` calls of ``add`` that end in one flush, ms) over
  the first and the last 1,000 windows, and their ratio, in wall-clock time (CPU + fsync waits; sensitive to
  other load on the machine) and in CPU time of the process (robust to it);
- the assembly time at the end and the sizes of the files (``--skip-assembly``: the journal is only closed).

    python benchmarks/long_run.py [--frames 100000] [--persons 5] [--flush-every 10] [--formats posetrack18 coco]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def peak_rss_mib() -> float:
    """The process's peak resident set size so far (``VmHWM`` of /proc/self/status), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def run(frames: int, persons: int, flush_every: int, formats: list[str], out_dir: Path,
        assemble: bool = True) -> dict:
    from association.keypoints import COCO17
    from tracker.outputs import TrackOutputs
    from tracker.record import PoseRecord
    from tracker.sources import Frame

    rng = np.random.default_rng(0)
    image = np.zeros((8, 8, 3), np.uint8)   # not rendered: the writer only reads the frame's index and name
    out = TrackOutputs(out_dir, "000001_mpiinew_test", formats, layout=COCO17, render=False, fps=25.0,
                       keypoint_threshold=0.3, flush_every=flush_every, nframes=None)
    windows: list[float] = []
    cpu_windows: list[float] = []
    window = cpu = 0.0
    rss_at_10pct = None
    first_track = 0
    for i in range(frames):
        if i % 50 == 0:
            first_track += 2  # tracks come and go: ids grow through the run (past MAX_TRACK_ID)
        kp = rng.uniform(0, 1000, (persons, 17, 2)).astype(np.float32)
        boxes = np.concatenate([kp.min(axis=1), kp.max(axis=1)], axis=1)
        rec = PoseRecord(boxes, rng.uniform(0.5, 1, persons), kp, rng.uniform(0, 1, (persons, 17)),
                         track_ids=np.arange(first_track, first_track + persons))
        t, c = time.perf_counter(), time.process_time()
        out.add(Frame(i, i / 25, image, None), rec)
        window += time.perf_counter() - t
        cpu += time.process_time() - c
        if (i + 1) % flush_every == 0:
            windows.append(window)
            cpu_windows.append(cpu)
            window = cpu = 0.0
        if i + 1 == frames // 10:
            rss_at_10pct = peak_rss_mib()
    rss_at_end = peak_rss_mib()
    journal_mib = out.journal_path.stat().st_size / 2**20
    t = time.perf_counter()
    if assemble:
        out.close()
    else:
        out.flush()
        os.close(out._journal)
        out.journal_path.unlink()
    assembly = time.perf_counter() - t
    k = min(1000, len(windows) // 2)
    first, last = float(np.mean(windows[:k])) * 1e3, float(np.mean(windows[-k:])) * 1e3
    cpu_first, cpu_last = float(np.mean(cpu_windows[:k])) * 1e3, float(np.mean(cpu_windows[-k:])) * 1e3
    return {
        "frames": frames, "persons_per_frame": persons, "flush_every": flush_every, "formats": formats,
        "peak_rss_mib_at_10pct": round(rss_at_10pct or 0.0, 1), "peak_rss_mib_at_end": round(rss_at_end, 1),
        "rss_ratio_end_vs_10pct": round(rss_at_end / rss_at_10pct, 3) if rss_at_10pct else None,
        "peak_rss_mib_after_assembly": round(peak_rss_mib(), 1),
        "flush_windows_averaged": k, "mean_flush_ms_first": round(first, 3), "mean_flush_ms_last": round(last, 3),
        "flush_ratio_last_vs_first": round(last / first, 3),
        "mean_flush_cpu_ms_first": round(cpu_first, 3), "mean_flush_cpu_ms_last": round(cpu_last, 3),
        "flush_cpu_ratio_last_vs_first": round(cpu_last / cpu_first, 3),
        "journal_mib": round(journal_mib, 1), "assembly_s": round(assembly, 2) if assemble else None,
        "files_mib": {p.name: round(p.stat().st_size / 2**20, 1) for p in out.paths.values() if p.exists()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--persons", type=int, default=5)
    ap.add_argument("--flush-every", type=int, default=10)
    ap.add_argument("--formats", nargs="+", default=["posetrack18", "coco"])
    ap.add_argument("--out", help="output folder (default: a temporary folder, deleted afterwards)")
    ap.add_argument("--skip-assembly", action="store_true", help="do not assemble the final files at the end")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        print(json.dumps(run(args.frames, args.persons, args.flush_every, args.formats, out,
                             assemble=not args.skip_assembly)))


if __name__ == "__main__":
    main()
