"""Training data of the three MultiPoseNet stages (paper sec. 3.5; Kocabas et al., ECCV 2018).

Coordinates: "continuous" pixels (pixel edges; a COCO keypoint ``x`` is the centre of pixel ``x``, i.e.
continuous ``x + 0.5``), the convention of :mod:`estimators.multiposenet`: heatmap cell ``j`` covers input px
``[4j, 4j + 4)``.

- :class:`KeypointDataset` (stage 1): one item per COCO image with annotated people: a square patch
  (``input_size``) around the crowd or the main person, or the whole image framed as inference does
  (``patch="full"``), with random scale / rotation / flip (:class:`estimators.training.augmentation.AugmentParams`;
  the flip mirrors the image and swaps the layout's left/right pairs); targets (18, h/4, w/4): 17 Gaussian
  keypoint maps (peak 1, max over people) + the person segmentation (union of the annotated people's masks), and
  the loss mask (h/4, w/4): 0 on crowd regions and on people without keypoint annotations (paper eq. 4's W).
- :class:`DetectionDataset` (stage 2): one item per image with people: resized so the shorter side is
  ``shorter_side`` (longer side at most ``max_side``), optional flip; targets the non-crowd person boxes.
- :func:`prn_samples` / :class:`PRNDataset` (stage 3, no images): every person with >= ``min_keypoints``
  labelled joints of COCO keypoint files and PoseTrack sequences (joints mapped to COCO-17 where they exist:
  PoseTrack's head_bottom / head_top are no COCO joints and are dropped). PRN input = the peak maps of ALL
  people's keypoints of the frame cropped to this person's box, built by the estimator's own functions
  (:func:`estimators.multiposenet.peak_maps`, :func:`~estimators.multiposenet.crop_maps`) on the stride-4 grid of
  the frame scaled to fit ``input_size``, as inference builds them; target = this person's joints, one Gaussian
  (std ``target_sigma`` crop cells, normalised to sum 1, cut at the crop border; the authors' ``data_loader.py``:
  a one-hot blurred by skimage's Gaussian sigma 2, mode constant) per labelled joint, the joint clamped into the
  crop as there.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from association.keypoints import COCO17, KeypointLayout

from ..multiposenet import IMAGENET_MEAN, IMAGENET_STD, KEYPOINT_STRIDE, PRN_SIZE, SIZE_DIVISOR, crop_maps, peak_maps
from .augmentation import NO_AUGMENT, AugmentParams, flip_image, flip_keypoints
from .datasets import DatasetError, _load_coco, _person_cat, read_image

NUM_KEYPOINTS = COCO17.num_keypoints
POSETRACK_NON_COCO_SLOTS = (1, 2)  # PoseTrack18 slots holding head_bottom / head_top (not COCO's eyes)
CROWD_PADDING = 1.15  # the patch side is the crowd box side x 1.15 (the paper gives no number)
MAIN_PERSON_PADDING = 1.25


# ---------------------------------------------------------------------------------------------- images
@dataclass
class ImagePeople:
    """The people of one COCO image. keypoints (P, 17, 2) image px (pixel centres), visible (P, 17) bool,
    boxes (P, 4) xyxy continuous px of the annotated people; masks: the annotations (pycocotools dicts) of the
    annotated people (``seg``) and of crowd / keypoint-less people (``ignore``); all_boxes (Q, 4) xyxy continuous
    px of every non-crowd person (detection targets)."""

    image_path: str
    image_id: int
    width: int
    height: int
    keypoints: np.ndarray
    visible: np.ndarray
    boxes: np.ndarray
    seg: list
    ignore: list
    all_boxes: np.ndarray


def load_coco_images(ann_file: str | os.PathLike, image_dir: str | os.PathLike) -> tuple[object, list[ImagePeople]]:
    """(the pycocotools COCO, the images with at least one person annotation, sorted by id)."""
    coco = _load_coco(ann_file)
    cat = _person_cat(coco, ann_file)
    out = []
    for img_id in sorted(coco.getImgIds()):
        info = coco.loadImgs(img_id)[0]
        anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=img_id, catIds=[cat])), key=lambda a: a["id"])
        if not anns:
            continue
        kps, vis, boxes, seg, ignore, all_boxes = [], [], [], [], [], []
        for a in anns:
            k = np.asarray(a.get("keypoints") or [0] * 3 * NUM_KEYPOINTS, np.float64)
            if k.size != 3 * NUM_KEYPOINTS:
                raise DatasetError(f"{ann_file}: annotation {a.get('id')} field 'keypoints': expected "
                                   f"{3 * NUM_KEYPOINTS} numbers")
            k = k.reshape(NUM_KEYPOINTS, 3)
            x, y, w, h = map(float, a["bbox"])
            if not a.get("iscrowd", 0) and w > 0 and h > 0:
                all_boxes.append([x, y, x + w, y + h])
            if a.get("iscrowd", 0) or k[:, 2].max() <= 0:
                ignore.append(a)  # paper eq. 4: W = 0 on people without annotation
                continue
            kps.append(k[:, :2])
            vis.append(k[:, 2] > 0)
            boxes.append([x, y, x + w, y + h])
            seg.append(a)
        out.append(ImagePeople(
            str(os.path.join(image_dir, info["file_name"])), int(img_id), int(info["width"]), int(info["height"]),
            np.asarray(kps, np.float64).reshape(-1, NUM_KEYPOINTS, 2),
            np.asarray(vis, bool).reshape(-1, NUM_KEYPOINTS), np.asarray(boxes, np.float64).reshape(-1, 4), seg,
            ignore, np.asarray(all_boxes, np.float64).reshape(-1, 4)))
    return coco, out


def normalize(image_bgr: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 BGR -> (3, h, w) float32 RGB normalised with ImageNet mean/std (the estimator's input)."""
    x = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return np.ascontiguousarray(((x - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)).transpose(2, 0, 1))


