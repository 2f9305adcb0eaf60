"""Top-down inference: batching, per-family conventions, flip test, mirror equivariance, real builders.

Collaborator doubles used here are real (small) networks satisfying the estimator contract:
- ``MirrorNet``: conv5x5 + 4x4 average pooling whose left/right channels have horizontally mirrored kernels
  (self-paired channels symmetric ones), so ``f(flip x) = swap_pairs(flip f(x))`` holds exactly.
- ``FixedHeatmaps``: returns given heatmaps whatever the input (pins down coordinate frames and scores).
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from estimators.codecs import encode_gaussian, encode_mspn
from estimators.geometry import (
    PIXEL_STD,
    box_to_center_scale,
    box_to_center_scale_mspn,
    get_affine_transforms,
    transform_points,
)
from estimators.inference import (
    COCO_FLIP_PAIRS,
    InferenceError,
    Poses,
    TopDownEstimator,
    create_estimator,
    crops_to_heatmaps,
    default_input_size,
    estimate,
    estimate_batch,
    flip_permutation,
)

INP = (64, 96)  # (w, h) small crops keep the doubles fast; aspect 2:3


class MirrorNet(nn.Module):
    def __init__(self, family: str, num_keypoints: int = 17, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.rand(num_keypoints, 3, 5, 5, generator=g)
        perm = flip_permutation(num_keypoints)
        for a in range(num_keypoints):
            b = int(perm[a])
            if b == a:
                w[a] = 0.5 * (w[a] + w[a].flip(-1))
            elif a < b:
                w[b] = w[a].flip(-1)
        self.weight = nn.Parameter(w / w.sum(dim=(1, 2, 3), keepdim=True))
        self.family, self.arch, self.num_keypoints = family, "mirror", num_keypoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x + 2.2, self.weight, padding=2)  # + 2.2: black input ~ 0 after normalisation
        return F.avg_pool2d(y, 4) ** 3  # cubed: a peaked, positive response around bright blobs


class FixedHeatmaps(nn.Module):
    def __init__(self, family: str, heatmaps: np.ndarray):
        super().__init__()
        self.register_buffer("hm", torch.from_numpy(heatmaps.astype(np.float32)))
        self.family, self.arch, self.num_keypoints = family, "fixed", heatmaps.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hm[None].expand(x.shape[0], -1, -1, -1).clone()


def blob_image(x: float, y: float, h: int = 240, w: int = 320) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    cv2.circle(img, (int(round(x)), int(round(y))), 6, (255, 255, 255), -1)
    img = cv2.GaussianBlur(img, (0, 0), 4).astype(np.float64)
    return (img * 255 / img.max()).astype(np.uint8)


@pytest.fixture(scope="module")
def coco_image(testdata):
    d = json.loads((testdata / "coco" / "test_coco.json").read_text())
    img = cv2.imread(str(testdata / "coco" / "000000000785.jpg"))
    boxes = [a["bbox"] for a in d["annotations"] if a["image_id"] == 785]
    xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes], np.float32)
    return img, xyxy


# ------------------------------------------------------------------------------------------ records & input
def test_poses_record_validates_shapes():
    p = Poses(np.zeros((2, 17, 2)), np.zeros((2, 17)), np.zeros(2))
    assert len(p) == 2 and p.keypoints.dtype == np.float32
    with pytest.raises(InferenceError, match="keypoint_scores"):
        Poses(np.zeros((2, 17, 2)), np.zeros((2, 16)), np.zeros(2))
    assert Poses.empty(17).keypoints.shape == (0, 17, 2)


def test_empty_boxes_give_empty_poses_and_mixed_batches_keep_alignment():
    net = MirrorNet("hrnet").eval()
    img = blob_image(100, 100)
    p = estimate(net, img, np.zeros((0, 4)), np.zeros(0), input_size=INP)
    assert len(p) == 0 and p.keypoints.shape == (0, 17, 2) and p.pose_scores.shape == (0,)
    boxes = [np.zeros((0, 4)), np.array([[60.0, 40, 140, 160], [50, 50, 150, 200]]), np.zeros((0, 4))]
    out = estimate_batch(net, [img, img, img], boxes, [np.zeros(0), np.array([0.9, 0.5]), np.zeros(0)],
                         input_size=INP)
    assert [len(p) for p in out] == [0, 2, 0]
    assert out[1].keypoints.shape == (2, 17, 2) and out[1].keypoint_scores.shape == (2, 17)


def test_bad_inputs_raise_clear_value_errors():
    net = MirrorNet("mspn").eval()
    img = blob_image(100, 100)
    box = np.array([[10.0, 10, 50, 80]])
    with pytest.raises(InferenceError, match="uint8"):
        estimate(net, img.astype(np.float32), box, np.ones(1), input_size=INP)
    with pytest.raises(InferenceError, match="box_scores"):
        estimate(net, img, box, np.ones(2), input_size=INP)
    with pytest.raises(InferenceError, match=r"boxes\[0\]"):
        estimate(net, img, np.array([[50.0, 10, 10, 80]]), np.ones(1), input_size=INP)
    with pytest.raises(InferenceError, match="precision"):
        estimate(net, img, box, np.ones(1), precision="int8")
    with pytest.raises(InferenceError, match="family"):
        estimate(nn.Identity(), img, box, np.ones(1))
    with pytest.raises(InferenceError, match="flip pair"):
        estimate(MirrorNet("mspn", num_keypoints=5), img, box, np.ones(1), input_size=INP)
    assert issubclass(InferenceError, ValueError)


# ------------------------------------------------------------------------------------------ batching
@pytest.mark.parametrize("family", ["hrnet", "mspn"])
def test_batching_does_not_change_results(family, coco_image):
    img, boxes = coco_image
    boxes = np.concatenate([boxes, boxes + 7.0, boxes[:, [0, 1, 0, 1]] + [0, 0, 80, 120]])
    scores = np.linspace(0.5, 1.0, len(boxes))
    net = MirrorNet(family).eval()
    one = estimate(net, img, boxes, scores, input_size=INP, max_batch=1)
    many = estimate(net, img, boxes, scores, input_size=INP, max_batch=32)
    np.testing.assert_allclose(one.keypoints, many.keypoints, atol=1e-4)
    np.testing.assert_allclose(one.pose_scores, many.pose_scores, rtol=1e-5)
    split = estimate_batch(net, [img, img[:, ::-1].copy()], [boxes[:2], boxes[2:]], [scores[:2], scores[2:]],
                           input_size=INP, max_batch=3)
    np.testing.assert_allclose(split[0].keypoints, one.keypoints[:2], atol=1e-4)
    alone = estimate(net, img[:, ::-1].copy(), boxes[2:], scores[2:], input_size=INP)
    np.testing.assert_allclose(split[1].keypoints, alone.keypoints, atol=1e-4)


# ------------------------------------------------------------------------------------------ flip test
def test_flip_test_is_a_noop_for_a_mirror_equivariant_net_mspn(coco_image):
    img, boxes = coco_image
    c, s = box_to_center_scale_mspn(np.concatenate([boxes, boxes * 0.8]), INP[0] / INP[1])
    from estimators.geometry import crop_batch

    crops = np.concatenate([crop_batch(img, get_affine_transforms(c[i:i + 1], s[i:i + 1], 0.0, INP), INP)
                            for i in range(len(c))])
    net = MirrorNet("mspn").eval()
    plain = crops_to_heatmaps(net, crops, flip_test=False)
    flipped = crops_to_heatmaps(net, crops, flip_test=True)
    np.testing.assert_allclose(flipped, plain, rtol=1e-4, atol=1e-4 * np.abs(plain).max())
    # negative control: without swapping the left/right channels the average is not the plain output
    no_swap = crops_to_heatmaps(net, crops, flip_test=True, flip_pairs=())
    assert np.abs(no_swap - plain).max() > 1e-2 * np.abs(plain).max()


def test_hrnet_flip_test_averages_with_the_one_pixel_right_shift(coco_image):
    img, boxes = coco_image
    from estimators.geometry import crop_batch

    c, s = box_to_center_scale(boxes, INP[0] / INP[1])
    crops = crop_batch(img, get_affine_transforms(c, s, 0.0, INP), INP)
    net = MirrorNet("hrnet").eval()
    f = crops_to_heatmaps(net, crops, flip_test=False)
    shifted = f.copy()
    shifted[..., 1:] = f[..., :-1]  # column 0 keeps its own value, as released
    np.testing.assert_allclose(crops_to_heatmaps(net, crops, flip_test=True), 0.5 * (f + shifted),
                               rtol=1e-4, atol=1e-4 * np.abs(f).max())


@settings(max_examples=12, deadline=None)
@given(
    family=st.sampled_from(["hrnet", "mspn"]),
    bx=st.floats(90, 230), by=st.floats(70, 170),
    half=st.tuples(st.floats(20, 60), st.floats(25, 70), st.floats(20, 60), st.floats(25, 70)),
)
def test_mirrored_input_gives_mirrored_keypoints(family, bx, by, half):
    """What holds exactly (for a mirror-equivariant network, flip test on): mirroring the image about its
    centre ``x -> W-1-x`` and the box about ``x -> W-1+k-x`` (k = crop pixel size in image px; this makes
    the crop exactly the mirror of the original crop) mirrors every keypoint about that same axis, left and
    right swapped. For HRNet it is the one-pixel shift of the flipped heatmap that makes the decoding
    (heatmap x -> input 4x) equivariant; for MSPN the +2 cell centre does it without a shift. Mirroring the
    box about (W-1)/2 instead moves the crop by one input pixel and the keypoints by up to one heatmap cell.
    """
    img = blob_image(bx, by)
    w = img.shape[1]
    box = np.array([[bx - half[0], by - half[1], bx + half[2], by + half[3]]])
    to_cs = box_to_center_scale if family == "hrnet" else box_to_center_scale_mspn
    k = to_cs(box, INP[0] / INP[1])[1][0, 0] * PIXEL_STD / INP[0]
    axis = w - 1 + k
    mbox = box.copy()
    mbox[:, [0, 2]] = axis - box[:, [2, 0]]
    net = MirrorNet(family).eval()
    p = estimate(net, img, box, np.ones(1), input_size=INP)
    pm = estimate(net, img[:, ::-1].copy(), mbox, np.ones(1), input_size=INP)
    perm = flip_permutation(17)
    expected = p.keypoints[:, perm].copy()
    expected[..., 0] = axis - expected[..., 0]
    np.testing.assert_allclose(pm.keypoints, expected, atol=1e-3 * max(k, 1))
    if family == "mspn":
        np.testing.assert_allclose(pm.keypoint_scores, p.keypoint_scores[:, perm], rtol=1e-4)
    # the blob is found: every joint lands within one heatmap cell of it
    assert np.abs(p.keypoints[0] - [bx, by]).max() < 4 * k + 1.0


# ------------------------------------------------------------------------------------------ frames & scores
@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(8, 51.9), st.floats(8, 83.9)), min_size=17, max_size=17),
       st.floats(-30, 300), st.floats(-30, 200), st.floats(30, 150))
def test_decoded_keypoints_land_where_the_heatmaps_say_in_image_pixels(kps, x0, y0, bw):
    """HRNet family: a target made at input px p decodes to heatmap cell mu = int(p/4 + 0.5) and maps to
    image px inverse_affine(4 * mu). MSPN family: cell centre 4*cell + 2 (+- 1 px quarter step). Keypoints
    stay >= 2 cells from the heatmap border, where the reflect-101 blur would move the MSPN maximum."""
    kp = np.array(kps)
    box = np.array([[x0, y0, x0 + bw, y0 + 1.7 * bw]])
    img = np.zeros((200, 300, 3), np.uint8)
    hw = (INP[0] // 4, INP[1] // 4)
    # HRNet
    hm, _ = encode_gaussian(kp, np.ones(17), hw, INP)
    p = estimate(FixedHeatmaps("hrnet", hm), img, box, np.array([0.8]), input_size=INP, flip_test=False)
    c, s = box_to_center_scale(box, INP[0] / INP[1])
    inv = get_affine_transforms(c, s, 0.0, INP, inv=True)[0]
    mu = np.floor(kp / 4 + 0.5)
    np.testing.assert_allclose(p.keypoints[0], transform_points(mu * 4, inv), atol=1e-3)
    np.testing.assert_allclose(p.keypoint_scores[0], 1.0)
    assert p.pose_scores[0] == pytest.approx(0.8)
    # MSPN
    hm, _ = encode_mspn(kp, np.ones(17), hw, INP, 5)
    p = estimate(FixedHeatmaps("mspn", hm), img, box, np.array([0.8]), input_size=INP, flip_test=False)
    c, s = box_to_center_scale_mspn(box, INP[0] / INP[1])
    inv = get_affine_transforms(c, s, 0.0, INP, inv=True)[0]
    cell_centre = transform_points(np.floor(kp / 4) * 4 + 2, inv)
    px = s[0, 0] * PIXEL_STD / INP[0]
    assert np.abs(p.keypoints[0] - cell_centre).max() <= 1.0 * px + 1e-3
    np.testing.assert_allclose(p.keypoint_scores[0], 1.5, rtol=1e-5)
    assert p.pose_scores[0] == pytest.approx(0.8 * 1.5)


def test_pose_score_rules_per_family():
    peaks = np.array([0.1, 0.15, 0.5, 0.9] + [0.05] * 13)
    hm = np.zeros((17, 24, 16), np.float32)
    hm[:, 10, 8] = peaks
    img = np.zeros((100, 100, 3), np.uint8)
    box = np.array([[10.0, 10, 60, 90]])
    p = estimate(FixedHeatmaps("hrnet", hm), img, box, np.array([0.5]), input_size=INP, flip_test=False)
    assert p.pose_scores[0] == pytest.approx(0.5 * np.mean([0.5, 0.9]), rel=1e-6)  # only joints > 0.2
    low = estimate(FixedHeatmaps("hrnet", hm * 0.1), img, box, np.array([0.5]), input_size=INP, flip_test=False)
    assert low.pose_scores[0] == 0.0  # no joint above 0.2: pose score 0 (released behaviour)
    p = estimate(FixedHeatmaps("mspn", hm * 255), img, box, np.array([0.5]), input_size=INP, flip_test=False)
    np.testing.assert_allclose(p.keypoint_scores[0], peaks + 0.5, rtol=1e-5)
    assert p.pose_scores[0] == pytest.approx(0.5 * np.mean(peaks + 0.5), rel=1e-5)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precisions_run_and_stay_close(precision):
    img = blob_image(150, 120)
    box = np.array([[100.0, 60, 200, 200]])
    net = MirrorNet("mspn").eval()
    ref = estimate(net, img, box, np.ones(1), input_size=INP)
    half = estimate(net, img, box, np.ones(1), input_size=INP, precision=precision)
    k = box_to_center_scale_mspn(box, INP[0] / INP[1])[1][0, 0] * PIXEL_STD / INP[0]
    assert np.abs(half.keypoints - ref.keypoints).max() <= 4 * k + 1e-3  # within one heatmap cell


# ------------------------------------------------------------------------------------------ real builders
@pytest.mark.parametrize("name", [pytest.param("hrnet_w32", marks=pytest.mark.slow),
                                  pytest.param("mspn_1stg", marks=pytest.mark.slow), "rsn_18"])
def test_real_builders_estimate_with_small_crops(name, coco_image, tmp_path):
    from estimators.checkpoints import save_state_dict
    from estimators.registry import build_model

    img, boxes = coco_image
    model = build_model(name)
    for p in model.parameters():  # give the random network a non-degenerate output
        if p.dim() > 1:
            nn.init.normal_(p, std=0.05)
    path = save_state_dict(model, tmp_path / f"{name}.pth")
    # source guessed ("native"); flip test on, all crops of both images in one forward
    est = create_estimator(name, checkpoint=str(path), input_size=(32, 64), max_batch=4)
    assert isinstance(est, TopDownEstimator) and est.num_keypoints == 17 and est.name == name
    assert est.family == model.family
    both = est.estimate_batch([img, img], [boxes, np.zeros((0, 4))], [np.array([0.9]), np.zeros(0)])
    assert [len(b) for b in both] == [1, 0]
    assert both[0].keypoints.shape == (1, 17, 2) and np.isfinite(both[0].keypoints).all()
    loaded = est.model.state_dict()  # the checkpoint round-trips exactly
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_optimized_forward_matches_eager_heatmaps(coco_image):
    from estimators.geometry import crop_batch
    from estimators.hrnet import HRNet

    img, boxes = coco_image
    model = HRNet(width=8, num_modules=(1, 1, 1), num_blocks=1, layer1_blocks=1)  # a narrow real HRNet
    for p in model.parameters():
        if p.dim() > 1:
            nn.init.normal_(p, std=0.05)
    est = TopDownEstimator(model, "hrnet_w32", input_size=(32, 64))
    c, s = box_to_center_scale(boxes, 0.5)
    crops = crop_batch(img, get_affine_transforms(c, s, 0.0, (32, 64)), (32, 64))
    eager = crops_to_heatmaps(est._runner, crops, flip_test=False)
    est.optimize()
    fast = crops_to_heatmaps(est._runner, crops, flip_test=False)
    np.testing.assert_allclose(fast, eager, rtol=1e-3, atol=1e-4 * np.abs(eager).max())


def test_create_estimator_defaults_and_blazepose_delegation(tmp_path):
    assert default_input_size("hrnet_w32") == (192, 256)
    assert default_input_size("hrnet_w48_384x288") == (288, 384)
    assert len(COCO_FLIP_PAIRS) == 8
    with pytest.raises(ValueError, match="unknown estimator"):
        create_estimator("no_such_model")
    missing = tmp_path / "nope.tflite"
    with pytest.raises(FileNotFoundError, match="nope.tflite"):  # reached estimators.blazepose
        create_estimator("blazepose", checkpoint=str(missing))
