"""Readers, writers, 2017 <-> 2018 round trips, the incremental writer, the real PoseTrack18 files."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from association.keypoints import POSETRACK18
from eval_posetrack import (
    JOINT_NAMES,
    NUM_JOINTS,
    PT18_KEYPOINT_NAMES,
    PT18_SKELETON,
    SEQUENCE_TYPES,
    AnnotationIds,
    Frame,
    PoseTrack18Writer,
    Sequence,
    coco17_to_joints15,
    evaluate,
    is_sequence_name,
    joints15_to_coco17,
    parse_posetrack18_file_name,
    parse_sequence_name,
    posetrack18_image_name,
    read_sequence,
    sequence_to_posetrack18,
    write_posetrack17,
    write_posetrack18,
)

from .synthetic import make_workload

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def _same(a, b):
    assert len(a.frames) == len(b.frames)
    for fa, fb in zip(a.frames, b.frames):
        assert fa.image_name == fb.image_name and fa.labeled == fb.labeled
        np.testing.assert_array_equal(fa.present, fb.present)
        np.testing.assert_array_equal(fa.keypoints, fb.keypoints)
        np.testing.assert_array_equal(fa.track_ids, fb.track_ids)
        np.testing.assert_array_equal(fa.head_boxes, fb.head_boxes)
        np.testing.assert_array_equal(np.nan_to_num(fa.scores, nan=-1), np.nan_to_num(fb.scores, nan=-1))
        assert len(fa.ignore_regions) == len(fb.ignore_regions)
        for pa, pb in zip(fa.ignore_regions, fb.ignore_regions):
            np.testing.assert_array_equal(pa, pb)


def test_real_posetrack18_files_read(testdata):
    files = sorted((testdata / "posetrack18/annotations/val").glob("*.json"))
    assert len(files) == 3
    seq = read_sequence(files[2], role="gt")  # 012834: 11 persons, 4 ignore regions
    fr = seq.frames[0]
    assert seq.vid_id == "012834" and fr.num_persons == 11 and len(fr.ignore_regions) == 4
    raw = json.loads(files[2].read_text())["annotations"][0]
    k = np.array(raw["keypoints"], float).reshape(17, 3)
    for slot, n in enumerate(PT18_KEYPOINT_NAMES):
        if n in JOINT_NAMES:
            j = JOINT_NAMES.index(n)
            assert fr.present[0, j] == (not (k[slot] == 0).all())
            if fr.present[0, j]:
                np.testing.assert_array_equal(fr.keypoints[0, j], k[slot, :2])
    x, y, w, h = raw["bbox_head"]
    np.testing.assert_array_equal(fr.head_boxes[0], [x, y, x + w, y + h])


def test_round_trips_2018_2017_2018(testdata, tmp_path):
    for f in sorted((testdata / "posetrack18/annotations/val").glob("*.json")):
        a = read_sequence(f, role="gt")
        write_posetrack17(tmp_path / "a17.json", a)
        b = read_sequence(tmp_path / "a17.json", role="gt")
        assert b.source_format == "2017"
        _same(a, b)
        write_posetrack18(tmp_path / "b18.json", b)
        c = read_sequence(tmp_path / "b18.json", role="gt")
        _same(a, c)


def test_round_trip_2017_2018_2017_predictions(tmp_path):
    g, p = make_workload(tmp_path, n_seq=1, n_frames=6, n_people=3, fmt_gt="2017", fmt_pred="2017", seed=3)
    for src, role in ((g, "gt"), (p, "pred")):
        f = next(src.glob("*.json"))
        a = read_sequence(f, role=role)
        write_posetrack18(tmp_path / "x18.json", a)
        b = read_sequence(tmp_path / "x18.json", role=role)
        write_posetrack17(tmp_path / "x17.json", b)
        c = read_sequence(tmp_path / "x17.json", role=role)
        _same(a, b)
        _same(a, c)


def test_only_first_video_of_a_file_is_used(testdata):
    with pytest.warns(UserWarning, match="first video"):
        seq = read_sequence(testdata / "posetrack18/annotations/test_posetrack18_val.json", role="gt")
    assert len(seq.frames) == 1 and seq.vid_id == "012834"


def test_real_gt_against_itself(testdata, tmp_path):
    """The real val folder (1-frame sequences) evaluated against a scored copy of itself: AP 100."""
    src = testdata / "posetrack18/annotations/val"
    pred = tmp_path / "pred"
    pred.mkdir()
    n_gt = np.zeros(15)
    for f in src.glob("*.json"):
        d = json.loads(f.read_text())
        for i, a in enumerate(d["annotations"]):
            a["scores"] = [0.9 - 0.01 * i - 0.0001 * k for k in range(17)]
        (pred / f.name).write_text(json.dumps(d))
        seq = read_sequence(f, role="gt")
        n_gt += sum(fr.present.sum(axis=0) for fr in seq.frames)
    r = evaluate(src, pred, track=False)
    ap = np.array([r["AP"]["per_joint"][n] for n in JOINT_NAMES])
    # joints inside ignore regions are removed from both sides; every joint here is annotated somewhere
    assert np.all(ap[n_gt > 0] == 100) and np.all(ap[n_gt == 0] == 0)
    with pytest.raises(ValueError, match="only 1 labeled frame"):
        evaluate(src, pred)


def test_cli_on_real_folder(testdata, tmp_path):
    src = testdata / "posetrack18/annotations/val"
    pred = tmp_path / "pred"
    shutil.copytree(src, pred)
    for f in pred.glob("*.json"):
        d = json.loads(f.read_text())
        for i, a in enumerate(d["annotations"]):
            a["scores"] = [0.5 + 0.001 * i + 0.00001 * k for k in range(17)]
        f.write_text(json.dumps(d))
    out = tmp_path / "out.json"
    png = tmp_path / "out.png"
    proc = subprocess.run([sys.executable, "-m", "tracker.cli", "eval", "--gt", str(src), "--pred", str(pred),
                           "--no-track", "--json", str(out), "--plot", str(png)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[1] == "& Head & Shou & Elb  & Wri  & Hip  & Knee & Ankl & Total\\\\"
    assert lines[2] == "&100.0 &100.0 &100.0 &100.0 &100.0 &100.0 &100.0 &100.0 \\\\"
    summary = json.loads(out.read_text())
    assert set(summary) == {"AP", "MOTA", "MOTP", "Prec", "Rec"} and summary["MOTA"] is None
    assert set(summary["AP"]) == {"per_joint", "Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total"}
    assert list(summary["AP"]["per_joint"]) == list(JOINT_NAMES)
    assert png.stat().st_size > 1000
    # tracking on 1-frame sequences: one clear line, exit status 2
    proc = subprocess.run([sys.executable, "-m", "tracker.cli", "eval", "--gt", str(src), "--pred", str(pred)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "posetrack eval: error:" in proc.stderr and "1 labeled frame" in proc.stderr


def test_cli_tracking_tables(tmp_path):
    g, p = make_workload(tmp_path, n_seq=2, n_frames=6, n_people=3, seed=1)
    out = tmp_path / "s.json"
    proc = subprocess.run([sys.executable, "-m", "tracker.cli", "eval", "--gt", str(g), "--pred", str(p),
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[3] == "Multiple Object Tracking (MOT) metrics:"
    assert lines[5] == "& Head & Shou & Elb  & Wri  & Hip  & Knee & Ankl & Total& Total& Total& Total\\\\"
    s = json.loads(out.read_text())
    direct = evaluate(g, p)
    for m in ("AP", "MOTA", "MOTP", "Prec", "Rec"):
        assert s[m]["Total"] == pytest.approx(direct[m]["Total"], abs=1e-12)
    assert f"{direct['MOTA']['Total']:.1f}" in lines[6]


def test_incremental_writer_is_always_valid(tmp_path):
    path = tmp_path / "000002_mpii_test.json"
    w = PoseTrack18Writer(path, flush_every=2, vid_id="000002")
    assert json.loads(path.read_text())["images"] == []  # valid from the start
    rng = np.random.default_rng(0)
    for t in range(5):
        kp = rng.uniform(0, 500, (3, 17, 2))
        kp[0, 5] = 0.0  # a real keypoint at (0, 0) must survive (written with v = 1)
        w.add_frame(f"images/val/000002_mpii_test/{t:06d}.jpg", kp, rng.uniform(0, 1, (3, 17)), [1, 2, 3 + t],
                    boxes=np.tile([[10, 10, 50, 90]], (3, 1)), box_scores=[0.9, 0.8, 0.7])
        on_disk = json.loads(path.read_text())  # parses after every frame (flushed every 2)
        assert len(on_disk["images"]) == (t + 1) // 2 * 2
    w.close()
    seq = read_sequence(path, role="pred")
    assert len(seq.frames) == 5 and seq.frames[4].track_ids.tolist() == [1, 2, 7]
    k15, _ = coco17_to_joints15(kp)
    np.testing.assert_allclose(seq.frames[4].keypoints, k15)
    assert seq.frames[4].present.all()
    assert parse_posetrack18_file_name(seq.frames[0].image_name)[1] == 10000020000
    with pytest.raises(ValueError, match="duplicate track ids"):
        PoseTrack18Writer(tmp_path / "x.json").add_frame("a/000001_mpii/000000.jpg", np.zeros((2, 17, 2)),
                                                         np.zeros((2, 17)), [4, 4])


def test_coco17_mapping_round_trip():
    rng = np.random.default_rng(1)
    kp = rng.normal(size=(4, 17, 2))
    sc = rng.uniform(size=(4, 17))
    k15, s15 = coco17_to_joints15(kp, sc)
    assert k15.shape == (4, 15, 2)
    # slot 1 (COCO left_eye) -> head_bottom, slot 2 (right_eye) -> head_top, slot 16 -> right_ankle
    np.testing.assert_array_equal(k15[:, JOINT_NAMES.index("head_bottom")], kp[:, 1])
    np.testing.assert_array_equal(k15[:, JOINT_NAMES.index("head_top")], kp[:, 2])
    np.testing.assert_array_equal(k15[:, 0], kp[:, 16])
    back, sb = joints15_to_coco17(k15, s15)
    keep = [s for s in range(17) if s not in (3, 4)]
    np.testing.assert_array_equal(back[:, keep], kp[:, keep])
    np.testing.assert_array_equal(sb[:, keep], sc[:, keep])


def _crowd_sequence(n_first: int) -> Sequence:
    """Two consecutive frames of one video: ``n_first`` persons, then one person."""
    frames = []
    for t, n in enumerate((n_first, 1)):
        kp = np.stack([np.full((NUM_JOINTS, 2), 10.0 + p) for p in range(n)]).reshape(n, NUM_JOINTS, 2)
        frames.append(Frame(f"images/val/000001_mpii_test/{t:06d}.jpg", kp, np.ones((n, NUM_JOINTS), bool),
                            np.full((n, NUM_JOINTS), 0.5), np.arange(n), np.full((n, 4), np.nan)))
    return Sequence("000001_mpii_test", frames)


def test_annotation_ids_unique_beyond_100_persons(tmp_path):
    """101 persons in a frame: every annotation id of the file stays unique (image_id * 100 + p collided with
    the next frame's first person), and the official numbering is kept for the first 100 persons."""
    seq = _crowd_sequence(101)
    image_ids = [parse_posetrack18_file_name(fr.image_name)[1] for fr in seq.frames]
    assert image_ids[1] == image_ids[0] + 1
    whole = sequence_to_posetrack18(seq)["annotations"]
    path = tmp_path / "000001_mpii_test.json"
    with PoseTrack18Writer(path) as w:
        for fr in seq.frames:
            kp17, sc17 = joints15_to_coco17(fr.keypoints, fr.scores)
            w.add_frame(fr.image_name, kp17, sc17, fr.track_ids)
    streamed = json.loads(path.read_text())["annotations"]
    for anns in (whole, streamed):
        ids = [a["id"] for a in anns]
        assert len(ids) == 102 and len(set(ids)) == 102
        assert ids[:100] == [image_ids[0] * 100 + p for p in range(100)]
        assert ids[101] == image_ids[1] * 100  # the next frame keeps the official number
    back = read_sequence(path, role="pred")
    assert back.frames[0].num_persons == 101 and back.frames[1].num_persons == 1


def test_annotation_ids_of_made_up_image_ids_stay_unique():
    ids = AnnotationIds()
    taken = [ids.take(image_id, p) for image_id in (0, 1, 2, 1) for p in range(150)]
    assert len(set(taken)) == len(taken)


def test_pt18_tables_come_from_the_layout():
    # the skeleton of every official PoseTrack18 annotation file (1-based keypoint numbers)
    official = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
    assert PT18_SKELETON == official
    assert PT18_SKELETON == [[a + 1, b + 1] for a, b in POSETRACK18.skeleton]
    assert PT18_KEYPOINT_NAMES == POSETRACK18.names
    assert sequence_to_posetrack18(_crowd_sequence(1))["categories"][0]["skeleton"] == official


def test_pt18_tables_match_the_real_files(testdata):
    for f in sorted((testdata / "posetrack18/annotations/val").glob("*.json")):
        cat = json.loads(f.read_text())["categories"][0]
        assert cat["skeleton"] == PT18_SKELETON and tuple(cat["keypoints"]) == PT18_KEYPOINT_NAMES


@pytest.mark.parametrize("name, expected", [
    ("000342_mpii_test", (342, "mpii")), ("1_bonn", (1, "bonn")), ("024575_mpiinew_val_x", (24575, "mpiinew")),
    ("000342_coco_test", None), ("video", None), ("x_mpii", None), ("", None),
])
def test_sequence_name_rules(name, expected):
    assert is_sequence_name(name) == (expected is not None)
    if expected is None:
        with pytest.raises(ValueError, match="folder"):
            parse_sequence_name(name)
    else:
        assert parse_sequence_name(name) == expected
        assert parse_posetrack18_file_name(posetrack18_image_name(name, 7))[1] == (
            SEQUENCE_TYPES[expected[1]] * 10 ** 10 + expected[0] * 10 ** 4 + 7)
