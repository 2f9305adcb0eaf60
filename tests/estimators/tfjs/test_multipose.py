"""MoveNet multipose: our batched decoding of the raw heads against the graph's own (batch-1) ``Identity``
output on real images, the input fitting, and the boxes / poses it gives on the shared COCO images. Needs the
TF.js models (conftest ``tfjs_models``) and the shared COCO images."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from estimators.tfjs.graph import load_graph_model
from estimators.tfjs.known import KNOWN_GRAPHS
from estimators.tfjs.multipose import MultiPoseModel, decode_multipose, fit_input, read_decode_constants
from estimators.tfjs.weights import read_model

SHARED = Path(os.environ.get("POSETRACK_SHARED", Path(__file__).resolve().parents[4] / "shared"))
COCO_DIR = SHARED / "data" / "mmpose_testdata" / "coco"


@pytest.fixture(scope="module")
def coco():
    ann = COCO_DIR / "test_coco.json"
    if not ann.is_file():
        pytest.skip(f"shared COCO test images not found: {ann}")
    doc = json.loads(ann.read_text())
    out = []
    for im in doc["images"]:
        anns = [a for a in doc["annotations"] if a["image_id"] == im["id"] and a["num_keypoints"] > 0]
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                          for a in anns], np.float32).reshape(-1, 4)
        out.append((cv2.imread(str(COCO_DIR / im["file_name"])), boxes))
    return out


def test_fit_input_keeps_the_aspect_and_pads_to_32():
    image = np.full((720, 1280, 3), (10, 20, 30), np.uint8)
    x, scale = fit_input(image, 512)
    assert x.shape == (288, 512, 3) and x.dtype == np.int32 and scale == pytest.approx(0.4)
    assert (x[0, 0] == (30, 20, 10)).all() and (x[-1, -1] == (30, 20, 10)).all()  # RGB; 288 rows, no padding
    x, _ = fit_input(image[:700], 512)
    assert x.shape == (288, 512, 3) and (x[-1] == 0).all()  # 280 rows of image, 8 of zeros


def test_decoding_matches_the_graph(tfjs_models, coco):
    path = tfjs_models / "movenet-multipose.json"
    constants = read_decode_constants(read_model(path))
    assert constants["top_k"] == 6 and constants["pool"] == 5
    image = coco[3][0]  # five people
    x, _ = fit_input(image, 256)
    full = load_graph_model(path, outputs=["Identity"] + list(KNOWN_GRAPHS["movenet-multipose"]["outputs"]),
                            input_shapes={"input": (1, *x.shape)})
    with torch.no_grad():
        ref, *heads = full(torch.from_numpy(x[None]))
        ours = decode_multipose(*heads, constants)
        two = decode_multipose(*(torch.cat([h, h.flip(0)]) for h in heads), constants)  # batch of 2
    assert ref.shape == ours.shape == (1, 6, 56)
    assert (ref[0, :, -1] > 0.3).sum() >= 3
    assert (ours - ref).abs().max() <= 1e-5
    assert (two[0] - ref[0]).abs().max() <= 1e-5 and (two[1] - ref[0]).abs().max() <= 1e-5


def test_people_on_coco(tfjs_models, coco):
    model = MultiPoseModel(tfjs_models / "movenet-multipose.json", long_side=512)
    results = model([im for im, _ in coco])
    matched = annotated = 0
    for (image, gt), (boxes, scores, kps, kp_scores) in zip(coco, results):
        assert boxes.shape == (6, 4) and scores.shape == (6,) and kps.shape == (6, 17, 2) and kp_scores.shape == (6, 17)
        assert np.all(np.diff(scores) <= 0)
        assert np.all(boxes[:, [0, 2]] <= image.shape[1]) and np.all(boxes[:, [1, 3]] <= image.shape[0])
        good = scores >= 0.2
        iou = box_iou(torch.from_numpy(gt), torch.from_numpy(boxes[good])).numpy()
        matched += int((iou.max(axis=1, initial=0) >= 0.5).sum())
        annotated += len(gt)
        # a person's keypoints lie in (or near) its box
        inside = ((kps[good, :, 0] >= boxes[good, None, 0] - 20) & (kps[good, :, 0] <= boxes[good, None, 2] + 20))
        assert inside.mean() > 0.9
    print(f"\nmultipose >= 0.2 at 512: {matched} of {annotated} annotated people at IoU >= 0.5")
    assert matched >= annotated - 3
