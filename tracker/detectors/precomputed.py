"""Person detector kind "precomputed": a COCO detection-results JSON (e.g. the human detections released with
HRNet / SimpleBaseline for COCO and PoseTrack), read by ``eval_posetrack.read_coco_detections``; frames are matched
to image ids by the rules of :mod:`tracker.detectors.frame_ids`."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from eval_posetrack import read_coco_detections
from tracker.sources import Frame

from .base import DetectionFileError, Detections, PersonDetector
from .frame_ids import ImageTable, posetrack_image_id
from .postprocess import COCO_PERSON_CATEGORY_ID, postprocess


class PrecomputedDetector(PersonDetector):
    """Detections read from a COCO detection-results JSON: a list of
    ``{"image_id": int, "bbox": [x, y, w, h] image pixels, "score": float, "category_id": int}``.

    path: the results file. image_ids: frame index -> image id (a mapping or a sequence).
    annotation_path: a PoseTrack18/COCO annotation file mapping image ids to file names.
    sequence: PoseTrack sequence name (restricts ``annotation_path`` to that sequence's images, and enables
    the PoseTrack image-id convention). match_by_order: with ``annotation_path``, fall back to frame index =
    position in its ``images``. class_ids: category ids to keep (default COCO person 1; None = all).
    score_threshold, nms_iou, max_detections: see :func:`postprocess` (defaults keep the file as it is).
    A frame matched to an image without detections gets empty arrays; a frame that cannot be matched raises
    :class:`DetectionFileError`.
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
        dets = read_coco_detections(self.path, error=DetectionFileError)
        self._per_image = {
            image_id: (dets.boxes[idx].astype(np.float32), dets.scores[idx].astype(np.float32), dets.category_ids[idx])
            for image_id, idx in dets.by_image().items()}
        self._names = {n: int(i) for n, i in zip(dets.file_names, dets.image_ids.tolist()) if n is not None}
        if image_ids is not None and not isinstance(image_ids, Mapping):
            image_ids = dict(enumerate(image_ids))
        self.image_ids = None if image_ids is None else {int(k): int(v) for k, v in image_ids.items()}
        self.table = None if annotation_path is None else ImageTable.from_annotation_file(Path(annotation_path),
                                                                                            sequence)
        self.sequence = sequence
        self.match_by_order = bool(match_by_order)
        self.class_ids = tuple(class_ids) if class_ids is not None else None
        self.score_threshold = float(score_threshold)
        self.nms_iou = nms_iou
        self.max_detections = max_detections

    def resolve(self, frame: Frame) -> int:
        """The image id of ``frame`` (see :mod:`tracker.detectors.frame_ids`); DetectionFileError when none
        applies."""
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
        candidate = posetrack_image_id(self.sequence, frame)
        if candidate is not None and candidate in self._per_image:
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
