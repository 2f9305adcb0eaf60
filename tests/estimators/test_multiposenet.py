"""MultiPoseNet: network shapes, exact PRN size, backbone loading, and keypoint-to-box assignment (PRN
geometry, Max and UCR baselines) on synthetic heatmaps of two people."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from estimators.multiposenet import (
    PRN_SIZE,
    MultiPoseNetEstimator,
    MultiPoseNetWeightsError,
    PoseResidualNetwork,
    build_multiposenet_r50,
    build_multiposenet_r101,
    create_multiposenet_estimator,
    find_peaks,
    ucr_prior,
)
from estimators.spec import InferenceError

STRIDE = 4
# a standing person in box-normalised coordinates (x, y in [0, 1]) for the 17 COCO joints
TEMPLATE = np.array([
    [.50, .08], [.54, .06], [.46, .06], [.58, .08], [.42, .08], [.66, .22], [.34, .22], [.74, .38], [.26, .38],
    [.78, .52], [.22, .52], [.60, .55], [.40, .55], [.62, .75], [.38, .75], [.62, .94], [.38, .94]])


def _person(box: np.ndarray) -> np.ndarray:
    """(17, 2) joint positions at heatmap cell centres (continuous px 4u + 2) inside ``box``."""
    x1, y1, x2, y2 = box
    pts = TEMPLATE * [x2 - x1, y2 - y1] + [x1, y1]
    return np.floor(pts / STRIDE) * STRIDE + STRIDE / 2


def _heatmaps(people: list[np.ndarray], hw: tuple[int, int], amps: list[float]) -> torch.Tensor:
    """(17, h, w) heatmaps, a Gaussian (std 1 cell, peak ``amp``) at each joint of each person."""
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    hm = np.zeros((17, h, w), np.float32)
    for pts, amp in zip(people, amps):
        for k, (x, y) in enumerate(pts):
            u, v = (x - 2) / STRIDE, (y - 2) / STRIDE
            hm[k] = np.maximum(hm[k], amp * np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / 2))
    return torch.from_numpy(hm)


@pytest.fixture(scope="module")
def zero_residual_prn():
    """A real PRN whose learnt residual is zeroed: its output is the softmax of its input (geometry tests)."""
    prn = PoseResidualNetwork()
    with torch.no_grad():
        prn.dens2.weight.zero_()
        prn.dens2.bias.zero_()
    return prn


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_multiposenet_r50().eval()


def test_prn_parameter_count_matches_the_authors():
    with torch.device("meta"):
        prn = PoseResidualNetwork()
    assert sum(p.numel() for p in prn.parameters()) == 70_224_352


def test_prn_outputs_a_distribution_per_keypoint_channel():
    torch.manual_seed(0)
    prn = PoseResidualNetwork(hidden=8).eval()  # the same residual MLP, narrow
    y = prn(torch.rand(3, 17, *PRN_SIZE))
    assert y.shape == (3, 17, *PRN_SIZE)
    torch.testing.assert_close(y.sum(dim=(2, 3)), torch.ones(3, 17))
    with pytest.raises(InferenceError, match="PRN input"):
        prn(torch.rand(1, 17, 36, 56))


def test_network_output_shapes_at_480_on_meta_device():
    with torch.device("meta"):
        model = build_multiposenet_r101()
    out = model(torch.zeros(2, 3, 480, 480, device="meta"))
    assert out["heatmaps"].shape == (2, 18, 120, 120)
    assert [tuple(t.shape) for t in out["intermediate"]] == [(2, 18, s, s) for s in (120, 60, 30, 15)]
    a = 9 * (60 ** 2 + 30 ** 2 + 15 ** 2 + 8 ** 2 + 4 ** 2)  # P3-P7, 9 anchors per location
    assert out["cls_logits"].shape == (2, a, 1) and out["bbox_regression"].shape == (2, a, 4)
    assert [tuple(t.shape) for t in out["anchors"]] == [(a, 4), (a, 4)]


def test_network_runs_on_a_small_input(net):
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 96))
    assert out["heatmaps"].shape == (1, 18, 16, 24) and torch.isfinite(out["heatmaps"]).all()
    assert out["cls_logits"].shape[1] == out["anchors"][0].shape[0] == out["bbox_regression"].shape[1]


def test_backbone_loads_the_torchvision_imagenet_layout_strictly():
    with torch.device("meta"):  # keys and shapes only: a strict load checks both without allocating
        sd = torchvision.models.resnet50(weights=None).state_dict()  # torchvision's ImageNet layout, with fc
        model = build_multiposenet_r50()
    model.load_backbone(sd)
    wrong = dict(sd, **{"layer1.0.conv1.weight": torch.empty(64, 64, 3, 3, device="meta")})
    with pytest.raises(RuntimeError, match="layer1.0.conv1.weight"):
        model.load_backbone(wrong)
    with pytest.raises(RuntimeError, match="running_mean"):
        model.load_backbone({k: v for k, v in sd.items() if k != "layer1.0.bn1.running_mean"})
    with pytest.raises(KeyError, match="fc.weight"):
        model.load_backbone({k: v for k, v in sd.items() if not k.startswith("fc")})


def test_find_peaks_is_max_pool_nms_above_threshold():
    hm = torch.zeros(1, 8, 8)
    hm[0, 2, 2], hm[0, 2, 3], hm[0, 6, 6], hm[0, 0, 7] = 0.9, 0.5, 0.4, 0.05
    assert torch.nonzero(find_peaks(hm, 0.1)).tolist() == [[0, 2, 2], [0, 6, 6]]


BOXES = np.array([[20, 16, 100, 176], [180, 40, 260, 200]], np.float32)  # two separated people, 320x240 frame


def _two_people():
    people = [_person(b) for b in BOXES]
    return people, _heatmaps(people, (60, 80), [1.0, 0.8])


def _check(poses, people, tol):
    assert poses.keypoints.shape == (2, 17, 2)
    for n, pts in enumerate(people):
        err = np.abs(poses.keypoints[n] - (pts - 0.5)).max()  # output: integer pixel centres
        assert err <= tol, (n, err)


def test_prn_crop_argmax_geometry_with_zero_residual_prn(net, zero_residual_prn):
    """Only the crop / resize / argmax / back-projection geometry (the PRN's learnt residual is zeroed)."""
    prn = zero_residual_prn
    people, hm = _two_people()
    est = MultiPoseNetEstimator(net, prn, assign="prn")
    poses = est.assign_keypoints(hm, BOXES, np.array([0.9, 0.7], np.float32))
    _check(poses, people, tol=3.0)  # half a crop cell (80/36, 160/56 px) + half a heatmap cell
    assert np.allclose(poses.keypoint_scores[0], 1.0, atol=0.05) and np.allclose(poses.keypoint_scores[1], 0.8,
                                                                                   atol=0.05)
    np.testing.assert_allclose(poses.pose_scores, [0.9 * poses.keypoint_scores[0].mean(),
                                                   0.7 * poses.keypoint_scores[1].mean()], rtol=1e-5)
    # input scale: the same heatmaps read as a 2x downscaled frame give 2x the coordinates
    poses2 = est.assign_keypoints(hm, BOXES * 2, np.array([0.9, 0.7], np.float32), scale=0.5)
    np.testing.assert_allclose(poses2.keypoints + 0.5, (poses.keypoints + 0.5) * 2, atol=1e-3)


def test_max_baseline_on_two_separated_people_and_its_overlap_failure(net):
    people, hm = _two_people()
    est = MultiPoseNetEstimator(net, assign="max")
    _check(est.assign_keypoints(hm, BOXES, np.ones(2, np.float32)), people, tol=3.0)
    # a box over person 0 that also covers person 1's head: Max takes the stronger nose peak, whoever owns it
    hm_strong_other = _heatmaps(people, (60, 80), [0.6, 1.0])
    wide = np.array([[20, 16, 240, 176]], np.float32)
    p = est.assign_keypoints(hm_strong_other, wide, np.ones(1, np.float32))
    np.testing.assert_allclose(p.keypoints[0, 0], people[1][0] - 0.5, atol=3.0)


def test_ucr_baseline_uses_a_prior_learned_from_ground_truth(net):
    people, hm = _two_people()
    rng = np.random.default_rng(0)
    boxes = rng.uniform(50, 150, (200, 1)) * np.array([[0, 0, 1, 2]]) + rng.uniform(0, 100, (200, 1))
    kps = np.stack([_person(b) for b in boxes]) + rng.normal(0, 2, (200, 17, 2))
    prior = ucr_prior(kps, np.ones((200, 17), bool), boxes)
    assert prior.shape == (17, *PRN_SIZE)
    # the prior of the nose peaks near the template's nose cell
    i, j = np.unravel_index(prior[0].argmax(), PRN_SIZE)
    assert abs((j + 0.5) / PRN_SIZE[1] - TEMPLATE[0, 0]) < 0.08 and abs((i + 0.5) / PRN_SIZE[0] - TEMPLATE[0, 1]) < 0.08
    est = MultiPoseNetEstimator(net, assign="ucr", prior=prior)
    _check(est.assign_keypoints(hm, BOXES, np.ones(2, np.float32)), people, tol=3.0)
    # UCR is X * P: a prior that rules out the true nose cells moves the nose elsewhere
    blocked = prior.copy()
    blocked[0] = 1.0
    blocked[0, :, 14:22] = 0.0
    moved = MultiPoseNetEstimator(net, assign="ucr", prior=blocked).assign_keypoints(hm, BOXES, np.ones(2, np.float32))
    assert (np.abs(moved.keypoints[:, 0] - np.stack([p[0] for p in people]) + 0.5).max(axis=1) > 5).all()
    with pytest.raises(InferenceError, match="prior"):
        MultiPoseNetEstimator(net, assign="ucr")


def test_estimator_end_to_end_with_random_weights(net, zero_residual_prn):
    est = MultiPoseNetEstimator(net, zero_residual_prn, input_size=(64, 64), detection_threshold=0.0,
                                max_detections=5)
    assert est.spec.name == "multiposenet_r50" and est.spec.kind == "multiposenet" and est.num_keypoints == 17
    image = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    boxes, scores, poses = est.predict(image)
    assert boxes.shape == (len(scores), 4) and 0 < len(scores) <= 5
    assert (boxes[:, 2] <= 120).all() and (boxes[:, 3] <= 90).all()
    assert poses.keypoints.shape == (len(scores), 17, 2) and np.isfinite(poses.keypoints).all()
    given = np.array([[10, 10, 60, 80], [50, 5, 110, 85]], np.float32)
    out = est.estimate_batch([image], [given], [np.array([0.9, 0.5], np.float32)])
    kp = out[0].keypoints
    assert kp.shape == (2, 17, 2)
    assert (kp[..., 0] >= given[:, None, 0] - 0.5).all() and (kp[..., 0] <= given[:, None, 2]).all()
    assert len(est.estimate(image, np.zeros((0, 4)), np.zeros(0))) == 0
    with pytest.raises(InferenceError, match="assign"):
        MultiPoseNetEstimator(net, zero_residual_prn, assign="greedy")


def test_builder_refuses_without_checkpoint():
    with pytest.raises(MultiPoseNetWeightsError, match="--checkpoint"):
        create_multiposenet_estimator(None)


@pytest.mark.slow  # writes ~450 MB (network + PRN) to tmp, deleted when the test ends
def test_native_checkpoint_loads_strictly(tmp_path, net, zero_residual_prn):
    bad = tmp_path / "bad.pt"
    torch.save({"network": {"conv1.weight": torch.zeros(1)}}, bad)  # no 'prn' entry: refused before any load
    with pytest.raises(MultiPoseNetWeightsError, match=r"bad\.pt.*'prn'"):
        create_multiposenet_estimator(bad)
    good = tmp_path / "mpn.pt"
    torch.save({"network": net.state_dict(), "prn": zero_residual_prn.state_dict()}, good)
    est = create_multiposenet_estimator(good, assign="max")
    assert torch.equal(est.network.keypoint_subnet.predict.weight, net.keypoint_subnet.predict.weight)
    assert torch.equal(est.prn.dens2.weight, zero_residual_prn.dens2.weight)


def test_registered_and_refused_without_a_checkpoint_through_the_factory():
    from association.keypoints import COCO17
    from estimators.factory import MissingWeightsError, create_estimator
    from estimators.registry import get_spec, list_models

    assert {"multiposenet_r50", "multiposenet_r101"} <= set(list_models("multiposenet"))
    assert get_spec("multiposenet_r50").layout is COCO17
    with pytest.raises(MissingWeightsError, match="--checkpoint"):
        create_estimator("multiposenet_r50")
    est = create_estimator("multiposenet_r50", random_weights=True, assign="max")
    assert est.spec.name == "multiposenet_r50" and est.num_keypoints == 17
