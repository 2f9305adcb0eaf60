"""``posetrack weights fetch|list``: the embedded offline BlazePose weights (see ``estimators.blazepose.weights``)."""
from __future__ import annotations

import argparse


def _fetch(args: argparse.Namespace) -> int:
    from estimators.blazepose import weights

    root = weights.weights_dir(args.dir)
    before = {s.name: s.status for s in weights.list_weights(root)}
    paths = weights.fetch_blazepose(root, force=args.force, wheel=args.wheel)
    for path in paths:
        was = before.get(path.name)
        action = "kept (sha256 ok)" if was == "ok" and not args.force else f"fetched (was {was})"
        print(f"{path}  {action}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from estimators.blazepose import weights

    root = weights.weights_dir(args.dir)
    print(f"weights directory: {root}")
    bad = 0
    for st in weights.list_weights(root):
        size = f"{st.size:,} B" if st.size is not None else "-"
        digest = st.sha256[:16] + "..." if st.sha256 else "-"
        print(f"  {st.name:28s} {st.status:9s} {size:>14s}  sha256 {digest}  {st.path}")
        bad += st.status != "ok"
    if bad:
        print("some files are missing or corrupt: run `posetrack weights fetch`"
              + (f" --dir {root}" if args.dir else ""))
    return 1 if bad else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("weights", help="fetch or list the embedded offline BlazePose weights",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION")
    sub.required = True
    f = sub.add_parser("fetch", help="download mediapipe 0.10.14 with pip, keep only the two .tflite files")
    f.add_argument("--dir", default=None, help="weights directory (default: $POSETRACK_WEIGHTS_DIR or "
                                               "$XDG_CACHE_HOME/posetrack/weights)")
    f.add_argument("--force", action="store_true", help="extract again even when the files verify")
    f.add_argument("--wheel", default=None, help="use this already-downloaded mediapipe 0.10.14 wheel")
    f.set_defaults(func=_fetch)
    ls = sub.add_parser("list", help="show the cached files, their size and sha256 status (exit 1 if any is bad)")
    ls.add_argument("--dir", default=None, help="weights directory (default as for fetch)")
    ls.set_defaults(func=_list)
