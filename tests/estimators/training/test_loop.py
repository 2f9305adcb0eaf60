"""Trainer on the real COCO / PoseTrack18 test data: every family end to end (data -> loss -> step ->
checkpoint -> COCO AP table), schedules and recipes, resume == straight run, DDP (2 processes, gloo) ==
1 process at the same global batch, fine-tuning on PoseTrack18 from a fresh COCO checkpoint, the CLI."""
from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from association.keypoints import COCO17, POSETRACK18
from configs import PRESET_DIR
from configs.loader import ConfigError, to_dict
from estimators.checkpoints import load_weights
from estimators.training.checkpointing import build_network, model_from_checkpoint
from estimators.training.config import (
    AugmentConfig,
    DataConfig,
    ModelConfig,
    ScheduleConfig,
    TrainConfig,
    load_config,
)
from estimators.training.loop import lr_factor, train

REPO = Path(__file__).resolve().parents[3]
TINY = {
    "hrnet": ModelConfig(arch="hrnet", kwargs={"width": 8, "num_modules": [1, 1, 1], "num_blocks": 1,
                                               "layer1_blocks": 1}),
    "ms_hrnet": ModelConfig(arch="ms_hrnet", kwargs={"width": 8, "num_modules": [1, 1, 1], "num_blocks": 1}),
    "mspn": ModelConfig(arch="mspn", kwargs={"num_stages": 2, "num_blocks": [1, 1, 1, 1], "block": "basic",
                                             "unit_channels": 32, "top_channels": 16}),
    "rsn": ModelConfig(arch="rsn", kwargs={"num_stages": 2, "num_blocks": [1, 1, 1, 1], "unit_channels": 32,
                                           "top_channels": 16}),
}


def coco_cfg(testdata, out, model="hrnet", **kw) -> TrainConfig:
    coco = testdata / "coco"
    ann = [str(coco / "test_coco.json")]
    base = dict(
        model=TINY[model], data=DataConfig(dataset="coco", train_annotations=ann, train_images=str(coco),
                                           val_annotations=ann, val_images=str(coco), workers=0),
        input_size=(64, 64), batch_size=4, epochs=1, output_dir=str(out), progress=False, cpu_threads=1,
        oks_nms=0.9 if model in ("hrnet", "ms_hrnet") else None, seed=7)
    if model in ("mspn", "rsn"):
        base["schedule"] = ScheduleConfig(lr=5e-4, weight_decay=1e-5, policy="linear")
        base["augment"] = AugmentConfig(scale_range=(0.7, 1.35))
    base.update(kw)
    return TrainConfig(**base)


