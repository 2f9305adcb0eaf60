"""MultiPoseNet (Kocabas, Karagoz, Akbas, "MultiPoseNet: Fast Multi-Person Pose Estimation using Pose Residual
Network", ECCV 2018): the bottom-up multi-task network and the Pose Residual Network (PRN), with batched
inference.

Network (paper sec. 3.1-3.3, Fig. 3):

- backbone: torchvision's ResNet-50/101 (``backbone``, ImageNet layout; :meth:`MultiPoseNet.load_backbone`
  loads a torchvision ImageNet state dict strictly, the classifier ``fc.*`` dropped by name); C2-C5 at strides
  4, 8, 16, 32;
- keypoint subnet: its own FPN (``torchvision.ops.FeaturePyramidNetwork``) on C2-C5 -> K2-K5 (256 ch); per
  level two 3x3 convs + ReLU -> D2-D5 (128 ch), upsampled (bilinear) to stride 4 and concatenated (512 ch);
  a 3x3 smoothing conv (512 -> 256) + ReLU and a 1x1 conv -> 17 keypoint heatmaps + 1 person segmentation at
  stride 4; intermediate supervision: a 1x1 conv on each K level -> 18 maps at that level's stride;
- person detection subnet: RetinaNet for one class ("person") on its own FPN over C3-C5 with P6, P7 from C5
  (RetinaNet's pyramid P3-P7, as keras-retinanet which the authors used), torchvision's ``RetinaNetHead``,
  ``AnchorGenerator`` (sizes 32-512 x 3 octave scales x 3 aspect ratios) and ``BoxCoder`` (weights 1);
  final boxes by NMS at IoU 0.3 (paper sec. 4.1).

PRN (paper sec. 3.4, Table 3's best model "1 layer 1024 N, D+R"; the authors' PyTorch ``PRN`` with
``node_count=1024, coeff=2``): input X = the 17 keypoint peak maps cropped to a person box and resized to
56x36 (h x w), flattened in the authors' channel-last order (h, w, k); ``dens1`` Linear(34272, 1024) + ReLU +
Dropout(0.5), ``dens2`` Linear(1024, 34272), residual add of X, softmax over the 56x36 cells of each keypoint
channel. 70,224,352 parameters.

Parameter counts (random init): multiposenet_r50 network 42,647,751 (incl. ResNet-50 without ``fc``);
multiposenet_r101 61,639,879; PRN 70,224,352.

Specs: :data:`SPECS` (kind "multiposenet", builder :func:`create_multiposenet_estimator`) are registered as
``multiposenet_r50`` / ``multiposenet_r101``; no weights are shipped, so the factory refuses them without a
checkpoint unless ``random_weights``.

Coordinates: boxes are xyxy image pixels with pixel edges (continuous); returned keypoints are image pixels
with integer pixel centres (the top-down estimators' convention), i.e. continuous - 0.5.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import FeaturePyramidNetwork, batched_nms, roi_align
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from association.arrays import check_boxes, check_image
from association.keypoints import COCO17, KeypointLayout

from .registry import register
from .spec import InferenceError, ModelSpec, Poses

NUM_KEYPOINTS = 17  # COCO-17 keypoint channels; channel 17 of the heatmaps is the person segmentation
PRN_SIZE = (56, 36)  # PRN crop (h, w) cells: the authors' coeff=2 -> (2*28, 2*18)
PRN_HIDDEN = 1024
PRN_DROPOUT = 0.5
KEYPOINT_STRIDE = 4
SIZE_DIVISOR = 32  # the network input is zero-padded right/bottom to a multiple of C5's stride
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, [0, 1] pixels (torchvision's ResNet)
IMAGENET_STD = (0.229, 0.224, 0.225)
RETINANET_SIZES = tuple((s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3))) for s in (32, 64, 128, 256, 512))
RETINANET_RATIOS = ((0.5, 1.0, 2.0),) * 5
DETECTION_NMS_IOU = 0.3  # paper sec. 4.1
ASSIGN_MODES = ("prn", "max", "ucr")

VARIANTS: dict[str, dict] = {
    "multiposenet_r50": {"depth": 50},
    "multiposenet_r101": {"depth": 101},
}


# ------------------------------------------------------------------------------------------------ network
def _conv_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class KeypointSubnet(nn.Module):
    """K2-K5 (256 ch each, strides 4-32) -> final maps (B, 18, H/4, W/4) and intermediate maps per K level."""

    def __init__(self, num_outputs: int = NUM_KEYPOINTS + 1, width: int = 256, d_width: int = 128):
        super().__init__()
        self.d_blocks = nn.ModuleList(nn.Sequential(_conv_relu(width, d_width), _conv_relu(d_width, d_width))
                                      for _ in range(4))
        self.intermediate = nn.ModuleList(nn.Conv2d(width, num_outputs, 1) for _ in range(4))
        self.smooth = _conv_relu(4 * d_width, width)
        self.predict = nn.Conv2d(width, num_outputs, 1)

    def forward(self, k_levels: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        size = k_levels[0].shape[-2:]
        d = [blk(k) for blk, k in zip(self.d_blocks, k_levels)]
        d = [d[0]] + [F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in d[1:]]
        final = self.predict(self.smooth(torch.cat(d, dim=1)))
        return final, [head(k) for head, k in zip(self.intermediate, k_levels)]


class MultiPoseNet(nn.Module):
    """Backbone + keypoint subnet + person detection subnet (see the module docstring).

    forward(x (B, 3, H, W) float32 normalised RGB, H and W multiples of 32, detection=True) -> dict:
    ``heatmaps`` (B, 18, H/4, W/4) (17 keypoints, then person segmentation); ``intermediate``: 4 tensors
    (B, 18, H/s, W/s), s = 4, 8, 16, 32; with ``detection``: ``cls_logits`` (B, A, 1) person logits;
    ``bbox_regression`` (B, A, 4) box deltas; ``anchors``: B tensors (A, 4) xyxy input px. ``detection=False``
    skips the person subnet (a third of the MACs at 576x384), for frames where no detection is wanted.
    """

    def __init__(self, depth: int = 50, num_keypoints: int = NUM_KEYPOINTS):
        super().__init__()
        builders = {50: torchvision.models.resnet50, 101: torchvision.models.resnet101}
        if depth not in builders:
            raise ValueError(f"MultiPoseNet depth must be 50 or 101, got {depth}")
        self.num_keypoints = int(num_keypoints)
        self.backbone = builders[depth](weights=None)
        self.backbone.fc = nn.Identity()  # the classifier is not part of the network
        chans = [256, 512, 1024, 2048]
        self.keypoint_fpn = FeaturePyramidNetwork(chans, 256)
        self.keypoint_subnet = KeypointSubnet(self.num_keypoints + 1)
        self.detection_fpn = FeaturePyramidNetwork(chans[1:], 256, extra_blocks=LastLevelP6P7(2048, 256))
        self.anchor_generator = AnchorGenerator(RETINANET_SIZES, RETINANET_RATIOS)
        self.detection_head = RetinaNetHead(256, self.anchor_generator.num_anchors_per_location()[0], 1)
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))

    def load_backbone(self, state_dict: dict) -> None:
        """Load a torchvision ResNet ImageNet state dict strictly (its ``fc.weight``/``fc.bias`` must be present
        and are dropped)."""
        missing = [k for k in ("fc.weight", "fc.bias") if k not in state_dict]
        if missing:
            raise KeyError(f"not a torchvision ImageNet ResNet state dict: missing {missing}")
        self.backbone.load_state_dict({k: v for k, v in state_dict.items() if not k.startswith("fc.")}, strict=True)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """C2-C5 of the backbone."""
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        c2 = b.layer1(x)
        c3 = b.layer2(c2)
        c4 = b.layer3(c3)
        return [c2, c3, c4, b.layer4(c4)]

    def forward(self, x: torch.Tensor, detection: bool = True) -> dict:
        if x.ndim != 4 or x.shape[-1] % SIZE_DIVISOR or x.shape[-2] % SIZE_DIVISOR:
            raise InferenceError(f"MultiPoseNet input must be (B, 3, H, W) with H, W multiples of {SIZE_DIVISOR}, "
                                 f"got {tuple(x.shape)}")
        c = self.features(x)
        k = list(self.keypoint_fpn({str(i): t for i, t in enumerate(c)}).values())
        heatmaps, intermediate = self.keypoint_subnet(k)
        if not detection:
            return {"heatmaps": heatmaps, "intermediate": intermediate}
        p = list(self.detection_fpn({str(i): t for i, t in enumerate(c[1:])}).values())
        head = self.detection_head(p)
        images = ImageList(x, [tuple(x.shape[-2:])] * x.shape[0])
        anchors = self.anchor_generator(images, p)
        return {"heatmaps": heatmaps, "intermediate": intermediate, "cls_logits": head["cls_logits"],
                "bbox_regression": head["bbox_regression"], "anchors": anchors}


class PoseResidualNetwork(nn.Module):
    """The PRN: X (N, 17, 56, 36) keypoint maps of N person crops -> Y (N, 17, 56, 36), each channel a softmax
    distribution over its cells. Flattening follows the authors' channel-last layout (h, w, k) so their
    ``dens1``/``dens2`` weights load as they are."""

    def __init__(self, num_keypoints: int = NUM_KEYPOINTS, size: tuple[int, int] = PRN_SIZE,
                 hidden: int = PRN_HIDDEN, dropout: float = PRN_DROPOUT):
        super().__init__()
        self.num_keypoints = int(num_keypoints)
        self.size = (int(size[0]), int(size[1]))
        n = self.size[0] * self.size[1] * self.num_keypoints
        self.dens1 = nn.Linear(n, hidden)
        self.drop = nn.Dropout(dropout)
        self.dens2 = nn.Linear(hidden, n)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax output (N, 17, 56, 36): dens2(drop(relu(dens1(X)))) + X."""
        n, k, h, w = x.shape
        if (k, h, w) != (self.num_keypoints, *self.size):
            raise InferenceError(f"PRN input must be (N, {self.num_keypoints}, {self.size[0]}, {self.size[1]}), "
                                 f"got {tuple(x.shape)}")
        res = x.permute(0, 2, 3, 1).reshape(n, -1)
        out = self.dens2(self.drop(F.relu(self.dens1(res)))) + res
        return out.view(n, h, w, k).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.logits(x)
        return torch.softmax(y.flatten(2), dim=2).view_as(y)


