"""Person detectors behind one small interface.

``PersonDetector.detect(frames) -> list[Detections]``, one :class:`Detections` per frame, boxes in that
frame's image pixels. Implementations:

* :class:`TorchvisionDetector` - torchvision COCO detectors (Faster R-CNN v2, RetinaNet, FCOS, SSDlite),
  weights from a given file or torchvision's cache folder, never downloaded here;
* :class:`MMDetDetector` - any MMDetection 3.x config + checkpoint (optional dependency, imported lazily);
* :class:`PrecomputedDetector` - a COCO detection-results JSON (the human detections released with
  HRNet / SimpleBaseline for COCO and PoseTrack);
* :class:`GroundTruthDetector` - boxes from a PoseTrack 2018 annotation file (oracle boxes).

Common post-processing (:func:`postprocess`): keep the configured class ids, drop scores below
``score_threshold``, optional class-wise NMS at ``nms_iou`` (torchvision.ops.batched_nms), optional
``max_detections`` best boxes.

Matching frames to image ids (precomputed and ground-truth files): COCO detection results carry only an
``image_id``. A frame is matched, in this order, by
1. an explicit ``image_ids`` mapping (frame index -> image id);
2. an annotation file (PoseTrack18 / COCO ``images`` with ``id`` and ``file_name``): the frame's name equal
   to a ``file_name``, else equal to a unique file base name or stem (``000000.jpg`` / ``000000``), else
   (ground truth only, or ``match_by_order=True``) the frame index as position in ``images``;
3. the results' own ``file_name`` field, when present;
4. the COCO convention: a frame named ``000000000785.jpg`` is image id 785;
5. the PoseTrack18 convention ``image_id = 10000000000 + video_id * 10000 + frame_number`` when the
   ``sequence`` (e.g. ``"003418_mpii_test"``) is given: video id 3418, frame number from the frame's name
   (``000007.jpg`` -> 7) or its index.
Rules 4 and 5 only match ids that exist in the results file. A frame matched to an image with no
detections gets empty arrays; a frame that cannot be matched at all raises :class:`DetectionFileError`.
"""
from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tracker.sources import Frame

__all__ = [
    "Detections",
    "PersonDetector",
    "DetectorError",
    "DetectionFileError",
    "WeightsNotFoundError",
    "postprocess",
    "TorchvisionDetector",
    "TORCHVISION_MODELS",
    "MMDetDetector",
    "PrecomputedDetector",
    "GroundTruthDetector",
    "COCO_PERSON_CATEGORY_ID",
    "MMDET_PERSON_LABEL",
    "DETECTORS",
    "build_detector",
    "torchvision_weights_file",
]

COCO_PERSON_CATEGORY_ID = 1  # COCO category id / torchvision label of "person" (91-slot label space)
MMDET_PERSON_LABEL = 0  # mmdet uses contiguous 80-class labels: person is 0


class DetectorError(ValueError):
    """Bad detector configuration or input."""


class DetectionFileError(DetectorError):
    """A detection / annotation file is malformed or cannot be matched to the frames."""


class WeightsNotFoundError(FileNotFoundError):
    """Detector weights are not on disk (nothing is downloaded here)."""


