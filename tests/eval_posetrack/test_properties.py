"""Property tests (hypothesis): GT against itself, engine equivalence with the real motmetrics, geometry."""
from __future__ import annotations

import warnings

import motmetrics as mm
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eval_posetrack import (
    NUM_JOINTS,
    Frame,
    Sequence,
    evaluate,
    points_in_polygon,
    write_posetrack17,
    write_posetrack18,
)
from eval_posetrack.mot import _JointState

from .helpers import per_joint
from .reference import evaluate_reference
from .synthetic import make_workload

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@st.composite
def gt_sequences(draw):
    T = draw(st.integers(2, 4))
    n_slots = 3
    frames, preds = [], []
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scores = rng.permutation(T * n_slots * NUM_JOINTS) / (T * n_slots * NUM_JOINTS) + 0.001
    k = 0
    for t in range(T):
        P = draw(st.integers(1 if t < 2 else 0, n_slots))
        slots = sorted(rng.choice(n_slots, P, replace=False).tolist())
        # people 200 px apart, joints within 20 px of the centre, head sizes <= 51 px: no cross matches
        centres = np.array([[150.0 + 200 * s, 300.0] for s in slots]).reshape(P, 2)
        kp = centres[:, None, :] + rng.uniform(-20, 20, (P, NUM_JOINTS, 2)).round(2)
        present = rng.random((P, NUM_JOINTS)) < draw(st.sampled_from([0.3, 0.8, 1.0]))
        wh = rng.uniform(5, 60, (P, 2)).round(1)
        heads = np.concatenate([centres - wh / 2, centres + wh / 2], axis=1)
        tids = rng.choice(50, P, replace=False)
        name = f"images/val/000003_bonn_test/{t:06d}.jpg"
        kp = np.where(present[..., None], kp, 0)
        frames.append(Frame(name, kp, present, np.full((P, NUM_JOINTS), np.nan), tids, heads))
        sc = scores[k:k + P * NUM_JOINTS].reshape(P, NUM_JOINTS)
        k += P * NUM_JOINTS
        preds.append(Frame(name, kp, present, np.where(present, sc, np.nan), tids, np.full((P, 4), np.nan)))
    return frames, preds, draw(st.sampled_from(["2017", "2018"]))


@settings(max_examples=25, **SETTINGS)
@given(gt_sequences())
def test_ground_truth_against_itself(tmp_path_factory, case):
    frames, preds, fmt = case
    root = tmp_path_factory.mktemp("self")
    (root / "gt").mkdir()
    (root / "pred").mkdir()
    write = write_posetrack18 if fmt == "2018" else write_posetrack17
    write(root / "gt" / "000003_bonn_test.json", Sequence("s", frames))
    write(root / "pred" / "000003_bonn_test.json", Sequence("s", preds))
    r = evaluate(root / "gt", root / "pred")
    annotated = np.sum([f.present.sum(axis=0) for f in frames], axis=0) > 0
    labeled = [f for f in frames if f.labeled]
    tracked = np.sum([f.present.sum(axis=0) for f in labeled[:-1]], axis=0) > 0  # last labeled skipped
    ap = per_joint(r, "AP")
    assert np.all(ap[annotated] == 100) and np.all(ap[~annotated] == 0)
    mota = per_joint(r, "MOTA")
    assert np.all(mota[tracked] == 100) and np.all(np.isnan(mota[~tracked]))
    assert np.all(per_joint(r, "MOTP")[tracked] == 100)
    assert r["MOTA"]["Total"] == 100 or not tracked.any()


@settings(max_examples=6, **SETTINGS)
@given(seed=st.integers(0, 10**6), spread=st.sampled_from([0.05, 0.2, 1.0]), fmt=st.sampled_from(["2017", "2018"]),
       integer=st.booleans())
