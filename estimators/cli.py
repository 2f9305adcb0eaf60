"""``posetrack estimate`` (top-down poses on one image) and ``posetrack convert-checkpoint``.

estimate: IMAGE + person boxes (``--boxes "x1,y1,x2,y2[,score];..."`` or ``--boxes-json`` COCO detection
results, xywh) -> COCO keypoint results JSON (stdout or ``--out``) and optionally a PNG with the skeletons.
convert-checkpoint: a released checkpoint (official / MMPose 0.x / MMPose 1.x) -> a plain state dict in our
layout, loaded strictly first, so a file that converts is a file that loads.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

# COCO-17 skeleton (0-based) and per-limb side: 0 = centre/face, 1 = left, 2 = right (person's own sides).
COCO_SKELETON = (
    (15, 13, 1), (13, 11, 1), (16, 14, 2), (14, 12, 2), (11, 12, 0), (5, 11, 1), (6, 12, 2), (5, 6, 0),
    (5, 7, 1), (6, 8, 2), (7, 9, 1), (8, 10, 2), (1, 2, 0), (0, 1, 0), (0, 2, 0), (1, 3, 1), (2, 4, 2),
    (3, 5, 1), (4, 6, 2),
)
_SIDE_COLOURS = ((0, 200, 255), (255, 128, 0), (60, 60, 255))  # BGR: centre, left, right
PRECISIONS = ("fp32", "bf16", "fp16")


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
    """Person boxes of one image from a COCO detection results file (list of {image_id, category_id, bbox
    xywh, score}). Returns boxes (N, 4) float32 xyxy px, scores (N,), and the image id used."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise OSError(f"{path}: cannot read detections: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise EstimateInputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise EstimateInputError(f"{path}: expected a COCO detection results list, got {type(data).__name__}")
    if image_id is None:
        ids = {d.get("image_id") for d in data if isinstance(d, dict)}
        if len(ids) > 1:
            raise EstimateInputError(f"{path}: detections of {len(ids)} images and the image file name is not a "
                                     f"COCO id; pass --image-id")
        image_id = next(iter(ids), None)
    boxes, scores = [], []
    for i, d in enumerate(data):
        if not isinstance(d, dict) or d.get("image_id") != image_id or d.get("category_id", 1) != 1:
            continue
        bbox = d.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4):
            raise EstimateInputError(f"{path}: item {i} field 'bbox': expected [x, y, w, h], got {bbox!r}")
        score = float(d.get("score", 1.0))
        x, y, w, h = (float(v) for v in bbox)
        if score < min_score or w <= 0 or h <= 0:
            continue
        boxes.append([x, y, x + w, y + h])
        scores.append(score)
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), image_id


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> (w, h)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 192x256, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return w, h


# ------------------------------------------------------------------------------------------ outputs
def coco_results(poses, boxes: np.ndarray, box_scores: np.ndarray, image_id) -> list[dict]:
    """COCO keypoint results: one dict per person (keypoints flattened x, y, score; ``bbox`` xywh input box)."""
    out = []
    for i in range(len(poses.pose_scores)):
        kp = np.concatenate([poses.keypoints[i], poses.keypoint_scores[i][:, None]], axis=1)
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        out.append({
            "image_id": image_id,
            "category_id": 1,
            "keypoints": [round(float(v), 3) for v in kp.reshape(-1)],
            "score": round(float(poses.pose_scores[i]), 6),
            "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
            "box_score": round(float(box_scores[i]), 6),
        })
    return out


