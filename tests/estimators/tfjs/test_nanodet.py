"""NanoDet: our batched decoding against a per-cell restatement of the packager's loop (``@vladmandic/human``
``src/object/nanodet.ts`` ``process``), the person boxes it gives on the shared COCO images, and batching.
Needs the TF.js models (conftest ``tfjs_models``) and the shared COCO images."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from estimators.tfjs.nanodet import INPUT_SIZE, PERSON, NanoDetPersons, decode_nanodet, preprocess

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


@pytest.fixture(scope="module")
def model(tfjs_models):
    return NanoDetPersons(tfjs_models / "nanodet.json")


def _packager_loop(heads, threshold: float) -> list[tuple[float, float, float, float, float]]:
    """nanodet.ts ``process`` for the person class, batch 1, as written there: strideSize 1, 2, 4 over grids
    13 k, argmax bin per edge, centre (0.5 + col) / grid, edges scaled by scaleBox / strideSize, normalised
    boxes clipped to [0, 1]; returned in input px (x1, y1, x2, y2, score)."""
    scores_by_cells = {h.shape[1]: h[0].numpy() for h in heads if h.shape[2] == 80}
    edges_by_cells = {h.shape[1]: h[0].numpy() for h in heads if h.shape[2] < 80}
    out = []
    for stride_size in (1, 2, 4):
        base = stride_size * 13
        scores, feats = scores_by_cells[base ** 2], edges_by_cells[base ** 2]
        idx = feats.reshape(-1, 4, feats.shape[1] // 4).argmax(axis=2)
        for i in range(scores.shape[0]):
            score = scores[i, PERSON]
            if score > threshold:
                cx, cy = (0.5 + i % base) / base, (0.5 + i // base) / base
                off = idx[i] * (base / stride_size / INPUT_SIZE)
                x, y = cx - 2.5 / stride_size * off[0], cy - 2.5 / stride_size * off[1]
                x2, y2 = cx + 2.5 / stride_size * off[2], cy + 2.5 / stride_size * off[3]
                out.append((*(min(max(v, 0.0), 1.0) * INPUT_SIZE for v in (x, y, x2, y2)), float(score)))
    return out


def test_decoding_matches_the_packager(model, coco):
    image = coco[3][0]  # five people
    with torch.no_grad():
        heads = model.network(torch.from_numpy(preprocess(image)[None]))
    boxes, scores = decode_nanodet(heads[:3], heads[3:])
    ours = torch.cat([boxes[0], scores[0, :, None]], 1).numpy()
    ours = ours[ours[:, 4] > 0.2]
    ref = np.array(_packager_loop(heads, 0.2), np.float32)
    assert len(ref) >= 5 and ours.shape == ref.shape
    ours, ref = (a[np.lexsort(a.T[::-1])] for a in (ours, ref))  # the loop goes coarse to fine strides
    assert np.abs(ours - ref).max() <= 1e-3  # px of the 416 input (float32 vs the loop's float64)


def test_person_boxes_on_coco(model, coco):
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
    assert alone[0].shape == results[3][0].shape and np.abs(alone[0] - results[3][0]).max() < 1e-2
    print(f"\nnanodet person >= 0.3: {matched} of {annotated} annotated people at IoU >= 0.5, {unmatched} other boxes")
    assert matched >= annotated - 2 and unmatched <= 2  # measured 11 of 12, 0 other
