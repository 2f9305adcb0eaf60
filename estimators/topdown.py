"""Top-down batched inference: person boxes -> crops -> one network forward per batch -> keypoints in image px.

The conventions of each family (crop padding, colour order and normalisation, flip shift, decoding, joint and
pose scores, score calibration) are the :class:`estimators.spec.Family` values, tabulated in
``estimators/spec.py``. Flip pairs come from the model's keypoint layout. Crops of every person of every image
go through the network together (``max_batch`` images per forward, flipped copies included). The network is
called in exactly one place, :func:`_forward`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from association.arrays import check_boxes, check_image
from association.keypoints import KeypointLayout

from .geometry import crop_batch, get_affine_transforms
from .precision import check_precision
from .spec import Family, InferenceError, ModelSpec, Poses, check_input_size, get_family


def _resolve_family(model: Any, family: Family | str | None) -> Family:
    """``family`` as a Family; None = the model's ``family`` attribute (a family name)."""
    if isinstance(family, Family):
        return family
    name = family if family is not None else getattr(model, "family", None)
    if not isinstance(name, str):
        raise InferenceError(f"model {type(model).__name__}: no estimator family (pass family=, or give the model "
                             f"a 'family' attribute naming one), got {name!r}")
    try:
        return get_family(name)
    except ValueError as exc:
        raise InferenceError(f"model {type(model).__name__}: family: {exc}") from None