MEAN_BGR = tuple(float(255 * m) for m in IMAGENET_MEAN[::-1])  # padding that normalises to 0, as inference pads


def continuous_affine(center: np.ndarray, side: float, rotation: float, out_size: int) -> np.ndarray:
    """(2, 3) continuous image px -> continuous patch px: the square of ``side`` px about ``center`` (rotated by
    ``rotation`` degrees, counter-clockwise as cv2/HRNet) onto an ``out_size`` square."""
    s = out_size / side
    a = np.deg2rad(rotation)
    r = s * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    t = np.array([out_size / 2.0, out_size / 2.0]) - r @ np.asarray(center, np.float64)
    return np.concatenate([r, t[:, None]], axis=1)


def to_pixel_affine(m: np.ndarray) -> np.ndarray:
    """A continuous-px affine -> the same map in pixel-centre coordinates (what cv2.warpAffine takes)."""
    out = m.copy()
    out[:, 2] = m[:, :2] @ np.array([0.5, 0.5]) + m[:, 2] - 0.5
    return out


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """pts (..., 2) -> (..., 2) through the (2, 3) affine."""
    return pts @ m[:, :2].T + m[:, 2]


def gaussian_maps(points: np.ndarray, visible: np.ndarray, size: tuple[int, int], sigma: float) -> np.ndarray:
    """points (P, K, 2) continuous cell coordinates, visible (P, K) -> (K, h, w) float32, a Gaussian of peak 1
    at each visible point (the cell holding the point is its argmax), max over the P people."""
    h, w = size
    k = points.shape[1]
    out = np.zeros((k, h, w), np.float32)
    ys, xs = np.arange(h) + 0.5, np.arange(w) + 0.5
    for p in range(points.shape[0]):
        for j in np.nonzero(visible[p])[0]:
            x, y = points[p, j]
            if not (-3 * sigma <= x < w + 3 * sigma and -3 * sigma <= y < h + 3 * sigma):
                continue
            g = np.exp(-((ys[:, None] - y) ** 2 + (xs[None] - x) ** 2) / (2 * sigma ** 2))
            np.maximum(out[j], g, out=out[j])
    return out


