"""Person detectors: post-processing properties, torchvision adapter with a real weights file, precomputed
COCO detection results and PoseTrack ground truth on the real files, and the mmdet adapter (skipped when
mmdet is not installed)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.ops import box_iou

from tracker.detectors import (
    DetectionFileError,
    Detections,
    DetectorError,
    GroundTruthDetector,
    MMDetDetector,
    PrecomputedDetector,
    TorchvisionDetector,
    WeightsNotFoundError,
    create_detector,
    postprocess,
    torchvision_weights_file,
)
from tracker.sources import Frame, open_source

SEQS = ["003418_mpii_test", "009473_mpii_test", "012834_mpii_test"]


@pytest.fixture(scope="module")
def clip_frames(testdata) -> list[Frame]:
    return list(open_source(testdata / "posetrack18" / "videos" / "000001_mpiinew_test"))


# ------------------------------------------------------------------------------------------- postprocess

@st.composite
def raw_detections(draw):
    n = draw(st.integers(0, 30))
    xy = np.array(draw(st.lists(st.tuples(st.floats(0, 500), st.floats(0, 500)), min_size=n, max_size=n)),
                  np.float32).reshape(-1, 2)
    wh = np.array(draw(st.lists(st.tuples(st.floats(1, 200), st.floats(1, 200)), min_size=n, max_size=n)),
                  np.float32).reshape(-1, 2)
    scores = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), np.float32)
    labels = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), np.int64)
    return np.concatenate([xy, xy + wh], axis=1), scores, labels


@settings(max_examples=60, deadline=None)
@given(raw_detections(), st.floats(0, 1), st.sampled_from([None, 0.3, 0.7]), st.sampled_from([None, (1,), (0, 2)]))
def test_postprocess_properties(raw, threshold, nms_iou, class_ids):
    boxes, scores, labels = raw
    det = postprocess(boxes, scores, labels, class_ids, threshold, nms_iou, max_detections=None)
    assert det.boxes.dtype == np.float32 and det.scores.dtype == np.float32
    assert det.boxes.shape == (len(det), 4) and det.scores.shape == (len(det),)
    assert np.all(det.scores >= threshold)
    assert np.all(np.diff(det.scores) <= 0)  # best first
    eligible = (scores >= threshold) & (np.isin(labels, class_ids) if class_ids is not None else True)
    # every kept box is one of the eligible input boxes
    for b, s in zip(det.boxes, det.scores):
        assert np.any(np.all(boxes[eligible] == b, axis=1) & (scores[eligible] == s))
    if nms_iou is None:
        assert len(det) == int(eligible.sum())
    elif class_ids is not None and len(class_ids) == 1 and len(det) > 1:
        iou = box_iou(torch.from_numpy(det.boxes), torch.from_numpy(det.boxes)).numpy()
        assert np.all(iou[~np.eye(len(det), dtype=bool)] <= nms_iou + 1e-6)
    capped = postprocess(boxes, scores, labels, class_ids, threshold, nms_iou, max_detections=2)
    assert len(capped) == min(2, len(det))


def test_detections_validate_shapes():
    assert Detections([], []).boxes.shape == (0, 4)
    with pytest.raises(DetectorError):
        Detections(np.zeros((3, 4)), np.zeros(2))
    with pytest.raises(DetectorError):
        Detections(np.zeros((3, 5)), np.zeros(3))


# ------------------------------------------------------------------------------------------- torchvision

@pytest.fixture(scope="module")
def ssdlite_weights(tmp_path_factory) -> tuple[Path, dict]:
    """A real state-dict file of a randomly initialised torchvision SSDlite (the fastest of the four)."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model("ssdlite320_mobilenet_v3_large", weights=None, weights_backbone=None,
                                         num_classes=91)
    # Random weights rarely say "person": raise the person logit of every anchor (91 labels per anchor
    # in each final classification conv) so the file yields person boxes among the other classes.
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key.startswith("head.classification_head") and key.endswith("1.bias") and value.numel() % 91 == 0:
                value.view(-1, 91)[:, 1] += 2.0
    path = tmp_path_factory.mktemp("weights") / "ssdlite_random.pth"
    state = model.state_dict()
    torch.save(state, path)
    return path, state


