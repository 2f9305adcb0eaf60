"""Output writers: the COCO -> PoseTrack head joints, the COCO results file."""
from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from association.keypoints import COCO17, POSETRACK18
from tracker.outputs import CocoResultsWriter, TrackOutputs, coco_head_to_posetrack
from tracker.record import PoseRecord


def _outputs(tmp_path, sequence="000001_mpiinew_test", formats=("posetrack18",), layout=COCO17, **kw):
    settings = dict(render=False, fps=25.0, keypoint_threshold=0.3, flush_every=10) | kw
    return TrackOutputs(tmp_path, sequence, list(formats), layout=layout, **settings)


@settings(max_examples=50, deadline=None)
@given(st.floats(-500, 500), st.floats(-500, 500), st.floats(0.2, 3.0), st.floats(-np.pi, np.pi))
def test_head_joints_follow_the_pose_rigidly(tx, ty, scale, angle):
    """Derived head_bottom / head_top move with any similarity transform of the pose."""
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 100, (3, 17, 2)).astype(np.float32)
    sc = rng.uniform(0, 1, (3, 17)).astype(np.float32)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]], np.float32) * scale
    moved = kp @ rot.T + np.array([tx, ty], np.float32)
    a, sa = coco_head_to_posetrack(kp, sc)
    b, sb = coco_head_to_posetrack(moved, sc)
    np.testing.assert_allclose(a @ rot.T + np.array([tx, ty]), b, atol=1e-2)
    np.testing.assert_array_equal(sa, sb)


def test_head_joints_geometry():
    kp = np.zeros((1, 17, 2), np.float32)
    kp[0, 0] = (50, 20)                         # nose
    kp[0, 5], kp[0, 6] = (40, 50), (60, 50)     # shoulders, mid (50, 50)
    sc = np.full((1, 17), 0.9, np.float32)
    sc[0, 5] = 0.4
    out, osc = coco_head_to_posetrack(kp, sc)
    np.testing.assert_allclose(out[0, 1], (50, 41))   # head_bottom: 0.3 of the way to the nose
    np.testing.assert_allclose(out[0, 2], (50, -1))   # head_top: nose + (nose - head_bottom)
    assert osc[0, 1] == np.float32(0.4) and osc[0, 2] == np.float32(0.9)
    np.testing.assert_array_equal(out[0, 3:], kp[0, 3:])
    assert coco_head_to_posetrack(np.zeros((0, 17, 2)), np.zeros((0, 17)))[0].shape == (0, 17, 2)


def test_coco_results_writer_is_valid_after_every_flush(tmp_path):
    path = tmp_path / "r.json"
    w = CocoResultsWriter(path, flush_every=2)
    assert json.loads(path.read_text()) == []
    rec = PoseRecord(np.array([[0, 0, 10, 20]]), np.array([0.9]), np.ones((1, 17, 2)), np.full((1, 17), 0.5),
                     track_ids=np.array([7]))
    w.add_frame(0, rec)
    assert json.loads(path.read_text()) == []      # not flushed yet
    w.add_frame(1, rec)
    items = json.loads(path.read_text())
    assert [i["image_id"] for i in items] == [0, 1] and items[0]["track_id"] == 7
    assert items[0]["bbox"] == [0.0, 0.0, 10.0, 20.0] and len(items[0]["keypoints"]) == 51
    w.add_frame(2, rec)
    w.close()
    assert len(json.loads(path.read_text())) == 3


def test_posetrack_ids_stay_below_10000_and_unique_per_frame(tmp_path):
    out = _outputs(tmp_path)
    assert out._posetrack_ids(np.array([3, 10003, 9999])).tolist() == [3, 0, 9999]
    out.frames_written = 1
    assert out._posetrack_ids(np.array([3, 10003])).tolist() == [3, 0]  # a track keeps its id
    out._taken, out._scan = set(range(10000)), 10000                    # every id used once
    out.frames_written = 2
    ids = out._posetrack_ids(np.array([10003, 10005]))
    assert ids.tolist() == [0, 9999]  # 9999's track is the one unseen for longest; 3 was seen later
    out.close()


def test_posetrack17_needs_a_posetrack_sequence_name(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="posetrack17 needs a PoseTrack sequence name.*'myvideo'"):
        _outputs(tmp_path, "myvideo", ["posetrack17"])


def test_posetrack_head_slots_follow_the_estimators_layout(tmp_path):
    """A COCO17 estimator's eye slots become derived head_bottom / head_top; a POSETRACK18 estimator's
    head_bottom / head_top are written as predicted; another layout cannot be written as PoseTrack."""
    import pytest

    from association.keypoints import KeypointLayout
    from eval_posetrack import read_sequence
    from tracker.sources import Frame

    rng = np.random.default_rng(1)
    kp = rng.uniform(100, 200, (1, 17, 2)).astype(np.float32)
    rec = PoseRecord(np.array([[90, 90, 210, 210]]), np.array([0.9]), kp, np.full((1, 17), 0.8),
                     track_ids=np.array([0]))
    frame = Frame(0, 0.0, np.zeros((300, 300, 3), np.uint8), "000000.jpg")
    written = {}
    for layout in (COCO17, POSETRACK18):
        out = _outputs(tmp_path / layout.name, layout=layout)
        out.add(frame, rec)
        out.close()
        assert len(read_sequence(tmp_path / layout.name / "000001_mpiinew_test.json").frames) == 1  # valid file
        data = json.loads((tmp_path / layout.name / "000001_mpiinew_test.json").read_text())
        written[layout.name] = np.asarray(data["annotations"][0]["keypoints"], np.float32).reshape(17, 3)[:, :2]
    derived, _ = coco_head_to_posetrack(kp, rec.keypoint_scores)
    np.testing.assert_allclose(written["coco17"], derived[0], atol=0.01)
    np.testing.assert_allclose(written["posetrack18"], kp[0], atol=0.01)
    five = KeypointLayout("five", tuple("abcde"), (), (0.05,) * 5, ((0, 1),))
    with pytest.raises(ValueError, match="PoseTrack output needs an estimator with the coco17 or posetrack18"):
        _outputs(tmp_path / "five", layout=five)
    _outputs(tmp_path / "five", formats=["coco"], layout=five).close()  # COCO results take any layout


def test_render_draws_the_layouts_skeleton():
    from tracker.render import draw_poses

    kp = np.array([[[20, 20], [80, 20], [80, 80]]], np.float32)
    rec = PoseRecord(np.array([[0, 0, 100, 100]]), np.array([0.9]), kp, np.ones((1, 3)), track_ids=np.array([3]))
    image = np.zeros((100, 100, 3), np.uint8)
    limb = draw_poses(image, rec, 0.3, ((0, 1),), draw_boxes=False)
    other = draw_poses(image, rec, 0.3, ((1, 2),), draw_boxes=False)
    assert limb[20, 50].any() and not limb[50, 80].any()     # on the 0-1 limb, off the 1-2 limb
    assert other[50, 80].any() and not other[20, 50].any()
