"""The one reader of COCO detection-results files: ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``.

The format of the person detections released with HRNet / SimpleBaseline for COCO and PoseTrack (and of any
COCO ``loadRes`` input). Every item and field is checked; an error names the file, the item index and the
field, before anything else runs. Imports nothing of this project and no torch, so that both the tracker's
precomputed detector and the estimators' training datasets read detections through it.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class CocoDetectionsError(ValueError):
    """A COCO detection-results file is not valid JSON or an item / field is malformed."""


@dataclass(frozen=True)
class CocoDetections:
    """All detections of one results file, in file order (M items).

    image_ids: (M,) int64. category_ids: (M,) int64. boxes: (M, 4) float64 xyxy image pixels (the file's
    x, y, x + w, y + h). scores: (M,) float64. file_names: the optional per-item ``file_name`` field, None where
    absent. path: the file read.
    """

    path: str
    image_ids: np.ndarray
    category_ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    file_names: tuple[str | None, ...]

    def __len__(self) -> int:
        return len(self.image_ids)

    def by_image(self, category_ids: tuple[int, ...] | None = None) -> dict[int, np.ndarray]:
        """image id -> (k,) int64 item indices in file order, keeping only ``category_ids`` (None: all)."""
        keep = np.ones(len(self), bool) if category_ids is None else np.isin(self.category_ids, list(category_ids))
        idx = np.nonzero(keep)[0]
        out: dict[int, list[int]] = {}
        for i, image_id in zip(idx.tolist(), self.image_ids[idx].tolist()):
            out.setdefault(image_id, []).append(i)
        return {k: np.asarray(v, np.int64) for k, v in out.items()}


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_coco_detections(path: str | os.PathLike, error: type[Exception] = CocoDetectionsError) -> CocoDetections:
    """Read and check a COCO detection-results JSON file.

    The top level is a list of items (a ``{"annotations": [...]}`` wrapper is accepted too). Each item needs
    ``image_id`` (integer), ``category_id`` (integer), ``bbox`` ([x, y, w, h] finite, w and h >= 0, image
    pixels) and ``score`` (finite number); ``file_name`` (string) is optional. A missing file raises
    FileNotFoundError; anything else wrong raises ``error`` (default :class:`CocoDetectionsError`) with a
    message "FILE: item K: field 'F' ...".
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"detection file not found: {p}")
    try:
        with p.open("r", encoding="utf-8") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{p}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]
    if not isinstance(data, list):
        raise error(f"{p}: expected a JSON list of detections {{image_id, category_id, bbox, score}}, "
                    f"got {type(data).__name__}")
    m = len(data)
    image_ids = np.empty(m, np.int64)
    category_ids = np.empty(m, np.int64)
    boxes = np.empty((m, 4), np.float64)
    scores = np.empty(m, np.float64)
    names: list[str | None] = []
    for k, item in enumerate(data):
        where = f"{p}: item {k}"
        if not isinstance(item, dict):
            raise error(f"{where}: must be an object, got {type(item).__name__}")
        for field in ("image_id", "category_id"):
            value = item.get(field)
            if value is None:
                raise error(f"{where}: missing field '{field}'")
            if not _finite_number(value) or not float(value).is_integer():
                raise error(f"{where}: field '{field}' must be an integer, got {value!r}")
        image_ids[k] = int(item["image_id"])
        category_ids[k] = int(item["category_id"])
        bbox = item.get("bbox")
        if bbox is None:
            raise error(f"{where}: missing field 'bbox'")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise error(f"{where}: field 'bbox' must be [x, y, w, h], got {bbox!r}")
        if not all(_finite_number(v) for v in bbox):
            raise error(f"{where}: field 'bbox' has a non-finite value: {bbox!r}")
        if bbox[2] < 0 or bbox[3] < 0:
            raise error(f"{where}: field 'bbox' has a negative width/height: {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        boxes[k] = (x, y, x + w, y + h)
        score = item.get("score")
        if score is None:
            raise error(f"{where}: missing field 'score'")
        if not _finite_number(score):
            raise error(f"{where}: field 'score' must be a finite number, got {score!r}")
        scores[k] = float(score)
        name = item.get("file_name")
        if name is not None and not isinstance(name, str):
            raise error(f"{where}: field 'file_name' must be a string, got {name!r}")
        names.append(None if name is None else name.replace("\\", "/"))
    return CocoDetections(str(p), image_ids, category_ids, boxes, scores, tuple(names))


__all__ = ["CocoDetections", "CocoDetectionsError", "read_coco_detections"]
