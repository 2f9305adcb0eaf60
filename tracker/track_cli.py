"""``posetrack track SOURCE``: track poses in a video file, an image folder, a PoseTrack sequence, a webcam or a
stream."""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
import typing
from collections.abc import Iterator
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

# the tracking settings a user tunes with KEY=VALUE (defaults in tracker/config.py)
TRACKING_SETTINGS_HELP = (
    "Tracking settings (KEY=VALUE): association.min_hits=N matched frames confirm a track (only confirmed "
    "tracks are written and drawn; their first frames are written back), association.confirm_score=S a detector box "
    "score that confirms at once (null = never), association.max_lost_seconds=T how long a lost person can come "
    "back with its id (motion gate association.reid_gate / reid_gate_rate in person sizes, colour-histogram "
    "appearance association.appearance, association.reid_min_similarity, association.reid_min_appearance = the "
    "colour similarity a re-identified person needs at least), association.cut_threshold=G grey-level "
    "change marking a camera cut (null = off); propagation.max_frames=N frames a person is carried by the flow "
    "without a detection, propagation.duplicate_oks=O drops a propagated pose duplicating a detected one, "
    "propagation.min_detected_score=S drops a detected pose whose mean keypoint score is below S (poses on "
    "background objects), propagation.min_score=S the same for propagated poses; "
    "output.fill_gaps=N interpolates gaps of a confirmed track in the files, output.smooth_render / "
    "output.smooth_files One-Euro smoothing (output.smooth_min_cutoff Hz, output.smooth_beta) of the drawn / "
    "written keypoints. At the end: proxy metrics (poses/frame, distinct ids, track lengths, low-score share)."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "track",
        help="track poses in a video / image folder / webcam / stream URL",
        description="Track poses. Settings come from a preset (--preset), then the flags below, then dotted "
                    "KEY=VALUE overrides (e.g. association.min_similarity=0.4 flow.kind=farneback).",
        epilog=TRACKING_SETTINGS_HELP,
    )
    p.add_argument("source", help="video file, image folder, PoseTrack18 annotation JSON, webcam index (0) or URL")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    p.add_argument("--preset", default="default",
                   help=f"a shipped preset ({', '.join(list_presets('track'))}) or a YAML path (default: default)")
    p.add_argument("--estimator", metavar="NAME",
                   help="estimator name (blazepose, hrnet_w32, mspn_2stg, rsn_18, ...; multiposenet_r50 / _r101: "
                        "one network pass per frame, its own person subnet is the detector)")
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
    p.add_argument("--overwrite", action="store_true",
                   help="replace the outputs of an earlier run of the same source in --out (refused otherwise)")
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
        if kind in ("topdown", "multiposenet"):
            out.append(("estimator.name", args.estimator))
        if kind == "multiposenet" and args.detector is None:
            out.append(("detector.kind", "own"))  # the one-pass mode: the network's own person subnet
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


# the signals that stop a run like Ctrl-C: the outputs are finished, then the exit status is 128 + the number
STOP_SIGNALS = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal of :data:`STOP_SIGNALS`. ``signum``: the signal; ``summary``: the run's
    summary dict once its outputs are finished, None when it came during start-up (nothing written)."""

    def __init__(self, signum: int, summary: dict | None = None) -> None:
        super().__init__(summary)
        self.signum = signum
        self.summary = summary

    @property
    def exit_status(self) -> int:
        return 128 + int(self.signum)


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` once; while the outputs are being finished
    (:meth:`deferred`) or after the first one, a further signal is only noted, with a message, so a second
    Ctrl-C never interrupts the writing nor prints a traceback. A context manager: the previous handlers come
    back on exit. Outside the main thread (where Python cannot set handlers) it does nothing."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._defer = False
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self._defer or self.received is not None:
            self.received = self.received or signum
            print(f"posetrack track: {STOP_SIGNALS.get(signum, signum)} received; finishing the outputs, "
                  f"please wait", file=sys.stderr, flush=True)
            return
        self.received = signum
        raise Interrupted(signum)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Signals are noted, not raised, inside this block."""
        previous, self._defer = self._defer, True
        try:
            yield
        finally:
            self._defer = previous

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """A signal arriving inside this block is raised (as :class:`Interrupted`) when the block ends."""
        before = self.received
        with self.deferred():
            yield
        if before is None and self.received is not None:
            raise Interrupted(self.received)