class KeypointDataset(Dataset):
    """Stage 1 items: ``input`` (3, S, S) float32, ``target`` (18, S/4, S/4) float32, ``mask`` (S/4, S/4) float32.

    images: from :func:`load_coco_images` (only those with annotated people are used); coco: its COCO (masks);
    size: the patch side S (a multiple of 32); augment: scale (clip(1 + N(0, sigma)) in ``scale_range``),
    rotation (clip(N(0, r)) with probability ``rotation_prob``), flip (``flip_prob``); half-body is not used.
    Randomness: ``default_rng([seed, epoch, index])``.
    """

    def __init__(self, coco, images: Sequence[ImagePeople], size: int, augment: AugmentParams = NO_AUGMENT,
                 sigma: float = 2.0, patch: str = "crowd", crowd_max_spread: float = 2.5, seed: int = 0,
                 layout: KeypointLayout = COCO17):
        if size % SIZE_DIVISOR:
            raise DatasetError(f"patch size must be a multiple of {SIZE_DIVISOR}, got {size}")
        self.images = [im for im in images if len(im.keypoints)]
        if not self.images:
            raise DatasetError("KeypointDataset: no image with keypoint annotations")
        self.coco, self.size, self.augment, self.sigma = coco, int(size), augment, float(sigma)
        self.patch, self.spread, self.seed, self.layout, self.epoch = patch, float(crowd_max_spread), int(seed), \
            layout, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images)

    def region(self, im: ImagePeople) -> tuple[np.ndarray, float]:
        """The patch's square before augmentation: (centre (2,) continuous px, side px)."""
        if self.patch == "full":  # inference framing: the image scaled to fit, top-left aligned
            side = float(max(im.width, im.height))
            return np.array([side / 2, side / 2]), side
        lo, hi = im.boxes[:, :2].min(0), im.boxes[:, 2:].max(0)
        areas = (im.boxes[:, 2] - im.boxes[:, 0]) * (im.boxes[:, 3] - im.boxes[:, 1])
        main = im.boxes[int(np.argmax(areas))]
        main_side = float(max(main[2] - main[0], main[3] - main[1]))
        crowd_side = float(max(hi - lo))
        if crowd_side <= self.spread * main_side:  # the crowd fits: centre on it
            return (lo + hi) / 2, max(crowd_side * CROWD_PADDING, 1.0)
        return (main[:2] + main[2:]) / 2, max(main_side * MAIN_PERSON_PADDING, 1.0)

    def _masks(self, anns: list, im: ImagePeople) -> np.ndarray:
        out = np.zeros((im.height, im.width), np.uint8)
        for a in anns:
            if a.get("segmentation"):
                np.maximum(out, self.coco.annToMask(a), out=out)
            else:  # no segment: the box
                x, y, w, h = (int(round(v)) for v in a["bbox"])
                out[max(0, y):y + h, max(0, x):x + w] = 1
        return out

    def __getitem__(self, index: int) -> dict:
        im = self.images[index]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        aug = self.augment
        image = read_image(im.image_path)
        if image.shape[:2] != (im.height, im.width):
            raise DatasetError(f"{im.image_path}: image is {image.shape[1]}x{image.shape[0]}, the annotation "
                               f"says {im.width}x{im.height}")
        seg, ignore = self._masks(im.seg, im), self._masks(im.ignore, im)
        kps = im.keypoints + 0.5  # continuous px
        vis = im.visible.copy()
        center, side = self.region(im)
        lo, hi = aug.scale_range
        side *= float(np.clip(1.0 + rng.standard_normal() * aug.scale_sigma, lo, hi))
        rot = 0.0
        if aug.rotation > 0 and rng.random() < aug.rotation_prob:
            rot = float(np.clip(rng.standard_normal() * aug.rotation, -aug.rotation, aug.rotation))
        # the paper writes "vertical flipping"; we mirror left/right (swapping the layout's pairs) as every
        # keypoint recipe does: an upside-down person is no pose COCO contains
        if aug.flip_prob > 0 and rng.random() < aug.flip_prob:
            image, seg, ignore = flip_image(image), np.ascontiguousarray(seg[:, ::-1]), \
                np.ascontiguousarray(ignore[:, ::-1])
            flipped = [flip_keypoints(k - 0.5, v, im.width, self.layout) for k, v in zip(kps, vis)]
            kps = np.stack([k for k, _ in flipped]) + 0.5
            vis = np.stack([v for _, v in flipped]) > 0
            center = np.array([im.width - center[0], center[1]])
        if self.patch == "full" and side == max(im.width, im.height) and rot == 0.0:
            m = np.array([[self.size / side, 0, 0], [0, self.size / side, 0]])  # exactly inference's resize
        else:
            m = continuous_affine(center, side, rot, self.size)
        s, hs = self.size, self.size // KEYPOINT_STRIDE
        patch = cv2.warpAffine(image, to_pixel_affine(m), (s, s), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=MEAN_BGR)
        m_hm = m / KEYPOINT_STRIDE
        warp = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        seg_hm = cv2.warpAffine(seg.astype(np.float32), to_pixel_affine(m_hm), (hs, hs), **warp)
        ign_hm = cv2.warpAffine(ignore.astype(np.float32), to_pixel_affine(m_hm), (hs, hs), **warp)
        target = np.concatenate([gaussian_maps(apply_affine(m_hm, kps), vis, (hs, hs), self.sigma),
                                 seg_hm[None]], axis=0)
        return {"input": torch.from_numpy(normalize(patch)), "target": torch.from_numpy(target),
                "mask": torch.from_numpy((ign_hm < 0.5).astype(np.float32)), "index": int(index)}


