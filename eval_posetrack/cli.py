"""``posetrack eval --gt DIR --pred DIR``: PoseTrack mAP and MOTA tables like the official poseval."""
from __future__ import annotations

import argparse
import json
import os
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
    p.add_argument("--mot-engine", choices=("fast", "motmetrics"), default="fast",
                   help="'fast' (default) replays motmetrics' event rules without its accumulator (the same "
                        "numbers as the official tool, checked against it by the tests; several times faster); "
                        "'motmetrics' feeds one real motmetrics.MOTAccumulator per joint per sequence, as "
                        "poseval does (the cross-check)")
    p.add_argument("--strict", action="store_true",
                   help="treat every warning about the files (e.g. annotations whose image_id matches no image) "
                        "as an error")
    p.set_defaults(func=run)


def _check_output(path: str | None, flag: str) -> None:
    """An output path is checked before the evaluation runs: its folder exists or can be made, and it is
    not a folder itself (OSError naming it)."""
    if path is None:
        return
    out = Path(path)
    if out.is_dir():
        raise IsADirectoryError(f"{flag} {out} is a folder; give a file name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"{flag} {out}: cannot create its folder ({exc.strerror or exc})") from None
    if not os.access(out.parent, os.W_OK):
        raise PermissionError(f"{flag} {out}: its folder is not writable")


def run(args: argparse.Namespace) -> int:
    from .evaluate import PoseTrackEvalError, evaluate, format_tables, plot_summary, to_json_ready
    from .records import PoseTrackWarning

    if args.no_ap and args.no_track:
        raise ValueError("eval: --no-ap and --no-track leave nothing to evaluate")
    _check_output(args.json, "--json")
    _check_output(args.plot, "--plot")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error" if args.strict else "always", PoseTrackWarning)
        warnings.showwarning = lambda msg, cat, *a, **k: print(f"WARNING: {msg}", file=sys.stderr)
        try:
            summary = evaluate(args.gt, args.pred, ap=not args.no_ap, track=not args.no_track,
                               mot_engine=args.mot_engine)
        except PoseTrackWarning as exc:
            raise PoseTrackEvalError(f"--strict: {exc}") from None
    print(format_tables(summary))
    print(f"({time.perf_counter() - t0:.2f} s)", file=sys.stderr)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(to_json_ready(summary), indent=2))
    if args.plot:
        plot_summary(summary, args.plot)
    return 0

