"""Datasets on the real test data: COCO GT / detections through pycocotools, PoseTrack18 through
eval_posetrack (slot mapping, 15 % keypoint boxes, ignore regions), OpenCV decoding in DataLoader
workers, corrupt / missing images reported by file name."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from association.keypoints import COCO17, POSETRACK18
from estimators.spec import FAMILIES, HRNET
from estimators.training.augmentation import AugmentParams, flip_keypoints
from estimators.training.datasets import (
    DatasetError,
    ImageReadError,
    TopDownDataset,
    keypoint_box,
    load_coco_detections,
    load_coco_gt,
    load_posetrack,
    read_image,
)
from eval_posetrack import convert_file, points_in_any_polygon

INPUT = (64, 64)


def test_coco_gt_skips_people_without_keypoints(testdata):
    ann = testdata / "coco" / "test_coco.json"
    raw = json.loads(ann.read_text())
    samples = load_coco_gt(ann, testdata / "coco")
    with_kp = [a for a in raw["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    assert len(samples) == len(with_kp) == 12
    sizes = {im["id"]: (im["width"], im["height"]) for im in raw["images"]}
    by_id = {a["id"]: a for a in raw["annotations"]}
    for s in samples:
        a = by_id[s.extras["annotation_id"]]
        k = np.asarray(a["keypoints"], np.float32).reshape(17, 3)
        np.testing.assert_array_equal(s.keypoints, k[:, :2])
        np.testing.assert_array_equal(s.visible, (k[:, 2] > 0).astype(np.float32))
        w, h = sizes[s.image_id]
        assert 0 <= s.box[0] < s.box[2] <= w - 1 and 0 <= s.box[1] < s.box[3] <= h - 1
        assert s.box[0] == pytest.approx(max(0, a["bbox"][0]))
        assert (testdata / "coco").as_posix() in s.image_path


def test_coco_gt_boxes_are_hrnets_clean_boxes_in_float64_and_zero_width_boxes_stay(testdata, tmp_path):
    """The released HRNet loader clips ``x2 = min(W - 1, x1 + max(0, w - 1))`` in float64 and keeps the box when
    ``x2 >= x1`` (a box narrower than one pixel becomes zero-width and is kept); its centre / scale come from that
    float64 box and only they are rounded to float32."""
    raw = json.loads((testdata / "coco" / "test_coco.json").read_text())
    target = next(a for a in raw["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"])
    target["bbox"][2] = 0.6  # w - 1 < 0: clipped to zero width
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(raw))
    samples = load_coco_gt(ann, testdata / "coco")
    assert len(samples) == 12
    sizes = {im["id"]: (im["width"], im["height"]) for im in raw["images"]}
    by_id = {a["id"]: a for a in raw["annotations"]}
    for s in samples:
        assert s.box.dtype == np.float64
        x, y, w, h = by_id[s.extras["annotation_id"]]["bbox"]
        width, height = sizes[s.image_id]
        x1, y1 = max(0, x), max(0, y)
        expect = [x1, y1, min(width - 1, x1 + max(0, w - 1)), min(height - 1, y1 + max(0, h - 1))]
        assert s.box.tolist() == expect  # bit for bit, not rounded to float32
    thin = next(s for s in samples if s.extras["annotation_id"] == target["id"])
    assert thin.box[2] == thin.box[0] and thin.box[3] > thin.box[1]
    c, sc = TopDownDataset(samples, HRNET, COCO17, (192, 256)).center_scale(thin.box)
    assert c.dtype == sc.dtype == np.float32 and c[0] == np.float32(thin.box[0]) and sc[0] > 0


def test_coco_detections_threshold(testdata):
    ann = testdata / "coco" / "test_coco.json"
    det = testdata / "coco" / "test_coco_det_AP_H_56.json"
    raw = json.loads(det.read_text())
    for thr in (0.0, 0.5):
        samples = load_coco_detections(det, ann, testdata / "coco", score_threshold=thr)
        expect = [d for d in raw if d["category_id"] == 1 and d["score"] >= thr]
        assert len(samples) == len(expect)
        assert all(s.box_score >= thr and s.visible.sum() == 0 for s in samples)
    s = load_coco_detections(det, ann, testdata / "coco", 0.9)[0]
    d = next(d for d in raw if d["image_id"] == s.image_id and d["score"] >= 0.9)
    np.testing.assert_allclose(s.box, [d["bbox"][0], d["bbox"][1], d["bbox"][0] + d["bbox"][2],
                                       d["bbox"][1] + d["bbox"][3]], rtol=1e-5)


def test_bad_files_name_the_file_and_field(tmp_path, testdata):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_coco_gt(tmp_path / "nope.json", tmp_path)
    det = tmp_path / "det.json"
    det.write_text(json.dumps([{"image_id": 785, "category_id": 1, "bbox": [1, 2, 3, 4]}]))
    with pytest.raises(DatasetError, match=r"det\.json: item 0: missing field 'score'"):
        load_coco_detections(det, testdata / "coco" / "test_coco.json", tmp_path)
    raw = json.loads((testdata / "coco" / "test_coco.json").read_text())
    raw["annotations"][0]["keypoints"] = [1, 2, 2]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(DatasetError, match="bad.json: annotation .* field 'keypoints'"):
        load_coco_gt(bad, tmp_path)


def test_posetrack18_slots_boxes_and_ignore_regions(testdata, tmp_path):
    root = testdata / "posetrack18"
    files = sorted((root / "annotations" / "val").glob("*.json"))
    samples = load_posetrack(files, root)
    assert len(samples) == 14
    raw = json.loads(files[0].read_text())
    first = [s for s in samples if s.frame_key == (files[0].stem, 0)]
    assert len(first) == len(raw["annotations"])
    k = np.asarray(raw["annotations"][0]["keypoints"], np.float64).reshape(17, 3)
    s = first[0]
    # the real file's ignore regions drop the joints inside them
    im = raw["images"][0]
    polys = [np.stack([xs, ys], 1).astype(np.float64) for xs, ys in zip(im["ignore_regions_x"], im["ignore_regions_y"])]
    ignored = points_in_any_polygon(k[:, :2], polys) & (k[:, 2] > 0)
    assert ignored.any() and not s.visible[ignored].any()
    # PoseTrack18 slots are kept slot for slot: eyes = head_bottom / head_top, ears never labelled
    labelled = (k[:, 2] > 0) & ~ignored
    np.testing.assert_array_equal(s.visible > 0, labelled)
    np.testing.assert_allclose(s.keypoints[labelled], k[labelled, :2], rtol=1e-6)
    assert s.visible[3] == 0 and s.visible[4] == 0
    # the box is the labelled joints' extent enlarged by 15 %
    lo, hi = k[labelled, :2].min(0), k[labelled, :2].max(0)
    np.testing.assert_allclose(s.box[2] - s.box[0], (hi - lo)[0] * 1.15, rtol=1e-5)
    np.testing.assert_allclose((s.box[:2] + s.box[2:]) / 2, (lo + hi) / 2, rtol=1e-5)
    assert (root / "images").as_posix() in s.image_path and s.image_path.endswith("000000.jpg")
    # an ignore region around one more joint drops it too
    x, y = k[0, :2]
    raw["images"][0]["ignore_regions_x"].append([x - 5, x + 5, x + 5, x - 5])
    raw["images"][0]["ignore_regions_y"].append([y - 5, y - 5, y + 5, y + 5])
    f2 = tmp_path / files[0].name
    f2.write_text(json.dumps(raw))
    s2 = load_posetrack([f2], root)[0]
    assert s2.visible[0] == 0 and s2.visible[1:].sum() == s.visible[1:].sum()


def test_keypoint_box_degenerate():
    assert keypoint_box(np.array([[5.0, 5.0], [5.0, 9.0]]), np.array([1, 1])) is None
    assert keypoint_box(np.zeros((2, 2)), np.array([1, 0])) is None
    np.testing.assert_allclose(keypoint_box(np.array([[0.0, 0.0], [10.0, 20.0]]), np.array([1, 1])),
                               [-0.75, -1.5, 10.75, 21.5])


@pytest.mark.parametrize("family,maps", [("hrnet", 1), ("mspn", 5)])
def test_dataset_items_and_per_sample_determinism(testdata, family, maps):
    samples = load_coco_gt(testdata / "coco" / "test_coco.json", testdata / "coco")
    ds = TopDownDataset(samples, FAMILIES[family], COCO17, INPUT, AugmentParams(), seed=3)
    a = ds[2]
    assert a["input"].shape == (3, 64, 64) and a["input"].dtype == torch.float32
    assert a["target"].shape == (maps, 17, 16, 16) and a["target_weight"].shape == (17,)
    assert torch.equal(ds[2]["input"], a["input"])  # same (seed, epoch, index) -> same augmentation
    ds.set_epoch(1)
    assert not torch.equal(ds[2]["input"], a["input"])


def test_dataloader_workers_and_corrupt_images(testdata, tmp_path):
    samples = load_coco_gt(testdata / "coco" / "test_coco.json", testdata / "coco")
    ds = TopDownDataset(samples[:4], HRNET, COCO17, INPUT, AugmentParams(), seed=0)
    batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert len(batches) == 2 and batches[0]["input"].shape == (2, 3, 64, 64)
    assert torch.equal(batches[1]["input"][0], ds[2]["input"])  # workers give the same augmentation
    # a corrupt image and a missing one are reported by file name, also from a worker process
    bad = tmp_path / "corrupt.jpg"
    good = testdata / "coco" / "000000000785.jpg"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ImageReadError, match="corrupt.jpg"):
        read_image(bad)
    with pytest.raises(ImageReadError, match="missing.jpg"):
        read_image(tmp_path / "missing.jpg")
    shutil.copy(good, tmp_path / "ok.jpg")
    broken = [samples[0]]
    broken[0].image_path = str(bad)
    with pytest.raises(Exception, match="corrupt.jpg"):
        next(iter(DataLoader(TopDownDataset(broken, HRNET, COCO17, INPUT), batch_size=1, num_workers=1)))


def test_posetrack2017_files_give_the_same_samples(testdata, tmp_path):
    root = testdata / "posetrack18"
    files = sorted((root / "annotations" / "val").glob("*.json"))
    converted = []
    for f in files:
        dst = tmp_path / f.name
        convert_file(f, dst, to="2017", role="gt")
        assert "annolist" in json.loads(dst.read_text())
        converted.append(dst)
    a, b = load_posetrack(files, root), load_posetrack(converted, root)
    assert len(a) == len(b) == 14
    for s, t in zip(a, b):
        assert s.image_path == t.image_path and s.frame_key == t.frame_key
        np.testing.assert_allclose(s.keypoints, t.keypoints)
        np.testing.assert_array_equal(s.visible, t.visible)


def test_posetrack_flip_keeps_head_bottom_and_head_top():
    kp = np.arange(34, dtype=np.float64).reshape(17, 2)
    k, _ = flip_keypoints(kp, np.ones(17), 100, POSETRACK18)
    assert k[1, 1] == kp[1, 1] and k[2, 1] == kp[2, 1]  # head_bottom / head_top stay in their slots
    assert k[5, 1] == kp[6, 1]  # shoulders swap