def render_poses(image: np.ndarray, poses, boxes: np.ndarray, threshold: float) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) uint8 BGR with boxes, limbs and joints whose scores exceed ``threshold``."""
    import cv2

    canvas = image.copy()
    scale = max(1.0, max(image.shape[:2]) / 640.0)
    thick = max(1, int(round(2 * scale)))
    for i in range(len(poses.pose_scores)):
        x1, y1, x2, y2 = (int(round(float(v))) for v in boxes[i])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (0, 255, 0), thick)
        cv2.putText(canvas, f"{poses.pose_scores[i]:.2f}", (x1, max(0, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5 * scale, (0, 255, 0), thick)
        kp, sc = poses.keypoints[i], poses.keypoint_scores[i]
        ok = np.isfinite(kp).all(axis=1) & (sc > threshold)
        if len(kp) == 17:
            for a, b, side in COCO_SKELETON:
                if ok[a] and ok[b]:
                    pa = tuple(int(round(float(v))) for v in kp[a])
                    pb = tuple(int(round(float(v))) for v in kp[b])
                    cv2.line(canvas, pa, pb, _SIDE_COLOURS[side], thick, cv2.LINE_AA)
        for j in np.nonzero(ok)[0]:
            side = 0 if j == 0 else (1 if j % 2 == 1 else 2)
            p = tuple(int(round(float(v))) for v in kp[j])
            cv2.circle(canvas, p, thick + 2, _SIDE_COLOURS[side], -1, cv2.LINE_AA)
    return canvas


# ------------------------------------------------------------------------------------------ commands
def _run_estimate(args: argparse.Namespace) -> int:
    import cv2

    from .inference import create_estimator

    image_path = Path(args.image)
    if not image_path.is_file():
        raise FileNotFoundError(f"{image_path}: image not found")
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise EstimateInputError(f"{image_path}: cannot decode the image (not an image file?)")
    image_id = args.image_id if args.image_id is not None else image_id_of(image_path)
    if args.boxes is not None:
        boxes, scores = parse_boxes(args.boxes)
    else:
        boxes, scores, image_id = load_detections(Path(args.boxes_json), image_id, args.min_box_score)
        if not len(boxes):
            print(f"posetrack estimate: warning: no person detections for image id {image_id} in "
                  f"{args.boxes_json}", file=sys.stderr)
    if args.checkpoint is None and args.estimator != "blazepose":
        print(f"posetrack estimate: WARNING: no --checkpoint given, so {args.estimator} has RANDOM weights and "
              f"the keypoints are meaningless. Pass --checkpoint FILE (official / MMPose files are converted on "
              f"load; see `posetrack convert-checkpoint`).", file=sys.stderr)
    kw = dict(device=args.device, precision=args.precision, flip_test=not args.no_flip, max_batch=args.max_batch)
    if args.input_size is not None:
        kw["input_size"] = args.input_size
    estimator = create_estimator(args.estimator, checkpoint=args.checkpoint, source=args.source, **kw)
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
        family = getattr(estimator, "family", None)
        thr = args.render_threshold
        if thr is None:  # joint scores are maxvals (HRNet), value/255 + 0.5 (MSPN/RSN), probabilities otherwise
            thr = {"hrnet": 0.2, "mspn": 0.7}.get(family, 0.5)
        render_path = Path(args.render)
        render_path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(render_path), render_poses(image, poses, boxes, thr)):
            raise OSError(f"{render_path}: cannot write the rendered image (unknown extension?)")
    where = f" -> {args.out}" if args.out else ""
    print(f"posetrack estimate: {len(boxes)} person(s) with {estimator.name} in {seconds:.2f} s{where}"
          + (f", rendered {args.render}" if args.render else ""), file=sys.stderr)
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    from . import checkpoints as ckpt
    from .inference import load_weights
    from .registry import build_model

    src = Path(args.input)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: checkpoint not found")
    model = build_model(args.model)
    source = load_weights(model, src, args.source)
    out = ckpt.save_state_dict(model, args.output)
    n = sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())
    print(f"posetrack convert-checkpoint: {src} ({source}) -> {out}: {len(model.state_dict())} tensors, "
          f"{n:,} values, our layout (load with source 'native')")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "estimate", help="top-down keypoints for given person boxes on one image",
        description="Run a top-down estimator on the person boxes of one image and write COCO keypoint "
                    "results (image pixels); optionally render the skeletons.")
    p.add_argument("image", help="image file (any format OpenCV reads)")
    p.add_argument("--estimator", required=True, help="registered estimator name, e.g. hrnet_w32, mspn_4stg, "
                   "rsn_18, blazepose")
    p.add_argument("--checkpoint", help="weights file (official, MMPose 0.x/1.x or our own layout); "
                   "without it the network has random weights")
    p.add_argument("--source", choices=("official", "mmpose0x", "mmpose1x", "native"),
                   help="who wrote --checkpoint (default: guessed from its keys)")
    boxes = p.add_mutually_exclusive_group(required=True)
    boxes.add_argument("--boxes", help='person boxes "x1,y1,x2,y2[,score];..." in image pixels')
    boxes.add_argument("--boxes-json", help="COCO detection results JSON (bbox xywh); the boxes of this image")
    p.add_argument("--image-id", type=int, help="image id in --boxes-json (default: the file name's number)")
    p.add_argument("--min-box-score", type=float, default=0.0, help="ignore detections below (default 0)")
    p.add_argument("--input-size", type=parse_size, help="network input WxH (default 192x256, 288x384 for "
                   "*384* models)")
    p.add_argument("--out", help="write the results JSON here (default: print it)")
    p.add_argument("--render", help="write the image with skeletons drawn (PNG/JPG)")
    p.add_argument("--render-threshold", type=float, help="draw joints whose score exceeds it (default: 0.2 "
                   "HRNet family, 0.7 MSPN/RSN family whose scores carry +0.5, 0.5 otherwise)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--no-flip", action="store_true", help="disable the flip test")
    p.add_argument("--max-batch", type=int, default=32, help="crops per network forward (default 32)")
    p.set_defaults(func=_run_estimate)

    c = subparsers.add_parser(
        "convert-checkpoint", help="convert a released checkpoint to our plain state dict",
        description="Load IN strictly into the named model (remapping keys from --source) and write a plain "
                    "state dict of our layout to OUT.")
    c.add_argument("input", metavar="IN", help="checkpoint file to read")
    c.add_argument("output", metavar="OUT", help="state dict file to write")
    c.add_argument("--model", required=True, help="registered estimator name, e.g. hrnet_w32")
    c.add_argument("--source", choices=("official", "mmpose0x", "mmpose1x", "native"),
                   help="who wrote IN (default: guessed from its keys)")
    c.set_defaults(func=_run_convert)
