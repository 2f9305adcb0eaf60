"""MoveNet single-pose: our batched decoding of the raw heads against the graph's own (batch-1) decoded output
on real person crops, and the registered estimators (crops, batching, flip symmetry, COCO accuracy on the shared
COCO images' ground-truth boxes). Needs the TF.js models (conftest ``tfjs_models``) and the shared COCO images."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from association.keypoints import COCO17
from association.oks import oks_matrix
from estimators.spec import InferenceError
from estimators.tfjs.graph import load_graph_model
from estimators.tfjs.movenet import crop_square, decode_singlepose, read_decode_constants, square_regions
from estimators.tfjs.weights import read_model

SHARED = Path(os.environ.get("POSETRACK_SHARED", Path(__file__).resolve().parents[4] / "shared"))
COCO_DIR = SHARED / "data" / "mmpose_testdata" / "coco"


@pytest.fixture(scope="module")
def coco_people():
    """[(image BGR, GT boxes (N, 4) xyxy px, GT keypoints (N, 17, 3), areas (N,))] of the 4 shared COCO images."""
    ann = COCO_DIR / "test_coco.json"
    if not ann.is_file():
        pytest.skip(f"shared COCO test images not found: {ann}")
    doc = json.loads(ann.read_text())
    out = []
    for im in doc["images"]:
        anns = [a for a in doc["annotations"] if a["image_id"] == im["id"] and a["num_keypoints"] > 0]
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                          for a in anns], np.float32)
        kps = np.array([a["keypoints"] for a in anns], np.float32).reshape(-1, 17, 3)
        out.append((cv2.imread(str(COCO_DIR / im["file_name"])), boxes, kps,
                    np.array([a["area"] for a in anns], np.float64)))
    return out


@pytest.mark.parametrize("model,size,step", [
    pytest.param("movenet-thunder", 256, 1, marks=pytest.mark.slow),  # all 12 people
    ("movenet-lightning", 192, 4),  # every fourth person (the full graph runs one crop at a time)
])
def test_decoding_matches_the_graph_on_real_crops(model, size, step, tfjs_models, coco_people):
    """The whole graph (batch 1) gives its raw heads and its own decoded output per crop; our decoding of the
    heads of all crops stacked as one batch must give the graph's output."""
    from estimators.tfjs.known import KNOWN_GRAPHS

    path = tfjs_models / f"{model}.json"
    heads = list(KNOWN_GRAPHS[model]["outputs"])
    full = load_graph_model(path, outputs=[*heads, "Identity"])
    constants = read_decode_constants(read_model(path))
    assert constants["centre_weight"].shape == (size // 4, size // 4)
    crops = []
    for image, boxes, _, _ in coco_people:
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        crops += [np.round(crop_square(rgb, r, size)) for r in square_regions(boxes, 1.25)]
    with torch.no_grad():
        outs = [full(torch.from_numpy(c[None].astype(np.int32))) for c in crops[::step]]
    stacked = [torch.cat([o[k] for o in outs]) for k in range(len(heads))]
    ref = np.concatenate([o[-1].numpy()[0, 0][None] for o in outs])
    ours = decode_singlepose(*stacked, constants).numpy()
    assert ours.shape == ref.shape == (len(outs), 17, 3)
    err_px = np.abs(ours[..., :2] - ref[..., :2]).max() * size
    err_score = np.abs(ours[..., 2] - ref[..., 2]).max()
    print(f"\n{model}: {len(outs)} real crops, max |ours - graph| = {err_px:.2e} crop px, score {err_score:.2e}")
    assert err_px <= 1e-4 and err_score <= 1e-5
    assert ref[..., 2].mean() > 0.3  # real people: confident keypoints, not a degenerate comparison


def test_square_regions_and_crop_geometry():
    boxes = np.array([[10, 20, 50, 120]], np.float32)
    x0, y0, side = square_regions(boxes, 1.2)[0]
    assert side == pytest.approx(120.0) and (x0 + side / 2, y0 + side / 2) == pytest.approx((30.0, 70.0))
    # a crop of the whole image at its own size is the image itself (pixel-edge convention)
    img = np.random.default_rng(0).integers(0, 255, (16, 16, 3)).astype(np.uint8)
    assert np.allclose(crop_square(img, np.array([0.0, 0.0, 16.0]), 16), img)
    # outside the image: zeros (the packager pads with zeros)
    assert crop_square(img, np.array([-16.0, 0.0, 16.0]), 16).max() == 0


@pytest.fixture(scope="module")
def thunder(tfjs_models):
    from estimators.registry import get_spec

    spec = get_spec("movenet_thunder")
    return spec.builder(tfjs_models / "movenet-thunder.json", max_batch=8)


def test_registered_specs():
    from estimators.registry import get_spec, list_models

    assert {"movenet_thunder", "movenet_lightning"} <= set(list_models())
    for name, size in (("movenet_thunder", 256), ("movenet_lightning", 192)):
        spec = get_spec(name)
        assert spec.layout is COCO17 and spec.input_size == (size, size) and spec.embedded_weights
        assert spec.family is None and spec.kind == "movenet"


def test_thunder_on_coco_gt_boxes(thunder, coco_people):
    images = [c[0] for c in coco_people]
    boxes = [c[1] for c in coco_people]
    results = thunder.estimate_batch(images, boxes, [np.full(len(b), 0.5, np.float32) for b in boxes])
    oks_all = []
    for (_, b, gt, areas), poses in zip(coco_people, results):
        assert poses.keypoints.shape == (len(b), 17, 2) and poses.keypoint_scores.shape == (len(b), 17)
        assert np.all((poses.keypoint_scores >= 0) & (poses.keypoint_scores <= 1))
        assert np.allclose(poses.pose_scores, 0.5 * poses.keypoint_scores.mean(axis=1), atol=1e-6)
        oks = oks_matrix(poses.keypoints, gt[..., :2], areas_b=areas, scores_b=gt[..., 2], score_threshold=1.0)
        oks_all += list(np.diag(oks))
    oks_all = np.array(oks_all)
    print(f"\nthunder on {len(oks_all)} COCO GT boxes: OKS median {np.median(oks_all):.3f}, min {oks_all.min():.3f}")
    assert np.median(oks_all) > 0.85 and (oks_all > 0.5).mean() >= 0.8


def test_bf16_precision_stays_close_to_fp32(thunder, tfjs_models, coco_people):
    """The opt-in bf16 network: keypoints within a few px of fp32 on the real COCO people (measured over the 12:
    median drift 0.25 px, 90th percentile 1.0 px of the 256 px crop; COCO AP 0.7925 both,
    ``benchmarks/movenet.py --bf16``); a precision it does not have is refused."""
    from estimators.registry import get_spec

    bf16 = get_spec("movenet_thunder").builder(tfjs_models / "movenet-thunder.json", max_batch=8, precision="bf16")
    assert next(bf16.network.parameters()).dtype == torch.bfloat16
    images, boxes = [c[0] for c in coco_people], [c[1] for c in coco_people]
    a = thunder.estimate_batch(images, boxes)
    b = bf16.estimate_batch(images, boxes)
    drift = np.concatenate([np.linalg.norm(p.keypoints - q.keypoints, axis=-1).ravel() for p, q in zip(a, b)])
    sides = np.concatenate([np.repeat(square_regions(bx, thunder.padding)[:, 2], 17) for bx in boxes])
    drift_crop = drift / sides * 256  # px of the 256 px crop
    assert np.median(drift_crop) < 1.0 and np.quantile(drift_crop, 0.9) < 3.0
    with pytest.raises(InferenceError, match="precision"):
        get_spec("movenet_thunder").builder(tfjs_models / "movenet-thunder.json", precision="fp16")


def test_flip_test_is_mirror_symmetric(thunder, coco_people):
    image, boxes = coco_people[0][0], coco_people[0][1]
    w = image.shape[1]
    mirrored_boxes = np.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], axis=1)
    thunder.flip_test = True
    try:
        a = thunder.estimate(image, boxes)
        b = thunder.estimate(np.ascontiguousarray(image[:, ::-1]), mirrored_boxes)
    finally:
        thunder.flip_test = False
    back = b.keypoints[:, COCO17.flip_permutation()]
    back[..., 0] = w - back[..., 0]
    err = np.abs(back - a.keypoints)
    assert np.median(err) < 0.05 and err.max() < 2.0  # px; an argmax may move one cell on float noise
    assert np.median(np.abs(b.keypoint_scores[:, COCO17.flip_permutation()] - a.keypoint_scores)) < 1e-3


def test_empty_and_bad_input(thunder):
    image = np.zeros((64, 80, 3), np.uint8)
    assert len(thunder.estimate(image, np.zeros((0, 4), np.float32), np.zeros(0, np.float32))) == 0
    with pytest.raises(InferenceError, match="boxes"):
        thunder.estimate(image, np.zeros((2, 3), np.float32), np.ones(2, np.float32))
    with pytest.raises(InferenceError, match="images"):
        thunder.estimate(np.zeros((64, 80), np.uint8), np.zeros((0, 4), np.float32))


def test_tracking_config_precision_and_flip_test_reach_movenet(tfjs_models):
    """``estimator.precision`` / ``estimator.flip_test`` of a tracking config are honoured for MoveNet (the factory
    used to drop them for this kind of model)."""
    from tracker.build import build_estimator
    from tracker.config import load_track_config

    cfg = load_track_config("default", ["estimator.precision=bf16", "estimator.flip_test=true"])
    est = build_estimator(cfg)
    assert est.flip_test is True and est.precision == "bf16"
    assert next(est.network.parameters()).dtype == torch.bfloat16
    plain = build_estimator(load_track_config("default"))
    assert plain.flip_test is False and plain.precision == "fp32"
