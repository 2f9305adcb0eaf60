"""Hand-built scenarios with numbers worked out by hand (py-motmetrics test style).

Geometry of every scenario: GT head box 30 x 40 -> head size 0.6 * 50 = 30 px, PCKh threshold 15 px.
Predictions offset by (3, 4) px are at distance 5 / 30 = 1/6 from their GT joint. People are 300 px
apart, so only a person's own prediction is ever within the threshold. Both MOT engines are checked.
"""
from __future__ import annotations

import numpy as np
import pytest

from eval_posetrack import evaluate

from .helpers import HEAD, Scores, gt_frame, per_joint, pred_frame, write_pair
from .reference import evaluate_reference

ENGINES = ("fast", "motmetrics")
A, B = (100.0, 100.0), (400.0, 100.0)


def _check_reference(g, p, summary):
    """The literal re-statement of poseval agrees too (same joints NaN, values within 1e-9)."""
    ref = evaluate_reference(str(g), str(p))
    for m in ("AP", "MOTA", "MOTP", "Prec", "Rec"):
        if summary[m] is None:
            continue
        ours = np.append(per_joint(summary, m), summary[m]["Total"])
        np.testing.assert_allclose(ours, ref[m], rtol=0, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_perfect_prediction_with_offset(tmp_path, engine):
    s = Scores()
    gts = [gt_frame(t, [(*A, 1), (*B, 2)]) for t in range(4)]
    prs = [pred_frame(t, [(*A, 7), (*B, 8)], s, offset=(3, 4)) for t in range(4)]
    g, p = write_pair(tmp_path, gts, prs)
    r = evaluate(g, p, mot_engine=engine)
    assert np.all(per_joint(r, "AP") == 100) and r["AP"]["Total"] == 100
    assert np.all(per_joint(r, "MOTA") == 100)
    # frames 0..2 (last skipped): 6 pairs per joint at d = 1/6. events['D'] sums the RAW rows too:
    # sumD = 6/6 (RAW) + 6/6 (MATCH) = 2 -> MOTP = 100 * (1 - 2 / 6) (would be 83.3 without RAW rows)
    np.testing.assert_allclose(per_joint(r, "MOTP"), 100 * (1 - 2 / 6), atol=1e-9)
    assert r["Prec"]["Total"] == 100 and r["Rec"]["Total"] == 100
    _check_reference(g, p, r)


@pytest.mark.parametrize("engine", ENGINES)
def test_one_id_switch(tmp_path, engine):
    s = Scores()
    gts = [gt_frame(t, [(*A, 1), (*B, 2)]) for t in range(4)]
    ids = [(10, 20), (10, 20), (20, 10), (20, 10)]  # predictions swap ids at frame 2
    prs = [pred_frame(t, [(*A, ids[t][0]), (*B, ids[t][1])], s, offset=(3, 4)) for t in range(4)]
    g, p = write_pair(tmp_path, gts, prs)
    r = evaluate(g, p, mot_engine=engine)
    # per joint over frames 0..2: 6 objects, 2 switches (both GT persons) -> MOTA = 100 * (1 - 2/6)
    np.testing.assert_allclose(per_joint(r, "MOTA"), 100 * (1 - 2 / 6), atol=1e-9)
    # sumD = RAW 1 + MATCH/SWITCH 1 + 2 TRANSFER rows of 1/6 = 7/3; detections 6 -> 100 * (1 - 7/18)
    np.testing.assert_allclose(per_joint(r, "MOTP"), 100 * (1 - 7 / 18), atol=1e-9)
    np.testing.assert_allclose(r["Rec"]["Total"], 100, atol=1e-9)
    assert r["AP"]["Total"] == 100  # AP ignores identities
    _check_reference(g, p, r)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("inside", [True, False])
def test_false_positive_and_ignore_region(tmp_path, engine, inside):
    s = Scores(0.5)
    square = (np.array([[500, 500], [700, 500], [700, 700], [500, 700]], float),)
    gts = [gt_frame(0, [(*A, 1)], ignore=square)] + [gt_frame(t, [(*A, 1)]) for t in (1, 2)]
    fp_at = (550.0, 550.0) if inside else (900.0, 900.0)
    # the false positive gets the highest scores of all
    fp = pred_frame(0, [(*fp_at, 99)], Scores(0.99))
    good0 = pred_frame(0, [(*A, 5)], s)
    f0 = type(good0)(good0.image_name, np.concatenate([fp.keypoints, good0.keypoints]),
                     np.concatenate([fp.present, good0.present]), np.concatenate([fp.scores, good0.scores]),
                     [99, 5], np.full((2, 4), np.nan))
    prs = [f0] + [pred_frame(t, [(*A, 5)], s) for t in (1, 2)]
    g, p = write_pair(tmp_path, gts, prs)
    r = evaluate(g, p, mot_engine=engine)
    if inside:  # every joint of the FP strictly inside -> removed, person removed: a perfect result
        assert r["AP"]["Total"] == 100 and r["MOTA"]["Total"] == 100 and r["Prec"]["Total"] == 100
    else:
        # per joint: FP first (prec 0), then 3 TPs at prec 1/2, 2/3, 3/4 -> envelope 3/4 -> AP 75
        np.testing.assert_allclose(per_joint(r, "AP"), 75, atol=1e-9)
        # MOT frames 0, 1: 2 objects, 2 matches, 1 FP -> MOTA 50, Prec 2/3
        np.testing.assert_allclose(per_joint(r, "MOTA"), 50, atol=1e-9)
        np.testing.assert_allclose(per_joint(r, "Prec"), 200 / 3, atol=1e-9)
    _check_reference(g, p, r)


def test_point_on_ignore_region_boundary_is_kept(tmp_path):
    # poseval uses shapely contains (strict): a keypoint exactly on the polygon edge stays
    square = (np.array([[90, 90], [200, 90], [200, 300], [90, 300]], float),)
    s = Scores()
    gts = [gt_frame(0, [(*A, 1)], joints=[0], ignore=square), gt_frame(1, [(*A, 1)], joints=[0])]
    on_edge = pred_frame(0, [(90.0, 150.0, 3)], s, joints=[0])  # joint 0 at x = 90: on the edge
    prs = [on_edge, pred_frame(1, [(*A, 3)], s, joints=[0])]
    g, p = write_pair(tmp_path, gts, prs)
    r = evaluate(g, p, ap=True, track=False)
    # GT joint 0 at (100, 100) is strictly inside -> removed (frame 0 GT person gone); the prediction at
    # (90, 150) lies on the edge -> kept -> a false positive with the highest score: AP = 1/2 * 100
    assert per_joint(r, "AP")[0] == pytest.approx(50.0)
    _check_reference(g, p, r)


@pytest.mark.parametrize("engine", ENGINES)
def test_empty_prediction_frame_dummy_update(tmp_path, engine):
    s = Scores()
    gts = [gt_frame(t, [(*A, 1), (*B, 2)]) for t in range(3)]
    empty = pred_frame(1, [], s)
    prs = [pred_frame(0, [(*A, 5), (*B, 6)], s), empty, pred_frame(2, [(*A, 5), (*B, 6)], s)]
    g, p = write_pair(tmp_path, gts, prs)
    r = evaluate(g, p, mot_engine=engine)
    # MOT frames 0, 1: frame 0 two matches; frame 1 has no prediction -> dummy ([0], [0], NaN):
    # +1 object, +1 miss, +1 FP (not 2 misses): MOTA = 100 * (1 - 2/3), Prec = Rec = 2/3
    np.testing.assert_allclose(per_joint(r, "MOTA"), 100 / 3, atol=1e-9)
    np.testing.assert_allclose(per_joint(r, "Prec"), 200 / 3, atol=1e-9)
    np.testing.assert_allclose(per_joint(r, "Rec"), 200 / 3, atol=1e-9)
    # AP: 6 GT joints, 4 TPs, no FP -> recall 2/3 at precision 1
    np.testing.assert_allclose(per_joint(r, "AP"), 200 / 3, atol=1e-9)
    _check_reference(g, p, r)


@pytest.mark.parametrize("engine", ENGINES)
def test_errors_only_in_last_frame(tmp_path, engine):
    s = Scores()
    gts = [gt_frame(t, [(*A, 1)]) for t in range(3)]
    prs = [pred_frame(t, [(*A, 4)], s) for t in (0, 1)] + [pred_frame(2, [(1000.0, 900.0, 4)], s)]
    g, p = write_pair(tmp_path, gts, prs)
    r = evaluate(g, p, mot_engine=engine)
    assert r["MOTA"]["Total"] == 100  # the last labeled frame is not tracked
    # AP per joint: TP, TP, FP (lowest score) out of 3 GT -> 2/3
    np.testing.assert_allclose(per_joint(r, "AP"), 200 / 3, atol=1e-9)
    _check_reference(g, p, r)


@pytest.mark.parametrize("engine", ENGINES)
def test_joint_predicted_but_never_annotated(tmp_path, engine):
    s = Scores()
    annotated = list(range(14))  # head_top (14) never annotated in the GT, but predicted
    gts = [gt_frame(t, [(*A, 1)], joints=annotated) for t in range(3)]
    prs = [pred_frame(t, [(*A, 4)], s) for t in range(3)]
    g, p = write_pair(tmp_path, gts, prs)
    r = evaluate(g, p, mot_engine=engine)
    ap = per_joint(r, "AP")
    assert np.isnan(ap[14]) and np.all(ap[:14] == 100)
    assert r["AP"]["Total"] == 100  # NaN skipped
    assert np.isnan(r["AP"]["Head"])  # plain mean over head_top, neck, nose
    mota = per_joint(r, "MOTA")
    assert np.isnan(mota[14]) and r["MOTA"]["Total"] == 100
    assert per_joint(r, "Prec")[14] == 0  # FPs and no GT: 0, not NaN
    np.testing.assert_allclose(r["Prec"]["Total"], 1400 / 15, atol=1e-9)
    assert per_joint(r, "MOTP")[14] == 0
    assert np.isnan(per_joint(r, "Rec")[14])
    _check_reference(g, p, r)


def test_joint_neither_annotated_nor_predicted_counts_as_zero(tmp_path):
    s = Scores()
    joints = [j for j in range(15) if j != 13]  # no nose anywhere
    gts = [gt_frame(t, [(*A, 1)], joints=joints) for t in range(3)]
    prs = [pred_frame(t, [(*A, 4)], s, joints=joints) for t in range(3)]
    g, p = write_pair(tmp_path, gts, prs)
    r = evaluate(g, p)
    assert per_joint(r, "AP")[13] == 0
    np.testing.assert_allclose(r["AP"]["Total"], 1400 / 15, atol=1e-9)
    np.testing.assert_allclose(r["AP"]["Head"], 200 / 3, atol=1e-9)
    _check_reference(g, p, r)


def test_unlabeled_frames_and_their_predictions_are_dropped(tmp_path):
    s = Scores()
    gts = [gt_frame(0, [(*A, 1)]), gt_frame(1, []), gt_frame(2, [(*A, 1)]), gt_frame(3, [(*A, 1)])]
    prs = [pred_frame(0, [(*A, 4)], s), pred_frame(1, [(700.0, 700.0, 9)], Scores(0.999)),
           pred_frame(2, [(*A, 4)], s), pred_frame(3, [(*A, 4)], s)]
    g, p = write_pair(tmp_path, gts, prs, fmt_gt="2017")
    r = evaluate(g, p)
    assert r["AP"]["Total"] == 100 and r["MOTA"]["Total"] == 100 and r["Prec"]["Total"] == 100
    _check_reference(g, p, r)


def test_mixed_formats_give_identical_numbers(tmp_path):
    s = Scores()
    gts = [gt_frame(t, [(*A, 1), (*B, 2)], joints=range(2, 15)) for t in range(4)]
    prs = [pred_frame(t, [(*A, 3), (*B, 4), (800.0, 600.0, 5)], s, offset=(t, 2 * t)) for t in range(4)]
    results = []
    for fg in ("2017", "2018"):
        for fp in ("2017", "2018"):
            g, p = write_pair(tmp_path / f"{fg}_{fp}", gts, prs, fmt_gt=fg, fmt_pred=fp)
            results.append(evaluate(g, p))
    for r in results[1:]:
        for m in ("AP", "MOTA", "MOTP", "Prec", "Rec"):
            np.testing.assert_array_equal(per_joint(r, m), per_joint(results[0], m))
    assert HEAD == 30.0