def build_multiposenet(variant: str = "multiposenet_r50", **kw) -> MultiPoseNet:
    """The network of ``variant`` (a key of :data:`VARIANTS`), random weights."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown MultiPoseNet variant {variant!r}; valid: {', '.join(VARIANTS)}")
    return MultiPoseNet(**{**VARIANTS[variant], **kw})


def build_multiposenet_r50(**kw) -> MultiPoseNet:
    return build_multiposenet("multiposenet_r50", **kw)


def build_multiposenet_r101(**kw) -> MultiPoseNet:
    return build_multiposenet("multiposenet_r101", **kw)


# ------------------------------------------------------------------------------------------------ inference
def find_peaks(heatmaps: torch.Tensor, threshold: float, kernel: int = 3) -> torch.Tensor:
    """Heatmap peaks by max-pool NMS: heatmaps (K, h, w) -> (K, h, w) bool, True at local maxima > threshold."""
    pooled = F.max_pool2d(heatmaps[None], kernel, stride=1, padding=kernel // 2)[0]
    return (heatmaps == pooled) & (heatmaps > threshold)


def peak_maps(heatmaps: torch.Tensor, peaks: torch.Tensor, sigma: float, scored: bool) -> torch.Tensor:
    """Gaussians (std ``sigma`` heatmap cells) at the peaks: (K, h, w) float32, overlaps combined by maximum.
    scored: amplitude = the heatmap value at the peak (for the Max/UCR baselines); else 1 (the PRN's input, as
    its training targets)."""
    k, h, w = heatmaps.shape
    amp = torch.where(peaks, heatmaps if scored else torch.ones_like(heatmaps), torch.zeros_like(heatmaps))
    r = max(1, int(np.ceil(3 * sigma)))
    d = torch.arange(-r, r + 1, dtype=heatmaps.dtype, device=heatmaps.device)
    g = torch.exp(-(d[:, None] ** 2 + d[None] ** 2) / (2 * sigma ** 2))
    # max over the peaks' Gaussians: a max-pool of peak amplitude x kernel, as unfold over the neighbourhood
    cols = F.unfold(amp[:, None], 2 * r + 1, padding=r)  # (K, (2r+1)^2, h*w)
    return (cols * g.flip(0, 1).reshape(1, -1, 1)).amax(dim=1).view(k, h, w)


def crop_maps(maps: torch.Tensor, boxes: torch.Tensor, stride: float, size: tuple[int, int] = PRN_SIZE) -> torch.Tensor:
    """maps (K, h, w) at ``stride`` input px per cell; boxes (N, 4) xyxy input px (continuous) -> (N, K, *size)
    bilinear crops. Crop cell (i, j) samples input position (x1 + (j + .5) bw / w_c, y1 + (i + .5) bh / h_c)."""
    rois = torch.cat([torch.zeros(len(boxes), 1, dtype=maps.dtype, device=maps.device), boxes.to(maps.dtype)], 1)
    return roi_align(maps[None], rois, output_size=size, spatial_scale=1.0 / stride, sampling_ratio=1, aligned=True)


def crop_argmax(y: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Per box and channel the argmax cell of y (N, K, hc, wc) mapped to input px (continuous): (N, K, 2)."""
    n, k, hc, wc = y.shape
    idx = y.flatten(2).argmax(dim=2)
    i, j = (idx // wc).to(boxes.dtype), (idx % wc).to(boxes.dtype)
    x1, y1, x2, y2 = (boxes[:, c:c + 1] for c in range(4))
    return torch.stack([x1 + (j + 0.5) * (x2 - x1) / wc, y1 + (i + 0.5) * (y2 - y1) / hc], dim=2)


def ucr_prior(keypoints: np.ndarray, visible: np.ndarray, boxes: np.ndarray, size: tuple[int, int] = PRN_SIZE,
              sigma: float = 2.0, floor: float = 1e-3) -> np.ndarray:
    """The UCR baseline's prior P_k (paper eq. 2): where joint k falls inside its person box, learned from
    ground truth. keypoints (M, K, 2) image px, visible (M, K) bool, boxes (M, 4) xyxy px -> (K, hc, wc)
    float32, each channel max-normalised to 1 after a Gaussian blur (``sigma`` cells) plus ``floor``."""
    kps, vis, bx = np.asarray(keypoints, np.float64), np.asarray(visible, bool), np.asarray(boxes, np.float64)
    if kps.ndim != 3 or kps.shape[2] != 2 or vis.shape != kps.shape[:2] or bx.shape != (len(kps), 4):
        raise ValueError(f"ucr_prior: keypoints (M, K, 2), visible (M, K), boxes (M, 4); got {kps.shape}, "
                         f"{vis.shape}, {bx.shape}")
    hc, wc = size
    prior = np.zeros((kps.shape[1], hc, wc), np.float64)
    bw = np.maximum(bx[:, 2] - bx[:, 0], 1e-6)[:, None]
    bh = np.maximum(bx[:, 3] - bx[:, 1], 1e-6)[:, None]
    j = np.floor((kps[..., 0] - bx[:, :1]) / bw * wc).astype(int)
    i = np.floor((kps[..., 1] - bx[:, 1:2]) / bh * hc).astype(int)
    ok = vis & (i >= 0) & (i < hc) & (j >= 0) & (j < wc)
    m_idx, k_idx = np.nonzero(ok)
    np.add.at(prior, (k_idx, i[m_idx, k_idx], j[m_idx, k_idx]), 1.0)
    for c in range(len(prior)):
        prior[c] = cv2.GaussianBlur(prior[c], (0, 0), sigma)
        prior[c] = prior[c] / prior[c].max() if prior[c].max() > 0 else 1.0
    return (prior + floor).astype(np.float32)


class MultiPoseNetEstimator:
    """MultiPoseNet inference: one network forward per frame, then keypoints assigned to person boxes.

    network: a :class:`MultiPoseNet`; prn: a :class:`PoseResidualNetwork` (needed for ``assign="prn"``).
    assign: "prn" | "max" | "ucr" (paper Table 3; "ucr" needs ``prior`` (17, 56, 36), see :func:`ucr_prior`).
    input_size: (w, h) the frame is scaled to fit (aspect kept), then zero-padded to multiples of 32.
    peak_threshold: minimum heatmap value of a keypoint peak; sigma: peak Gaussians' std in heatmap cells;
    detection_threshold: minimum person score; max_detections: boxes kept per frame after NMS (IoU 0.3).
    Keypoint scores: the keypoint heatmap at the assigned cell (Gaussian targets of peak 1, the shared unit);
    pose score = box score x mean keypoint score.
    """

    def __init__(self, network: MultiPoseNet, prn: PoseResidualNetwork | None = None, *, assign: str = "prn",
                 prior: np.ndarray | None = None, input_size: Sequence[int] = (480, 480), device: str = "cpu",
                 max_batch: int = 64, peak_threshold: float = 0.1, sigma: float = 1.0,
                 detection_threshold: float = 0.3, max_detections: int = 100, layout: KeypointLayout = COCO17):
        if assign not in ASSIGN_MODES:
            raise InferenceError(f"assign must be one of {ASSIGN_MODES}, got {assign!r}")
        if assign == "prn" and prn is None:
            raise InferenceError("assign='prn' needs a PoseResidualNetwork (prn=...)")
        if assign == "ucr":
            if prior is None:
                raise InferenceError("assign='ucr' needs a prior (17, 56, 36): see ucr_prior()")
            prior = np.asarray(prior, np.float32)
            if prior.shape != (NUM_KEYPOINTS, *PRN_SIZE):
                raise InferenceError(f"UCR prior must be {(NUM_KEYPOINTS, *PRN_SIZE)}, got {prior.shape}")
        if max_batch < 1:
            raise InferenceError(f"max_batch must be >= 1, got {max_batch}")
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.prn = prn.to(self.device).eval() if prn is not None else None
        self.assign = assign
        self.prior = torch.from_numpy(prior).to(self.device) if prior is not None else None
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.max_batch = int(max_batch)
        self.peak_threshold = float(peak_threshold)
        self.sigma = float(sigma)
        self.detection_threshold = float(detection_threshold)
        self.max_detections = int(max_detections)
        self.layout = layout
        self.spec = SPECS["multiposenet_r101" if len(network.backbone.layer3) == 23 else "multiposenet_r50"]
        # the last frame's forward (a copy of its image, the outputs): detect() and estimate() on one frame share
        # one network pass (the tracker's one-pass mode); keyed on the image content, owned by this instance
        self._last_forward: tuple[np.ndarray, dict] | None = None

    @property
    def num_keypoints(self) -> int:
        return self.layout.num_keypoints

    # -- one forward
    def _prepare(self, image: np.ndarray) -> tuple[torch.Tensor, float]:
        h, w = image.shape[:2]
        scale = min(self.input_size[0] / w, self.input_size[1] / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        rgb = cv2.cvtColor(cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
        x = (rgb.astype(np.float32) / 255.0 - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
        ph, pw = -(-nh // SIZE_DIVISOR) * SIZE_DIVISOR, -(-nw // SIZE_DIVISOR) * SIZE_DIVISOR
        pad = np.zeros((ph, pw, 3), np.float32)
        pad[:nh, :nw] = x
        # scale per axis is nw / w, nh / h; the rounding makes them differ by < 1 px over the frame
        return torch.from_numpy(pad).permute(2, 0, 1)[None], scale

    @torch.no_grad()
    def _forward(self, image: np.ndarray, detection: bool = True) -> dict:
        """The network on one frame, or the cached outputs when ``image`` has the content of the last frame
        (one entry; a full comparison, ~1 ms at 1280x720, against a forward of ~0.5 s): ``heatmaps`` (17, h, w),
        ``input_hw``, ``image_hw``, ``scale`` (input px per image px); with ``detection`` also ``cls_logits``
        (A,), ``bbox_regression`` (A, 4), ``anchors`` (A, 4) input px. Without it the person subnet does not run
        (estimating on a frame the detector skips: flow-propagated boxes only)."""
        check_image(image, "MultiPoseNet frame", InferenceError)
        last = self._last_forward
        if (last is not None and last[0].shape == image.shape and (not detection or "cls_logits" in last[1])
                and np.array_equal(last[0], image)):
            return last[1]
        x, scale = self._prepare(image)
        out = self.network(x.to(self.device), detection=detection)
        res = {"heatmaps": out["heatmaps"][0, :NUM_KEYPOINTS].float(),
               "input_hw": tuple(x.shape[-2:]), "image_hw": tuple(image.shape[:2]), "scale": scale}
        if detection:
            res.update(cls_logits=out["cls_logits"][0, :, 0], bbox_regression=out["bbox_regression"][0],
                       anchors=out["anchors"][0])
        self._last_forward = (image.copy(), res)
        return res

    def forward_frame(self, image: np.ndarray) -> tuple[torch.Tensor, np.ndarray, np.ndarray, float]:
        """One network forward: image (H, W, 3) uint8 BGR -> keypoint heatmaps (17, h, w) at stride 4 of the
        network input, person boxes (M, 4) xyxy image px, their scores (M,), the input scale (input px per
        image px)."""
        res = self._forward(image)
        boxes, scores = self._detections(res, self.detection_threshold, self.max_detections)
        return res["heatmaps"], boxes, scores, res["scale"]

    def detect(self, image: np.ndarray, *, score_threshold: float | None = None,
               max_detections: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The person subnet's boxes of a frame: (M, 4) float32 xyxy image px, scores (M,) float32 (sigmoid),
        those above ``score_threshold`` after NMS (IoU 0.3), at most ``max_detections`` (None: the estimator's
        own). Shares the frame's network pass with :meth:`estimate` (see :meth:`_forward`)."""
        res = self._forward(image)
        return self._detections(res, self.detection_threshold if score_threshold is None else score_threshold,
                                self.max_detections if max_detections is None else max_detections)

    @torch.no_grad()
    def _detections(self, out: dict, threshold: float, max_detections: int) -> tuple[np.ndarray, np.ndarray]:
        input_hw, image_hw, scale = out["input_hw"], out["image_hw"], out["scale"]
        scores = torch.sigmoid(out["cls_logits"].float())
        keep = scores > threshold
        top = torch.topk(scores[keep], min(1000, int(keep.sum()))).indices
        deltas, anchors = out["bbox_regression"][keep][top].float(), out["anchors"][keep][top].float()
        scores = scores[keep][top]
        boxes = self.network.box_coder.decode_single(deltas, anchors)
        boxes = torchvision.ops.clip_boxes_to_image(boxes, tuple(input_hw))
        k = batched_nms(boxes, scores, torch.zeros_like(scores, dtype=torch.long), DETECTION_NMS_IOU)
        k = k[:max_detections]
        b = boxes[k].cpu().numpy().astype(np.float64) / scale
        b[:, 0::2] = b[:, 0::2].clip(0, image_hw[1])
        b[:, 1::2] = b[:, 1::2].clip(0, image_hw[0])
        return b.astype(np.float32), scores[k].cpu().numpy().astype(np.float32)

    # -- assignment
    @torch.no_grad()
    def assign_keypoints(self, heatmaps: torch.Tensor, boxes: np.ndarray, box_scores: np.ndarray,
                         scale: float = 1.0) -> Poses:
        """Keypoints of each box from the keypoint heatmaps (17, h, w) (stride 4 of an input that is the image
        scaled by ``scale``). boxes (N, 4) xyxy image px, box_scores (N,) -> Poses (image px)."""
        k = NUM_KEYPOINTS
        boxes, box_scores = check_boxes(boxes, box_scores, "MultiPoseNet boxes", InferenceError)
        if len(boxes) == 0:
            return Poses.empty(k)
        hm = heatmaps.to(self.device).float()
        peaks = find_peaks(hm, self.peak_threshold)
        maps = peak_maps(hm, peaks, self.sigma, scored=self.assign != "prn")
        b_in = torch.from_numpy(np.asarray(boxes, np.float32) * np.float32(scale)).to(self.device)
        points = []
        for s in range(0, len(b_in), self.max_batch):
            bb = b_in[s:s + self.max_batch]
            x = crop_maps(maps, bb, KEYPOINT_STRIDE)
            if self.assign == "prn":
                y = self.prn(x)
            elif self.assign == "ucr":
                y = x * self.prior[None]
            else:
                y = x
            points.append(crop_argmax(y, bb))
        pts = torch.cat(points)  # (N, K, 2) continuous input px
        # keypoint score: the heatmap at the cell holding the point
        h, w = hm.shape[-2:]
        ci = (pts[..., 1] / KEYPOINT_STRIDE).floor().long().clamp(0, h - 1)
        cj = (pts[..., 0] / KEYPOINT_STRIDE).floor().long().clamp(0, w - 1)
        kp_scores = hm[torch.arange(k, device=hm.device)[None].expand_as(ci), ci, cj].clamp(min=0).cpu().numpy()
        kps = pts.cpu().numpy().astype(np.float64) / scale - 0.5
        return Poses(kps, kp_scores, np.asarray(box_scores) * kp_scores.mean(axis=1))

    # -- the estimator contract
    def predict(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, Poses]:
        """Bottom-up: image (H, W, 3) uint8 BGR -> the person subnet's boxes (M, 4) xyxy px, scores (M,), and
        the Poses assigned to them; one network forward."""
        hm, boxes, scores, scale = self.forward_frame(image)
        return boxes, scores, self.assign_keypoints(hm, boxes, scores, scale)

    def estimate(self, image: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray,
                 roi_points: np.ndarray | None = None) -> Poses:
        """Keypoints assigned to the given boxes (N, 4) xyxy px (e.g. detected + flow-propagated); roi_points
        ignored. After :meth:`detect` on the same frame the network does not run again."""
        boxes, box_scores = check_boxes(boxes, box_scores, "MultiPoseNet boxes", InferenceError)
        if len(boxes) == 0:
            return Poses.empty(NUM_KEYPOINTS)
        res = self._forward(image, detection=False)  # after detect() on this frame: its cached full pass
        return self.assign_keypoints(res["heatmaps"], boxes, box_scores, res["scale"])

    def estimate_batch(self, images: Sequence[np.ndarray], boxes_list: Sequence[np.ndarray],
                       scores_list: Sequence[np.ndarray], roi_points_list=None) -> list[Poses]:
        if not len(images) == len(boxes_list) == len(scores_list):
            raise InferenceError(f"estimate_batch: {len(images)} images, {len(boxes_list)} box arrays, "
                                 f"{len(scores_list)} score arrays")
        return [self.estimate(im, b, s) for im, b, s in zip(images, boxes_list, scores_list)]


# ------------------------------------------------------------------------------------------------ weights, specs
class MultiPoseNetWeightsError(ValueError):
    """A missing or malformed MultiPoseNet checkpoint (no weights are shipped)."""


def create_multiposenet_estimator(checkpoint, *, variant: str = "multiposenet_r50", device: str = "cpu",
                                  max_batch: int = 64, random_weights: bool = False, **kw) -> MultiPoseNetEstimator:
    """A :class:`MultiPoseNetEstimator` from a native checkpoint: a ``torch.save`` dict with ``network`` (the
    :class:`MultiPoseNet` state dict), ``prn`` (the :class:`PoseResidualNetwork` state dict) and optionally
    ``ucr_prior`` (17, 56, 36); loaded with ``weights_only=True`` and strict keys. No weights are shipped:
    without a checkpoint this raises unless ``random_weights`` (benchmarks only). ``kw``: the estimator's
    options (assign, input_size, thresholds)."""
    if checkpoint is None and not random_weights:
        raise MultiPoseNetWeightsError(f"estimator {variant!r} has no shipped weights: give --checkpoint FILE "
                                       f"(or random_weights for benchmarks)")
    obj = None
    if checkpoint is not None:
        try:
            obj = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError) as e:
            raise MultiPoseNetWeightsError(f"{checkpoint}: cannot read a MultiPoseNet checkpoint: {e}") from None
        missing = [k for k in ("network", "prn") if not isinstance(obj, dict) or not isinstance(obj.get(k), dict)]
        if missing:
            raise MultiPoseNetWeightsError(f"{checkpoint}: a MultiPoseNet checkpoint needs the state dicts "
                                           f"{missing} (keys 'network', 'prn')")
    network, prn = build_multiposenet(variant), PoseResidualNetwork()
    prior = kw.pop("prior", None)
    if obj is not None:
        for name, module in (("network", network), ("prn", prn)):
            try:
                module.load_state_dict(obj[name], strict=True)
            except RuntimeError as e:
                raise MultiPoseNetWeightsError(f"{checkpoint}: field {name!r} does not match {variant}: {e}") from None
        if prior is None and obj.get("ucr_prior") is not None:
            prior = np.asarray(obj["ucr_prior"], np.float32)
    return MultiPoseNetEstimator(network, prn, prior=prior, device=device, max_batch=max_batch, **kw)


MULTIPOSENET = "multiposenet"  # the estimator kind
SPECS: dict[str, ModelSpec] = {
    name: ModelSpec(name=name, builder=lambda checkpoint, _v=name, **kw: create_multiposenet_estimator(
                        checkpoint, variant=_v, **kw),
                    family=None, layout=COCO17, input_size=(480, 480), kind=MULTIPOSENET,
                    description=f"MultiPoseNet ResNet-{cfg['depth']}-FPN bottom-up + PRN (COCO-17; no shipped weights)")
    for name, cfg in VARIANTS.items()
}

for _spec in SPECS.values():
    register(_spec)

__all__ = ["ASSIGN_MODES", "MULTIPOSENET", "PRN_SIZE", "SPECS", "VARIANTS", "KeypointSubnet", "MultiPoseNet",
           "MultiPoseNetEstimator", "MultiPoseNetWeightsError", "PoseResidualNetwork", "build_multiposenet",
           "build_multiposenet_r50", "build_multiposenet_r101", "create_multiposenet_estimator", "crop_argmax",
           "crop_maps", "find_peaks", "peak_maps", "ucr_prior"]