@dataclass
class Detections:
    """Person detections of one frame.

    boxes: (N, 4) float32 xyxy, image pixels of the frame.
    scores: (N,) float32 detection confidences.
    """

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float32)
        if self.boxes.size == 0:
            self.boxes = self.boxes.reshape(0, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise DetectorError(f"Detections.boxes must be (N, 4), got {self.boxes.shape}")
        if self.scores.shape[0] != self.boxes.shape[0]:
            raise DetectorError(f"Detections: {self.boxes.shape[0]} boxes but {self.scores.shape[0]} scores")

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


def postprocess(
    boxes: np.ndarray | torch.Tensor,
    scores: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor | None,
    class_ids: Sequence[int] | None,
    score_threshold: float,
    nms_iou: float | None,
    max_detections: int | None = None,
) -> Detections:
    """Filter raw detections of one image.

    boxes: (N, 4) xyxy image pixels. scores: (N,). labels: (N,) integer class ids (None = all one class).
    class_ids: labels to keep (None = keep all). score_threshold: keep scores >= it. nms_iou: IoU for
    class-wise NMS (None = no extra NMS). max_detections: keep at most this many, best first.
    Returns Detections sorted by decreasing score.
    """
    from torchvision.ops import batched_nms

    b = torch.as_tensor(boxes).float().reshape(-1, 4)
    s = torch.as_tensor(scores).float().reshape(-1)
    lab = torch.zeros(s.shape[0], dtype=torch.int64) if labels is None else torch.as_tensor(labels).long().reshape(-1)
    if not (b.shape[0] == s.shape[0] == lab.shape[0]):
        raise DetectorError(f"postprocess: {b.shape[0]} boxes, {s.shape[0]} scores, {lab.shape[0]} labels")
    keep = s >= score_threshold
    if class_ids is not None:
        keep &= torch.isin(lab, torch.as_tensor(list(class_ids), dtype=torch.int64, device=lab.device))
    b, s, lab = b[keep], s[keep], lab[keep]
    if nms_iou is not None and b.shape[0] > 0:
        order = batched_nms(b, s, lab, float(nms_iou))  # sorted by decreasing score
    else:
        order = torch.argsort(s, descending=True, stable=True)
    if max_detections is not None:
        order = order[: int(max_detections)]
    return Detections(b[order].cpu().numpy(), s[order].cpu().numpy())


class PersonDetector:
    """Interface: ``detect(frames) -> list[Detections]``, one per frame, in the frames' order."""

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, frames: Sequence[Frame]) -> list[Detections]:
        return self.detect(frames)


def _frame_image(frame: Frame | np.ndarray) -> np.ndarray:
    image = frame.image if isinstance(frame, Frame) else frame
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        shape = getattr(image, "shape", None)
        raise DetectorError(f"expected a (H, W, 3) uint8 BGR image, got {type(image).__name__} of shape {shape}")
    return image


# ---------------------------------------------------------------------------------------------------
# torchvision
# ---------------------------------------------------------------------------------------------------

# name -> torchvision weights enum member holding the COCO checkpoint (its URL gives the cache file name)
TORCHVISION_MODELS: dict[str, str] = {
    "fasterrcnn_resnet50_fpn_v2": "FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1",
    "retinanet_resnet50_fpn": "RetinaNet_ResNet50_FPN_Weights.COCO_V1",
    "fcos_resnet50_fpn": "FCOS_ResNet50_FPN_Weights.COCO_V1",
    "ssdlite320_mobilenet_v3_large": "SSDLite320_MobileNet_V3_Large_Weights.COCO_V1",
}