class DetectionDataset(Dataset):
    """Stage 2 items: ``input`` (3, h, w) float32 (shorter side ``shorter_side``, longer <= ``max_side``, not
    padded: :func:`collate_detection` pads), ``boxes`` (Q, 4) float32 xyxy input px (continuous), ``index``."""

    def __init__(self, images: Sequence[ImagePeople], shorter_side: int, max_side: int, flip_prob: float = 0.5,
                 seed: int = 0):
        self.images = [im for im in images if len(im.all_boxes)]
        if not self.images:
            raise DatasetError("DetectionDataset: no image with person boxes")
        self.shorter, self.longer, self.flip_prob, self.seed, self.epoch = int(shorter_side), int(max_side), \
            float(flip_prob), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        im = self.images[index]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        image = read_image(im.image_path)
        scale = min(self.shorter / min(im.width, im.height), self.longer / max(im.width, im.height))
        nw, nh = max(1, round(im.width * scale)), max(1, round(im.height * scale))
        boxes = im.all_boxes.copy()
        if self.flip_prob > 0 and rng.random() < self.flip_prob:
            image = flip_image(image)
            boxes[:, [0, 2]] = im.width - boxes[:, [2, 0]]
        x = normalize(cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR))
        boxes = boxes * np.array([nw / im.width, nh / im.height] * 2)
        return {"input": torch.from_numpy(x), "boxes": torch.from_numpy(boxes.astype(np.float32)), "index": int(index)}


