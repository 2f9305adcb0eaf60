"""Validation of a trained estimator: person samples -> keypoints -> OKS-NMS -> pycocotools COCOeval.

- :func:`predict_samples` runs a batched top-down estimate (``estimators.topdown.estimate_batch`` of the
  network, or an estimator's ``estimate_batch``, so the crop / decode conventions are exactly those used at
  test time) over the samples of an :mod:`estimators.training.datasets` loader, images decoded with OpenCV in
  DataLoader workers.
- :func:`coco_results` writes COCO keypoint results, after the released HRNet OKS-NMS per image
  (``association.nms.oks_nms`` with the COCO-evaluation convention: greedy by pose score, OKS over the joints
  whose scores exceed 0.2 in both poses, the mean of the two poses' areas, area of the 1.25-padded box).
  The HRNet family uses threshold 0.9, the MSPN family none (:data:`COCO_EVAL_OKS_NMS`).
- :func:`coco_keypoint_eval` feeds COCO-format results to ``COCOeval(iouType='keypoints')`` and returns
  the 10 standard numbers; :func:`format_coco_table` prints them like HRNet's tables.
- :func:`posetrack_map` scores predictions on PoseTrack GT sequences with ``eval_posetrack``'s mAP.
"""
from __future__ import annotations

import contextlib
import io
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from association.nms import oks_nms
from eval_posetrack import coco_keypoint_results

from ..geometry import PIXEL_STD, box_to_center_scale
from ..spec import Poses
from .datasets import PersonSample, read_image

COCO_STAT_NAMES = ("AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)")
HRNET_OKS_NMS = 0.9
HRNET_VIS_THRESHOLD = 0.2
# Released test protocols: the HRNet family applies OKS-NMS 0.9 to its COCO results, the MSPN family none.
COCO_EVAL_OKS_NMS: dict[str, float | None] = {"hrnet": HRNET_OKS_NMS, "mspn": None}

# images (list of (H, W, 3) uint8 BGR), boxes (list of (N_i, 4) xyxy px), box scores (list of (N_i,)) -> Poses
EstimateBatch = Callable[[list[np.ndarray], list[np.ndarray], list[np.ndarray]], list[Poses]]


class EvalError(ValueError):
    """Bad evaluation input (names the item and field)."""