def test_torchvision_detector_with_a_real_weights_file(ssdlite_weights, clip_frames):
    path, state = ssdlite_weights
    name = "ssdlite320_mobilenet_v3_large"  # the others share the code path, only slower
    det = TorchvisionDetector(name, weights_path=path, score_threshold=0.0, batch_size=2, nms_iou=0.5,
                              max_detections=50)
    for key, value in det.model.state_dict().items():  # the file's weights are the ones in use
        torch.testing.assert_close(value, state[key])
    out = det.detect(clip_frames[:2])
    assert len(out) == 2
    for d, f in zip(out, clip_frames[:2]):
        assert isinstance(d, Detections)
        assert d.boxes.dtype == np.float32 and d.boxes.shape == (len(d), 4) and d.scores.shape == (len(d),)
        assert 0 < len(d) <= 50
        h, w = f.image.shape[:2]
        assert np.all(d.boxes[:, [0, 2]] >= -1e-3) and np.all(d.boxes[:, [0, 2]] <= w + 1e-3)
        assert np.all(d.boxes[:, [1, 3]] >= -1e-3) and np.all(d.boxes[:, [1, 3]] <= h + 1e-3)
        assert np.all(np.diff(d.scores) <= 0)
    # person only: the same raw output filtered for label 1 gives the same boxes
    with torch.inference_mode():
        rgb = torch.from_numpy(np.ascontiguousarray(clip_frames[0].image[:, :, ::-1])).permute(2, 0, 1) / 255.0
        raw = det.model([rgb.float()])[0]
    assert (raw["labels"] == 1).any()
    ref = postprocess(raw["boxes"], raw["scores"], raw["labels"], (1,), 0.0, 0.5, 50)
    np.testing.assert_allclose(out[0].boxes, ref.boxes, atol=1e-3)


def test_torchvision_weights_mismatch_and_missing(ssdlite_weights, tmp_path, monkeypatch):
    state = dict(ssdlite_weights[1])
    state.pop(next(iter(state)))
    bad = tmp_path / "incomplete.pth"
    torch.save(state, bad)
    with pytest.raises(DetectorError, match="incomplete.pth"):
        TorchvisionDetector("ssdlite320_mobilenet_v3_large", weights_path=bad)

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    expected = torchvision_weights_file("fasterrcnn_resnet50_fpn_v2")
    assert expected == tmp_path / "torch_home" / "hub" / "checkpoints" / "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth"
    with pytest.raises(WeightsNotFoundError) as info:
        TorchvisionDetector("fasterrcnn_resnet50_fpn_v2")
    assert "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth" in str(info.value)
    assert str(expected.parent) in str(info.value)
    with pytest.raises(DetectorError, match="unknown torchvision detector"):
        TorchvisionDetector("yolo_v99")


# ------------------------------------------------------------------------------------------- precomputed

