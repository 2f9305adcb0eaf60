"""OKS: agreement with pycocotools, and properties (range, identity, symmetry, translation) with hypothesis."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from association import COCO_SIGMAS, OKSInputError, box_areas, oks_matrix

K = 17
pix = st.floats(min_value=-100.0, max_value=700.0, allow_nan=False, width=64)
area = st.floats(min_value=1.0, max_value=1e5, allow_nan=False)


def poses(n):
    return hnp.arrays(np.float64, (n, K, 2), elements=pix)


def scores(n):
    return hnp.arrays(np.float64, (n, K), elements=st.floats(0.0, 1.0, width=64))


def test_matches_pycocotools_compute_oks():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(3)
    base = rng.uniform(50, 250, (K, 2))
    gts, dts = [], []
    for g in range(3):
        kp = base + rng.normal(0, 20, (K, 2)) + g * 30
        vis = (rng.uniform(size=K) > 0.3).astype(int) * 2
        vis[0] = 2
        w, h = rng.uniform(60, 120), rng.uniform(120, 220)
        gts.append(dict(id=g + 1, image_id=1, category_id=1, iscrowd=0, area=float(w * h * 0.6),
                        bbox=[10.0, 10.0, float(w), float(h)], num_keypoints=int((vis > 0).sum()),
                        keypoints=np.column_stack([kp, vis]).ravel().tolist()))
    for d in range(4):
        kp = base + rng.normal(0, 25, (K, 2)) + (d % 3) * 30
        dts.append(dict(image_id=1, category_id=1, score=1.0 - 0.1 * d,
                        keypoints=np.column_stack([kp, np.ones(K)]).ravel().tolist()))
    coco_gt = COCO()
    coco_gt.dataset = dict(images=[dict(id=1, width=640, height=480)], annotations=gts,
                           categories=[dict(id=1, name="person")])
    coco_gt.createIndex()
    coco_dt = coco_gt.loadRes(dts)
    ev = COCOeval(coco_gt, coco_dt, "keypoints")
    ev.evaluate()
    expected = np.asarray(ev.ious[(1, 1)])  # (D, G), detections sorted by score (already in order)

    dt_kp = np.array([d["keypoints"] for d in dts]).reshape(-1, K, 3)[..., :2]
    gt_all = np.array([g["keypoints"] for g in gts]).reshape(-1, K, 3)
    got = oks_matrix(dt_kp, gt_all[..., :2], areas_b=np.array([g["area"] for g in gts]),
                     scores_b=gt_all[..., 2], score_threshold=1.0)  # GT visibility v > 0 <-> score 2 >= 1
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(a=poses(3), b=poses(4), areas=hnp.arrays(np.float64, (4,), elements=area), sa=scores(3), sb=scores(4),
       thr=st.floats(0.0, 1.0))
def test_range_and_shape(a, b, areas, sa, sb, thr):
    sim = oks_matrix(a, b, areas_b=areas, scores_a=sa, scores_b=sb, score_threshold=thr)
    assert sim.shape == (3, 4)
    assert np.all((sim >= 0) & (sim <= 1))


@settings(max_examples=60, deadline=None)
@given(a=poses(4), areas=hnp.arrays(np.float64, (4,), elements=area), s=scores(4))
def test_identical_poses_score_one(a, areas, s):
    s[:, 5] = 1.0  # at least one confidently visible keypoint
    sim = oks_matrix(a, a, areas_b=areas, scores_a=s, scores_b=s, score_threshold=0.5)
    np.testing.assert_allclose(np.diag(sim), 1.0)


@settings(max_examples=60, deadline=None)
@given(a=poses(3), b=poses(2), ar=area, sa=scores(3), sb=scores(2), thr=st.floats(0.0, 1.0))
def test_symmetric_with_common_area(a, b, ar, sa, sb, thr):
    ab = oks_matrix(a, b, areas_b=np.full(2, ar), scores_a=sa, scores_b=sb, score_threshold=thr)
    ba = oks_matrix(b, a, areas_b=np.full(3, ar), scores_a=sb, scores_b=sa, score_threshold=thr)
    np.testing.assert_allclose(ab, ba.T, rtol=1e-12, atol=1e-15)


@settings(max_examples=60, deadline=None)
@given(a=poses(1), ar=area, direction=st.tuples(st.floats(-1, 1), st.floats(-1, 1)),
       lam=st.tuples(st.floats(0.0, 50.0), st.floats(0.0, 50.0)))
def test_translation_decreases_oks(a, ar, direction, lam):
    d = np.asarray(direction)
    assume(np.linalg.norm(d) > 1e-3)
    small, large = sorted(lam)
    near = oks_matrix(a + small * d, a, areas_b=[ar])[0, 0]
    far = oks_matrix(a + large * d, a, areas_b=[ar])[0, 0]
    assert far <= near + 1e-12
    if large * np.linalg.norm(d) >= 1.0:  # a visible shift of at least one pixel
        assert far < 1.0


def test_visibility_masks_and_nan():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 100, (1, K, 2))
    b = a.copy()
    b[0, :8] += 40.0  # the first 8 keypoints are far off
    sa = np.ones((1, K))
    sb = np.ones((1, K))
    full = oks_matrix(a, b, areas_b=[5000.0], scores_a=sa, scores_b=sb, score_threshold=0.5)[0, 0]
    sb[0, :8] = 0.1  # hide the wrong keypoints on one side only -> they are ignored
    masked = oks_matrix(a, b, areas_b=[5000.0], scores_a=sa, scores_b=sb, score_threshold=0.5)[0, 0]
    assert full < 1.0 and masked == pytest.approx(1.0)
    b_nan = b.copy()
    b_nan[0, :8] = np.nan  # NaN keypoints are invisible too
    assert oks_matrix(a, b_nan, areas_b=[5000.0])[0, 0] == pytest.approx(1.0)
    none_visible = oks_matrix(a, b, areas_b=[5000.0], scores_a=np.zeros((1, K)), score_threshold=0.5)
    assert none_visible[0, 0] == 0.0


def test_area_from_boxes_and_empty_sets():
    a = np.zeros((2, K, 2))
    b = np.ones((3, K, 2))
    boxes = np.array([[0, 0, 10, 20], [5, 5, 5, 9], [0, 0, 100, 100]], float)
    np.testing.assert_allclose(box_areas(boxes), [200, 0, 10000])
    np.testing.assert_allclose(oks_matrix(a, b, boxes_b=boxes), oks_matrix(a, b, areas_b=box_areas(boxes)))
    assert oks_matrix(np.zeros((0, K, 2)), b, boxes_b=boxes).shape == (0, 3)
    assert oks_matrix(a, np.zeros((0, K, 2)), areas_b=np.zeros(0)).shape == (2, 0)
    assert len(COCO_SIGMAS) == 17


def test_bad_inputs_name_the_field():
    a = np.zeros((2, K, 2))
    with pytest.raises(OKSInputError, match="areas_b/boxes_b"):
        oks_matrix(a, a)
    with pytest.raises(OKSInputError, match="keypoints_b"):
        oks_matrix(a, np.zeros((2, 5, 2)), areas_b=[1, 1])
    with pytest.raises(OKSInputError, match="sigmas"):
        oks_matrix(np.zeros((1, 5, 2)), np.zeros((1, 5, 2)), areas_b=[1.0])
    with pytest.raises(OKSInputError, match="scores_a"):
        oks_matrix(a, a, areas_b=[1, 1], scores_a=np.ones((2, 3)))
    with pytest.raises(OKSInputError, match="areas_b"):
        oks_matrix(a, a, areas_b=[1, -1])
    custom = oks_matrix(np.zeros((1, 5, 2)), np.zeros((1, 5, 2)), areas_b=[1.0], sigmas=[0.1] * 5)
    assert custom[0, 0] == 1.0