def read_log(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -------------------------------------------------------------------------------------- schedules, recipes
def test_schedules_of_the_papers():
    hr = ScheduleConfig(lr=1e-3, policy="step", milestones=[170, 200], gamma=0.1)
    lrs = {e: 1e-3 * lr_factor(e * 100, 100, 210, hr) for e in (0, 169, 170, 199, 200, 209)}
    assert lrs[0] == lrs[169] == pytest.approx(1e-3)
    assert lrs[170] == lrs[199] == pytest.approx(1e-4)
    assert lrs[200] == lrs[209] == pytest.approx(1e-5)
    pt = ScheduleConfig(lr=1e-4, policy="step", milestones=[10, 15], gamma=0.1)
    assert [1e-4 * lr_factor(e * 7, 7, 20, pt) for e in (9, 10, 14, 15, 19)] == \
        pytest.approx([1e-4, 1e-5, 1e-5, 1e-6, 1e-6])
    lin = ScheduleConfig(lr=5e-4, policy="linear")
    assert lr_factor(0, 10, 4, lin) == 1.0 and lr_factor(20, 10, 4, lin) == pytest.approx(0.5)
    assert lr_factor(39, 10, 4, lin) == pytest.approx(1 / 40) and lr_factor(40, 10, 4, lin) == 0.0


def test_recipes_load_with_the_papers_facts():
    files = sorted(PRESET_DIR.glob("train_*.yaml"))
    assert len(files) >= 5
    cfgs = {f.name: load_config(f) for f in files}
    for name, c in cfgs.items():
        assert c.schedule.optimizer == "adam"
        if "hrnet" in name and "posetrack" not in name:
            assert c.schedule.lr == 1e-3 and c.schedule.policy == "step" and c.oks_nms == 0.9
        if "mspn" in name or "rsn" in name:
            assert (c.schedule.lr, c.schedule.policy, c.schedule.weight_decay) == (5e-4, "linear", 1e-5)
            assert c.oks_nms is None and tuple(c.augment.scale_range) == (0.7, 1.35)
        if "posetrack" in name:
            assert (c.schedule.lr, c.schedule.milestones, c.epochs) == (1e-4, [10, 15], 20)
            assert c.data.dataset == "posetrack" and c.model.init_checkpoint
    w32 = cfgs["train_hrnet_w32_coco_256x192_adam_lr1e-3_step170-200_210e.yaml"]
    assert (w32.epochs, w32.schedule.milestones, tuple(w32.input_size), tuple(w32.augment.scale_range)) == \
        (210, [170, 200], (192, 256), (0.65, 1.35))
    with pytest.raises(ConfigError, match="bogus"):
        load_config(files[0], ["bogus=1"])
    with pytest.raises(ConfigError, match="input_size"):
        load_config(files[0], ["input_size=[100,100]"])
    # a shipped recipe by name
    assert to_dict(load_config(files[0].stem.removeprefix("train_"))) == to_dict(cfgs[files[0].name])
    with pytest.raises(ConfigError, match="valid presets: .*hrnet_w32_coco"):
        load_config("hrnet_w32_coco_256x192_adam_lr1e-3_210e")


# ----------------------------------------------------------------------------------------- every family
@pytest.mark.parametrize("family", ["hrnet", "ms_hrnet", "mspn", "rsn"])
def test_short_run_end_to_end(testdata, tmp_path, family, capsys):
    cfg = coco_cfg(testdata, tmp_path, family, max_steps_per_epoch=2, val_flip_test=family == "hrnet")
    res = train(cfg)
    assert len(res.losses) == 2 and all(math.isfinite(v) and v > 0 for v in res.losses)
    stats = res.val[-1]["stats"]
    assert set(stats) >= {"AP", "AP .5", "AR"} and all(0.0 <= v <= 1.0 for v in stats.values())
    assert "| AP |" in capsys.readouterr().out
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "best.pt").is_file()
    assert len(read_log(tmp_path / "train_log.csv")) == 2 and (tmp_path / "config.yaml").is_file()
    model, cfg2, layout = model_from_checkpoint(tmp_path / "last.pt")
    assert model.arch == family and to_dict(cfg2) == to_dict(cfg) and layout is COCO17


