"""``posetrack estimate`` (poses on one image for given person boxes) and ``posetrack convert-checkpoint``.

estimate: IMAGE + person boxes (``--boxes "x1,y1,x2,y2[,score];..."`` or ``--boxes-json`` COCO detection
results, xywh) -> COCO keypoint results JSON (stdout or ``--out``) and optionally an image with the skeletons.
convert-checkpoint: a released checkpoint (official / MMPose 0.x / MMPose 1.x) -> our layout, loaded strictly
first, so a file that converts is a file that loads; the keypoint layout the file declares is kept.

Wired into ``posetrack`` by :func:`register` (``tracker/cli.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


class EstimateInputError(ValueError):
    """Bad command-line input for ``posetrack estimate`` (boxes, image, sizes)."""


# ------------------------------------------------------------------------------------------ arguments
def parse_boxes(text: str) -> tuple[np.ndarray, np.ndarray]:
    """``"x1,y1,x2,y2[,score];..."`` -> boxes (N, 4) float32 xyxy px, scores (N,) float32 (default 1)."""
    boxes, scores = [], []
    for i, item in enumerate(p for p in text.split(";") if p.strip()):
        try:
            vals = [float(v) for v in item.split(",")]
        except ValueError:
            raise EstimateInputError(f"--boxes item {i} {item!r}: expected numbers 'x1,y1,x2,y2[,score]'") from None
        if len(vals) not in (4, 5):
            raise EstimateInputError(f"--boxes item {i} {item!r}: expected 4 or 5 numbers, got {len(vals)}")
        x1, y1, x2, y2 = vals[:4]
        if not (x2 > x1 and y2 > y1):
            raise EstimateInputError(f"--boxes item {i} {item!r}: need x2 > x1 and y2 > y1")
        boxes.append(vals[:4])
        scores.append(vals[4] if len(vals) == 5 else 1.0)
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32)


def image_id_of(path: Path) -> int | None:
    """COCO image id from a file name such as ``000000000785.jpg`` (None if the stem is not a number)."""
    return int(path.stem) if path.stem.isdigit() else None


def load_detections(path: Path, image_id: int | None, min_score: float) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Person boxes of one image from a COCO detection results file (read and checked by
    ``eval_posetrack.read_coco_detections``). ``image_id`` None: the file's only image id. Returns boxes (N, 4)
    float32 xyxy px, scores (N,) float32 (score >= ``min_score``, non-empty boxes), and the image id used."""
    from eval_posetrack import read_coco_detections

    dets = read_coco_detections(path, EstimateInputError)
    if image_id is None:
        ids = sorted(set(dets.image_ids.tolist()))
        if len(ids) > 1:
            raise EstimateInputError(f"{path}: detections of {len(ids)} images and the image file name is not a "
                                     f"COCO id; pass --image-id")
        image_id = ids[0] if ids else None
    idx = dets.by_image((1,)).get(image_id, np.zeros(0, np.int64))
    boxes, scores = dets.boxes[idx], dets.scores[idx]
    keep = (scores >= min_score) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[keep].astype(np.float32).reshape(-1, 4), scores[keep].astype(np.float32), image_id


def _input_size(text: str) -> tuple[int, int]:
    """``--input-size WxH`` -> (w, h) via the project's one WxH parser."""
    from configs import ConfigError, parse_wxh

    try:
        return parse_wxh(text, "--input-size")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ------------------------------------------------------------------------------------------ outputs
def coco_results(poses, boxes: np.ndarray, box_scores: np.ndarray, image_id) -> list[dict]:
    """COCO keypoint results: one dict per person (keypoints flattened x, y, score; ``bbox`` xywh input box)."""
    from eval_posetrack import coco_keypoint_results

    box_score = np.round(np.asarray(box_scores, np.float64), 6)
    return coco_keypoint_results(image_id, poses.keypoints, poses.keypoint_scores, poses.pose_scores,
                                 boxes=boxes, extra={"box_score": box_score}, digits=3)


def render_poses(image: np.ndarray, poses, boxes: np.ndarray, box_scores: np.ndarray, threshold: float,
                 skeleton: tuple[tuple[int, int], ...]) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) uint8 BGR with boxes (N, 4) xyxy px, limbs and the joints whose
    (calibrated) scores reach ``threshold``, drawn by the tracker's renderer."""
    from .record import PoseRecord
    from .render import draw_poses

    record = PoseRecord(boxes, box_scores, poses.keypoints, poses.keypoint_scores, poses.pose_scores)
    return draw_poses(image, record, keypoint_threshold=threshold, skeleton=skeleton)


