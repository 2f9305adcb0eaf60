"""Learning is real: overfit the 4 COCO test images (12 persons with keypoints) with a small HRNet on CPU.

Runs the real trainer (``estimators.training.loop.train``: dataset -> targets -> JointsMSE -> Adam -> checkpoint ->
COCO AP with ground-truth boxes through the shared inference + pycocotools) and prints one JSON line:
the initial loss (step 1: the untrained network, before any update), the final loss (mean of the last 5
steps), the drop factor, the COCO AP / AR on those images, wall time. Exit status 1 when the loss does not
fall >= 10x or AP <= 0.5.

    .venv/bin/python benchmarks/overfit.py [--steps 300] [--width 16] [--input 96x128] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data" / "mmpose_testdata" / "coco"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600, help="training steps (one step = one batch of all persons)")
    ap.add_argument("--width", type=int, default=16, help="HRNet width (32 = HRNet-W32)")
    ap.add_argument("--input", default="96x128", help="input WxH (multiples of 32)")
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--blocks", type=int, default=1, help="BasicBlocks per branch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=str(DATA), help="folder with test_coco.json and the images")
    ap.add_argument("--output", default=None, help="run folder (default: a temporary one)")
    args = ap.parse_args(argv)

    from configs import parse_wxh
    from estimators.training.config import AugmentConfig, DataConfig, ModelConfig, ScheduleConfig, TrainConfig
    from estimators.training.loop import train

    w, h = parse_wxh(args.input, "--input")
    ann = str(Path(args.data) / "test_coco.json")
    out = args.output or tempfile.mkdtemp(prefix="overfit_")
    n_persons = 12  # persons with >= 1 labelled keypoint in test_coco.json: one batch holds them all
    # No augmentation: the point is to show the whole chain can fit the data; validation uses the same crops.
    cfg = TrainConfig(
        model=ModelConfig(arch="hrnet", kwargs={"width": args.width, "num_modules": [1, 1, 1],
                                                "num_blocks": args.blocks,
                                                "layer1_blocks": 1}),
        data=DataConfig(dataset="coco", train_annotations=[ann], train_images=args.data, val_annotations=[ann],
                        val_images=args.data, workers=0),
        augment=AugmentConfig(scale_range=(1.0, 1.0), scale_sigma=0.0, rotation=0.0, rotation_prob=0.0,
                              flip_prob=0.0, half_body_prob=0.0),
        schedule=ScheduleConfig(lr=args.lr, policy="step", milestones=[int(args.steps * 0.8)], gamma=0.1),
        input_size=(w, h), batch_size=n_persons, epochs=args.steps, val_every=args.steps, val_flip_test=False,
        output_dir=out, progress=False, cpu_threads=args.threads, seed=0)
    t0 = time.time()
    res = train(cfg)
    seconds = time.time() - t0
    first = res.losses[0]  # the untrained network (the first steps at lr 5e-3 spike higher; not counted)
    last = sum(res.losses[-5:]) / 5
    stats = res.val[-1]["stats"]
    print(res.val[-1]["table"], file=sys.stderr)
    line = {"benchmark": "overfit_coco4", "model": f"hrnet_width{args.width}", "input": f"{w}x{h}",
            "steps": len(res.losses), "batch": n_persons, "loss_step1": first, "loss_last5": last,
            "loss_drop": first / max(last, 1e-30), "coco_ap": stats["AP"], "coco_ap50": stats["AP .5"],
            "coco_ar": stats["AR"], "seconds": round(seconds, 1), "threads": args.threads, "run_dir": out}
    print(json.dumps(line))
    return 0 if line["loss_drop"] >= 10 and stats["AP"] > 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