def torchvision_weights_file(model_name: str) -> Path:
    """Where torchvision keeps the COCO weights of ``model_name``: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    import torchvision.models as tvm

    if model_name not in TORCHVISION_MODELS:
        raise DetectorError(f"unknown torchvision detector {model_name!r}; choose from {sorted(TORCHVISION_MODELS)}")
    enum_name, member = TORCHVISION_MODELS[model_name].split(".")
    url = getattr(getattr(tvm.detection, enum_name), member).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


class TorchvisionDetector(PersonDetector):
    """A torchvision COCO detector (91-slot labels, person = 1).

    model_name: one of :data:`TORCHVISION_MODELS`. weights_path: a state-dict file; default: torchvision's
    cache file (see :func:`torchvision_weights_file`). device: torch device string. score_threshold,
    nms_iou, class_ids, max_detections: see :func:`postprocess`. batch_size: frames per forward pass.
    The model's own resizing/normalisation (GeneralizedRCNNTransform etc.) is used unchanged.
    """

    def __init__(
        self,
        model_name: str = "fasterrcnn_resnet50_fpn_v2",
        weights_path: str | os.PathLike | None = None,
        device: str = "cpu",
        score_threshold: float = 0.5,
        batch_size: int = 2,
        nms_iou: float | None = 0.6,
        class_ids: Sequence[int] = (COCO_PERSON_CATEGORY_ID,),
        max_detections: int | None = 100,
    ):
        import torchvision.models as tvm

        if batch_size < 1:
            raise DetectorError(f"batch_size must be >= 1, got {batch_size}")
        default_path = torchvision_weights_file(model_name)
        path = Path(weights_path) if weights_path is not None else default_path
        if not path.is_file():
            hint = (f"put the file {default_path.name} (from torchvision's "
                    f"{TORCHVISION_MODELS[model_name]} weights) into the folder {default_path.parent}")
            if weights_path is not None:
                raise WeightsNotFoundError(f"weights file for {model_name} not found: {path}; give an existing "
                                           f"state-dict file, or {hint}")
            raise WeightsNotFoundError(f"weights for {model_name} not found and nothing is downloaded: {hint} "
                                       f"(or pass weights_path; the cache folder follows $TORCH_HOME)")
        model = tvm.get_model(model_name, weights=None, weights_backbone=None, num_classes=91)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsNotFoundError(f"cannot load weights file {path}: {exc}") from exc
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise DetectorError(f"{path} does not fit torchvision {model_name}: {str(exc).splitlines()[0]} "
                                f"...") from exc
        self.model_name = model_name
        self.weights_path = path
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.score_threshold = float(score_threshold)
        self.batch_size = int(batch_size)
        self.nms_iou = nms_iou
        self.class_ids = tuple(class_ids) if class_ids is not None else None
        self.max_detections = max_detections

    @torch.inference_mode()
    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        out: list[Detections] = []
        for start in range(0, len(frames), self.batch_size):
            batch = []
            for frame in frames[start: start + self.batch_size]:
                bgr = _frame_image(frame)
                rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).to(self.device)
                batch.append(rgb.permute(2, 0, 1).float().div_(255.0))  # (3, H, W) RGB in [0, 1]
            for result in self.model(batch):  # boxes already in each input image's pixels
                out.append(postprocess(result["boxes"], result["scores"], result["labels"], self.class_ids,
                                       self.score_threshold, self.nms_iou, self.max_detections))
        return out


# ---------------------------------------------------------------------------------------------------
# MMDetection
# ---------------------------------------------------------------------------------------------------

MMDET_INSTALL_HINT = ("MMDetection is not installed: run `make mmdet` (scripts/build_mmcv.sh VENV) to build "
                      "mmcv 2.1.0 with its ops against this torch and install mmengine and mmdet 3.3.0")


class MMDetDetector(PersonDetector):
    """An MMDetection 3.x detector (80 contiguous COCO labels, person = 0).

    config: an mmdet config file (path) or an ``mmengine.Config``. checkpoint: its weights file (None:
    random initialisation, for tests only). device, score_threshold, nms_iou, class_ids, max_detections:
    as in :func:`postprocess`. Frames are given to mmdet as BGR numpy arrays (its own default).
    """

    def __init__(
        self,
        config: str | os.PathLike | Any,
        checkpoint: str | os.PathLike | None,
        device: str = "cpu",
        score_threshold: float = 0.5,
        nms_iou: float | None = None,
        class_ids: Sequence[int] = (MMDET_PERSON_LABEL,),
        max_detections: int | None = 100,
    ):
        try:
            from mmdet.apis import inference_detector, init_detector
        except ImportError as exc:
            raise DetectorError(f"{MMDET_INSTALL_HINT} (import failed: {exc})") from exc
        if isinstance(config, (str, os.PathLike)) and not Path(config).is_file():
            raise WeightsNotFoundError(f"mmdet config file not found: {config}")
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise WeightsNotFoundError(f"mmdet checkpoint file not found: {checkpoint}")
        self._inference_detector = inference_detector
        cfg = str(config) if isinstance(config, os.PathLike) else config
        self.model = init_detector(cfg, None if checkpoint is None else str(checkpoint), device=device)
        self.score_threshold = float(score_threshold)
        self.nms_iou = nms_iou
        self.class_ids = tuple(class_ids) if class_ids is not None else None
        self.max_detections = max_detections

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        if len(frames) == 0:
            return []
        images = [_frame_image(f) for f in frames]
        results = self._inference_detector(self.model, images)  # list of DetDataSample
        out = []
        for sample in results:
            inst = sample.pred_instances
            out.append(postprocess(inst.bboxes.detach().cpu(), inst.scores.detach().cpu(),
                                   inst.labels.detach().cpu(), self.class_ids, self.score_threshold,
                                   self.nms_iou, self.max_detections))
        return out


# ---------------------------------------------------------------------------------------------------
# files: precomputed detections and ground truth
# ---------------------------------------------------------------------------------------------------

def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        with path.open("r", encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DetectionFileError(f"{path}: not valid JSON ({exc})") from exc


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(path: Path, where: str, item: dict, field: str) -> int:
    value = item.get(field)
    if value is None:
        raise DetectionFileError(f"{path}: {where}: missing field '{field}'")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise DetectionFileError(f"{path}: {where}: field '{field}' must be an integer, got {value!r}")
    return int(value)


def _check_bbox(path: Path, where: str, item: dict, field: str = "bbox") -> list[float]:
    value = item.get(field)
    if value is None:
        raise DetectionFileError(f"{path}: {where}: missing field '{field}'")
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise DetectionFileError(f"{path}: {where}: field '{field}' must be [x, y, w, h], got {value!r}")
    if not all(_finite_number(v) for v in value):
        raise DetectionFileError(f"{path}: {where}: field '{field}' has a non-finite value: {value!r}")
    if value[2] < 0 or value[3] < 0:
        raise DetectionFileError(f"{path}: {where}: field '{field}' has a negative width/height: {value!r}")
    return [float(v) for v in value]


def _xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xywh -> (N, 4) xyxy, same pixels."""
    out = boxes.astype(np.float32, copy=True).reshape(-1, 4)
    out[:, 2:] += out[:, :2]
    return out