def _raw_counts(path: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    for d in json.loads(path.read_text()):
        counts[d["image_id"]] = counts.get(d["image_id"], 0) + 1
    return counts


def test_precomputed_posetrack_detections_with_annotation_file(testdata):
    root = testdata / "posetrack18"
    det_path = root / "annotations" / "test_posetrack18_human_detections.json"
    ann_path = root / "annotations" / "test_posetrack18_val.json"
    raw = json.loads(det_path.read_text())
    counts = _raw_counts(det_path)
    images = json.loads(ann_path.read_text())["images"]
    frames = list(open_source(ann_path, image_root=root))  # names = the annotation file_names
    det = PrecomputedDetector(det_path, annotation_path=ann_path)
    out = det.detect(frames)
    assert [len(d) for d in out] == [counts[im["id"]] for im in images]
    assert sum(len(d) for d in out) == len(raw) == 278
    # boxes are the file's xywh turned into xyxy, best score first
    first = images[0]["id"]
    mine = sorted((d for d in raw if d["image_id"] == first), key=lambda d: -d["score"])
    ref = np.array([[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in mine)], np.float32)
    np.testing.assert_allclose(out[0].boxes, ref, rtol=1e-6)
    np.testing.assert_allclose(out[0].scores, [d["score"] for d in mine], rtol=1e-6)
    # thresholding and NMS act on top
    strict = PrecomputedDetector(det_path, annotation_path=ann_path, score_threshold=0.5, nms_iou=0.5)
    for d in strict.detect(frames):
        assert np.all(d.scores >= 0.5)
    assert sum(map(len, strict.detect(frames))) < 278


def test_precomputed_posetrack_convention_and_explicit_ids(testdata):
    root = testdata / "posetrack18"
    det_path = root / "annotations" / "test_posetrack18_human_detections.json"
    counts = _raw_counts(det_path)
    for seq in SEQS:
        frames = list(open_source(root / "images" / "val" / seq))  # names: 000000.jpg
        image_id = 10_000_000_000 + int(seq[:6]) * 10_000
        (d,) = PrecomputedDetector(det_path, sequence=seq).detect(frames)
        assert len(d) == counts[image_id]
        (e,) = PrecomputedDetector(det_path, image_ids=[image_id]).detect(frames)
        np.testing.assert_array_equal(d.boxes, e.boxes)
        # one sequence of the merged annotation file, matched by base name
        (g,) = PrecomputedDetector(det_path, annotation_path=root / "annotations" / "test_posetrack18_val.json",
                                   sequence=seq).detect(frames)
        np.testing.assert_array_equal(d.boxes, g.boxes)
    # no way to tell the id -> a clear error
    frames = list(open_source(root / "images" / "val" / SEQS[0]))
    with pytest.raises(DetectionFileError, match="cannot tell which image id frame 0"):
        PrecomputedDetector(det_path).detect(frames)
    # an id that has no detections -> empty
    (empty,) = PrecomputedDetector(det_path, image_ids={0: 12345}).detect(frames)
    assert len(empty) == 0 and empty.boxes.shape == (0, 4)


def test_precomputed_coco_file_names_are_image_ids(testdata):
    coco = testdata / "coco"
    det_path = coco / "test_coco_det_AP_H_56.json"
    counts = _raw_counts(det_path)
    frames = list(open_source(coco))
    out = PrecomputedDetector(det_path).detect(frames)
    assert [len(d) for d in out] == [counts[int(Path(f.name).stem)] for f in frames]


@pytest.mark.parametrize(
    "index, field, value, message",
    [
        (2, "score", None, "item 2: missing field 'score'"),
        (5, "bbox", [1.0, float("nan"), 3.0, 4.0], "item 5: field 'bbox' has a non-finite value"),
        (0, "bbox", [1.0, 2.0, 3.0], "item 0: field 'bbox' must be"),
        (7, "image_id", "abc", "item 7: field 'image_id' must be an integer"),
        (3, "score", float("inf"), "item 3: field 'score' must be a finite number"),
        (4, "category_id", None, "item 4: missing field 'category_id'"),
    ],
)
def test_precomputed_validation_names_file_item_field(testdata, tmp_path, index, field, value, message):
    raw = json.loads((testdata / "posetrack18" / "annotations" / "test_posetrack18_human_detections.json").read_text())
    if value is None:
        del raw[index][field]
    else:
        raw[index][field] = value
    bad = tmp_path / "bad_dets.json"
    bad.write_text(json.dumps(raw))  # json writes NaN/Infinity literals, which json.load reads back
    with pytest.raises(DetectionFileError) as info:
        PrecomputedDetector(bad)
    assert "bad_dets.json" in str(info.value) and message in str(info.value)


def test_precomputed_missing_file(tmp_path):
    with pytest.raises(OSError, match="nope.json"):
        PrecomputedDetector(tmp_path / "nope.json")


# ------------------------------------------------------------------------------------------- ground truth

@pytest.mark.parametrize("seq", SEQS)
def test_ground_truth_boxes_from_real_annotations(testdata, seq):
    root = testdata / "posetrack18"
    ann_path = root / "annotations" / "val" / f"{seq}.json"
    ann = json.loads(ann_path.read_text())
    frames = list(open_source(root / "images" / "val" / seq))
    (d,) = GroundTruthDetector(ann_path).detect(frames)
    image_id = ann["images"][0]["id"]
    people = [a for a in ann["annotations"] if a["image_id"] == image_id]
    assert len(d) == len(people) > 0
    ref = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in people)], np.float32)
    np.testing.assert_allclose(d.boxes, ref)
    assert np.all(d.scores == 1.0)
    # the same frame found in the merged file, restricted to the sequence
    (m,) = GroundTruthDetector(root / "annotations" / "test_posetrack18_val.json", sequence=seq).detect(frames)
    np.testing.assert_allclose(m.boxes, ref)


