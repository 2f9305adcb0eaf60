"""``posetrack train`` and ``posetrack evaluate-coco``.

    posetrack train configs/train_hrnet_w32_coco_256x192_adam_lr1e-3_210e.yaml data.workers=8 output_dir=runs/w32
    posetrack train CONFIG resume=auto                 # continue from output_dir/last.pt
    torchrun --nproc_per_node=4 -m tracker.cli train CONFIG   # distributed (NCCL on GPU, gloo on CPU)
    posetrack evaluate-coco --checkpoint runs/w32/best.pt --annotations person_keypoints_val2017.json \
        --images val2017 [--detections COCO_val2017_detections_AP_H_56_person.json]
"""
from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train an estimator from a recipe (configs/train_*.yaml)",
                              description="Train an estimator from a YAML recipe; key=value overrides "
                                          "(dotted: schedule.lr=1e-4, data.workers=2). Launch with torchrun "
                                          "for distributed data parallel.")
    p.add_argument("config", help="recipe YAML (configs/train_*.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. epochs=20 resume=auto")
    p.set_defaults(func=run_train)

    e = subparsers.add_parser("evaluate-coco", help="COCO keypoint AP of a checkpoint (pycocotools)",
                              description="Run a checkpoint on COCO person boxes (ground truth or a detection "
                                          "file) and print the COCOeval keypoint AP/AR table.")
    e.add_argument("--checkpoint", required=True, help="checkpoint (.pt/.pth): ours, official or MMPose")
    e.add_argument("--annotations", required=True, help="COCO person_keypoints_*.json")
    e.add_argument("--images", required=True, help="folder of the images")
    e.add_argument("--detections", default=None, help="detection results JSON (default: ground-truth boxes)")
    e.add_argument("--det-threshold", type=float, default=0.0, help="minimum box score of detections")
    e.add_argument("--model", default=None, help="registry name; needed unless the checkpoint is ours")
    e.add_argument("--source", default=None, help="checkpoint source (official/mmpose0x/mmpose1x/native)")
    e.add_argument("--input-size", default=None, help="WxH network input (default: the checkpoint's, or 192x256)")
    e.add_argument("--oks-nms", type=float, default=None,
                   help="OKS-NMS threshold (default 0.9 for the HRNet family, none for MSPN/RSN)")
    e.add_argument("--no-flip", action="store_true", help="disable flip test")
    e.add_argument("--device", default="cpu")
    e.add_argument("--workers", type=int, default=2)
    e.add_argument("--output", default=None, help="write the COCO results JSON here")
    e.set_defaults(func=run_evaluate_coco)


def run_train(args: argparse.Namespace) -> int:
    from .train import load_config, train

    cfg = load_config(args.config, list(args.overrides))
    train(cfg)
    return 0


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--input-size: expected WxH like 192x256, got {text!r}") from None
    return w, h


def run_evaluate_coco(args: argparse.Namespace) -> int:
    from .coco_eval import HRNET_OKS_NMS, coco_keypoint_eval, coco_results, format_coco_table, predict_samples
    from .datasets import load_coco_detections, load_coco_gt

    input_size = None
    if args.model:
        from .inference import create_estimator, default_input_size

        est = create_estimator(args.model, args.checkpoint, args.source, device=args.device)
        model, name = est.model, args.model
        input_size = default_input_size(args.model)
    else:
        from .train import model_from_checkpoint

        model, cfg = model_from_checkpoint(args.checkpoint)
        name = cfg.model.arch or cfg.model.name
        input_size = tuple(cfg.input_size)
    if args.input_size:
        input_size = _parse_size(args.input_size)
    model.to(args.device).eval()
    if args.detections:
        samples = load_coco_detections(args.detections, args.annotations, args.images, args.det_threshold)
    else:
        samples = load_coco_gt(args.annotations, args.images)
    if not samples:
        raise ValueError(f"{args.detections or args.annotations}: no person boxes to evaluate")
    pred = predict_samples(model, samples, input_size=input_size, flip_test=not args.no_flip, device=args.device,
                           workers=args.workers, progress=sys.stderr.isatty())
    nms = args.oks_nms if args.oks_nms is not None else (HRNET_OKS_NMS if model.family == "hrnet" else None)
    results = coco_results(samples, pred, nms)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f)
    stats = coco_keypoint_eval(args.annotations, results)
    print(format_coco_table(stats, name))
    return 0


def main(argv: list[str] | None = None) -> int:  # python -m estimators.train_cli train ...
    parser = argparse.ArgumentParser(prog="posetrack")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
