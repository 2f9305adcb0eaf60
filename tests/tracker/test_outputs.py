"""Output writers: the COCO -> PoseTrack head joints, the journal and the files assembled from it."""
from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from association.keypoints import COCO17, POSETRACK18
from tracker.outputs import TrackOutputs, coco_head_to_posetrack
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


def _record(n=1, track0=7, value=1.0):
    return PoseRecord(np.tile([[0, 0, 10, 20]], (n, 1)), np.full(n, 0.9), np.full((n, 17, 2), value),
                      np.full((n, 17), 0.5), track_ids=np.arange(track0, track0 + n))


def _frame(i):
    from tracker.sources import Frame

    return Frame(i, i / 25, np.zeros((20, 20, 3), np.uint8), None)


def _journal_frames(path):
    return [line for line in map(json.loads, path.read_text().splitlines()) if "frame" in line]


def test_journal_holds_every_flushed_frame_and_flush_writes_only_new_frames(tmp_path):
    """While running only the journal is on disk; a flush appends the frames since the last one (the bytes
    already written are never rewritten); close assembles every requested file and removes the journal."""
    out = _outputs(tmp_path, formats=("posetrack18", "posetrack17", "coco"), flush_every=2)
    journal = out.journal_path
    assert _journal_frames(journal) == []
    out.add(_frame(0), _record())
    assert _journal_frames(journal) == []                 # not flushed yet
    out.add(_frame(1), _record())
    size = journal.stat().st_size
    head = journal.read_bytes()
    assert [f["frame"] for f in _journal_frames(journal)] == [0, 1]
    out.add(_frame(2), _record())
    out.add(_frame(3), _record())
    assert journal.read_bytes()[:size] == head            # appended, not rewritten
    assert [f["frame"] for f in _journal_frames(journal)] == [0, 1, 2, 3]
    assert not (tmp_path / "000001_mpiinew_test.json").exists()
    out.add(_frame(4), _record())
    out.close()
    assert not journal.exists() and not list(tmp_path.glob(".*"))   # no journal, no temporary file left
    coco = json.loads((tmp_path / "000001_mpiinew_test_coco.json").read_text())
    assert [i["image_id"] for i in coco] == [0, 1, 2, 3, 4] and coco[0]["track_id"] == 7
    assert coco[0]["bbox"] == [0.0, 0.0, 10.0, 20.0] and len(coco[0]["keypoints"]) == 51
    from eval_posetrack import read_sequence

    assert len(read_sequence(tmp_path / "000001_mpiinew_test.json").frames) == 5
    assert len(read_sequence(tmp_path / "000001_mpiinew_test_posetrack17.json").frames) == 5


def test_posetrack17_streamed_equals_the_converted_2018_file(tmp_path):
    from eval_posetrack import convert_file

    out = _outputs(tmp_path, formats=("posetrack18", "posetrack17"), flush_every=3)
    rng = np.random.default_rng(3)
    for i in range(7):
        n = int(rng.integers(0, 4))
        rec = PoseRecord(rng.uniform(0, 50, (n, 4)) + [0, 0, 60, 60], rng.uniform(0, 1, n),
                         rng.uniform(0, 100, (n, 17, 2)), rng.uniform(0, 1, (n, 17)), track_ids=np.arange(n))
        out.add(_frame(i), rec)
    out.close()
    convert_file(tmp_path / "000001_mpiinew_test.json", tmp_path / "c17.json", to="2017", role="pred")
    assert (json.loads((tmp_path / "c17.json").read_text())
            == json.loads((tmp_path / "000001_mpiinew_test_posetrack17.json").read_text()))


def test_annotation_ids_unique_above_100_persons_per_frame(tmp_path):
    """Item 9: 150 persons in a frame next to frames numbered officially; every annotation id is unique."""
    out = _outputs(tmp_path, flush_every=1)
    out.add(_frame(0), _record(150, track0=0))
    out.add(_frame(1), _record(3, track0=0))
    out.close()
    data = json.loads((tmp_path / "000001_mpiinew_test.json").read_text())
    ids = [a["id"] for a in data["annotations"]]
    assert len(ids) == 153 and len(set(ids)) == 153


