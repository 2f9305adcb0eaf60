"""Person samples for training / validating the top-down estimators: COCO keypoints and PoseTrack 2017/2018.

A :class:`PersonSample` is one person of one image (box, 17 keypoint slots, visibility). Loaders:
- :func:`load_coco_gt` (pycocotools): ground-truth boxes; people without labelled keypoints and crowd
  annotations are skipped (as the released HRNet / MSPN code); boxes are clipped to the image as HRNet's
  ``_load_coco_keypoint_annotation_kernal`` does (a box clipped to zero width or height is kept, as there).

Boxes stay float64: the authors compute the crop centre and scale from the float64 box and round only those
to float32 (``estimators.geometry``), so rounding the box first would move some crops by one float32 step.
- :func:`load_coco_detections`: a detection results file (``[{image_id, category_id, bbox xywh, score}]``,
  the format of HRNet's released ``COCO_val2017_detections_AP_H_56_person.json``) with a box score threshold.
- :func:`load_posetrack`: PoseTrack 2018 (COCO-like) or 2017 (annolist) sequence files read with
  ``eval_posetrack`` (so the two formats and their validation are shared with the evaluation). Joints are put
  in the 17 PoseTrack18 slots (layout ``POSETRACK18``: COCO order, ``head_bottom`` / ``head_top`` in the eye
  slots); joints inside an ignore region are dropped; the box is the keypoints' extent enlarged by 15 % (HRNet
  paper, Sec. 4.3).
- :func:`load_samples`: the samples of a recipe's split; :func:`dataset_layout`: the keypoint layout of a
  dataset's slots.

:class:`TopDownDataset` turns samples into network inputs and targets (OpenCV decoding, augmentation of
:mod:`estimators.training.augmentation`, targets of :mod:`estimators.training.targets`). Augmentation randomness
is drawn from ``np.random.default_rng([seed, epoch, index])``, so a sample's augmentation does not depend on the
worker, the process (DDP) or the order.
"""
from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from association.boxes import boxes_from_keypoints
from association.keypoints import COCO17, POSETRACK18, KeypointLayout

from ..geometry import transform_points
from ..spec import Family
from .augmentation import NO_AUGMENT, AugmentParams, make_input, sample_transform
from .config import DataConfig, TrainError
from .targets import make_targets, normalize_input

NUM_KEYPOINTS = COCO17.num_keypoints  # COCO and PoseTrack18 files both have 17 slots
POSETRACK_BOX_ENLARGE = 0.15  # HRNet paper Sec. 4.3: keypoint extent + 15 % in length


class DatasetError(ValueError):
    """A bad annotation / detection file entry (the message names the file, the item and the field)."""


class ImageReadError(OSError):
    """An image that is missing or cannot be decoded (the message names the file)."""


@dataclass
class PersonSample:
    """One person of one image.

    image_path: the image file. image_id: COCO image id (PoseTrack: the running frame number of the set).
    box: (4,) float64 xyxy image px. keypoints: (17, 2) float32 image px (COCO slots; PoseTrack18 slot
    names). visible: (17,) float32, > 0 = labelled (COCO v in {1, 2}). box_score: detector score (1 for GT).
    area: (COCO) segment area of the GT annotation, 0 for detections. frame_key: (sequence, frame index)
    for PoseTrack samples, None for COCO.
    """

    image_path: str
    image_id: int
    box: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    box_score: float = 1.0
    area: float = 0.0
    frame_key: tuple | None = None
    extras: dict = field(default_factory=dict)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image with OpenCV -> (H, W, 3) uint8 BGR. Missing or corrupt files raise ImageReadError."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageReadError(f"image not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ImageReadError(f"cannot decode image (corrupt or not an image): {path}")
    return image


