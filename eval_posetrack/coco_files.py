"""COCO result files: the one reader of detection results (``[{"image_id", "category_id", "bbox": [x, y, w, h],
"score"}]``) and the one builder of keypoint results (``[{"image_id", "category_id", "keypoints", "score"}]``).

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


def coco_keypoint_results(image_id: int, keypoints: np.ndarray, keypoint_scores: np.ndarray, scores: np.ndarray,
                          *, boxes: np.ndarray | None = None, extra: dict[str, np.ndarray] | None = None,
                          digits: int | None = None, category_id: int = 1) -> list[dict]:
    """COCO keypoint results of one image, one dict per person (the format ``COCO.loadRes`` reads).

    keypoints: (N, K, 2) image px; keypoint_scores: (N, K), written as the third value of each keypoint
    triple; scores: (N,) the person's score (COCOeval ranks by it). boxes: optional (N, 4) xyxy image px,
    written as ``bbox`` xywh. extra: optional per-person fields, each (N,) (e.g. ``track_id``, ``box_score``);
    integer arrays are written as ints, others as floats. digits: round keypoints and boxes to this many
    decimals (None = full float precision, as COCO evaluation wants).
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    ks = np.asarray(keypoint_scores, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = len(sc)
    if kps.shape[:1] != (n,) or ks.shape != kps.shape[:2] or kps.ndim != 3 or kps.shape[2] != 2:
        raise ValueError(f"coco_keypoint_results: keypoints {kps.shape}, keypoint_scores {ks.shape} and scores "
                         f"({n},) disagree; expected (N, K, 2), (N, K), (N,)")

    def rnd(v: float) -> float:
        return float(v) if digits is None else round(float(v), digits)

    triples = np.concatenate([kps, ks[:, :, None]], axis=2).reshape(n, -1)
    out = []
    for i in range(n):
        item: dict[str, Any] = {"image_id": int(image_id), "category_id": int(category_id),
                                "keypoints": [rnd(v) for v in triples[i]], "score": float(sc[i])}
        if boxes is not None:
            x1, y1, x2, y2 = (float(v) for v in np.asarray(boxes, dtype=np.float64)[i])
            item["bbox"] = [rnd(x1), rnd(y1), rnd(x2 - x1), rnd(y2 - y1)]
        for key, values in (extra or {}).items():
            v = np.asarray(values)[i]
            item[key] = int(v) if np.issubdtype(np.asarray(values).dtype, np.integer) else float(v)
        out.append(item)
    return out
