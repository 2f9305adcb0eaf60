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

from association.keypoints import COCO17, POSETRACK18
from estimators import registry
from estimators.checkpoints import save_state_dict
from estimators.codecs import encode_gaussian, encode_mspn
from estimators.factory import MissingWeightsError, create_estimator
from estimators.geometry import (
    PIXEL_STD,
    box_to_center_scale,
    box_to_center_scale_mspn,
    get_affine_transforms,
    transform_points,
)
from estimators.registry import get_spec
from estimators.spec import HRNET, MSPN, ModelSpec
from estimators.topdown import (
    InferenceError,
    Poses,
    TopDownEstimator,
    crops_to_heatmaps,
    estimate,
    estimate_batch,
    flip_permutation,
)

INP = (64, 96)  # (w, h) small crops keep the doubles fast; aspect 2:3
P = COCO17.flip_pairs  # the doubles below output COCO-17 keypoints


@pytest.fixture(autouse=True)
def _one_thread():
    # Two shared cores: intra-op threads fighting other processes make small forwards many times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class MirrorNet(nn.Module):
    def __init__(self, family: str, num_keypoints: int = 17, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.rand(num_keypoints, 3, 5, 5, generator=g)
        perm = flip_permutation(num_keypoints, P if num_keypoints == 17 else ())
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
    p = estimate(net, img, np.zeros((0, 4)), np.zeros(0), input_size=INP, flip_pairs=P)
    assert len(p) == 0 and p.keypoints.shape == (0, 17, 2) and p.pose_scores.shape == (0,)
    boxes = [np.zeros((0, 4)), np.array([[60.0, 40, 140, 160], [50, 50, 150, 200]]), np.zeros((0, 4))]
    out = estimate_batch(net, [img, img, img], boxes, [np.zeros(0), np.array([0.9, 0.5]), np.zeros(0)],
                         input_size=INP, flip_pairs=P)
    assert [len(p) for p in out] == [0, 2, 0]
    assert out[1].keypoints.shape == (2, 17, 2) and out[1].keypoint_scores.shape == (2, 17)


def test_bad_inputs_raise_clear_value_errors():
    net = MirrorNet("mspn").eval()
    img = blob_image(100, 100)
    box = np.array([[10.0, 10, 50, 80]])
    with pytest.raises(InferenceError, match="uint8"):
        estimate(net, img.astype(np.float32), box, np.ones(1), input_size=INP, flip_pairs=P)
    with pytest.raises(InferenceError, match="box_scores"):
        estimate(net, img, box, np.ones(2), input_size=INP, flip_pairs=P)
    with pytest.raises(InferenceError, match=r"boxes\[0\]"):
        estimate(net, img, np.array([[50.0, 10, 10, 80]]), np.ones(1), input_size=INP, flip_pairs=P)
    with pytest.raises(InferenceError, match="precision"):
        estimate(net, img, box, np.ones(1), input_size=INP, flip_pairs=P, precision="int8")
    with pytest.raises(InferenceError, match="family"):
        estimate(nn.Identity(), img, box, np.ones(1), input_size=INP, flip_pairs=P)
    five = MirrorNet("mspn", num_keypoints=5)
    with pytest.raises(InferenceError, match="flip pair"):  # COCO pairs do not fit a 5-keypoint network
        estimate(five, img, box, np.ones(1), input_size=INP, flip_pairs=P)
    with pytest.raises(InferenceError, match="flip pairs"):  # no default pairs: they come from the layout
        estimate(five, img, box, np.ones(1), input_size=INP)
    with pytest.raises(InferenceError, match=r"boxes\[0\]: .*one side > 0"):
        estimate(net, img, np.array([[10.0, 10, 10, 10]]), np.ones(1), input_size=INP, flip_pairs=P)
    assert issubclass(InferenceError, ValueError)


@pytest.mark.parametrize("family", ["hrnet", "mspn"])
def test_a_zero_width_box_is_cropped_from_its_height_as_released(family):
    """COCO has GT boxes with x2 == x1; released HRNet keeps them (the aspect fix gives the crop its width)."""
    net = MirrorNet(family).eval()
    p = estimate(net, blob_image(100, 100), np.array([[100.0, 40, 100, 160]]), np.ones(1), input_size=INP,
                 flip_pairs=P)
    assert p.keypoints.shape == (1, 17, 2) and np.isfinite(p.keypoints).all()


# ------------------------------------------------------------------------------------------ batching
@pytest.mark.parametrize("family", ["hrnet", "mspn"])
def test_batching_does_not_change_results(family, coco_image):
    img, boxes = coco_image
    boxes = np.concatenate([boxes, boxes + 7.0, boxes[:, [0, 1, 0, 1]] + [0, 0, 80, 120]])
    scores = np.linspace(0.5, 1.0, len(boxes))
    net = MirrorNet(family).eval()
    one = estimate(net, img, boxes, scores, input_size=INP, flip_pairs=P, max_batch=1)
    many = estimate(net, img, boxes, scores, input_size=INP, flip_pairs=P, max_batch=32)
    np.testing.assert_allclose(one.keypoints, many.keypoints, atol=1e-4)
    np.testing.assert_allclose(one.pose_scores, many.pose_scores, rtol=1e-5)
    split = estimate_batch(net, [img, img[:, ::-1].copy()], [boxes[:2], boxes[2:]], [scores[:2], scores[2:]],
                           input_size=INP, flip_pairs=P, max_batch=3)
    np.testing.assert_allclose(split[0].keypoints, one.keypoints[:2], atol=1e-4)
    alone = estimate(net, img[:, ::-1].copy(), boxes[2:], scores[2:], input_size=INP, flip_pairs=P)
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
    flipped = crops_to_heatmaps(net, crops, flip_test=True, flip_pairs=P)
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
    np.testing.assert_allclose(crops_to_heatmaps(net, crops, flip_test=True, flip_pairs=P), 0.5 * (f + shifted),
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
    p = estimate(net, img, box, np.ones(1), input_size=INP, flip_pairs=P)
    pm = estimate(net, img[:, ::-1].copy(), mbox, np.ones(1), input_size=INP, flip_pairs=P)
    perm = flip_permutation(17, P)
    expected = p.keypoints[:, perm].copy()
    expected[..., 0] = axis - expected[..., 0]
    np.testing.assert_allclose(pm.keypoints, expected, atol=1e-3 * max(k, 1))
    if family == "mspn":
        # the released float32 centre/scale put the mirrored crop within ~1e-5 px of the exact mirror, so the
        # bilinear crop values (and the scores read from the heatmaps) agree to ~1e-4, not to float precision
        np.testing.assert_allclose(pm.keypoint_scores, p.keypoint_scores[:, perm], rtol=1e-3)
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
    np.testing.assert_allclose(p.keypoint_scores[0], 1.0, rtol=1e-5)  # calibrated: a perfect peak scores 1
    assert p.pose_scores[0] == pytest.approx(0.8 * 1.5)  # released pose score, from the raw value/255 + 0.5


def test_back_projection_is_the_released_arithmetic(coco_image):
    """estimate() on fixed heatmaps with peaks everywhere, borders included (real COCO boxes, 256x192 input):
    MSPN/RSN keypoints are ``decode_mspn`` (the released decoder, see test_codecs) mapped back exactly as the
    released ``get_results``: ``x / 192 * S + c - S * 0.5`` with ``S = float32(200 * scale)``; HRNet keypoints are
    the released ``transform_preds``: the inverse affine at heatmap size applied point by point (``np.dot``)."""
    from estimators.codecs import decode_hrnet, decode_mspn

    img, boxes = coco_image
    boxes = np.concatenate([boxes.astype(np.float64), [[20.3, 11.7, 95.2, 230.9], [400.5, 80.25, 633.0, 420.0]]])
    size, hm_size = (192, 256), (48, 64)
    rng = np.random.default_rng(5)
    pts = np.concatenate([rng.uniform(0, 1, (9, 2)) * [191.9, 255.9], [[0, 0], [191, 255], [1, 130], [190, 3],
                                                                        [96, 0], [0, 255], [5, 250], [187, 7]]])
    hm, _ = encode_mspn(pts, np.ones(17), hm_size, size, 5)
    hm[3] = -np.abs(hm[3]) - 1.0  # an all-negative map
    p = estimate(FixedHeatmaps("mspn", hm), img, boxes, np.ones(len(boxes)), input_size=size, flip_test=False)
    c, s = box_to_center_scale_mspn(boxes, size[0] / size[1])
    kps, _ = decode_mspn(np.broadcast_to(hm, (len(boxes), *hm.shape)))
    big = s * np.float32(200)
    expect = np.empty_like(kps)
    for i in range(len(boxes)):  # released: kps[:, 0] / INPUT_SHAPE[1] * scales[i][0] + centers[i][0] - ...
        expect[i, :, 0] = kps[i, :, 0] / size[0] * big[i][0] + c[i][0] - big[i][0] * 0.5
        expect[i, :, 1] = kps[i, :, 1] / size[1] * big[i][1] + c[i][1] - big[i][1] * 0.5
    np.testing.assert_array_equal(p.keypoints, expect.astype(np.float32))
    assert p.keypoints[0, 3].tolist() == expect[0, 3].astype(np.float32).tolist()  # cell (0, 0) as released

    hm, _ = encode_gaussian(pts, np.ones(17), hm_size, size)
    hm[3] = -hm[3]
    p = estimate(FixedHeatmaps("hrnet", hm), img, boxes, np.ones(len(boxes)), input_size=size, flip_test=False)
    c, s = box_to_center_scale(boxes, size[0] / size[1])
    coords, _ = decode_hrnet(np.broadcast_to(hm, (len(boxes), *hm.shape)))
    expect = np.zeros((len(boxes), 17, 2))
    for i in range(len(boxes)):
        trans = get_affine_transforms(c[i:i + 1], s[i:i + 1], 0.0, hm_size, inv=True)[0]
        for j in range(17):
            expect[i, j] = np.dot(trans, np.array([coords[i, j, 0], coords[i, j, 1], 1.0]).T)[:2]
    np.testing.assert_allclose(p.keypoints, expect.astype(np.float32), rtol=1e-6, atol=0)


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
    np.testing.assert_allclose(p.keypoint_scores[0], peaks, rtol=1e-5, atol=1e-6)  # same unit as HRNet's
    assert p.pose_scores[0] == pytest.approx(0.5 * np.mean(peaks + 0.5), rel=1e-5)


def test_keypoint_scores_share_one_unit_across_families():
    """A flat (zero) heatmap scores 0 for every family: MSPN/RSN's released value/255 + 0.5 is calibrated back
    (tracking thresholds are absolute); the pose score keeps the released rule (box score x 0.5 for MSPN)."""
    img = np.zeros((100, 100, 3), np.uint8)
    box = np.array([[10.0, 10, 60, 90]])
    flat = np.zeros((17, 24, 16), np.float32)
    for family in ("hrnet", "mspn"):
        p = estimate(FixedHeatmaps(family, flat), img, box, np.array([0.6]), input_size=INP, flip_pairs=P)
        np.testing.assert_allclose(p.keypoint_scores, 0.0, atol=1e-6)
    assert p.pose_scores[0] == pytest.approx(0.6 * 0.5)
    assert MSPN.calibrate(np.array([[1.5, 0.5]])).tolist() == [[1.0, 0.0]]
    raw = np.array([[0.25, 0.9]], np.float32)
    assert HRNET.calibrate(raw) is raw or np.array_equal(HRNET.calibrate(raw), raw)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precisions_run_and_stay_close(precision):
    img = blob_image(150, 120)
    box = np.array([[100.0, 60, 200, 200]])
    net = MirrorNet("mspn").eval()
    ref = estimate(net, img, box, np.ones(1), input_size=INP, flip_pairs=P)
    half = estimate(net, img, box, np.ones(1), input_size=INP, flip_pairs=P, precision=precision)
    k = box_to_center_scale_mspn(box, INP[0] / INP[1])[1][0, 0] * PIXEL_STD / INP[0]
    assert np.abs(half.keypoints - ref.keypoints).max() <= 4 * k + 1e-3  # within one heatmap cell


# ------------------------------------------------------------------------------------------ real builders
def _small_hrnet(num_keypoints: int = 17):
    from estimators.hrnet import HRNet

    return HRNet(num_keypoints, width=8, num_modules=(1, 1, 1), num_blocks=1, layer1_blocks=1)


def _small_mspn(num_keypoints: int = 17):
    from estimators.mspn import MSPN

    return MSPN(num_keypoints, num_stages=1, num_blocks=(1, 1, 1, 1), block="basic", unit_channels=32)


@pytest.mark.parametrize("name", ["small_hrnet", "small_mspn", "rsn_18"])
def test_real_networks_through_the_factory_with_small_crops(name, coco_image, tmp_path, monkeypatch):
    """The real architectures (narrow HRNet and MSPN; rsn_18, the smallest registered network) through
    save -> create_estimator (format guessed: "native") -> batched estimation."""
    if name != "rsn_18":  # the same classes as the registered models, at a size that keeps the test cheap
        family, builder = (HRNET, _small_hrnet) if name == "small_hrnet" else (MSPN, _small_mspn)
        registry.get_spec("rsn_18")
        monkeypatch.setitem(registry._SPECS, name, ModelSpec(name, builder, family, input_size=(32, 64)))
    img, boxes = coco_image
    torch.manual_seed(0)
    model = get_spec(name).builder()
    for p in model.parameters():  # give the random network a non-degenerate output
        if p.dim() > 1:
            nn.init.normal_(p, std=0.05)
    path = save_state_dict(model, tmp_path / f"{name}.pth")
    # flip test on, all crops of both images in one forward
    est = create_estimator(name, checkpoint=str(path), input_size=(32, 64), max_batch=4)
    path.unlink()
    assert isinstance(est, TopDownEstimator) and est.num_keypoints == 17 and est.name == name
    assert est.family.name == model.family and est.layout is COCO17 and est.spec is get_spec(name)
    both = est.estimate_batch([img, img], [boxes, np.zeros((0, 4))], [np.array([0.9]), np.zeros(0)])
    assert [len(b) for b in both] == [1, 0]
    assert both[0].keypoints.shape == (1, 17, 2) and np.isfinite(both[0].keypoints).all()
    assert both[0].roi_points is None
    loaded = est.model.state_dict()  # the checkpoint round-trips exactly
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_optimized_forward_matches_eager_heatmaps(coco_image):
    from estimators.geometry import crop_batch

    img, boxes = coco_image
    model = _small_hrnet()  # a narrow real HRNet
    for p in model.parameters():
        if p.dim() > 1:
            nn.init.normal_(p, std=0.05)
    est = TopDownEstimator(model, get_spec("hrnet_w32"), input_size=(32, 64))
    c, s = box_to_center_scale(boxes, 0.5)
    crops = crop_batch(img, get_affine_transforms(c, s, 0.0, (32, 64)), (32, 64))
    eager = crops_to_heatmaps(est._runner, crops, family=HRNET, flip_test=False)
    est.optimize()
    fast = crops_to_heatmaps(est._runner, crops, family=HRNET, flip_test=False)
    np.testing.assert_allclose(fast, eager, rtol=1e-3, atol=1e-4 * np.abs(eager).max())


def test_create_estimator_defaults_and_blazepose_delegation(tmp_path):
    for name in ("hrnet_w32", "mspn_1stg", "rsn_18"):
        assert get_spec(name).input_size == (192, 256) and get_spec(name).layout is COCO17
    with pytest.raises(ValueError, match="unknown estimator"):
        create_estimator("no_such_model")
    missing = tmp_path / "nope.tflite"
    with pytest.raises(FileNotFoundError, match="nope.tflite"):  # reached estimators.blazepose
        create_estimator("blazepose", checkpoint=str(missing))


class _Recorder:
    """A registered builder that records its calls (returns a FixedHeatmaps network)."""

    def __init__(self, family: str, heatmaps: np.ndarray):
        self.calls: list[dict] = []
        self.family, self.heatmaps = family, heatmaps

    def __call__(self, **kw):
        self.calls.append(kw)
        k = kw.get("num_keypoints", self.heatmaps.shape[0])
        return FixedHeatmaps(self.family, self.heatmaps[:k])


def _register_tiny(monkeypatch, name: str, builder: _Recorder) -> ModelSpec:
    spec = ModelSpec(name, builder, HRNET if builder.family == "hrnet" else MSPN, layout=COCO17, input_size=INP)
    registry.get_spec("hrnet_w32")  # load the real models first, then add the test one (removed afterwards)
    monkeypatch.setitem(registry._SPECS, name, spec)
    return spec


def test_a_model_without_weights_needs_a_checkpoint_before_anything_is_built(monkeypatch, tmp_path):
    builder = _Recorder("hrnet", np.zeros((17, 24, 16), np.float32))
    _register_tiny(monkeypatch, "tiny_td", builder)
    with pytest.raises(MissingWeightsError, match="--checkpoint") as err:
        create_estimator("tiny_td")
    assert "tiny_td" in str(err.value) and "random_weights" in str(err.value)
    assert builder.calls == []  # refused before the network was built
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        create_estimator("tiny_td", checkpoint=tmp_path / "absent.pth")
    assert builder.calls == []  # a missing file is reported before the build too
    est = create_estimator("tiny_td", random_weights=True, optimize=False)
    assert isinstance(est, TopDownEstimator) and len(builder.calls) == 1
    with pytest.raises(MissingWeightsError, match="--checkpoint"):
        create_estimator("rsn_18")


def test_posetrack18_checkpoint_flips_with_its_own_pairs(monkeypatch, tmp_path):
    """A checkpoint declaring the PoseTrack-18 layout (MMPose 1.x dataset_meta, or ours) makes the estimator
    flip with PoseTrack-18 pairs: head_bottom (slot 1) and head_top (slot 2) are not swapped.

    The double outputs a peak in channel 1 and nothing in channel 2 whatever the input; the flip test averages
    each channel with the mirrored output of its flip partner, so channel 2 only gets signal if slots 1 and 2
    are (wrongly) swapped."""
    hm = np.zeros((17, 24, 16), np.float32)
    hm[1, 10, 5] = 1.0
    builder = _Recorder("hrnet", hm)
    _register_tiny(monkeypatch, "tiny_pt", builder)
    img = np.zeros((120, 100, 3), np.uint8)
    box, score = np.array([[10.0, 10, 70, 100]]), np.array([1.0])
    scores = {}
    for layout in (None, POSETRACK18):
        path = save_state_dict(builder(), tmp_path / f"{layout.name if layout else 'plain'}.pth", layout=layout)
        est = create_estimator("tiny_pt", checkpoint=path, optimize=False)
        assert est.layout is (layout or COCO17)
        perm = flip_permutation(17, est.layout.flip_pairs)
        scores[est.layout.name] = est.estimate(img, box, score).keypoint_scores[0]
        path.unlink()
    assert perm[1] == 1 and perm[2] == 2 and perm[3] == 4  # the layout used: head slots alone, ears swapped
    assert scores["posetrack18"][2] == 0.0 and scores["posetrack18"][1] == pytest.approx(0.5)
    assert scores["coco17"][2] == pytest.approx(0.5)  # COCO pairs would move the head_bottom peak into head_top


def test_mmpose1x_posetrack18_dataset_meta_gives_the_layout(monkeypatch, tmp_path):
    from estimators.checkpoints import load_weights

    net = FixedHeatmaps("hrnet", np.zeros((17, 24, 16), np.float32))
    names = dict(enumerate(POSETRACK18.names))
    meta = {"dataset_name": "posetrack18", "num_keypoints": 17, "keypoint_id2name": names,
            "flip_indices": list(POSETRACK18.flip_permutation()), "sigmas": np.array(POSETRACK18.sigmas)}
    path = tmp_path / "pt18.pth"
    torch.save({"meta": {"dataset_meta": meta}, "state_dict": {"hm": torch.zeros(17, 24, 16)}}, path)
    fmt, layout = load_weights(net, path, "native")
    assert fmt == "native" and layout is POSETRACK18
    fmt, layout = load_weights(net, save_state_dict(net, tmp_path / "plain.pth"))
    assert fmt == "native" and layout is None


# ------------------------------------------------------------------------------------------ package structure
def test_import_estimators_is_cheap_and_registration_flows_one_way():
    """``import estimators`` (and its registry, specs, precisions) loads no torch; no module of the package
    imports, even lazily, one that imports it back (architectures -> registry, never the reverse)."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, estimators, estimators.registry, estimators.spec, estimators.precision; "
            "print(sorted(m for m in ('torch', 'estimators.hrnet') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"

    pkg = Path(__file__).resolve().parents[2] / "estimators"
    graph: dict[str, set[str]] = {}
    for path in pkg.rglob("*.py"):
        mod = ".".join(path.relative_to(pkg.parent).with_suffix("").parts).removesuffix(".__init__")
        deps = graph.setdefault(mod, set())
        base = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = base.split(".")
                    root = ".".join(parts[: len(parts) - node.level + 1])
                    target = f"{root}.{node.module}" if node.module else root
                    names = [f"{target}.{a.name}" for a in node.names] + [target]
                else:
                    names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            deps.update(n for n in names if n.startswith("estimators") and n != mod)
    # a module's own parent packages are imported with it anyway: not an edge
    graph = {m: {d for d in deps if d in graph and not m.startswith(d + ".")} for m, deps in graph.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            m = todo.pop()
            if m == goal:
                return True
            if m not in seen:
                seen.add(m)
                todo.extend(graph.get(m, ()))
        return False

    cycles = sorted(f"{m} <-> {d}" for m, deps in graph.items() for d in deps if reaches(d, m))
    assert cycles == []
    assert not any(d.endswith(("hrnet", "mspn", "rsn", "blazepose")) for d in graph["estimators.registry"])