def _frame_number(frame: Frame) -> int:
    """Frame number from the frame's name (``000007.jpg`` -> 7), else its index."""
    if frame.name:
        m = re.search(r"(\d+)$", Path(frame.name).stem)
        if m:
            return int(m.group(1))
    return frame.index


class _ImageTable:
    """image id <-> file name lookup built from a PoseTrack18 / COCO annotation file's ``images``."""

    def __init__(self, path: Path, images: Any, sequence: str | None):
        if not isinstance(images, list):
            raise DetectionFileError(f"{path}: field 'images' must be a list")
        entries = []
        for i, im in enumerate(images):
            where = f"images[{i}]"
            if not isinstance(im, dict):
                raise DetectionFileError(f"{path}: {where} must be an object")
            image_id = _check_int(path, where, im, "id")
            name = im.get("file_name")
            if not isinstance(name, str):
                raise DetectionFileError(f"{path}: {where}: missing string field 'file_name'")
            entries.append((image_id, name.replace("\\", "/")))
        if sequence is not None:
            entries = [(i, n) for i, n in entries if sequence in n.split("/")[:-1]]
            if not entries:
                raise DetectionFileError(f"{path}: no image of sequence {sequence!r} (no file_name in a folder "
                                         f"named so)")
        self.path = path
        self.ids = [i for i, _ in entries]
        self.by_name = {n: i for i, n in entries}
        base: dict[str, list[int]] = {}
        stem: dict[str, list[int]] = {}
        for i, n in entries:
            base.setdefault(n.rsplit("/", 1)[-1], []).append(i)
            stem.setdefault(Path(n).stem, []).append(i)
        self.by_base = {k: v[0] for k, v in base.items() if len(v) == 1}
        self.by_stem = {k: v[0] for k, v in stem.items() if len(v) == 1}

    def resolve(self, frame: Frame, by_order: bool) -> int | None:
        name = (frame.name or "").replace("\\", "/")
        if name:
            for table, key in ((self.by_name, name), (self.by_base, name.rsplit("/", 1)[-1]),
                               (self.by_stem, Path(name).stem)):
                if key in table:
                    return table[key]
        if by_order and 0 <= frame.index < len(self.ids):
            return self.ids[frame.index]
        return None


def _posetrack_video_id(sequence: str | None) -> int | None:
    if sequence is None:
        return None
    m = re.match(r"(\d+)", Path(sequence).name)
    return int(m.group(1)) if m else None