# ------------------------------------------------------------------------------------------- predicting
class _Images(Dataset):
    def __init__(self, paths: Sequence[str]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return i, read_image(self.paths[i])


def _collate_list(batch):
    return batch


def predict_samples(estimate_batch: EstimateBatch, samples: Sequence[PersonSample], *, num_keypoints: int,
                    input_size: Sequence[int], images_per_batch: int = 8, workers: int = 0,
                    progress: bool = False) -> dict[str, np.ndarray]:
    """Keypoints of every sample (order kept).

    estimate_batch: the estimate (a network already in eval mode, see :func:`estimators.topdown.estimate_batch`,
    or ``TopDownEstimator.estimate_batch``); input_size: (w, h) of its network input (for the NMS areas).
    Returns keypoints (N, K, 2) float32 image px, keypoint_scores (N, K) (calibrated, see
    ``estimators.spec``), pose_scores (N,) (the family's released rescoring), areas (N,) px^2 of the
    1.25-padded box (HRNet's NMS area).
    """
    by_image: OrderedDict[str, list[int]] = OrderedDict()
    for i, s in enumerate(samples):
        by_image.setdefault(s.image_path, []).append(i)
    paths = list(by_image)
    k = int(num_keypoints)
    n = len(samples)
    kps = np.zeros((n, k, 2), np.float32)
    kpsc = np.zeros((n, k), np.float32)
    psc = np.zeros(n, np.float32)
    loader = DataLoader(_Images(paths), batch_size=images_per_batch, shuffle=False, num_workers=workers,
                        collate_fn=_collate_list)
    it = loader
    if progress:
        from tqdm import tqdm
        it = tqdm(loader, desc="validate", leave=False, unit="batch")
    for batch in it:
        images, boxes, scores, idx = [], [], [], []
        for j, image in batch:
            ids = by_image[paths[j]]
            images.append(image)
            boxes.append(np.stack([samples[t].box for t in ids]))
            scores.append(np.array([samples[t].box_score for t in ids], np.float32))
            idx.append(ids)
        poses = estimate_batch(images, boxes, scores)
        for ids, p in zip(idx, poses):
            kps[ids], kpsc[ids], psc[ids] = p.keypoints, p.keypoint_scores, p.pose_scores
    boxes = np.stack([s.box for s in samples]).astype(np.float64) if n else np.zeros((0, 4))
    _, sc = box_to_center_scale(boxes, input_size[0] / input_size[1]) if n else (None, np.zeros((0, 2)))
    areas = (sc[:, 0] * sc[:, 1] * PIXEL_STD * PIXEL_STD).astype(np.float32)
    return {"keypoints": kps, "keypoint_scores": kpsc, "pose_scores": psc, "areas": areas}


def coco_results(samples: Sequence[PersonSample], pred: dict[str, np.ndarray],
                 nms_threshold: float | None = HRNET_OKS_NMS) -> list[dict]:
    """COCO keypoint results (``[{image_id, category_id, keypoints [x, y, s]*K, score}]``), OKS-NMS per image
    when ``nms_threshold`` is not None (HRNet), none for MSPN/RSN (``None``). pred: see :func:`predict_samples`."""
    by_image: OrderedDict[int, list[int]] = OrderedDict()
    for i, s in enumerate(samples):
        by_image.setdefault(s.image_id, []).append(i)
    out = []
    for img_id, ids in by_image.items():
        ids = np.asarray(ids)
        if nms_threshold is not None:
            keep = oks_nms(pred["keypoints"][ids].astype(np.float64), pred["pose_scores"][ids], None, nms_threshold,
                           pred["keypoint_scores"][ids], HRNET_VIS_THRESHOLD,
                           areas=pred["areas"][ids].astype(np.float64), mean_area=True, strict=True)
            ids = ids[np.sort(keep)]
        out += coco_keypoint_results(int(img_id), pred["keypoints"][ids], pred["keypoint_scores"][ids],
                                     pred["pose_scores"][ids])
    return out


def coco_keypoint_eval(coco_gt: Any, results: list[dict]) -> OrderedDict[str, float]:
    """``COCOeval(coco_gt, coco_gt.loadRes(results), 'keypoints')`` -> the 10 standard numbers.

    coco_gt: a ``pycocotools.coco.COCO`` or the path of the annotation file. Empty results give zeros.
    Evaluation is restricted to the images of ``coco_gt``.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if isinstance(coco_gt, (str, os.PathLike)):
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO(os.fspath(coco_gt))
    if not results:
        return OrderedDict((n, 0.0) for n in COCO_STAT_NAMES)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, dt, "keypoints")
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return OrderedDict((n, float(v)) for n, v in zip(COCO_STAT_NAMES, ev.stats))


def format_coco_table(stats: OrderedDict[str, float], name: str = "model") -> str:
    """A markdown table of the 10 COCO keypoint numbers (HRNet's ``_print_name_value`` layout)."""
    names = list(stats)
    head = "| Arch | " + " | ".join(names) + " |"
    sep = "|---" * (len(names) + 1) + "|"
    row = f"| {name} | " + " | ".join(f"{stats[n]:.3f}" for n in names) + " |"
    return "\n".join([head, sep, row])


# ------------------------------------------------------------------------------------------- PoseTrack
def posetrack_map(samples: Sequence[PersonSample], pred: dict[str, np.ndarray],
                  ann_files: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """PoseTrack mAP (``eval_posetrack``, AP only) of per-sample predictions on the GT sequence files.

    samples: from :func:`estimators.training.datasets.load_posetrack` (``frame_key`` set); pred: from
    :func:`predict_samples` (17 PoseTrack18 slots). Returns eval_posetrack's AP entry (``Head`` ...
    ``Total`` in %, and ``per_joint``).
    """
    from eval_posetrack import NUM_JOINTS, Frame, coco17_to_joints15, evaluate_prepared, prepare_sequence, read_sequence
    from eval_posetrack import Sequence as PTSequence

    by_frame: dict[tuple, list[int]] = {}
    for i, s in enumerate(samples):
        if s.frame_key is None:
            raise EvalError(f"sample {i} ({s.image_path}): no frame_key; not a PoseTrack sample")
        by_frame.setdefault(tuple(s.frame_key), []).append(i)
    prepared = []
    for f in ann_files:
        gt = read_sequence(f, role="gt")
        frames = []
        for fi, fr in enumerate(gt.frames):
            ids = by_frame.get((gt.name, fi), [])
            p = len(ids)
            kp15, sc15 = coco17_to_joints15(pred["keypoints"][ids].reshape(p, -1, 2),
                                            pred["keypoint_scores"][ids].reshape(p, -1))
            frames.append(Frame(image_name=fr.image_name, keypoints=kp15, present=np.ones((p, NUM_JOINTS), bool),
                                scores=sc15, track_ids=np.arange(p), head_boxes=np.full((p, 4), np.nan),
                                labeled=fr.labeled))
        pr = PTSequence(name=gt.name, frames=frames, path=f"<predictions for {gt.name}>")
        prepared.append(prepare_sequence(gt, pr))
    return evaluate_prepared(prepared, ap=True, track=False)["AP"]


__all__ = [
    "COCO_EVAL_OKS_NMS", "COCO_STAT_NAMES", "EvalError", "HRNET_OKS_NMS", "HRNET_VIS_THRESHOLD", "coco_keypoint_eval",
    "coco_results", "format_coco_table", "posetrack_map", "predict_samples",
]