def check_output_file(path: str | Path, what: str) -> Path:
    """An output file path, checked before any model loads: not an existing folder, and its folder (made if
    missing) writable. OSError naming ``what`` and the path otherwise."""
    out = Path(path)
    if out.is_dir():
        raise IsADirectoryError(f"{what} {out} is an existing folder; give a file name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"{what} {out}: cannot create its folder {out.parent} ({exc.strerror or exc})") from None
    if not os.access(out.parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise PermissionError(f"{what} {out}: not writable")
    return out


# ------------------------------------------------------------------------------------------ commands
def _run_estimate(args: argparse.Namespace) -> int:
    import cv2

    from estimators.factory import create_estimator

    image_path = Path(args.image)
    if not image_path.is_file():
        raise FileNotFoundError(f"{image_path}: image not found")
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise EstimateInputError(f"{image_path}: cannot decode the image (not an image file?)")
    for path, flag in ((args.out, "--out"), (args.render, "--render")):
        if path:
            check_output_file(path, flag)
    image_id = args.image_id if args.image_id is not None else image_id_of(image_path)
    if args.boxes is not None:
        boxes, scores = parse_boxes(args.boxes)
    else:
        boxes, scores, image_id = load_detections(Path(args.boxes_json), image_id, args.min_box_score)
        if not len(boxes):
            print(f"posetrack estimate: warning: no person detections for image id {image_id} in "
                  f"{args.boxes_json}", file=sys.stderr)
    estimator = create_estimator(args.estimator, checkpoint=args.checkpoint, checkpoint_format=args.checkpoint_format,
                                 input_size=args.input_size, device=args.device, precision=args.precision,
                                 flip_test=not args.no_flip, max_batch=args.max_batch,
                                 random_weights=args.random_weights)
    if args.checkpoint is None and args.random_weights:
        print(f"posetrack estimate: warning: {args.estimator} has RANDOM weights (--random-weights): the keypoints "
              f"are meaningless", file=sys.stderr)
    t0 = time.perf_counter()
    poses = estimator.estimate(image, boxes, scores)
    seconds = time.perf_counter() - t0
    results = coco_results(poses, boxes, scores, image_id if image_id is not None else image_path.stem)
    text = json.dumps(results, indent=None)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    else:
        print(text)
    if args.render:
        render_path = Path(args.render)
        render_path.parent.mkdir(parents=True, exist_ok=True)
        drawn = render_poses(image, poses, boxes, scores, args.render_threshold, estimator.layout.skeleton)
        if not cv2.imwrite(str(render_path), drawn):
            raise OSError(f"{render_path}: cannot write the rendered image (unknown extension?)")
    where = f" -> {args.out}" if args.out else ""
    print(f"posetrack estimate: {len(boxes)} person(s) with {estimator.spec.name} in {seconds:.2f} s{where}"
          + (f", rendered {args.render}" if args.render else ""), file=sys.stderr)
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    from estimators import checkpoints as ckpt
    from estimators.factory import build_model

    src = Path(args.input)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: checkpoint not found")
    check_output_file(args.output, "OUT")
    obj = ckpt.read_checkpoint_file(src)
    layout = ckpt.checkpoint_layout(obj, str(src))
    model = build_model(args.estimator, **({"num_keypoints": layout.num_keypoints} if layout else {}))
    fmt, layout = ckpt.load_weights_object(model, obj, str(src), args.checkpoint_format)
    try:
        out = ckpt.save_state_dict(model, args.output, layout=layout)
    except RuntimeError as exc:  # torch.save reports a failed open or write (e.g. disk full) as RuntimeError
        raise OSError(f"OUT {args.output}: cannot write the converted checkpoint ({str(exc).splitlines()[0]})"
                      ) from None
    n = sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())
    kept = f", keypoint layout {layout.name}" if layout is not None else ""
    print(f"posetrack convert-checkpoint: {src} ({fmt}) -> {out}: {len(model.state_dict())} tensors, "
          f"{n:,} values, our layout (load with --checkpoint-format native){kept}")
    return 0


def register(subparsers) -> None:
    """Add the ``estimate`` and ``convert-checkpoint`` subcommands to ``subparsers`` (argparse)."""
    from estimators.precision import CHECKPOINT_FORMATS as FORMATS
    from estimators.precision import PRECISIONS

    p = subparsers.add_parser(
        "estimate", help="keypoints for given person boxes on one image",
        description="Run an estimator on the person boxes of one image and write COCO keypoint results (image "
                    "pixels); optionally render the skeletons.")
    p.add_argument("image", help="image file (any format OpenCV reads)")
    p.add_argument("--estimator", required=True, help="registered estimator name, e.g. hrnet_w32, mspn_4stg, "
                   "rsn_18, blazepose")
    p.add_argument("--checkpoint", help="weights file (official, MMPose 0.x/1.x or our own layout); required "
                   "unless the estimator has embedded weights")
    p.add_argument("--checkpoint-format", choices=FORMATS,
                   help="who wrote --checkpoint (default: guessed from its keys)")
    p.add_argument("--random-weights", action="store_true",
                   help="allow running without --checkpoint on random weights (tests and benchmarks only)")
    boxes = p.add_mutually_exclusive_group(required=True)
    boxes.add_argument("--boxes", help='person boxes "x1,y1,x2,y2[,score];..." in image pixels')
    boxes.add_argument("--boxes-json", help="COCO detection results JSON (bbox xywh); the boxes of this image")
    p.add_argument("--image-id", type=int, help="image id in --boxes-json (default: the file name's number)")
    p.add_argument("--min-box-score", type=float, default=0.0, help="ignore detections below (default 0)")
    p.add_argument("--input-size", type=_input_size, help="network input WxH (default: the estimator's own)")
    p.add_argument("--out", help="write the results JSON here (default: print it)")
    p.add_argument("--render", help="write the image with skeletons drawn (PNG/JPG)")
    p.add_argument("--render-threshold", type=float, default=0.2,
                   help="draw joints whose calibrated score reaches it (default 0.2, the same for every estimator)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--no-flip", action="store_true", help="disable the flip test")
    p.add_argument("--max-batch", type=int, default=32, help="crops per network forward (default 32)")
    p.set_defaults(func=_run_estimate)

    c = subparsers.add_parser(
        "convert-checkpoint", help="convert a released checkpoint to our layout",
        description="Load IN strictly into the named estimator (remapping keys from --checkpoint-format) and "
                    "write its state dict in our layout to OUT (with the keypoint layout IN declares, if any).")
    c.add_argument("input", metavar="IN", help="checkpoint file to read")
    c.add_argument("output", metavar="OUT", help="state dict file to write")
    c.add_argument("--estimator", required=True, help="registered estimator name, e.g. hrnet_w32")
    c.add_argument("--checkpoint-format", choices=FORMATS, help="who wrote IN (default: guessed from its keys)")
    c.set_defaults(func=_run_convert)
