"""``posetrack estimate`` and ``posetrack convert-checkpoint`` through the real entry point, on real files."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from estimators.checkpoints import save_state_dict
from estimators.factory import build_model
from tracker.cli import main

MODEL = "rsn_18"  # the smallest registered network


@pytest.fixture(autouse=True)
def _one_thread():
    # Two shared cores: intra-op threads fighting other processes make small forwards many times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def rsn_state():
    torch.manual_seed(0)
    model = build_model(MODEL)
    for p in model.parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.05)
    return {k: v.clone() for k, v in model.state_dict().items()}, model


@pytest.fixture(scope="module")
def mmpose0x_file(rsn_state, tmp_path_factory):
    """An MMPose 0.x-style checkpoint file ({'meta', 'state_dict'}, head under ``keypoint_head.``)."""
    state, _ = rsn_state
    sd = {("keypoint_head." + k[len("head."):] if k.startswith("head.") else k): v for k, v in state.items()}
    path = tmp_path_factory.mktemp("ckpt") / "rsn18_mmpose0x.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": sd}, path)
    yield path, sd
    path.unlink()


def test_the_test_checkpoint_has_the_released_mmpose0x_layout(mmpose0x_file, reference):
    _, sd = mmpose0x_file
    layout = json.loads((reference / "checkpoint_layouts" / "mmpose0x_rsn18.json").read_text())
    assert {k: list(v.shape) for k, v in sd.items()} == {k: list(v) for k, v in layout.items()}


def test_convert_checkpoint_writes_our_layout(mmpose0x_file, rsn_state, tmp_path, capsys):
    src, _ = mmpose0x_file
    state, _ = rsn_state
    out = tmp_path / "converted.pth"
    assert main(["convert-checkpoint", str(src), str(out), "--estimator", MODEL,
                 "--checkpoint-format", "mmpose0x"]) == 0
    assert "our layout" in capsys.readouterr().out
    written = torch.load(out, weights_only=True)
    assert set(written) == set(state)
    for k, v in state.items():
        assert torch.equal(written[k], v), k
    # the source is guessed from the keys when not given
    out2 = tmp_path / "guessed.pth"
    assert main(["convert-checkpoint", str(src), str(out2), "--estimator", MODEL]) == 0
    assert "(mmpose0x)" in capsys.readouterr().out


def test_convert_checkpoint_keeps_the_keypoint_layout_the_file_declares(rsn_state, tmp_path, capsys):
    """An MMPose 1.x file trained on PoseTrack18 (its dataset_meta names head_bottom/head_top) converts to our
    layout with that keypoint layout kept, so the estimator built from the converted file flips correctly."""
    from association.keypoints import POSETRACK18
    from estimators.checkpoints import load_weights

    state, _ = rsn_state
    meta = {"dataset_name": "posetrack18", "keypoint_id2name": dict(enumerate(POSETRACK18.names)),
            "flip_indices": [int(i) for i in POSETRACK18.flip_permutation()]}
    src = tmp_path / "rsn18_posetrack18_mmpose1x.pth"
    torch.save({"meta": {"dataset_meta": meta}, "state_dict": state}, src)
    out = tmp_path / "converted.pth"
    assert main(["convert-checkpoint", str(src), str(out), "--estimator", MODEL]) == 0
    assert "keypoint layout posetrack18" in capsys.readouterr().out
    assert load_weights(build_model(MODEL), out) == ("native", POSETRACK18)


def test_convert_checkpoint_fails_cleanly(mmpose0x_file, tmp_path, capsys):
    src, _ = mmpose0x_file
    out = tmp_path / "x.pth"
    assert main(["convert-checkpoint", str(src), str(out), "--estimator", "mspn_1stg",
                 "--checkpoint-format", "mmpose0x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("posetrack convert-checkpoint: error:") and src.name in err
    assert not out.exists()
    assert main(["convert-checkpoint", str(tmp_path / "missing.pth"), str(out), "--estimator", MODEL]) == 2
    assert "missing.pth" in capsys.readouterr().err


def test_convert_checkpoint_to_a_folder_or_an_unwritable_place_is_one_line(mmpose0x_file, tmp_path, capsys):
    """Issue 12 item 9: OUT being an existing folder printed torch's traceback (after loading the model)."""
    import os
    import sys

    src, _ = mmpose0x_file
    (tmp_path / "a_file").write_text("not a folder")
    targets = [(tmp_path, "is an existing folder"), (tmp_path / "a_file" / "x.pth", "cannot create its folder")]
    if sys.platform.startswith("linux") and os.path.exists("/dev/full"):
        targets.append(("/dev/full", "cannot write the converted checkpoint"))  # every write fails: disk full
    for out, needle in targets:
        assert main(["convert-checkpoint", str(src), str(out), "--estimator", MODEL]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"posetrack convert-checkpoint: error: OUT {out}") and needle in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_estimate_with_detections_json_out_and_render(testdata, rsn_state, tmp_path, capsys):
    _, model = rsn_state
    ckpt = save_state_dict(model, tmp_path / "rsn18.pth")
    image = testdata / "coco" / "000000000785.jpg"
    dets = testdata / "coco" / "test_coco_det_AP_H_56.json"
    out, png = tmp_path / "res" / "kps.json", tmp_path / "res" / "render.png"
    rc = main(["estimate", str(image), "--estimator", MODEL, "--checkpoint", str(ckpt), "--boxes-json", str(dets),
               "--min-box-score", "0.3", "--input-size", "32x64", "--out", str(out), "--render", str(png)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "RANDOM" not in captured.err and "person(s)" in captured.err
    expected = [d for d in json.loads(dets.read_text()) if d["image_id"] == 785 and d["score"] >= 0.3]
    results = json.loads(out.read_text())
    assert len(results) == len(expected) > 0
    h, w = cv2.imread(str(image)).shape[:2]
    for r, d in zip(results, expected):
        assert r["image_id"] == 785 and r["category_id"] == 1
        kp = np.array(r["keypoints"]).reshape(17, 3)
        assert np.isfinite(kp).all()
        np.testing.assert_allclose(r["bbox"], d["bbox"], atol=0.01)
        # every keypoint lies inside the (enlarged) crop region around its box
        x, y, bw, bh = d["bbox"]
        assert (kp[:, 0] > x - bw).all() and (kp[:, 0] < x + 2 * bw).all()
        assert (kp[:, 1] > y - bh).all() and (kp[:, 1] < y + 2 * bh).all()
        # MSPN-family pose score: box score x mean RAW joint score (= calibrated + 0.5), as released
        assert np.isclose(r["score"], r["box_score"] * (kp[:, 2].mean() + 0.5), rtol=1e-3)
    drawn = cv2.imread(str(png))
    assert drawn.shape == (h, w, 3)
    assert (drawn != cv2.imread(str(image))).any()


def test_estimate_without_checkpoint_refuses_unless_random_weights_are_asked_for(testdata, capsys):
    image = testdata / "coco" / "000000040083.jpg"
    args = ["estimate", str(image), "--estimator", MODEL, "--boxes", "10,20,110,220,0.8;50,60,90,140",
            "--input-size", "32x64", "--no-flip"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("posetrack estimate: error:") and "--checkpoint" in err and err.count("\n") == 1
    rc = main(args + ["--random-weights"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "RANDOM weights" in captured.err
    results = json.loads(captured.out)
    assert [r["box_score"] for r in results] == [0.8, 1.0]
    assert all(r["image_id"] == 40083 and len(r["keypoints"]) == 51 for r in results)


def test_estimate_bad_input_exits_2_with_one_line(testdata, tmp_path, capsys):
    image = testdata / "coco" / "000000040083.jpg"
    assert main(["estimate", str(image), "--estimator", MODEL, "--boxes", "10,20,5,220"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("posetrack estimate: error: --boxes item 0") and err.count("\n") == 1
    with pytest.raises(SystemExit):  # argparse: a bad WxH names the flag
        main(["estimate", str(image), "--estimator", MODEL, "--boxes", "1,2,3,4", "--input-size", "32by64"])
    assert "--input-size" in capsys.readouterr().err
    assert main(["estimate", str(tmp_path / "nope.jpg"), "--estimator", MODEL, "--boxes", "1,2,3,4"]) == 2
    assert "nope.jpg" in capsys.readouterr().err
    bad = tmp_path / "dets.json"
    bad.write_text(json.dumps([{"image_id": 40083, "category_id": 1, "bbox": [1, 2], "score": 0.9}]))
    assert main(["estimate", str(image), "--estimator", MODEL, "--boxes-json", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "dets.json" in err and "bbox" in err
