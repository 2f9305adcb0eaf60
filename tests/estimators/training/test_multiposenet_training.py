"""MultiPoseNet's three training stages on the real COCO test images and Bonn PoseTrack tracks: recipes typed and
checked (file + dotted key), targets and masks, the PRN input built as inference builds it, and the chain
keypoint -> detection -> PRN run from `posetrack train` with its loss going down, frozen parts unchanged and
each checkpoint loadable by the next stage and by create_multiposenet_estimator."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from configs import PRESET_DIR
from configs.loader import ConfigError
from estimators.training.config import load_config
from estimators.training.multiposenet_config import MULTIPOSENET_VARIANTS, STAGES

RECIPES = sorted(PRESET_DIR.glob("train_multiposenet_*.yaml"))


def test_recipes_are_typed_stages_and_bad_fields_name_file_and_key(tmp_path):
    from estimators.multiposenet import VARIANTS

    assert MULTIPOSENET_VARIANTS == tuple(VARIANTS)
    assert sorted(load_config(r).stage for r in RECIPES) == sorted(STAGES)
    kpt = next(r for r in RECIPES if "_kpt_" in r.name)
    cfg = load_config(kpt)
    assert cfg.augment.rotation == 40 and cfg.augment.scale_range == (0.8, 1.2) and cfg.augment.flip_prob == 0.3
    assert cfg.schedule.policy == "plateau" and cfg.schedule.lr == 1e-4 and tuple(cfg.input_size) == (480, 480)
    det = load_config(next(r for r in RECIPES if "_det_" in r.name))
    assert det.multiposenet.shorter_side == 800 and det.schedule.lr == 1e-5
    bad = tmp_path / "bad.yaml"
    cases = {
        "multiposenet: {shorter_sid: 800}\n": r"bad\.yaml.*multiposenet.*unknown key\(s\) shorter_sid",
        "multiposenet: {shorter_side: 8}\n": r"bad\.yaml.*multiposenet\.shorter_side",
        "multiposenet: {patch: middle}\n": r"bad\.yaml.*multiposenet\.patch",
        "stage: multiposenet_kpt\n": r"bad\.yaml.*stage",
        "stage: multiposenet_prn\nmodel: {name: hrnet_w32}\n": r"bad\.yaml.*model\.name",
        "schedule: {policy: plateau}\n": r"bad\.yaml.*schedule\.policy",
        "stage: multiposenet_keypoint\nmodel: {name: multiposenet_r50}\nresume: auto\n": r"bad\.yaml.*resume",
    }
    for text, pattern in cases.items():
        bad.write_text(text)
        with pytest.raises(ConfigError, match=pattern):
            load_config(bad)


def test_keypoint_targets_mask_unannotated_people_and_flip_swaps_sides(testdata):
    from estimators.training.augmentation import NO_AUGMENT, AugmentParams
    from estimators.training.multiposenet_data import KeypointDataset, load_coco_images

    coco, images = load_coco_images(testdata / "coco" / "test_coco.json", testdata / "coco")
    im = next(i for i in images if i.image_id == 40083)  # 2 annotated people + 1 without keypoints
    assert len(im.keypoints) == 2 and len(im.ignore) == 1 and len(im.all_boxes) == 3
    ds = KeypointDataset(coco, [im], 512, NO_AUGMENT, sigma=1.5, patch="full")
    item = ds[0]
    assert item["input"].shape == (3, 512, 512) and item["target"].shape == (18, 128, 128)
    s = 512 / 500 / 4  # full framing: the 500 px wide image fills the patch; heatmap cells per image px
    x, y, w, h = im.ignore[0]["bbox"]
    cy, cx = int((y + h / 2) * s), int((x + w / 2) * s)
    assert item["mask"][cy, cx] == 0 and item["mask"].mean() > 0.9
    p, k = 0, int(np.nonzero(im.visible[0])[0][0])
    j, i = np.floor((im.keypoints[p, k] + 0.5) * s).astype(int)
    assert item["target"][k, i, j] > 0.8 and item["target"][k].max() <= 1.0
    assert item["target"][17].max() > 0.9  # person segmentation
    flipped = KeypointDataset(coco, [im], 512, AugmentParams(scale_range=(1.0, 1.0), scale_sigma=0.0, rotation=0.0,
                                                             flip_prob=1.0, half_body_prob=0.0), 1.5, "full")[0]
    # left shoulder (5) of the mirrored image is where the right shoulder (6) was, mirrored about x = 500 / 2 px
    t, f = item["target"][6], flipped["target"][5]
    ti, tj = np.unravel_index(int(t.argmax()), t.shape)
    fi, fj = np.unravel_index(int(f.argmax()), f.shape)
    assert ti == fi and abs((tj + 0.5) + (fj + 0.5) - 500 * s) <= 1.0


def test_prn_input_is_the_inference_crop_and_target_is_the_person():
    from estimators.multiposenet import PRN_SIZE, MultiPoseNetEstimator, build_multiposenet_r50, crop_argmax
    from estimators.training.multiposenet_data import (
        PRNDataset,
        PRNFrame,
        frame_peak_maps,
        frame_scale,
        prn_samples,
    )

    kps = np.array([[[30.0 + 3 * k, 20.0 + 9 * k] for k in range(17)],
                    [[70.0 + 2 * k, 30.0 + 8 * k] for k in range(17)]])
    vis = np.ones((2, 17), bool)
    vis[1, 3] = False
    boxes = np.array([[20.0, 10, 90, 190], [60, 20, 120, 200]])
    fr = PRNFrame(kps, vis, boxes, 160.0, 240.0, "synthetic", ("synthetic", 0))
    samples = prn_samples([fr], 2)
    assert [s.person for s in samples] == [0, 1] and samples[0].num_keypoints == 17  # more keypoints first
    ds = PRNDataset([fr], samples, (320, 480))
    item = ds[1]
    assert item["input"].shape == item["target"].shape == (17, *PRN_SIZE)
    assert item["weight"][3] == 0 and item["weight"].sum() == 16 and item["target"][3].sum() == 0
    # the input is what the estimator's Max path crops from the same peaks
    est = MultiPoseNetEstimator(build_multiposenet_r50(), assign="max", peak_threshold=0.1, sigma=1.0)
    s = frame_scale(fr, (320, 480))
    poses = est.assign_keypoints(frame_peak_maps(fr, (320, 480), 1.0), boxes.astype(np.float32),
                                 np.ones(2, np.float32), s)
    b = torch.from_numpy((boxes[1:] * s).astype(np.float32))
    np.testing.assert_allclose(crop_argmax(item["input"][None], b)[0].numpy() / s - 0.5, poses.keypoints[1],
                               atol=1e-4)
    # the target's peaks are person 1's joints (within a crop cell)
    t = crop_argmax(item["target"][None], b)[0].numpy() / s
    cell = (boxes[1, 2:] - boxes[1, :2]) / np.array(PRN_SIZE[::-1])
    assert (np.abs(t - kps[1])[vis[1]] <= cell).all()


def _train(args: list[str]) -> None:
    from tracker.cli import main

    assert main(["train", *args]) == 0


def test_three_stages_from_the_cli_loss_down_and_checkpoints_chain(testdata, tmp_path):
    from estimators.multiposenet import create_multiposenet_estimator
    from estimators.training.logs import TRAIN_LOG

    coco = testdata / "coco"
    common = [f"data.train_annotations=[{coco / 'test_coco.json'}]", f"data.train_images={coco}", "data.workers=0",
              "device=cpu", "progress=false", "multiposenet.save_every=0"]
    kpt, det, prn = (next(str(r) for r in RECIPES if tag in r.name) for tag in ("_kpt_", "_det_", "_prn_"))
    no_aug = ["augment.rotation=0.0", "augment.flip_prob=0.0", "augment.scale_range=[1.0,1.0]"]

    def losses(run: Path) -> list[float]:
        rows = (run / TRAIN_LOG).read_text().splitlines()[1:]
        return [float(r.split(",")[2]) for r in rows]

    _train([kpt, *common, *no_aug, "input_size=[64,64]", "batch_size=4", "epochs=3", "batchnorm=batch",
            "multiposenet.backbone_weights=null", "schedule.lr=0.0001", f"output_dir={tmp_path / 'kpt'}"])
    lk = losses(tmp_path / "kpt")
    assert len(lk) == 3 and lk[-1] < lk[0]  # one fixed batch of the 4 images per step
    _train([det, *common, f"model.init_checkpoint={tmp_path / 'kpt' / 'last.pt'}", "multiposenet.shorter_side=64",
            "multiposenet.max_side=96", "augment.flip_prob=0.0", "batch_size=4", "epochs=3", "schedule.lr=0.0001",
            f"output_dir={tmp_path / 'det'}"])
    ld = losses(tmp_path / "det")
    assert len(ld) == 3 and ld[-1] < ld[0]
    bonn = sorted((testdata.parent / "bonn_posetrack_train" / "pt18").glob("5997927*.json"))
    assert bonn
    _train([prn, *common, f"model.init_checkpoint={tmp_path / 'det' / 'last.pt'}", "batch_size=32", "epochs=3",
            f"multiposenet.posetrack_annotations=[{','.join(map(str, bonn))}]", "max_steps_per_epoch=1",
            f"output_dir={tmp_path / 'prn'}"])
    lp = losses(tmp_path / "prn")
    assert len(lp) == 3 and lp[-1] < lp[0]

    sd = {s: torch.load(tmp_path / s / "last.pt", map_location="cpu", weights_only=True) for s in ("kpt", "det", "prn")}
    frozen = [k for k in sd["kpt"]["network"] if not k.startswith(("detection_fpn.", "detection_head."))]
    assert all(torch.equal(sd["kpt"]["network"][k], sd["det"]["network"][k]) for k in frozen)
    assert not torch.equal(sd["kpt"]["network"]["detection_head.classification_head.cls_logits.weight"],
                           sd["det"]["network"]["detection_head.classification_head.cls_logits.weight"])
    assert all(torch.equal(v, sd["prn"]["network"][k]) for k, v in sd["det"]["network"].items())
    assert not torch.equal(sd["det"]["prn"]["dens1.weight"], sd["prn"]["prn"]["dens1.weight"])
    assert sd["prn"]["stage"] == "multiposenet_prn" and sd["prn"]["ucr_prior"].shape == (17, 56, 36)
    est = create_multiposenet_estimator(tmp_path / "prn" / "last.pt", assign="ucr")  # strict, weights_only
    assert torch.equal(est.prn.dens2.weight, sd["prn"]["prn"]["dens2.weight"]) and est.prior is not None
    assert (tmp_path / "prn" / "config.yaml").is_file()