# ------------------------------------------------------------------------------------------------ COCO
def _load_coco(ann_file: str | os.PathLike):
    import contextlib
    import io

    from pycocotools.coco import COCO

    ann_file = os.fspath(ann_file)
    if not os.path.isfile(ann_file):
        raise FileNotFoundError(f"COCO annotation file not found: {ann_file}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            return COCO(ann_file)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DatasetError(f"{ann_file}: not a COCO annotation file ({type(exc).__name__}: {exc})") from None


def _person_cat(coco, ann_file) -> int:
    ids = coco.getCatIds(catNms=["person"]) or coco.getCatIds()
    if not ids:
        raise DatasetError(f"{ann_file}: field 'categories' holds no 'person' category")
    return ids[0]


def load_coco_gt(ann_file: str | os.PathLike, image_dir: str | os.PathLike) -> list[PersonSample]:
    """Every non-crowd person with >= 1 labelled keypoint, with its GT box (float64, clipped to the image as the
    released HRNet ``_load_coco_keypoint_annotation_kernal``: ``x2 = min(W - 1, x1 + max(0, w - 1))``, kept when
    ``area > 0`` and ``x2 >= x1``, ``y2 >= y1``). Sorted by image id, then annotation id."""
    coco = _load_coco(ann_file)
    cat = _person_cat(coco, ann_file)
    out: list[PersonSample] = []
    for img_id in sorted(coco.getImgIds()):
        info = coco.loadImgs(img_id)[0]
        width, height = float(info["width"]), float(info["height"])
        for ann in sorted(coco.loadAnns(coco.getAnnIds(imgIds=img_id, catIds=[cat], iscrowd=False)),
                          key=lambda a: a["id"]):
            kps = ann.get("keypoints")
            if not isinstance(kps, list) or len(kps) != 3 * NUM_KEYPOINTS:
                raise DatasetError(f"{ann_file}: annotation {ann.get('id')} field 'keypoints': expected "
                                   f"{3 * NUM_KEYPOINTS} numbers")
            k = np.asarray(kps, dtype=np.float32).reshape(NUM_KEYPOINTS, 3)
            if k[:, 2].max() <= 0:
                continue  # no labelled joint: nothing to learn from (the papers skip them too)
            bb = ann.get("bbox")
            if not isinstance(bb, list) or len(bb) != 4:
                raise DatasetError(f"{ann_file}: annotation {ann.get('id')} field 'bbox': expected [x, y, w, h]")
            x, y, w, h = map(float, bb)
            x1, y1 = max(0.0, x), max(0.0, y)
            x2 = min(width - 1, x1 + max(0.0, w - 1))
            y2 = min(height - 1, y1 + max(0.0, h - 1))
            if ann.get("area", 1) <= 0 or x2 < x1 or y2 < y1:
                continue
            out.append(PersonSample(
                image_path=str(Path(image_dir) / info["file_name"]), image_id=int(img_id),
                box=np.array([x1, y1, x2, y2], np.float64), keypoints=k[:, :2].copy(),
                visible=(k[:, 2] > 0).astype(np.float32), box_score=1.0, area=float(ann.get("area", w * h)),
                extras={"annotation_id": int(ann["id"])}))
    return out


def load_coco_detections(det_file: str | os.PathLike, ann_file: str | os.PathLike, image_dir: str | os.PathLike,
                         score_threshold: float = 0.0) -> list[PersonSample]:
    """Person detections of a results file (read by ``eval_posetrack.read_coco_detections``, which checks
    every item and field) for the images of ``ann_file``, sorted by image id (file order within an image).

    Keeps ``category_id == 1`` boxes with ``score >= score_threshold`` (HRNet's IMAGE_THRE), a positive width
    and height, whose image is in the annotation file. Keypoints are zeros, visible all 0.
    """
    from eval_posetrack import read_coco_detections

    coco = _load_coco(ann_file)
    dets = read_coco_detections(det_file, error=DatasetError)
    keep = (dets.category_ids == 1) & (dets.scores >= score_threshold) & \
        (dets.boxes[:, 2] > dets.boxes[:, 0]) & (dets.boxes[:, 3] > dets.boxes[:, 1]) & \
        np.isin(dets.image_ids, list(coco.imgs))
    idx = np.nonzero(keep)[0]
    idx = idx[np.argsort(dets.image_ids[idx], kind="stable")]
    return [PersonSample(
        image_path=str(Path(image_dir) / coco.imgs[int(dets.image_ids[i])]["file_name"]),
        image_id=int(dets.image_ids[i]), box=dets.boxes[i].astype(np.float64),
        keypoints=np.zeros((NUM_KEYPOINTS, 2), np.float32), visible=np.zeros(NUM_KEYPOINTS, np.float32),
        box_score=float(dets.scores[i]), area=0.0) for i in idx]


# ------------------------------------------------------------------------------------------- PoseTrack
def keypoint_box(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray | None:
    """(4,) float64 xyxy image px: the extent of the labelled keypoints (K, 2) image px (``visible`` (K,) > 0),
    width and height enlarged by 15 % about its center (``association.boxes.boxes_from_keypoints``); None when
    the labelled points do not span a positive width and height."""
    vis = (np.asarray(visible).reshape(1, -1) > 0).astype(np.float64)
    box = boxes_from_keypoints(np.asarray(keypoints, np.float64)[None], vis, 0.5, enlarge=POSETRACK_BOX_ENLARGE)[0]
    if not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
        return None
    return box


def load_posetrack(ann_files: Sequence[str | os.PathLike], root: str | os.PathLike) -> list[PersonSample]:
    """Persons of the labelled frames of PoseTrack 2017/2018 GT sequence files; image paths are
    ``root / image_name``.

    Joints inside a frame's ignore regions are dropped (the evaluation ignores them too); persons left with
    a degenerate keypoint box are skipped. ``frame_key`` = (sequence file stem, frame index in the file).
    """
    from eval_posetrack import joints15_to_coco17, points_in_any_polygon, read_sequence

    out: list[PersonSample] = []
    image_ids: dict[str, int] = {}
    for ann_file in ann_files:
        ann_file = Path(ann_file)
        if not ann_file.is_file():
            raise FileNotFoundError(f"PoseTrack annotation file not found: {ann_file}")
        seq = read_sequence(ann_file, role="gt")
        for fi, fr in enumerate(seq.frames):
            if not fr.labeled:
                continue
            image_path = str(Path(root) / fr.image_name)
            img_id = image_ids.setdefault(image_path, len(image_ids))
            if fr.num_persons == 0:
                continue
            kp17, _ = joints15_to_coco17(fr.keypoints)
            present = fr.present.copy()
            if fr.ignore_regions:
                pi, ji = np.nonzero(present)
                inside = points_in_any_polygon(fr.keypoints[pi, ji], fr.ignore_regions)
                present[pi[inside], ji[inside]] = False
            vis17, _ = joints15_to_coco17(present.astype(np.float64)[..., None])
            for p in range(fr.num_persons):
                vis = vis17[p, :, 0].astype(np.float32)
                box = keypoint_box(kp17[p], vis)
                if box is None:
                    continue
                out.append(PersonSample(
                    image_path=image_path, image_id=img_id, box=box,
                    keypoints=np.where(vis[:, None] > 0, kp17[p], 0).astype(np.float32), visible=vis,
                    box_score=1.0, area=float((box[2] - box[0]) * (box[3] - box[1])),
                    frame_key=(seq.name, fi), extras={"track_id": int(fr.track_ids[p])}))
    return out


# --------------------------------------------------------------------------------------------- Dataset
class TopDownDataset(Dataset):
    """Samples -> (input (3, h, w) float32, targets, target_weight (K,), meta).

    family: the model's :class:`estimators.spec.Family`: box -> crop (HRNet: 1.25-padded box; MSPN: box x1.09 /
    x1.135, the released test-time enlargement, used for training too so that training and inference crops
    agree), input normalisation and target kind. layout: the keypoint layout of the samples' slots (its flip
    pairs drive the flip augmentation). input_size: (w, h).
    augment: :class:`AugmentParams` (``NO_AUGMENT`` for validation). seed: base of the per-sample RNG;
    call :meth:`set_epoch` before each epoch. Item dict: ``input`` (3, h, w) float32, ``target``
    (T, K, h/4, w/4) float32 (T = 1 HRNet, 5 MSPN; see :func:`estimators.training.targets.make_targets`),
    ``target_weight`` (K,) float32, ``center`` (2,) image px / ``scale`` (2,) 200-px units float32 of the
    crop, ``index`` int.
    """

    def __init__(self, samples: Sequence[PersonSample], family: Family, layout: KeypointLayout,
                 input_size: Sequence[int], augment: AugmentParams = NO_AUGMENT, sigma: float | None = None,
                 seed: int = 0):
        if not isinstance(family, Family):
            raise DatasetError(f"family: expected an estimators.spec.Family, got {family!r}")
        if not samples:
            raise DatasetError("TopDownDataset: no samples")
        k = len(samples[0].keypoints)
        if k != layout.num_keypoints:
            raise DatasetError(f"layout {layout.name!r} has {layout.num_keypoints} keypoints, the samples {k}")
        self.samples = list(samples)
        self.family = family
        self.layout = layout
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.augment = augment
        self.sigma = sigma
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def center_scale(self, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """box (4,) xyxy image px -> the family's crop center (2,) image px and scale (2,) 200-px units."""
        aspect = self.input_size[0] / self.input_size[1]
        c, s = self.family.box_to_center_scale(np.asarray(box, np.float64).reshape(1, 4), aspect)
        return c[0], s[0]

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image = read_image(sample.image_path)
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        center, scale = self.center_scale(sample.box)
        aspect = self.input_size[0] / self.input_size[1]
        tf, kp, vis = sample_transform(rng, self.augment, center, scale, sample.keypoints, sample.visible,
                                       image.shape[1], aspect, self.layout)
        crop_img, m = make_input(image, tf, self.input_size)
        kp_in = transform_points(kp, m)
        target, weight = make_targets(self.family, kp_in, vis, self.input_size, self.sigma)
        return {
            "input": torch.from_numpy(normalize_input(crop_img, self.family)),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight.astype(np.float32)),
            "center": torch.from_numpy(tf.center.astype(np.float32)),
            "scale": torch.from_numpy(tf.scale.astype(np.float32)),
            "index": int(index),
        }


# ------------------------------------------------------------------------------------------- recipes
def dataset_layout(dataset: str) -> KeypointLayout:
    """The keypoint layout of a dataset's 17 slots: ``POSETRACK18`` for "posetrack", ``COCO17`` for "coco"."""
    return POSETRACK18 if dataset == "posetrack" else COCO17


def expand_annotation_paths(paths: Sequence[str]) -> list[str]:
    """Annotation files of a recipe: files as given, folders -> their ``*.json`` files (sorted)."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            files = sorted(glob.glob(os.path.join(glob.escape(p), "*.json")))
            if not files:
                raise FileNotFoundError(f"no *.json annotation files in {p}")
            out += files
        else:
            out.append(p)
    return out


def load_samples(data: DataConfig, split: Literal["train", "val"]) -> list[PersonSample]:
    """PersonSamples of a recipe's split: COCO GT boxes (validation: a detection file when
    ``data.val_detections``) or PoseTrack sequences."""
    anns = expand_annotation_paths(data.train_annotations if split == "train" else data.val_annotations)
    images = data.train_images if split == "train" else data.val_images
    if not anns:
        raise TrainError(f"data.{split}_annotations: no annotation file given")
    if data.dataset == "coco":
        if len(anns) != 1:
            raise TrainError(f"data.{split}_annotations: COCO takes one annotation file, got {len(anns)}")
        if split == "val" and data.val_detections:
            return load_coco_detections(data.val_detections, anns[0], images, data.det_score_threshold)
        return load_coco_gt(anns[0], images)
    return load_posetrack(anns, images)


__all__ = [
    "DatasetError", "ImageReadError", "NUM_KEYPOINTS", "POSETRACK_BOX_ENLARGE", "PersonSample", "TopDownDataset",
    "dataset_layout", "expand_annotation_paths", "keypoint_box", "load_coco_detections", "load_coco_gt",
    "load_posetrack", "load_samples", "read_image",
]
