"""``posetrack eval --gt DIR --pred DIR``: PoseTrack mAP and MOTA tables like the official poseval."""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="PoseTrack 2017/2018 mAP and MOTA (identical to the official poseval)",
        description="Evaluate a folder of PoseTrack prediction files (one per sequence, same file names as "
                    "the ground truth; 2017 or 2018 format, mixed freely) like the official poseval.")
    p.add_argument("--gt", required=True, help="folder of ground-truth *.json files, one per sequence")
    p.add_argument("--pred", required=True, help="folder of prediction files with the same names")
    p.add_argument("--no-ap", action="store_true", help="skip the AP evaluation")
    p.add_argument("--no-track", action="store_true", help="skip the MOTA evaluation")
    p.add_argument("--json", metavar="OUT.json", help="write the summary (unrounded, NaN as null) here")
    p.add_argument("--plot", metavar="OUT.png", help="write a per-joint bar chart PNG here")
    p.add_argument("--mot-engine", choices=("fast", "motmetrics"), default="motmetrics",
                   help="'motmetrics' (default) feeds one real motmetrics.MOTAccumulator per joint per sequence, "
                        "as poseval does; 'fast' replays the same event rules without the accumulator "
                        "(same numbers, checked against it by the tests; several times faster)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, format_tables, plot_summary, to_json_ready
    from .records import PoseTrackWarning

    if args.no_ap and args.no_track:
        raise ValueError("eval: --no-ap and --no-track leave nothing to evaluate")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("always", PoseTrackWarning)
        warnings.showwarning = lambda msg, cat, *a, **k: print(f"WARNING: {msg}", file=sys.stderr)
        summary = evaluate(args.gt, args.pred, ap=not args.no_ap, track=not args.no_track,
                           mot_engine=args.mot_engine)
    print(format_tables(summary))
    print(f"({time.perf_counter() - t0:.2f} s)", file=sys.stderr)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(to_json_ready(summary), indent=2))
    if args.plot:
        plot_summary(summary, args.plot)
    return 0