def test_ground_truth_keypoint_extent_when_no_bbox(testdata, tmp_path):
    root = testdata / "posetrack18"
    ann = json.loads((root / "annotations" / "val" / "003418_mpii_test.json").read_text())
    for a in ann["annotations"]:
        a.pop("bbox", None)
    path = tmp_path / "no_bbox.json"
    path.write_text(json.dumps(ann))
    frames = list(open_source(root / "images" / "val" / "003418_mpii_test"))
    (d,) = GroundTruthDetector(path).detect(frames)
    for box, a in zip(d.boxes, ann["annotations"]):
        kp = np.array(a["keypoints"], np.float64).reshape(-1, 3)
        pts = kp[kp[:, 2] > 0, :2]
        lo, hi = pts.min(0), pts.max(0)
        assert np.all(box[:2] <= lo) and np.all(box[2:] >= hi)  # contains every labelled keypoint
        np.testing.assert_allclose(box[2:] - box[:2], (hi - lo) * 1.15, rtol=1e-5)
        np.testing.assert_allclose((box[2:] + box[:2]) / 2, (hi + lo) / 2, rtol=1e-5)


def test_create_detector_by_kind(testdata, tmp_path, monkeypatch):
    root = testdata / "posetrack18"
    ann_path = root / "annotations" / "val" / "003418_mpii_test.json"
    det_path = root / "annotations" / "test_posetrack18_human_detections.json"
    frames = list(open_source(root / "images" / "val" / "003418_mpii_test"))
    gt = create_detector("gt", sequence="003418_mpii_test", file=ann_path)
    assert isinstance(gt, GroundTruthDetector)
    np.testing.assert_array_equal(gt.detect(frames)[0].boxes, GroundTruthDetector(ann_path).detect(frames)[0].boxes)
    # the source's name matches precomputed PoseTrack detections to frames; None settings take the defaults
    pre = create_detector("precomputed", sequence="003418_mpii_test", file=det_path, annotations=None,
                          score_threshold=0.5)
    assert isinstance(pre, PrecomputedDetector) and pre.score_threshold == 0.5
    assert len(pre.detect(frames)[0]) > 0 and pre.detect(frames)[0].roi_points is None
    with pytest.raises(DetectorError, match="unknown detector kind 'magic'"):
        create_detector("magic")
    with pytest.raises(DetectorError, match=r"kind 'gt' has no setting 'score_threshold'.*its settings: file"):
        create_detector("gt", file=ann_path, score_threshold=0.3)
    with pytest.raises(DetectorError, match=r"kind 'precomputed' needs detector.file"):
        create_detector("precomputed", file=None)
    with pytest.raises(DetectorError, match=r"kind 'mmdet' needs detector.config"):
        create_detector("mmdet", checkpoint="x.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(WeightsNotFoundError, match="fcos_resnet50_fpn"):  # settings reach the detector
        create_detector("torchvision", model="fcos_resnet50_fpn", weights=None, score_threshold=0.5, nms_iou=None,
                        batch_size=1)


def test_detections_roi_points_shape():
    d = Detections(np.zeros((2, 4)), np.ones(2), roi_points=np.zeros((2, 2, 2)))
    assert d.roi_points.dtype == np.float32 and d.roi_points.shape == (2, 2, 2)
    assert Detections([], [], roi_points=[]).roi_points.shape == (0, 2, 2)
    with pytest.raises(DetectorError, match="roi_points"):
        Detections(np.zeros((2, 4)), np.ones(2), roi_points=np.zeros((3, 2, 2)))
    with pytest.raises(DetectorError, match=r"boxes\[1\]: non-finite"):
        Detections(np.array([[0, 0, 1, 1], [0, np.nan, 1, 1]]), np.ones(2))


def test_coco_detections_reader(testdata, tmp_path):
    from eval_posetrack import CocoDetectionsError, read_coco_detections

    path = testdata / "coco" / "test_coco_det_AP_H_56.json"
    raw = json.loads(path.read_text())
    dets = read_coco_detections(path)
    assert len(dets) == len(raw) and dets.boxes.shape == (len(raw), 4)
    k = len(raw) // 2
    x, y, w, h = raw[k]["bbox"]
    np.testing.assert_allclose(dets.boxes[k], [x, y, x + w, y + h])
    assert dets.scores[k] == raw[k]["score"] and dets.image_ids[k] == raw[k]["image_id"]
    groups = dets.by_image((1,))
    assert sum(map(len, groups.values())) == sum(d["category_id"] == 1 for d in raw)
    assert all(np.all(dets.image_ids[idx] == i) for i, idx in groups.items())
    bad = tmp_path / "wrapped.json"
    bad.write_text(json.dumps({"annotations": [raw[0], {**raw[1], "file_name": 3}]}))
    with pytest.raises(CocoDetectionsError, match=r"wrapped.json: item 1: field 'file_name' must be a string"):
        read_coco_detections(bad)
    bad.write_text("[1, ")
    with pytest.raises(CocoDetectionsError, match="wrapped.json: not valid JSON"):
        read_coco_detections(bad)


def test_ground_truth_matching_by_order_and_unknown_frames(testdata):
    root = testdata / "posetrack18"
    ann_path = root / "annotations" / "val" / "009473_mpii_test.json"
    image = list(open_source(root / "images" / "val" / "009473_mpii_test"))[0].image
    det = GroundTruthDetector(ann_path)
    (by_order,) = det.detect([Frame(index=0, timestamp=0.0, image=image, name=None)])
    (by_name,) = det.detect([Frame(index=5, timestamp=0.0, image=image, name="000000")])  # stem match
    np.testing.assert_array_equal(by_order.boxes, by_name.boxes)
    assert len(by_order) > 0
    with pytest.raises(DetectionFileError, match="frame 7"):
        det.detect([Frame(index=7, timestamp=0.0, image=image, name="999999.jpg")])


# ------------------------------------------------------------------------------------------- mmdet

_HAS_MMDET = importlib.util.find_spec("mmdet") is not None


@pytest.mark.skipif(_HAS_MMDET, reason="mmdet is installed: the missing-install message cannot be checked")
def test_mmdet_missing_gives_install_hint():
    with pytest.raises(DetectorError, match=r"make mmdet.*scripts/build_mmcv\.sh"):
        MMDetDetector("any_config.py", None)


def _mmdet_config(name: str) -> Path:
    import mmdet

    base = Path(mmdet.__file__).parent / ".mim" / "configs"
    path = base / name
    if not path.is_file():
        pytest.skip(f"mmdet config {name} not shipped in {base}")
    return path


@pytest.mark.skipif(not _HAS_MMDET, reason="mmdet not installed (`make mmdet` builds mmcv from source, ~25 min)")
def test_mmdet_detector_from_a_real_checkpoint_file(tmp_path, clip_frames):
    try:
        from mmdet.apis import init_detector
    except Exception as exc:  # mmdet present but broken (e.g. mmcv ops missing): say exactly why
        pytest.fail(f"mmdet is installed but does not import: {type(exc).__name__}: {exc}")
    config = _mmdet_config("rtmdet/rtmdet_tiny_8xb32-300e_coco.py")
    torch.manual_seed(0)
    model = init_detector(str(config), None, device="cpu")  # random init (no downloads)
    # A random RTMDet's class scores are ruled by the class biases (one class wins everywhere). Give
    # person (label 0) and bicycle (label 1) the same top bias in each rtm_cls conv, so the random model
    # outputs a mix of the two and the person filter has work to do.
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key.startswith("bbox_head.rtm_cls") and key.endswith(".bias") and value.numel() % 80 == 0:
                per_class = value.view(-1, 80)
                per_class[:, :2] = per_class.max() + 1.0
    ckpt = tmp_path / "rtmdet_tiny_random.pth"
    torch.save(model.state_dict(), ckpt)

    det = MMDetDetector(config, ckpt, device="cpu", score_threshold=0.0, max_detections=100)
    for key, value in det.model.state_dict().items():
        torch.testing.assert_close(value, model.state_dict()[key])
    out = det.detect(clip_frames[:1])
    assert len(out) == 1
    d = out[0]
    assert d.boxes.dtype == np.float32 and d.boxes.shape == (len(d), 4) and d.scores.shape == (len(d),)
    # person only: compare with mmdet's own output filtered for label 0
    from mmdet.apis import inference_detector

    raw = inference_detector(det.model, clip_frames[0].image).pred_instances
    labels = raw.labels.cpu().numpy()
    assert np.any(labels == 0) and np.any(labels != 0), "expected persons and other classes in the raw output"
    assert 0 < len(d) == min(100, int((labels == 0).sum()))
    ref = postprocess(raw.bboxes.cpu(), raw.scores.cpu(), raw.labels.cpu(), (0,), 0.0, None, 100)
    np.testing.assert_allclose(d.boxes, ref.boxes, atol=1e-3)