def flip_permutation(num_keypoints: int, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """(K,) int64 channel permutation swapping each left/right pair of ``flip_pairs`` (identity elsewhere)."""
    perm = np.arange(num_keypoints)
    for a, b in flip_pairs:
        if not (0 <= a < num_keypoints and 0 <= b < num_keypoints):
            raise InferenceError(f"flip pair ({a}, {b}) out of range for {num_keypoints} keypoints "
                                 f"(the flip pairs must be those of the model's keypoint layout)")
        perm[a], perm[b] = b, a
    return perm


def _forward(model: Callable, batch: torch.Tensor, precision: str) -> torch.Tensor:
    """The single network call: batch (B, 3, H, W) float32 normalised -> heatmaps (B, K, H/4, W/4) float32.

    Half precisions run under autocast for nn.Modules; a prepared callable (e.g.
    ``estimators.optimize.FastForward``) handles its own precision and is called as is.
    """
    if precision != "fp32" and isinstance(model, torch.nn.Module):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        with torch.autocast(device_type=batch.device.type, dtype=dtype):
            out = model(batch)
    else:
        out = model(batch)
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        raise InferenceError(f"model {type(model).__name__} returned {type(out).__name__} "
                             f"{tuple(getattr(out, 'shape', ()))}; expected heatmaps (B, K, h, w)")
    return out.float()


def _flip_pairs_for(flip_test: bool, flip_pairs: Sequence[Sequence[int]] | None) -> Sequence[Sequence[int]]:
    if flip_test and flip_pairs is None:
        raise InferenceError("flip_test needs the left/right flip pairs of the model's keypoint layout "
                             "(flip_pairs=layout.flip_pairs), or flip_test=False")
    return () if flip_pairs is None else flip_pairs


def crops_to_heatmaps(
    model: Callable,
    crops: np.ndarray,
    *,
    family: Family | str | None = None,
    flip_test: bool = True,
    flip_pairs: Sequence[Sequence[int]] | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    max_batch: int = 32,
) -> np.ndarray:
    """Crops (N, h, w, 3) uint8 BGR -> heatmaps (N, K, h/4, w/4) float32 (flip-averaged when ``flip_test``).

    family: the model's Family (None: ``model.family`` names it): colour order, normalisation, flip shift.
    flip_pairs: left/right index pairs of the model's layout (required with ``flip_test``). With ``flip_test``
    each forward carries ``max_batch // 2`` crops plus their mirrors, so no forward exceeds ``max_batch`` images.
    """
    conv = _resolve_family(model, family)
    pairs = _flip_pairs_for(flip_test, flip_pairs)
    k = int(model.num_keypoints)
    n = crops.shape[0]
    if n == 0:
        raise InferenceError("crops_to_heatmaps: no crops")
    perm = torch.from_numpy(flip_permutation(k, pairs)) if flip_test else None
    per_forward = max(1, max_batch // 2) if flip_test else max(1, max_batch)
    dev = torch.device(device)
    mean = torch.tensor(conv.mean, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(conv.std, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    outs = []
    with torch.inference_mode():
        for s in range(0, n, per_forward):
            x = torch.from_numpy(np.ascontiguousarray(crops[s:s + per_forward])).to(dev)
            x = x.permute(0, 3, 1, 2).float()
            if conv.rgb:
                x = x.flip(1)
            x = (x / 255.0 - mean) / std
            b = x.shape[0]
            if flip_test:
                x = torch.cat([x, x.flip(3)])
            hm = _forward(model, x, precision)
            if flip_test:
                back = hm[b:].flip(3)[:, perm.to(hm.device)]
                if conv.flip_shift:
                    # Released HRNet: output_flipped[..., 1:] = output_flipped[..., :-1] (column 0 kept).
                    back[..., 1:] = back[..., :-1].clone()
                hm = (hm[:b] + back) * 0.5
            outs.append(hm.cpu().numpy())
    return np.concatenate(outs)


def estimate_batch(
    model: Callable,
    images: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    box_scores: Sequence[np.ndarray],
    *,
    input_size: Sequence[int],
    family: Family | str | None = None,
    flip_test: bool = True,
    flip_pairs: Sequence[Sequence[int]] | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    max_batch: int = 32,
) -> list[Poses]:
    """Poses of the persons in several images, all crops batched together.

    model: a top-down network (``num_keypoints``, ``forward(x) -> (B, K, H/4, W/4)``) already on ``device`` and
    in eval mode, or a prepared callable with those attributes. images: list of (H, W, 3) uint8 BGR. boxes:
    list of (N_i, 4) xyxy image pixels; box_scores: list of (N_i,). input_size: (w, h) of the network input.
    family, flip_pairs: see :func:`crops_to_heatmaps`. Returns one :class:`Poses` per image (keypoints in that
    image's pixels, keypoint scores calibrated by the family, pose scores from the raw scores as released).
    """
    check_precision(precision, InferenceError)
    if not (len(images) == len(boxes) == len(box_scores)):
        raise InferenceError(f"estimate_batch: {len(images)} images, {len(boxes)} box arrays and "
                             f"{len(box_scores)} score arrays; they must match")
    if max_batch < 1:
        raise InferenceError(f"max_batch must be >= 1, got {max_batch}")
    in_w, in_h = check_input_size(input_size)
    fam = _resolve_family(model, family)
    pairs = _flip_pairs_for(flip_test, flip_pairs)
    k = int(model.num_keypoints)

    # one side may be 0: the crop then takes its size from the other side (released HRNet keeps such COCO boxes)
    checked = [check_boxes(b, s, f"image {i}", InferenceError, allow_zero_side=True)
               for i, (b, s) in enumerate(zip(boxes, box_scores))]
    counts = [len(b) for b, _ in checked]
    if sum(counts) == 0:
        return [Poses.empty(k) for _ in images]
    centers, scales, crops = [], [], []
    for i, (image, (b, _)) in enumerate(zip(images, checked)):
        if not len(b):
            continue
        check_image(image, f"image {i}", InferenceError)
        c, s = fam.box_to_center_scale(b, in_w / in_h)
        m = get_affine_transforms(c, s, 0.0, (in_w, in_h))
        crops.append(crop_batch(image, m, (in_w, in_h)))  # one cv2.warpAffine per person
        centers.append(c)
        scales.append(s)
    c_all, s_all = np.concatenate(centers), np.concatenate(scales)
    heatmaps = crops_to_heatmaps(model, np.concatenate(crops), family=fam, flip_test=flip_test, flip_pairs=pairs,
                                 device=device, precision=precision, max_batch=max_batch)
    if heatmaps.shape[1] != k:
        raise InferenceError(f"model returned {heatmaps.shape[1]} heatmaps, but num_keypoints is {k}")
    points, raw_scores, frame = fam.decode(heatmaps, (in_w, in_h))
    kps = fam.to_image(points, c_all, s_all, frame)
    all_box_scores = np.concatenate([s for _, s in checked])
    pose_scores = fam.pose_score(all_box_scores, raw_scores.astype(np.float64))
    joint_scores = fam.calibrate(raw_scores)

    out, start = [], 0
    for n in counts:
        sl = slice(start, start + n)
        out.append(Poses(kps[sl], joint_scores[sl], pose_scores[sl]) if n else Poses.empty(k))
        start += n
    return out


def estimate(model: Callable, image: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray, **settings) -> Poses:
    """Poses of the persons in one image: image (H, W, 3) uint8 BGR, boxes (N, 4) xyxy px, box_scores (N,).

    Keywords as :func:`estimate_batch`. Empty boxes give an empty :class:`Poses`.
    """
    return estimate_batch(model, [image], [boxes], [box_scores], **settings)[0]


class TopDownEstimator:
    """A top-down estimator: the network, its spec and its inference settings (the estimator contract).

    model: the spec's network (moved to ``device``, eval mode). spec: its :class:`ModelSpec` (family, input
    size, layout). layout: the keypoint layout of the loaded weights (default ``spec.layout``); its flip pairs
    drive the flip test. input_size: (w, h), default ``spec.input_size``. ``optimize()`` swaps the forward for
    ``estimators.optimize.optimize_for_inference`` (CPU, fp32/bf16).
    """

    def __init__(self, model: torch.nn.Module, spec: ModelSpec, *, layout: KeypointLayout | None = None,
                 input_size: Sequence[int] | None = None, device: str = "cpu", precision: str = "fp32",
                 flip_test: bool = True, max_batch: int = 32) -> None:
        check_precision(precision, InferenceError)
        if not isinstance(spec, ModelSpec) or spec.family is None:
            raise InferenceError(f"TopDownEstimator: expected the ModelSpec of a top-down model, got {spec!r}")
        if max_batch < 1:
            raise InferenceError(f"max_batch must be >= 1, got {max_batch}")
        self.spec = spec
        self.layout = layout if layout is not None else spec.layout
        if self.layout.num_keypoints != int(model.num_keypoints):
            raise InferenceError(f"{spec.name}: layout {self.layout.name!r} has {self.layout.num_keypoints} "
                                 f"keypoints, the network outputs {int(model.num_keypoints)}")
        self.model = model.to(device).eval()
        self.input_size = check_input_size(input_size if input_size is not None else spec.input_size)
        self.device = device
        self.precision = precision
        self.flip_test = bool(flip_test)
        self.max_batch = int(max_batch)
        self._runner: Callable = self.model  # what _forward calls (the model, or a prepared FastForward)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def family(self) -> Family:
        return self.spec.family  # type: ignore[return-value]

    @property
    def num_keypoints(self) -> int:
        return self.layout.num_keypoints

    def optimize(self, compile: bool = False) -> TopDownEstimator:
        """Use the BN-folded channels-last forward of ``estimators.optimize`` (CPU; precision fp32 or bf16)."""
        from .optimize import optimize_for_inference

        if str(self.device).split(":")[0] != "cpu":
            raise InferenceError(f"optimize(): CPU only, estimator is on {self.device!r}")
        self._runner = optimize_for_inference(
            self.model, precision=self.precision, compile=compile,
            example_shape=(1, 3, self.input_size[1], self.input_size[0]))
        return self

    def _settings(self) -> dict:
        # The prepared runner does its own precision handling; autocast only for the plain module.
        precision = self.precision if self._runner is self.model else "fp32"
        return dict(input_size=self.input_size, family=self.family, flip_test=self.flip_test,
                    flip_pairs=self.layout.flip_pairs, device=self.device, precision=precision,
                    max_batch=self.max_batch)

    def estimate(self, image: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray,
                 roi_points: np.ndarray | None = None) -> Poses:
        """image (H, W, 3) uint8 BGR, boxes (N, 4) xyxy px, box_scores (N,) -> Poses (image px).

        roi_points ((N, 2, 2) px alignment hints) are accepted and ignored: a top-down crop follows the box.
        """
        return estimate(self._runner, image, boxes, box_scores, **self._settings())

    def estimate_batch(self, images: Sequence[np.ndarray], boxes_list: Sequence[np.ndarray],
                       scores_list: Sequence[np.ndarray],
                       roi_points_list: Sequence[np.ndarray | None] | None = None) -> list[Poses]:
        """One Poses per image; all crops of all images share the forwards (roi_points_list is ignored)."""
        return estimate_batch(self._runner, images, boxes_list, scores_list, **self._settings())

    def __repr__(self) -> str:
        return (f"TopDownEstimator({self.name!r}, family={self.family.name!r}, layout={self.layout.name!r}, "
                f"input_size={self.input_size}, device={self.device!r}, precision={self.precision!r}, "
                f"flip_test={self.flip_test})")


__all__ = ["InferenceError", "Poses", "TopDownEstimator", "crops_to_heatmaps", "estimate", "estimate_batch",
           "flip_permutation"]