def collate_detection(batch: list[dict]) -> dict:
    """Pad the inputs right/bottom with zeros to a common multiple of 32 (as inference pads)."""
    h = max(b["input"].shape[1] for b in batch)
    w = max(b["input"].shape[2] for b in batch)
    h, w = -(-h // SIZE_DIVISOR) * SIZE_DIVISOR, -(-w // SIZE_DIVISOR) * SIZE_DIVISOR
    x = torch.zeros(len(batch), 3, h, w)
    for i, b in enumerate(batch):
        x[i, :, :b["input"].shape[1], :b["input"].shape[2]] = b["input"]
    return {"input": x, "boxes": [b["boxes"] for b in batch], "index": [b["index"] for b in batch]}


# ------------------------------------------------------------------------------------------------ PRN
@dataclass
class PRNFrame:
    """The people of one frame (no image): keypoints (P, 17, 2) continuous px, visible (P, 17) bool, boxes (P, 4)
    xyxy continuous px, the frame size (width, height) px (PoseTrack: the sequence's keypoint extent, the files
    carry no image size), and a source name (COCO file or PoseTrack sequence)."""

    keypoints: np.ndarray
    visible: np.ndarray
    boxes: np.ndarray
    width: float
    height: float
    source: str
    key: tuple


@dataclass(frozen=True)
class PRNSample:
    """Person ``person`` of ``frames[frame]``."""

    frame: int
    person: int
    num_keypoints: int
    area: float


def coco_prn_frames(ann_file: str | os.PathLike) -> list[PRNFrame]:
    """The annotated people (>= 1 labelled joint, not crowd) of each image of a COCO keypoint file."""
    _, images = load_coco_images(ann_file, "")
    return [PRNFrame(im.keypoints + 0.5, im.visible, im.boxes, float(im.width), float(im.height),
                     os.fspath(ann_file), (os.fspath(ann_file), im.image_id)) for im in images if len(im.keypoints)]


def posetrack_prn_frames(ann_files: Sequence[str | os.PathLike]) -> list[PRNFrame]:
    """The labelled frames of PoseTrack 2017/2018 sequence files, joints in COCO-17 slots (head_bottom /
    head_top dropped), boxes = the keypoint extent + 15 % (``estimators.training.datasets.load_posetrack``)."""
    from .datasets import load_posetrack

    out = []
    for f in ann_files:
        people = load_posetrack([f], "")
        by_frame: dict[tuple, list] = {}
        for p in people:
            by_frame.setdefault(p.frame_key, []).append(p)
        if not people:
            continue
        ext = np.max([p.keypoints[p.visible > 0].max(0) for p in people if (p.visible > 0).any()], axis=0) + 1
        for key, ps in by_frame.items():
            vis = np.stack([p.visible > 0 for p in ps])
            vis[:, list(POSETRACK_NON_COCO_SLOTS)] = False
            out.append(PRNFrame(np.stack([p.keypoints for p in ps]).astype(np.float64) + 0.5, vis,
                                np.stack([p.box for p in ps]), float(ext[0]), float(ext[1]), os.fspath(f), key))
    return out


def prn_samples(frames: Sequence[PRNFrame], min_keypoints: int = 2, curriculum: bool = True) -> list[PRNSample]:
    """One sample per person with >= ``min_keypoints`` labelled joints and a box of positive size; curriculum:
    sorted by keypoint count, then box area, both descending (easy first, paper sec. 3.5; the authors'
    ``data_loader.py`` sorts by keypoint count). Otherwise in frame order."""
    out = []
    for fi, fr in enumerate(frames):
        for p in range(len(fr.boxes)):
            n = int(fr.visible[p].sum())
            w, h = fr.boxes[p, 2] - fr.boxes[p, 0], fr.boxes[p, 3] - fr.boxes[p, 1]
            if n >= min_keypoints and w > 0 and h > 0:
                out.append(PRNSample(fi, p, n, float(w * h)))
    if curriculum:
        out.sort(key=lambda s: (-s.num_keypoints, -s.area))
    return out


def frame_scale(frame: PRNFrame, input_size: Sequence[int]) -> float:
    """Input px per frame px when the frame is scaled to fit ``input_size`` (w, h), as the estimator does."""
    return min(input_size[0] / frame.width, input_size[1] / frame.height)


def frame_peak_maps(frame: PRNFrame, input_size: Sequence[int], sigma: float) -> torch.Tensor:
    """(17, h/4, w/4) float32: unit-peak Gaussians (std ``sigma`` cells) at the heatmap cells of all the frame's
    labelled joints, built by :func:`estimators.multiposenet.peak_maps` as inference does from heatmap peaks."""
    s = frame_scale(frame, input_size)
    w = -(-round(frame.width * s) // SIZE_DIVISOR) * SIZE_DIVISOR // KEYPOINT_STRIDE
    h = -(-round(frame.height * s) // SIZE_DIVISOR) * SIZE_DIVISOR // KEYPOINT_STRIDE
    peaks = torch.zeros(NUM_KEYPOINTS, h, w, dtype=torch.bool)
    cells = np.floor(frame.keypoints * s / KEYPOINT_STRIDE).astype(int)
    p, k = np.nonzero(frame.visible)
    j, i = cells[p, k, 0], cells[p, k, 1]
    ok = (i >= 0) & (i < h) & (j >= 0) & (j < w)
    peaks[torch.from_numpy(k[ok]), torch.from_numpy(i[ok]), torch.from_numpy(j[ok])] = True
    hm = peaks.float()
    return peak_maps(hm, peaks, sigma, scored=False)


def prn_target(keypoints: np.ndarray, visible: np.ndarray, box: np.ndarray, sigma: float,
               size: tuple[int, int] = PRN_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One person's PRN target: keypoints (17, 2) continuous px, visible (17,), box (4,) xyxy px -> (17, hc, wc)
    float32 (per labelled joint a Gaussian of std ``sigma`` cells about its crop cell, normalised to sum 1 over
    the unbounded grid, so cut at the border as the authors' constant-mode blur) and the channel weight (17,)."""
    hc, wc = size
    x1, y1, x2, y2 = box
    j = np.clip(np.floor((keypoints[:, 0] - x1) / max(x2 - x1, 1e-6) * wc), 0, wc - 1)
    i = np.clip(np.floor((keypoints[:, 1] - y1) / max(y2 - y1, 1e-6) * hc), 0, hc - 1)
    ys, xs = np.arange(hc)[None, :, None], np.arange(wc)[None, None, :]
    d2 = (ys - i[:, None, None]) ** 2 + (xs - j[:, None, None]) ** 2
    g = np.exp(-d2 / (2 * sigma ** 2)) / (2 * np.pi * sigma ** 2)
    w = np.asarray(visible, bool)
    return (g * w[:, None, None]).astype(np.float32), w.astype(np.float32)


class PRNDataset(Dataset):
    """Stage 3 items: ``input`` (17, 56, 36) float32 (see the module docstring), ``target`` (17, 56, 36),
    ``weight`` (17,) (1 = labelled joint; the PRN's softmax channel of an unlabelled joint cannot be all 0, so
    it is left out of the loss), ``index``. Peak maps are cached per frame."""

    def __init__(self, frames: Sequence[PRNFrame], samples: Sequence[PRNSample], input_size: Sequence[int],
                 peak_sigma: float = 1.0, target_sigma: float = 2.0, cache_frames: int = 64):
        if not samples:
            raise DatasetError("PRNDataset: no person with enough labelled keypoints")
        self.frames, self.samples = list(frames), list(samples)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.peak_sigma, self.target_sigma = float(peak_sigma), float(target_sigma)
        self._cache: dict[int, torch.Tensor] = {}
        self._cache_size = int(cache_frames)

    def __len__(self) -> int:
        return len(self.samples)

    def maps(self, fi: int) -> torch.Tensor:
        if fi not in self._cache:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[fi] = frame_peak_maps(self.frames[fi], self.input_size, self.peak_sigma)
        return self._cache[fi]

    def __getitem__(self, index: int) -> dict:
        smp = self.samples[index]
        fr = self.frames[smp.frame]
        s = frame_scale(fr, self.input_size)
        box = fr.boxes[smp.person] * s
        x = crop_maps(self.maps(smp.frame), torch.from_numpy(box[None].astype(np.float32)), KEYPOINT_STRIDE)[0]
        t, w = prn_target(fr.keypoints[smp.person] * s, fr.visible[smp.person], box, self.target_sigma)
        return {"input": x, "target": torch.from_numpy(t), "weight": torch.from_numpy(w), "index": int(index)}


__all__ = ["DetectionDataset", "ImagePeople", "KeypointDataset", "PRNDataset", "PRNFrame", "PRNSample",
           "coco_prn_frames", "collate_detection", "frame_peak_maps", "frame_scale", "gaussian_maps",
           "load_coco_images", "normalize", "posetrack_prn_frames", "prn_samples", "prn_target"]
