"""Person detector kind "gt": oracle boxes from a PoseTrack annotation file, read by eval_posetrack's reader."""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from association.boxes import boxes_from_keypoints
from eval_posetrack import PoseTrackFormatError, parse_sequence
from tracker.sources import Frame

from .base import DetectionFileError, Detections, DetectorError, PersonDetector
from .frame_ids import ImageTable, load_json

GT_BOX_ENLARGE = 0.15  # keypoint-extent boxes: width and height +15 % about the centre (HRNet / SimpleBaseline)


def _images_of_sequence(path: Path, data: dict, sequence: str) -> dict:
    """``data`` reduced to the images (and their annotations) in a folder named ``sequence``; unchanged when the
    file holds no such image but only one video (a per-sequence file named otherwise)."""
    images = data.get("images")
    if not isinstance(images, list):
        return data  # the reader reports the bad field
    names = [im.get("file_name") if isinstance(im, dict) else None for im in images]
    mine = [im for im, n in zip(images, names)
            if isinstance(n, str) and sequence in n.replace("\\", "/").split("/")[:-1]]
    if not mine:
        folders = {n.replace("\\", "/").rsplit("/", 1)[0] for n in names if isinstance(n, str)}
        if len(folders) <= 1:
            return data
        raise DetectionFileError(f"{path}: no image of sequence {sequence!r} among its {len(folders)} sequences "
                                 f"(no file_name in a folder named so)")
    ids = {im.get("id") for im in mine}
    anns = data.get("annotations")
    if isinstance(anns, list):
        anns = [a for a in anns if not isinstance(a, dict) or a.get("image_id") in ids]
    return {**data, "images": mine, "annotations": anns}


class GroundTruthDetector(PersonDetector):
    """Oracle boxes from a PoseTrack 2018 (or 2017) annotation file, score 1.

    Per image: each person's ``bbox`` when the file has one, else the extent of its labelled joints enlarged by
    ``enlarge`` (0.15 = +15 % in width and height about the centre); persons with neither (or a single labelled
    point) are left out. Frames are matched by file name (full ``file_name``, unique base name or stem) or,
    failing that, by index = position in the file's images. sequence: keep only that sequence's images (for
    files merging several sequences; ignored for a one-sequence file).
    """

    def __init__(self, annotation_path: str | os.PathLike, sequence: str | None = None,
                 enlarge: float = GT_BOX_ENLARGE):
        self.path = Path(annotation_path)
        if not (isinstance(enlarge, (int, float)) and math.isfinite(enlarge) and enlarge >= 0):
            raise DetectorError(f"enlarge must be a number >= 0, got {enlarge!r}")
        data = load_json(self.path)
        if sequence is not None and isinstance(data, dict):
            data = _images_of_sequence(self.path, data, sequence)
        try:
            seq = parse_sequence(data, self.path, role="gt")
        except PoseTrackFormatError as exc:
            raise DetectionFileError(str(exc)) from None
        self.enlarge = float(enlarge)
        entries, self._boxes = [], {}
        for k, fr in enumerate(seq.frames):
            key = fr.image_id if fr.image_id is not None else k
            entries.append((key, fr.image_name))
            self._boxes[key] = self._frame_boxes(fr)
        self.table = ImageTable(self.path, entries, None)

    def _frame_boxes(self, fr) -> np.ndarray:
        """(P, 4) float32 xyxy image px of one annotated frame."""
        boxes = np.asarray(fr.boxes, np.float64).reshape(-1, 4)
        extent = boxes_from_keypoints(fr.keypoints, fr.present.astype(np.float64), 0.5, enlarge=self.enlarge)
        has_box = np.isfinite(boxes).all(axis=1)
        out = np.where(has_box[:, None], boxes, extent)
        ok = np.isfinite(out).all(axis=1) & ((out[:, 2] > out[:, 0]) | (out[:, 3] > out[:, 1]))
        return out[ok].astype(np.float32)

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        out = []
        for frame in frames:
            image_id = self.table.resolve(frame, by_order=True)
            if image_id is None:
                raise DetectionFileError(f"{self.path}: frame {frame.index} (name {frame.name!r}) matches no "
                                         f"image of the annotation file ({len(self.table.ids)} images)")
            boxes = self._boxes[image_id]
            out.append(Detections(boxes.copy(), np.ones(len(boxes), np.float32)))
        return out