class PrecomputedDetector(PersonDetector):
    """Detections read from a COCO detection-results JSON: a list of
    ``{"image_id": int, "bbox": [x, y, w, h] image pixels, "score": float, "category_id": int}``.

    path: the results file. image_ids: frame index -> image id (a mapping or a sequence).
    annotation_path: a PoseTrack18/COCO annotation file mapping image ids to file names.
    sequence: PoseTrack sequence name (restricts ``annotation_path`` to that sequence's images, and enables
    the PoseTrack image-id convention). match_by_order: with ``annotation_path``, fall back to frame index =
    position in its ``images``. class_ids: category ids to keep (default COCO person 1; None = all).
    score_threshold, nms_iou, max_detections: see :func:`postprocess` (defaults keep the file as it is).
    See the module docstring for the matching rules.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        image_ids: Mapping[int, int] | Sequence[int] | None = None,
        annotation_path: str | os.PathLike | None = None,
        sequence: str | None = None,
        match_by_order: bool = False,
        class_ids: Sequence[int] | None = (COCO_PERSON_CATEGORY_ID,),
        score_threshold: float = 0.0,
        nms_iou: float | None = None,
        max_detections: int | None = None,
    ):
        self.path = Path(path)
        data = _load_json(self.path)
        if isinstance(data, dict) and isinstance(data.get("annotations"), list):
            data = data["annotations"]  # tolerate {"annotations": [...]} wrappers
        if not isinstance(data, list):
            raise DetectionFileError(f"{self.path}: expected a JSON list of detections "
                                     f"{{image_id, bbox, score, category_id}}, got {type(data).__name__}")
        per_image: dict[int, list[tuple[list[float], float, int]]] = {}
        names: dict[str, int] = {}
        for k, item in enumerate(data):
            where = f"item {k}"
            if not isinstance(item, dict):
                raise DetectionFileError(f"{self.path}: {where} must be an object, got {type(item).__name__}")
            image_id = _check_int(self.path, where, item, "image_id")
            bbox = _check_bbox(self.path, where, item)
            score = item.get("score")
            if score is None:
                raise DetectionFileError(f"{self.path}: {where}: missing field 'score'")
            if not _finite_number(score):
                raise DetectionFileError(f"{self.path}: {where}: field 'score' must be a finite number, "
                                         f"got {score!r}")
            category = _check_int(self.path, where, item, "category_id")
            per_image.setdefault(image_id, []).append((bbox, float(score), category))
            if isinstance(item.get("file_name"), str):
                names[item["file_name"].replace("\\", "/")] = image_id
        self._per_image = {
            i: (_xywh_to_xyxy(np.array([d[0] for d in dets], np.float32)),
                np.array([d[1] for d in dets], np.float32),
                np.array([d[2] for d in dets], np.int64))
            for i, dets in per_image.items()
        }
        self.num_detections = len(data)
        if image_ids is not None and not isinstance(image_ids, Mapping):
            image_ids = dict(enumerate(image_ids))
        self.image_ids = None if image_ids is None else {int(k): int(v) for k, v in image_ids.items()}
        self.table = None
        if annotation_path is not None:
            ann_path = Path(annotation_path)
            ann = _load_json(ann_path)
            if not isinstance(ann, dict) or "images" not in ann:
                raise DetectionFileError(f"{ann_path}: missing field 'images' (need a PoseTrack18/COCO "
                                         f"annotation file to map image ids to file names)")
            self.table = _ImageTable(ann_path, ann["images"], sequence)
        self._names = names
        self.sequence = sequence
        self._video_id = _posetrack_video_id(sequence)
        self.match_by_order = bool(match_by_order)
        self.class_ids = tuple(class_ids) if class_ids is not None else None
        self.score_threshold = float(score_threshold)
        self.nms_iou = nms_iou
        self.max_detections = max_detections

    @property
    def image_ids_in_file(self) -> list[int]:
        return sorted(self._per_image)

    def resolve(self, frame: Frame) -> int:
        """The image id of ``frame`` (see the module docstring); DetectionFileError when none applies."""
        if self.image_ids is not None:
            if frame.index not in self.image_ids:
                raise DetectionFileError(f"{self.path}: frame {frame.index} ({frame.name}) is not in the "
                                         f"image_ids mapping")
            return self.image_ids[frame.index]
        if self.table is not None:
            image_id = self.table.resolve(frame, self.match_by_order)
            if image_id is not None:
                return image_id
        name = (frame.name or "").replace("\\", "/")
        if name and self._names:
            if name in self._names:
                return self._names[name]
            hits = {i for n, i in self._names.items() if n.rsplit("/", 1)[-1] == name.rsplit("/", 1)[-1]}
            if len(hits) == 1:
                return hits.pop()
        if name:
            stem = Path(name).stem
            if stem.isdigit() and int(stem) in self._per_image:  # COCO: 000000000785.jpg -> 785
                return int(stem)
        if self._video_id is not None:
            candidate = 10_000_000_000 + self._video_id * 10_000 + _frame_number(frame)
            if candidate in self._per_image:
                return candidate
        raise DetectionFileError(
            f"{self.path}: cannot tell which image id frame {frame.index} (name {frame.name!r}) is: the file "
            f"has only image ids; give image_ids (frame index -> image id), annotation_path (a PoseTrack/COCO "
            f"annotation file with images[].id/file_name) or sequence (PoseTrack id convention)")

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        out = []
        for frame in frames:
            image_id = self.resolve(frame)
            if image_id not in self._per_image:
                out.append(Detections.empty())
                continue
            boxes, scores, labels = self._per_image[image_id]
            out.append(postprocess(boxes, scores, labels, self.class_ids, self.score_threshold, self.nms_iou,
                                   self.max_detections))
        return out


class GroundTruthDetector(PersonDetector):
    """Oracle boxes from a PoseTrack 2018 (or COCO keypoints) annotation file, score 1.

    Per image: each annotation's ``bbox`` (xywh) when present, else the extent of its labelled keypoints
    (visibility > 0) enlarged by ``enlarge`` (1.15 = +15 % in width and height about the centre);
    annotations with neither (or crowd regions) are left out. Frames are matched by file name (full
    ``file_name``, unique base name or stem) or, failing that, by index = position in ``images``.
    sequence: keep only that sequence's images (for files merging several sequences).
    """

    def __init__(self, annotation_path: str | os.PathLike, sequence: str | None = None, enlarge: float = 1.15):
        self.path = Path(annotation_path)
        data = _load_json(self.path)
        if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
            raise DetectionFileError(f"{self.path}: expected a PoseTrack18/COCO annotation file with fields "
                                     f"'images' and 'annotations'")
        if not (_finite_number(enlarge) and enlarge > 0):
            raise DetectorError(f"enlarge must be a positive number, got {enlarge!r}")
        self.table = _ImageTable(self.path, data["images"], sequence)
        self.enlarge = float(enlarge)
        wanted = set(self.table.ids)
        boxes: dict[int, list[list[float]]] = {}
        if not isinstance(data["annotations"], list):
            raise DetectionFileError(f"{self.path}: field 'annotations' must be a list")
        for k, ann in enumerate(data["annotations"]):
            where = f"annotations[{k}]"
            if not isinstance(ann, dict):
                raise DetectionFileError(f"{self.path}: {where} must be an object")
            image_id = _check_int(self.path, where, ann, "image_id")
            if image_id not in wanted or ann.get("iscrowd"):
                continue
            box = self._box(ann, where)
            if box is not None:
                boxes.setdefault(image_id, []).append(box)
        self._boxes = {i: np.array(b, np.float32).reshape(-1, 4) for i, b in boxes.items()}

    def _box(self, ann: dict, where: str) -> list[float] | None:
        """xyxy image pixels, or None when the annotation has no box and no labelled keypoint extent."""
        if ann.get("bbox") is not None:
            x, y, w, h = _check_bbox(self.path, where, ann)
            return [x, y, x + w, y + h]
        kps = ann.get("keypoints")
        if kps is None:
            return None
        arr = np.asarray(kps, dtype=np.float64) if isinstance(kps, list) else None
        if arr is None or arr.ndim != 1 or arr.size % 3 != 0:
            raise DetectionFileError(f"{self.path}: {where}: field 'keypoints' must be a flat list of "
                                     f"x, y, visibility triples")
        arr = arr.reshape(-1, 3)
        if not np.all(np.isfinite(arr)):
            raise DetectionFileError(f"{self.path}: {where}: field 'keypoints' has a non-finite value")
        pts = arr[arr[:, 2] > 0, :2]
        if len(pts) == 0:
            return None
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        if x1 - x0 <= 0 and y1 - y0 <= 0:
            return None  # one labelled point: no extent
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        hw, hh = (x1 - x0) * self.enlarge / 2, (y1 - y0) * self.enlarge / 2
        return [cx - hw, cy - hh, cx + hw, cy + hh]

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        out = []
        for frame in frames:
            image_id = self.table.resolve(frame, by_order=True)
            if image_id is None:
                raise DetectionFileError(f"{self.path}: frame {frame.index} (name {frame.name!r}) matches no "
                                         f"image of the annotation file ({len(self.table.ids)} images)")
            boxes = self._boxes.get(image_id)
            if boxes is None:
                out.append(Detections.empty())
            else:
                out.append(Detections(boxes.copy(), np.ones(len(boxes), np.float32)))
        return out


# kind -> detector class, for the command line / configs (each takes its own explicit arguments)
DETECTORS: dict[str, type[PersonDetector]] = {
    "torchvision": TorchvisionDetector,
    "mmdet": MMDetDetector,
    "precomputed": PrecomputedDetector,
    "ground_truth": GroundTruthDetector,
}


def build_detector(kind: str, **kwargs: Any) -> PersonDetector:
    """``build_detector("torchvision", model_name="fcos_resnet50_fpn", score_threshold=0.4)``."""
    if kind not in DETECTORS:
        raise DetectorError(f"unknown detector kind {kind!r}; choose from {sorted(DETECTORS)}")
    return DETECTORS[kind](**kwargs)
