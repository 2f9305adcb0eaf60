"""CenterNet: our batched decoding of the raw heads against the graph's own ``tower_0/detections`` (batch 1) on
real COCO images, and the person boxes it gives there. Needs the TF.js models (conftest ``tfjs_models``) and the
shared COCO images."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from estimators.tfjs.centernet import PERSON, CenterNetPersons, decode_centernet, preprocess
from estimators.tfjs.graph import load_graph_model

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


def test_decoding_matches_the_graph(tfjs_models, coco):
    full = load_graph_model(tfjs_models / "centernet.json",
                            outputs=["tower_0/detections", "tower_0/keypoints", "tower_0/wh"])
    image = coco[3][0]  # five people
    with torch.no_grad():
        ref, heat, wh = full(torch.from_numpy(preprocess(image)[None]))
    ref = ref[0].numpy()
    ours = decode_centernet(heat, wh)[0].numpy()  # every class, as the graph
    strong = ref[:, 4] > 0.05  # below that, tied zero scores may come in any order
    assert strong.sum() >= 5
    assert np.abs(ours[strong] - ref[strong]).max() <= 1e-4
    # one class only: the same person entries as the graph's all-class list
    persons = ref[(ref[:, 5] == PERSON) & (ref[:, 4] >= 0.3)]
    mine = decode_centernet(heat, wh, class_id=PERSON)[0].numpy()
    mine = mine[mine[:, 4] >= 0.3]
    assert len(persons) >= 4 and mine.shape == persons.shape and np.abs(mine - persons).max() <= 1e-4


def test_person_boxes_on_coco(tfjs_models, coco):
    model = CenterNetPersons(tfjs_models / "centernet.json")
    results = model([im for im, _ in coco], score_threshold=0.3, nms_iou=0.5)
    matched = unmatched = annotated = 0
    for (image, gt), (boxes, scores) in zip(coco, results):
        assert boxes.dtype == np.float32 and boxes.shape == (len(scores), 4)
        assert np.all(np.diff(scores) <= 0) and np.all(scores >= 0.3)
        assert np.all(boxes[:, [0, 2]] <= image.shape[1]) and np.all(boxes[:, [1, 3]] <= image.shape[0])
        iou = box_iou(torch.from_numpy(gt), torch.from_numpy(boxes)).numpy()
        matched += int((iou.max(axis=1, initial=0) >= 0.5).sum())
        unmatched += int((iou.max(axis=0, initial=0) < 0.5).sum())
        annotated += len(gt)
    alone = model([coco[3][0]], score_threshold=0.3, nms_iou=0.5)[0]  # batching is invisible
    assert np.abs(alone[0] - results[3][0]).max() < 1e-2 and np.abs(alone[1] - results[3][1]).max() < 1e-4
    print(f"\ncenternet person >= 0.3: {matched} of {annotated} annotated people at IoU >= 0.5, "
          f"{unmatched} other boxes")
    assert matched >= annotated - 2 and unmatched <= 2
