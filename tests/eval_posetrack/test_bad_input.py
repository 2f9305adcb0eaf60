"""Every input the official tool rejects (or would silently mis-score) gives a clear error first."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from eval_posetrack import (
    MIN_SCORE,
    PoseTrackEvalError,
    PoseTrackFormatError,
    PoseTrackWarning,
    evaluate,
    read_sequence,
)

from .helpers import VIDEO, Scores, gt_frame, pred_frame, write_pair

A, B = (100.0, 100.0), (400.0, 100.0)


@pytest.fixture
def folders(tmp_path):
    s = Scores()
    gts = [gt_frame(t, [(*A, 1), (*B, 2)]) for t in range(3)]
    prs = [pred_frame(t, [(*A, 5), (*B, 6)], s) for t in range(3)]
    return write_pair(tmp_path, gts, prs)


def _edit(path, fn):
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def test_missing_prediction_file(folders):
    g, p = folders
    (p / f"{VIDEO}.json").unlink()
    with pytest.raises(FileNotFoundError, match=f"{VIDEO}.json"):
        evaluate(g, p)


def test_frame_count_mismatch(folders):
    g, p = folders
    _edit(p / f"{VIDEO}.json", lambda d: d["images"].pop())
    with pytest.raises(PoseTrackEvalError, match=r"2 prediction frames but 3 ground-truth frames"):
        evaluate(g, p)


def test_duplicate_track_ids(folders):
    g, p = folders

    def dup(d):
        d["annotations"][3]["track_id"] = d["annotations"][2]["track_id"]  # frame 1, both persons
    _edit(p / f"{VIDEO}.json", dup)
    with pytest.raises(PoseTrackFormatError, match=r"frame 1, person 1, field 'track_id'.*duplicate"):
        evaluate(g, p)


def test_duplicate_track_ids_2017(tmp_path):
    s = Scores()
    gts = [gt_frame(t, [(*A, 1)]) for t in range(2)]
    prs = [pred_frame(t, [(*A, 5), (*B, 5)], s) for t in range(2)]
    g, p = write_pair(tmp_path, gts, prs, fmt_pred="2017")
    with pytest.raises(PoseTrackFormatError, match=r"frame 0, person 1, field 'track_id'"):
        evaluate(g, p)


def test_missing_track_id(folders):
    g, p = folders
    _edit(p / f"{VIDEO}.json", lambda d: d["annotations"][4].pop("track_id"))
    with pytest.raises(PoseTrackFormatError, match=r"pred.*frame 2, person 0, field 'track_id'"):
        evaluate(g, p)


def test_track_id_too_large(folders):
    g, p = folders
    _edit(g / f"{VIDEO}.json", lambda d: d["annotations"][0].update(track_id=10000))
    with pytest.raises(PoseTrackFormatError, match=r"frame 0, person 0, field 'track_id'.*10000"):
        evaluate(g, p)


def test_unmappable_keypoint_names(folders):
    g, p = folders
    _edit(p / f"{VIDEO}.json", lambda d: d["categories"][0]["keypoints"].__setitem__(1, "neck"))
    with pytest.raises(PoseTrackFormatError, match=r"categories\[0\].keypoints.*head_bottom"):
        evaluate(g, p)


def test_unparseable_file_name(folders):
    g, p = folders
    _edit(p / f"{VIDEO}.json", lambda d: d["images"][1].update(file_name="images/val/myvideo/000001.jpg"))
    with pytest.raises(PoseTrackFormatError, match=r"frame 1, field 'images.file_name'.*myvideo"):
        evaluate(g, p)


def test_missing_scores_warn_once_and_use_fallback(folders):
    g, p = folders

    def strip(d):
        for a in d["annotations"]:
            a.pop("scores")
    _edit(p / f"{VIDEO}.json", strip)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        seq = read_sequence(p / f"{VIDEO}.json", role="pred")
    msgs = [w for w in rec if issubclass(w.category, PoseTrackWarning)]
    assert len(msgs) == 1 and "-9999" in str(msgs[0].message)
    assert np.all(seq.frames[0].scores[seq.frames[0].present] == MIN_SCORE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = evaluate(g, p)
    assert r["AP"]["Total"] == 100


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_coordinates(folders, value):
    g, p = folders
    _edit(p / f"{VIDEO}.json", lambda d: d["annotations"][2]["keypoints"].__setitem__(0, value))
    with pytest.raises(PoseTrackFormatError, match=r"frame 1, person 0, field 'keypoints'.*non-finite"):
        evaluate(g, p)


def test_negative_head_box(folders):
    g, p = folders
    _edit(g / f"{VIDEO}.json", lambda d: d["annotations"][1]["bbox_head"].__setitem__(2, -30))
    with pytest.raises(PoseTrackFormatError, match=r"gt.*frame 0, person 1, field 'bbox_head'.*negative"):
        evaluate(g, p)


def test_missing_head_box_where_predictions_exist(folders):
    g, p = folders
    _edit(g / f"{VIDEO}.json", lambda d: d["annotations"][2].pop("bbox_head"))
    with pytest.raises(PoseTrackEvalError, match=r"frame 1, person 0, field 'bbox_head'"):
        evaluate(g, p)


def test_degenerate_ignore_region(folders):
    g, p = folders
    _edit(g / f"{VIDEO}.json", lambda d: d["images"][0].update(ignore_regions_x=[[1, 2]], ignore_regions_y=[[1, 2]]))
    with pytest.raises(PoseTrackFormatError, match=r"frame 0, field 'ignore_regions_x\[0\]'.*2 points"):
        evaluate(g, p)


def test_non_numeric_keypoints(folders):
    g, p = folders
    _edit(p / f"{VIDEO}.json", lambda d: d["annotations"][5]["keypoints"].__setitem__(3, None))
    with pytest.raises(PoseTrackFormatError, match=r"frame 2, person 1, field 'keypoints'"):
        evaluate(g, p)


def test_single_labeled_frame_tracking_is_a_clear_error(tmp_path):
    s = Scores()
    g, p = write_pair(tmp_path, [gt_frame(0, [(*A, 1)]), gt_frame(1, [])],
                      [pred_frame(0, [(*A, 1)], s), pred_frame(1, [], s)])
    with pytest.raises(PoseTrackEvalError, match=r"only 1 labeled frame.*--no-track"):
        evaluate(g, p)
    assert evaluate(g, p, track=False)["AP"]["Total"] == 100


def test_not_json(folders):
    g, p = folders
    (p / f"{VIDEO}.json").write_text("{not json")
    with pytest.raises(PoseTrackFormatError, match="not valid JSON"):
        evaluate(g, p)


def test_duplicate_gt_track_ids_refused_for_tracking_only(folders):
    g, p = folders
    _edit(g / f"{VIDEO}.json", lambda d: d["annotations"][1].update(track_id=d["annotations"][0]["track_id"]))
    with pytest.raises(PoseTrackEvalError, match=r"frame 0, person 1, field 'track_id'.*duplicate ground-truth"):
        evaluate(g, p)
    assert evaluate(g, p, track=False)["AP"] is not None  # poseval's AP accepts it


def test_annotations_matching_no_image_are_counted_and_named(folders, capsys):
    """Item 8: a prediction whose annotations carry an image_id of no image lost them silently (AP 61.2 ->
    25.7 without a word); now a warning names the file and the count, and --strict makes it an error."""
    from tracker.cli import main

    g, p = folders
    pred = p / f"{VIDEO}.json"
    _edit(pred, lambda d: [a.update(image_id=a["image_id"] + 999) for a in d["annotations"][:2]])
    with pytest.warns(PoseTrackWarning, match=r"2 of 6 annotations have an 'image_id' that matches no image"):
        evaluate(g, p)
    assert main(["eval", "--gt", str(g), "--pred", str(p)]) == 0
    assert f"{pred}: 2 of 6 annotations" in capsys.readouterr().err
    assert main(["eval", "--gt", str(g), "--pred", str(p), "--strict"]) == 2
    assert "--strict" in capsys.readouterr().err


def test_gt_given_as_a_file_is_named_as_a_file(folders, capsys):
    """Item 8: a file given as --gt was reported as "a folder that does not exist"."""
    from tracker.cli import main

    g, p = folders
    gt_file = g / f"{VIDEO}.json"
    with pytest.raises(NotADirectoryError, match=f"ground-truth {gt_file} is a file; give the folder"):
        evaluate(gt_file, p)
    assert main(["eval", "--gt", str(gt_file), "--pred", str(p)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_output_paths_are_checked_before_the_evaluation(folders, tmp_path, capsys, monkeypatch):
    """Item 8: --json / --plot were checked only after the whole evaluation."""
    import sys

    from tracker.cli import main

    ev = sys.modules["eval_posetrack.evaluate"]
    g, p = folders
    calls = []
    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: calls.append(1))
    (tmp_path / "blocker").write_text("a file")
    assert main(["eval", "--gt", str(g), "--pred", str(p), "--json", str(tmp_path / "blocker" / "s.json")]) == 2
    assert main(["eval", "--gt", str(g), "--pred", str(p), "--plot", str(tmp_path)]) == 2
    assert calls == [] and "--plot" in capsys.readouterr().err


def test_fast_mot_engine_is_the_default(folders):
    """Item 8: the fast engine (same numbers as motmetrics) is the default; motmetrics stays the cross-check."""
    import inspect

    from eval_posetrack.cli import register

    assert inspect.signature(evaluate).parameters["mot_engine"].default == "fast"
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    g, p = folders
    args = parser.parse_args(["eval", "--gt", str(g), "--pred", str(p)])
    assert args.mot_engine == "fast"
    fast, slow = evaluate(g, p, mot_engine="fast"), evaluate(g, p, mot_engine="motmetrics")
    assert fast["MOTA"]["Total"] == pytest.approx(slow["MOTA"]["Total"])


def test_eval_start_up_imports_no_scipy_optimize():
    """Item 8: `posetrack eval` paid ~0.5-1 s importing scipy.optimize (through association.matching) before
    checking anything; the matcher imports it only when it runs."""
    import subprocess
    import sys

    code = ("import sys, eval_posetrack, eval_posetrack.cli, association; "
            "print(sorted(m for m in ('scipy.optimize', 'torch', 'motmetrics', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
