"""``posetrack track SOURCE``: track poses in a video file, an image folder, a PoseTrack sequence, a webcam or a
stream."""
from __future__ import annotations

import argparse
import os
import sys
import time
import typing
from pathlib import Path
from typing import Any

from configs import list_presets, parse_wxh, tagged_union_kinds

from .config import (
    CheckpointFormat,
    DetectorConfig,
    FlowConfig,
    TrackConfig,
    estimator_kind,
    load_track_config,
    save_yaml,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "track",
        help="track poses in a video / image folder / webcam / stream URL",
        description="Track poses. Settings come from a preset (--preset), then the flags below, then dotted "
                    "KEY=VALUE overrides (e.g. association.min_similarity=0.4 flow.kind=farneback).",
    )
    p.add_argument("source", help="video file, image folder, PoseTrack18 annotation JSON, webcam index (0) or URL")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    p.add_argument("--preset", default="default",
                   help=f"a shipped preset ({', '.join(list_presets('track'))}) or a YAML path (default: default)")
    p.add_argument("--estimator", metavar="NAME", help="estimator name (blazepose, hrnet_w32, mspn_2stg, rsn_18, ...)")
    p.add_argument("--checkpoint", metavar="FILE", help="estimator weights file")
    p.add_argument("--checkpoint-format", choices=typing.get_args(CheckpointFormat),
                   help="how the checkpoint's keys are laid out (default: recognised from the keys)")
    p.add_argument("--input-size", metavar="WxH", help="estimator crop size, e.g. 192x256")
    p.add_argument("--max-batch", type=int, metavar="N", help="maximum person crops per estimator call")
    p.add_argument("--detector", choices=sorted(tagged_union_kinds(DetectorConfig) or ()), help="person detector")
    p.add_argument("--detections", metavar="FILE",
                   help="detections JSON (--detector precomputed) or PoseTrack annotation JSON (--detector gt)")
    p.add_argument("--flow", choices=sorted(tagged_union_kinds(FlowConfig) or ()),
                   help="optical flow (none = no propagation: the detector runs every frame)")
    p.add_argument("--det-interval", type=int, metavar="K", help="run the detector every K-th frame")
    p.add_argument("--device", help="cpu | cuda | cuda:N")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after this many frames")
    p.add_argument("--out", default="out", help="output folder (default: out)")
    p.add_argument("--render", action="store_true", help="also write a rendered MP4")
    p.add_argument("--show", action="store_true", help="draw the poses in a window (needs a display)")
    p.add_argument("--image-root", help="image root for a PoseTrack annotation JSON source")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def flag_settings(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The flags as (dotted key, typed value) pairs, in the order they apply (a kind before its keys)."""
    out: list[tuple[str, Any]] = []
    if args.estimator is not None:
        kind = estimator_kind(args.estimator)
        out.append(("estimator.kind", kind))
        if kind == "topdown":
            out.append(("estimator.name", args.estimator))
    if args.input_size is not None:
        out.append(("estimator.input_size", parse_wxh(args.input_size, "--input-size")))
    out += [(key, value) for key, value in (
        ("estimator.checkpoint", args.checkpoint), ("estimator.checkpoint_format", args.checkpoint_format),
        ("estimator.max_batch", args.max_batch), ("detector.kind", args.detector),
        ("detector.file", args.detections), ("flow.kind", args.flow),
        ("propagation.det_interval", args.det_interval), ("device", args.device),
        ("max_frames", args.max_frames)) if value is not None]
    if args.render:
        out.append(("output.render", True))
    return out


def safe_sequence_name(name: str) -> str:
    """A source name usable as a file name: ``rtsp://cam/live`` -> ``rtsp_cam_live``."""
    import re

    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return cleaned or "stream"


def _display_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def track_source(cfg: TrackConfig, source_spec: str, out_dir: str | Path, *, show: bool = False,
                 progress: bool = True, image_root: str | None = None, tracker=None) -> dict:
    """Track one source with a resolved config; writes outputs + the config into ``out_dir``.

    Returns a summary dict (frames, persons, tracks, seconds, fps, ms per stage, output paths).
    """
    from tqdm import tqdm

    from .build import build_tracker
    from .outputs import TrackOutputs
    from .sources import CaptureSource, open_source

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = open_source(source_spec, image_root=image_root) if image_root else open_source(source_spec)
    if tracker is None:
        tracker = build_tracker(cfg, sequence=source.name)
    sequence = safe_sequence_name(source.name)

    # live sources (webcam, stream URL) draw in a window whenever a display exists; outputs are written anyway
    show = (show or isinstance(source, CaptureSource)) and _display_available()
    config_path = save_yaml(cfg, out_dir / f"{sequence}.config.yaml")
    outputs = TrackOutputs(out_dir, sequence, cfg.output.formats, render=cfg.output.render or show,
                           fps=cfg.output.render_fps or source.fps or 25.0,
                           keypoint_threshold=cfg.output.keypoint_threshold,
                           flush_every=cfg.output.flush_every, nframes=source.num_frames, layout=tracker.layout)
    total = source.num_frames
    if cfg.max_frames is not None:
        total = min(total, cfg.max_frames) if total else cfg.max_frames
    bar = tqdm(total=total, unit="frame", disable=not progress, desc=sequence, dynamic_ncols=True)
    persons = 0
    tracks: set[int] = set()
    t0 = time.perf_counter()
    interrupted = False
    try:
        with source:
            for frame in source:
                if cfg.max_frames is not None and outputs.frames_written >= cfg.max_frames:
                    break
                record = tracker.step(frame)
                tw = time.perf_counter()
                rendered = outputs.add(frame, record)
                tracker.times.add("write", time.perf_counter() - tw)
                persons += len(record)
                tracks.update(int(t) for t in record.track_ids)
                bar.update(1)
                if show and rendered is not None:
                    import cv2

                    try:
                        cv2.imshow("posetrack", rendered)
                        key = cv2.waitKey(1) & 0xFF
                    except cv2.error:
                        # opencv-python-headless has no GUI: keep tracking and writing, say so once
                        print("posetrack track: this OpenCV build cannot open a window "
                              "(pip install opencv-python for one); writing the outputs only", file=sys.stderr)
                        show = False
                        continue
                    if key in (27, ord("q")):
                        break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        outputs.close()  # everything tracked so far is written, also on Ctrl-C or an error
    seconds = time.perf_counter() - t0
    summary = {
        "source": str(source_spec), "frames": outputs.frames_written, "persons": persons, "tracks": len(tracks),
        "seconds": round(seconds, 3), "fps": round(outputs.frames_written / seconds, 2) if seconds > 0 else None,
        "ms_per_frame": {k: round(v, 2) for k, v in tracker.times.ms_per_frame().items()},
        "outputs": {k: str(v) for k, v in outputs.paths.items()} | {"config": str(config_path)},
        "interrupted": interrupted,
    }
    if interrupted:
        raise KeyboardInterrupt(summary)
    return summary


def run(args: argparse.Namespace) -> int:
    cfg = load_track_config(args.preset, list(args.overrides), settings=flag_settings(args))
    try:
        summary = track_source(cfg, args.source, args.out, show=args.show, progress=not args.no_progress,
                               image_root=args.image_root)
    except KeyboardInterrupt as exc:
        summary = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else None
        if summary:
            print(f"interrupted after {summary['frames']} frames; outputs are valid: {summary['outputs']}",
                  file=sys.stderr)
        return 130
    print(f"tracked {summary['frames']} frames, {summary['persons']} poses, {summary['tracks']} tracks "
          f"in {summary['seconds']:.1f} s ({summary['fps']} frames/s)")
    print("ms per frame: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["ms_per_frame"].items()))
    for kind, path in summary["outputs"].items():
        print(f"  {kind}: {path}")
    return 0