def test_non_finite_persons_are_left_out_and_no_nan_is_written(tmp_path):
    """Item 7: a NaN box score or an infinite keypoint never reaches a JSON file (strict parsers reject it)."""
    import pytest

    from tracker.outputs import NonFiniteWarning

    out = _outputs(tmp_path, formats=("posetrack18", "coco"))
    rec = _record(3, track0=0)
    rec.pose_scores[0] = np.nan
    rec.keypoints[1, 4] = np.inf
    with pytest.warns(NonFiniteWarning, match="2 person"):
        out.add(_frame(0), rec)
    out.close()
    for name in ("000001_mpiinew_test.json", "000001_mpiinew_test_coco.json"):
        text = (tmp_path / name).read_text()
        assert "NaN" not in text and "Infinity" not in text, name
    assert [a["track_id"] for a in json.loads((tmp_path / "000001_mpiinew_test_coco.json").read_text())] == [2]


def test_killed_run_journal_is_recovered_up_to_the_last_flush(tmp_path):
    """SIGKILL leaves the journal, possibly with a line cut short after the last flush: recovery assembles
    exactly the flushed frames and removes the journal."""
    from eval_posetrack import read_sequence
    from tracker.outputs import recover_journal

    out = _outputs(tmp_path, formats=("posetrack18", "coco"), flush_every=2)
    for i in range(5):
        out.add(_frame(i), _record())
    import os

    os.write(out._journal, b'{"frame": 4, "ima')   # a kill in the middle of a write
    paths = recover_journal(out.journal_path)
    assert len(read_sequence(paths["posetrack18"]).frames) == 4
    assert len(json.loads(paths["coco"].read_text())) == 4
    assert not out.journal_path.exists()


def test_json_outputs_are_readable_like_the_config(tmp_path):
    """Item 9: the JSON files get 0666 minus the umask (mkstemp alone gives 0600)."""
    import os

    umask = os.umask(0o022)
    try:
        out = _outputs(tmp_path, formats=("posetrack18", "coco"))
        out.add(_frame(0), _record())
        out.close()
    finally:
        os.umask(umask)
    assert (tmp_path / "000001_mpiinew_test.json").stat().st_mode & 0o777 == 0o644
    written = sorted(tmp_path.rglob("*.json"))
    assert len(written) >= 2 and all(p.stat().st_mode & 0o777 == 0o644 for p in written), written  # COCO too


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


def test_a_run_owns_its_outputs(tmp_path):
    """Item 5: a second run of the same sequence into the same folder is refused while the first runs (the
    journal's lock) and afterwards unless overwrite; with overwrite the old files are replaced."""
    import pytest

    from tracker.outputs import OutputError

    first = _outputs(tmp_path, formats=("posetrack18", "coco"))
    first.add(_frame(0), _record())
    with pytest.raises(OutputError, match="another run is writing these outputs"):
        _outputs(tmp_path, formats=("posetrack18", "coco"), overwrite=True)
    first.close()
    with pytest.raises(OutputError, match=r"000001_mpiinew_test\.json exists .* --overwrite"):
        _outputs(tmp_path)
    second = _outputs(tmp_path, formats=("posetrack18", "coco"), overwrite=True)
    assert not (tmp_path / "000001_mpiinew_test.json").exists()   # no stale file beside the new journal
    second.add(_frame(0), _record())
    second.add(_frame(1), _record())
    second.close()
    assert len(json.loads((tmp_path / "000001_mpiinew_test_coco.json").read_text())) == 2


def test_next_run_recovers_a_killed_runs_journal(tmp_path):
    import pytest

    from tracker.outputs import OutputError, OutputWarning

    killed = _outputs(tmp_path, formats=("posetrack18",), flush_every=2)
    for i in range(3):
        killed.add(_frame(i), _record())
    import os

    os.close(killed._journal)                     # killed: the lock goes, the journal stays
    with pytest.warns(OutputWarning, match="was killed"), pytest.raises(OutputError, match="exists"):
        _outputs(tmp_path)
    data = json.loads((tmp_path / "000001_mpiinew_test.json").read_text())
    assert len(data["images"]) == 2 and not killed.journal_path.exists()