def safe_sequence_name(name: str) -> str:
    """A source name usable as a file name: ``rtsp://cam/live`` -> ``rtsp_cam_live``."""
    import re

    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return cleaned or "stream"


def _prepare_out_dir(out_dir: Path) -> bool:
    """Create ``out_dir`` if needed and check that files can be written in it (OSError naming it, before any
    model loads). Returns whether it was created here."""
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except BaseException as exc:  # an error, or a signal (Interrupted) arriving right after the mkdir
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        if isinstance(exc, OSError):
            raise OSError(f"--out {out_dir}: cannot write there ({exc.strerror or exc})") from None
        raise
    return created


def _display_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def track_source(cfg: TrackConfig, source_spec: str, out_dir: str | Path, *, show: bool = False,
                 progress: bool = True, image_root: str | None = None, tracker=None,
                 signals: StopSignals | None = None, overwrite: bool = False) -> dict:
    """Track one source with a resolved config; writes outputs + the config into ``out_dir``.

    Returns a summary dict (frames, persons, tracks, seconds, fps, ms per stage, output paths). Ctrl-C (and,
    with ``signals`` installed, SIGTERM / SIGHUP) stops the run: every output is finished, then
    :class:`Interrupted` (a KeyboardInterrupt) is raised with the summary. Existing outputs of the same
    sequence in ``out_dir`` are replaced only with ``overwrite`` (else ``tracker.outputs.OutputError``).
    """
    from .sources import CaptureSource, open_source

    out_dir = Path(out_dir)
    signals = signals or StopSignals()  # not entered: only its deferral is used (Ctrl-C still raises)
    source = open_source(source_spec, image_root=image_root) if image_root else open_source(source_spec)
    created = _prepare_out_dir(out_dir)  # checked before any model loads
    try:  # an error or a signal from here to a built tracker leaves no empty --out folder
        from .outputs import claim_outputs

        claim_outputs(out_dir, safe_sequence_name(source.name), cfg.output.formats, cfg.output.render or show,
                      overwrite)
        from tqdm import tqdm

        from .build import build_tracker  # imports torch: only once the source and --out are checked
        from .outputs import TrackOutputs
        from .record import TrackStats

        if tracker is None:
            tracker = build_tracker(cfg, sequence=source.name)
    except BaseException:
        source.close()
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    sequence = safe_sequence_name(source.name)

    # live sources (webcam, stream URL) draw in a window whenever a display exists; outputs are written anyway
    show = (show or isinstance(source, CaptureSource)) and _display_available()
    total = source.num_frames
    if cfg.max_frames is not None:
        total = min(total, cfg.max_frames) if total else cfg.max_frames
    stats = TrackStats()
    interrupted: int | None = None
    with signals.deferred():  # a signal here is raised below, once the outputs can be finished
        outputs = TrackOutputs(out_dir, sequence, cfg.output.formats, render=cfg.output.render or show,
                               fps=cfg.output.render_fps or source.fps or 25.0,
                               keypoint_threshold=cfg.output.keypoint_threshold,
                               flush_every=cfg.output.flush_every, nframes=source.num_frames,
                               layout=tracker.layout, overwrite=overwrite)
        config_path = save_yaml(cfg, out_dir / f"{sequence}.config.yaml")  # after the outputs are ours
    bar = None
    too_small = 0  # frames skipped for their size
    t0 = time.perf_counter()
    try:
        if signals.received is not None:
            raise Interrupted(signals.received)
        bar = tqdm(total=total, unit="frame", disable=not progress, desc=sequence, dynamic_ncols=True)
        with source:
            for frame in source:
                if cfg.max_frames is not None and tracker.times.frames >= cfg.max_frames:
                    break
                if min(frame.image.shape[:2]) < MIN_FRAME_SIDE:
                    _warn_too_small(source_spec, frame, too_small)
                    too_small += 1
                    continue
                rendered = None  # files get final records (confirmed tracks, gaps filled), a few frames late
                for done, record in tracker.finalise(frame, tracker.step(frame)):
                    with signals.atomic():  # a frame goes to the outputs whole, or not at all
                        rendered = _write(tracker, outputs, stats, done, record)
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
    except Interrupted as exc:
        interrupted = exc.signum
    except KeyboardInterrupt:
        interrupted = signal.SIGINT
    finally:
        with signals.deferred():  # a second Ctrl-C / SIGTERM waits: the outputs are finished first
            if bar is not None:
                bar.close()
            for done, record in tracker.finish():
                _write(tracker, outputs, stats, done, record)
            outputs.close()  # everything tracked so far is written, also on a signal or an error
    if interrupted is None and signals.received is not None:
        interrupted = signals.received  # arrived while the outputs were being finished
    if interrupted is None and outputs.frames_written == 0 and (cfg.max_frames is None or cfg.max_frames > 0):
        from .sources import SourceError

        for path in [*outputs.paths.values(), config_path]:  # no empty files of a run that tracked nothing
            with contextlib.suppress(OSError):
                path.unlink()
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise SourceError(f"{source_spec}: no frame could be decoded and tracked (see the warnings above); "
                          "nothing tracked")
    seconds = time.perf_counter() - t0
    summary = {
        "source": str(source_spec), "frames": outputs.frames_written, "persons": stats.poses,
        "tracks": len(stats.lengths), "proxy": stats.summary(),
        "seconds": round(seconds, 3), "fps": round(outputs.frames_written / seconds, 2) if seconds > 0 else None,
        "ms_per_frame": {k: round(v, 2) for k, v in tracker.times.ms_per_frame().items()},
        "outputs": {k: str(v) for k, v in outputs.paths.items()} | {"config": str(config_path)},
        "interrupted": interrupted is not None,
    }
    if interrupted is not None:
        raise Interrupted(interrupted, summary)
    return summary