# ------------------------------------------------------------------------------------------------ resume
def test_resume_after_a_real_kill(testdata, tmp_path):
    """`posetrack train` in a subprocess, SIGKILLed as soon as its first checkpoint exists, then resumed:
    the combined loss log equals an uninterrupted run (rows logged after the checkpoint are discarded)."""
    import time

    kw = dict(epochs=2, max_steps_per_epoch=2, val_every=0)  # N = 4 steps, killed after N/2
    straight = train(coco_cfg(testdata, tmp_path / "a", **kw))
    cfg = coco_cfg(testdata, tmp_path / "b", **kw)
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "tracker.cli", "train", str(path)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not (tmp_path / "b" / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    done = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["epoch"]
    assert 1 <= done <= 2
    resumed = train(TrainConfig(**{**cfg.__dict__, "resume": "auto"}))
    assert len(resumed.losses) == 2 * (2 - done)
    log = read_log(tmp_path / "b" / "train_log.csv")
    assert [int(r["step"]) for r in log] == [1, 2, 3, 4]
    assert [float(r["loss"]) for r in log] == pytest.approx(straight.losses, rel=1e-6, abs=1e-9)
    assert resumed.lrs == straight.lrs[len(straight.lrs) - len(resumed.lrs):]
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


# --------------------------------------------------------------------------------------------------- DDP
def test_ddp_two_processes_equal_one_process(testdata, tmp_path):
    """Global batch 4: one process x 4 vs two gloo processes x 2. BatchNorm is 'frozen' (running statistics)
    because per-process batch statistics differ by construction and torch has no CPU SyncBatchNorm."""
    kw = dict(epochs=1, max_steps_per_epoch=3, val_every=0, batchnorm="frozen")
    single = train(coco_cfg(testdata, tmp_path / "one", **kw))
    cfg = coco_cfg(testdata, tmp_path / "two", **kw)
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "tracker.cli", "train", str(path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = read_log(tmp_path / "two" / "train_log.csv")
    two = [float(r["loss"]) for r in log]
    assert len(two) == len(single.losses) == 3
    assert two == pytest.approx(single.losses, rel=1e-5, abs=1e-9)
    a = torch.load(tmp_path / "one" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "two" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.allclose(a[k].float(), b[k].float(), rtol=1e-4, atol=1e-6) for k in a)


# ------------------------------------------------------------------------------------ fine-tune, CLI
def test_finetune_on_posetrack18_from_a_fresh_coco_checkpoint(testdata, tmp_path):
    coco_run = train(coco_cfg(testdata, tmp_path / "coco", max_steps_per_epoch=1, val_every=0))
    ckpt = coco_run.last_checkpoint
    pt = testdata / "posetrack18"
    files = [str(pt / "annotations" / "val")]
    model_cfg = ModelConfig(arch="hrnet", kwargs=TINY["hrnet"].kwargs, init_checkpoint=ckpt, init_source="native")
    loaded = build_network(model_cfg).state_dict()
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    cfg = TrainConfig(model=model_cfg,
                      data=DataConfig(dataset="posetrack", train_annotations=files, train_images=str(pt),
                                      val_annotations=files, val_images=str(pt), workers=0),
                      schedule=ScheduleConfig(lr=1e-4, milestones=[10, 15]), input_size=(64, 64), batch_size=4,
                      epochs=1, max_steps_per_epoch=2, output_dir=str(tmp_path / "pt"), progress=False, cpu_threads=1)
    res = train(cfg)
    assert len(res.losses) == 2 and res.lrs == [1e-4, 1e-4]
    stats = res.val[-1]["stats"]
    assert set(stats) == {"Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total"}
    assert 0.0 <= res.best_metric <= 1.0
    # the checkpoint says its keypoints are PoseTrack18's, so inference flips with those pairs
    _, layout = load_weights(build_network(model_cfg), res.last_checkpoint)
    assert layout is POSETRACK18


def test_cli_evaluate_coco_and_errors(testdata, tmp_path, capsys):
    from tracker.cli import main

    train(coco_cfg(testdata, tmp_path / "run", max_steps_per_epoch=1, val_every=0))
    coco = testdata / "coco"
    rc = main(["evaluate-coco", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--annotations",
               str(coco / "test_coco.json"), "--images", str(coco), "--detections",
               str(coco / "test_coco_det_AP_H_56.json"), "--det-threshold", "0.5", "--workers", "0",
               "--output", str(tmp_path / "res.json")])
    out = capsys.readouterr().out
    assert rc == 0 and "| AP |" in out and (tmp_path / "res.json").is_file()
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\nnot_a_key: 3\n")
    assert main(["train", str(cfg)]) == 2
    assert "not_a_key" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- evaluation
def test_coco_eval_of_the_ground_truth_is_perfect_and_oks_nms_removes_duplicates(testdata):
    import numpy as np

    from association.nms import oks_nms
    from estimators.training.coco_eval import coco_keypoint_eval, coco_results, posetrack_map
    from estimators.training.datasets import load_coco_gt, load_posetrack

    ann = testdata / "coco" / "test_coco.json"
    samples = load_coco_gt(ann, testdata / "coco")
    n = len(samples)
    pred = {"keypoints": np.stack([s.keypoints for s in samples]), "keypoint_scores": np.ones((n, 17), np.float32),
            "pose_scores": np.linspace(1.0, 0.5, n).astype(np.float32),
            "areas": np.array([s.area for s in samples], np.float32)}
    stats = coco_keypoint_eval(str(ann), coco_results(samples, pred, 0.9))
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)
    kp = pred["keypoints"][:1].astype(np.float64)
    three = np.concatenate([kp, kp + 0.5, kp + 300.0])
    coco = dict(areas=np.full(3, 1e4), mean_area=True, strict=True)  # the COCO-evaluation convention
    keep = oks_nms(three, np.array([0.5, 0.9, 0.7]), None, 0.9, np.ones((3, 17)), 0.2, **coco)
    assert keep.tolist() == [1, 2]
    assert oks_nms(three, np.array([0.5, 0.9, 0.7]), None, 1.0, np.ones((3, 17)), 0.2, **coco).tolist() == [1, 2, 0]
    # coco_results applies it per image: a near-duplicate of a GT pose is dropped, the GT poses all stay
    dup = {k: np.concatenate([v, v[:1]]) for k, v in pred.items()}
    dup["keypoints"][-1] += 0.5
    dup["pose_scores"][-1] = 0.1
    assert len(coco_results([*samples, samples[0]], dup, 0.9)) == n
    assert len(coco_results([*samples, samples[0]], dup, None)) == n + 1
    # PoseTrack mAP of the ground truth itself is 100 (joints outside ignore regions)
    pt = testdata / "posetrack18"
    files = sorted((pt / "annotations" / "val").glob("*.json"))
    ps = load_posetrack(files, pt)
    m = len(ps)
    ap = posetrack_map(ps, {"keypoints": np.stack([s.keypoints for s in ps]),
                            "keypoint_scores": np.stack([s.visible for s in ps]) + 0.5,
                            "pose_scores": np.ones(m), "areas": np.ones(m)}, files)
    assert ap["Total"] == pytest.approx(100.0)