def test_fast_engine_equals_motmetrics_and_literal_reference(tmp_path_factory, seed, spread, fmt, integer):
    """Crowded random sequences (overlapping people, ties with integer coordinates, id switches,
    ignore regions, unlabeled frames): vectorised evaluation == real-MOTAccumulator engine == literal loops."""
    root = tmp_path_factory.mktemp("eq")
    g, p = make_workload(root, n_seq=2, n_frames=6, n_people=4, seed=seed, jitter=0.3, p_switch=0.1,
                         p_fp=0.5, p_ignore=0.3, spread=spread, fmt_pred=fmt, integer_coords=integer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = evaluate(g, p)
        slow = evaluate(g, p, mot_engine="motmetrics")
        ref = evaluate_reference(str(g), str(p))
    for m in ("AP", "MOTA", "MOTP", "Prec", "Rec"):
        a = np.append(per_joint(fast, m), fast[m]["Total"])
        np.testing.assert_allclose(a, ref[m], rtol=0, atol=1e-9, equal_nan=True)
        if m != "AP":
            np.testing.assert_allclose(a, np.append(per_joint(slow, m), slow[m]["Total"]), rtol=0, atol=1e-9,
                                       equal_nan=True)


@st.composite
def mot_frames(draw):
    n = draw(st.integers(1, 12))
    frames = []
    for _ in range(n):
        oids = draw(st.lists(st.integers(0, 4), max_size=4, unique=True))
        hids = draw(st.lists(st.integers(0, 4), max_size=4, unique=True))
        d = draw(st.lists(st.sampled_from([np.nan, 0.1, 0.2, 0.25, 0.5]), min_size=len(oids) * len(hids),
                          max_size=len(oids) * len(hids)))
        frames.append((oids, hids, np.array(d, dtype=float).reshape(len(oids), len(hids))))
    return frames


@settings(max_examples=150, **SETTINGS)
@given(mot_frames())
def test_joint_state_replays_motaccumulator(frames):
    """Event counts and poseval's events['D'].sum() of the replay == the real MOTAccumulator (with ties,
    repeated object ids, switches, transfers)."""
    acc = mm.MOTAccumulator(auto_id=True)
    st_ = _JointState()
    for oids, hids, d in frames:
        acc.update(oids, hids, d)
        st_.update(np.array(oids, dtype=np.int64), np.array(hids, dtype=np.int64), d)
    r = mm.metrics.create().compute(acc, metrics=["num_misses", "num_switches", "num_false_positives",
                                                  "num_objects", "num_detections"], return_dataframe=False)
    assert (st_.miss, st_.sw, st_.fp) == (r["num_misses"], r["num_switches"], r["num_false_positives"])
    assert st_.match + st_.sw == r["num_detections"]
    assert st_.miss + st_.match + st_.sw == r["num_objects"]
    s = acc.events["D"].sum()
    np.testing.assert_allclose(st_.sum_d, 0.0 if np.isnan(s) else s, atol=1e-12)


@settings(max_examples=100, **SETTINGS)
@given(st.lists(st.tuples(st.integers(-20, 20), st.integers(-20, 20)), min_size=3, max_size=8),
       st.floats(0, 1))
def test_points_on_polygon_boundary_are_never_inside(verts, frac):
    poly = np.array(verts, dtype=float)
    a, b = poly, np.roll(poly, -1, axis=0)
    on_edges = np.concatenate([poly, (a + b) / 2, a + (b - a) * 0.25])  # exact in binary floating point
    assert not points_in_polygon(on_edges, poly).any()


@settings(max_examples=100, **SETTINGS)
@given(st.integers(3, 9), st.integers(0, 10**6))
def test_convex_polygons_agree_with_matplotlib_away_from_edges(n, seed):
    from matplotlib.path import Path as MplPath

    rng = np.random.default_rng(seed)
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    poly = np.stack([np.cos(ang), np.sin(ang)], 1) * 50 + 100
    pts = rng.uniform(30, 170, (200, 2))
    ours = points_in_polygon(pts, poly)
    ref = MplPath(poly).contains_points(pts)
    # distance to the boundary, to skip points where matplotlib's tolerance may differ
    a, b = poly, np.roll(poly, -1, axis=0)
    ab = b - a
    tt = np.clip(((pts[:, None] - a[None]) * ab[None]).sum(-1) / (ab * ab).sum(-1)[None], 0, 1)
    dist = np.linalg.norm(pts[:, None] - (a[None] + tt[..., None] * ab[None]), axis=-1).min(1)
    far = dist > 1e-6
    np.testing.assert_array_equal(ours[far], ref[far])


def test_self_intersecting_polygon_even_odd():
    # a pentagram: GEOS's ray-crossing rule leaves the central pentagon outside
    ang = np.pi / 2 + np.arange(5) * 4 * np.pi / 5
    star = np.stack([np.cos(ang), np.sin(ang)], 1) * 100
    assert not points_in_polygon([[0.0, 0.0]], star)[0]
    tip = star[0] * 0.8  # inside a tip triangle
    assert points_in_polygon([tip], star)[0]


def test_joint_state_needs_no_solver_once_carried_pairs_leave_a_matching():
    """Frame 2: every valid pair is finite (not a matching), but both objects keep last frame's hypotheses
    (step 1) and the pairs left (none) are trivially a matching, so no assignment solver (nor motmetrics'
    ~0.6 s of pandas / scipy.optimize imports) is needed; the counts equal the real MOTAccumulator's."""
    import subprocess
    import sys

    frames = [([1, 2], [1, 2], np.array([[0.1, np.nan], [np.nan, 0.2]])),
              ([1, 2], [1, 2], np.array([[0.1, 0.3], [0.2, 0.2]]))]
    acc = mm.MOTAccumulator(auto_id=True)
    st_ = _JointState()
    for oids, hids, d in frames:
        acc.update(oids, hids, d)
        st_.update(np.array(oids, dtype=np.int64), np.array(hids, dtype=np.int64), d)
    assert (st_.match, st_.sw, st_.miss, st_.fp) == (4, 0, 0, 0)
    np.testing.assert_allclose(st_.sum_d, acc.events["D"].sum(), atol=1e-12)
    code = ("import sys, numpy as np; from eval_posetrack.mot import _JointState; s = _JointState(); "
            "s.update(np.array([1, 2]), np.array([1, 2]), np.array([[0.1, np.nan], [np.nan, 0.2]])); "
            "s.update(np.array([1, 2]), np.array([1, 2]), np.array([[0.1, 0.3], [0.2, 0.2]])); "
            "print(s.match, sorted(m for m in ('motmetrics', 'pandas', 'scipy.optimize') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split(maxsplit=1) == ["4", "[]\n"], out