# Frames with a side below this are skipped: no person can be detected in them, and OpenCV's DIS flow refuses
# images under 12 px (at the default flow.scale=0.5, frames under 24 px). A 16x16 or 1x1 video used to crash.
MIN_FRAME_SIDE = 32


def _warn_too_small(source_spec: str, frame, skipped: int) -> None:
    """Warn about the first frame skipped for its size (once: a video's frames all share one size)."""
    if skipped == 0:
        import warnings

        from .sources import FrameSkippedWarning

        h, w = frame.image.shape[:2]
        warnings.warn(f"{source_spec}: frame {frame.index} is {w}x{h} px, smaller than {MIN_FRAME_SIDE} px on a "
                      f"side: skipped (and every such frame after it)", FrameSkippedWarning, stacklevel=3)


def _write(tracker, outputs, stats, frame, record):
    """One final frame to the outputs and the proxy metrics; returns the rendered image (or None)."""
    tw = time.perf_counter()
    rendered = outputs.add(frame, record)
    tracker.times.add("write", time.perf_counter() - tw)
    stats.add(record)
    return rendered


def run(args: argparse.Namespace) -> int:
    """``posetrack track``: exit status 0, 2 for bad input, 128 + the signal's number when stopped by
    Ctrl-C (130), SIGHUP (129) or SIGTERM (143), with a message (never a traceback) in every case."""
    with StopSignals() as signals:
        try:
            cfg = load_track_config(args.preset, list(args.overrides), settings=flag_settings(args))
            summary = track_source(cfg, args.source, args.out, show=args.show, progress=not args.no_progress,
                                   image_root=args.image_root, signals=signals, overwrite=args.overwrite)
        except KeyboardInterrupt as exc:
            with signals.deferred():
                signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
                what = STOP_SIGNALS.get(signum, f"signal {signum}")
                done = exc.summary if isinstance(exc, Interrupted) else None
                if done:
                    print(f"posetrack track: stopped by {what} after {done['frames']} frames; every output is "
                          f"written and valid: {', '.join(done['outputs'].values())}", file=sys.stderr)
                else:
                    print(f"posetrack track: stopped by {what} during start-up; nothing was tracked",
                          file=sys.stderr)
                return 128 + int(signum)
    print(f"tracked {summary['frames']} frames, {summary['persons']} poses, {summary['tracks']} tracks "
          f"in {summary['seconds']:.1f} s ({summary['fps']} frames/s)")
    print("ms per frame: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["ms_per_frame"].items()))
    p = summary["proxy"]
    hist = ", ".join(f"{k}: {v}" for k, v in p["track_length_histogram"].items())
    print(f"proxy metrics: {p['poses_per_frame']} poses/frame, {p['distinct_ids']} distinct ids, track lengths "
          f"(frames) {{{hist}}}, {100 * p['low_score_share']:.1f}% poses with mean keypoint score < "
          f"{p['low_score_below']}")
    for kind, path in summary["outputs"].items():
        print(f"  {kind}: {path}")
    return 0
