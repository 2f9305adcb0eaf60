"""``posetrack train`` and ``posetrack evaluate-coco`` (registered by the top-level ``posetrack`` dispatcher,
which calls :func:`register`).

    posetrack train hrnet_w32_coco_256x192_adam_lr1e-3_step170-200_210e data.workers=8 output_dir=runs/w32
    posetrack train configs/my_recipe.yaml resume=auto       # continue from output_dir/last.pt
    torchrun --nproc_per_node=4 -m tracker.cli train CONFIG   # distributed (NCCL on GPU, gloo on CPU)
    posetrack evaluate-coco --checkpoint runs/w32/best.pt --annotations person_keypoints_val2017.json \\
        --images val2017 [--detections COCO_val2017_detections_AP_H_56_person.json]
"""
from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``evaluate-coco`` subcommands (each sets ``func``: args -> exit status)."""
    from configs import list_presets

    p = subparsers.add_parser("train", help="train an estimator from a recipe (a train_*.yaml preset or file)",
                              description="Train an estimator from a YAML recipe; key=value overrides "
                                          "(dotted: schedule.lr=1e-4, data.workers=2). Launch with torchrun "
                                          "for distributed data parallel. Shipped recipes: "
                                          + ", ".join(list_presets("train")))
    p.add_argument("config", help="recipe: a shipped preset name (train_<name>.yaml) or a YAML file")
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
    e.add_argument("--estimator", default=None, help="registered model name; needed unless the checkpoint is "
                                                     "one written by `posetrack train`")
    e.add_argument("--checkpoint-format", default=None, choices=("official", "mmpose0x", "mmpose1x", "native"),
                   help="checkpoint format with --estimator (default: guessed from the keys)")
    e.add_argument("--input-size", default=None, help="WxH network input (default: the checkpoint's or the "
                                                      "estimator's)")
    e.add_argument("--oks-nms", type=float, default=None,
                   help="OKS-NMS threshold (default 0.9 for the HRNet family, none for MSPN/RSN)")
    e.add_argument("--no-flip", action="store_true", help="disable flip test")
    e.add_argument("--device", default="cpu")
    e.add_argument("--max-batch", type=int, default=64, help="network inputs per forward (flipped copies count)")
    e.add_argument("--workers", type=int, default=2, help="image decoding processes")
    e.add_argument("--output", default=None, help="write the COCO results JSON here")
    e.set_defaults(func=run_evaluate_coco)


def run_train(args: argparse.Namespace) -> int:
    from .config import load_config

    cfg = load_config(args.config, list(args.overrides))  # a bad recipe is reported before torch is imported
    if cfg.stage != "topdown":  # a MultiPoseNet stage
        from .multiposenet_loop import train_multiposenet

        train_multiposenet(cfg)
        return 0
    from .loop import train

    train(cfg)
    return 0


def run_evaluate_coco(args: argparse.Namespace) -> int:
    import functools

    from configs import parse_wxh

    from .coco_eval import COCO_EVAL_OKS_NMS, coco_keypoint_eval, coco_results, format_coco_table, predict_samples
    from .datasets import load_coco_detections, load_coco_gt

    input_size = parse_wxh(args.input_size, "--input-size") if args.input_size else None
    if args.detections:
        samples = load_coco_detections(args.detections, args.annotations, args.images, args.det_threshold)
    else:
        samples = load_coco_gt(args.annotations, args.images)
    if not samples:
        raise ValueError(f"{args.detections or args.annotations}: no person boxes to evaluate")
    if args.estimator:
        from ..factory import create_estimator

        est = create_estimator(args.estimator, args.checkpoint, args.checkpoint_format, input_size=input_size,
                               device=args.device, flip_test=not args.no_flip, max_batch=args.max_batch,
                               optimize=False)
        name, family, estimate = args.estimator, est.family, est.estimate_batch
        num_keypoints, input_size = est.num_keypoints, est.input_size
    else:
        from ..spec import get_family
        from ..topdown import estimate_batch
        from .checkpointing import model_from_checkpoint, run_name

        model, cfg, layout = model_from_checkpoint(args.checkpoint)
        model.to(args.device).eval()
        name, family, num_keypoints = run_name(cfg.model), get_family(model.family), layout.num_keypoints
        input_size = input_size or tuple(cfg.input_size)
        estimate = functools.partial(estimate_batch, model, input_size=input_size, family=family,
                                     flip_test=not args.no_flip, flip_pairs=layout.flip_pairs, device=args.device,
                                     max_batch=args.max_batch)
    pred = predict_samples(estimate, samples, num_keypoints=num_keypoints, input_size=input_size,
                           workers=args.workers, progress=sys.stderr.isatty())
    nms = args.oks_nms if args.oks_nms is not None else COCO_EVAL_OKS_NMS[family.name]
    results = coco_results(samples, pred, nms)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f)
    stats = coco_keypoint_eval(args.annotations, results)
    print(format_coco_table(stats, name))
    return 0


__all__ = ["register", "run_evaluate_coco", "run_train"]
