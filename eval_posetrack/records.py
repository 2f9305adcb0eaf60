"""In-memory PoseTrack records: :class:`Frame`, :class:`Sequence`, poseval's 15 joints and the 17 file slots.

One sequence file is a :class:`Sequence` of :class:`Frame` objects, each a struct of numpy arrays in poseval's
15-joint order (:data:`JOINT_NAMES`, poseval ``eval_helpers.Joint``), whatever the file format.

COCO-17 <-> PoseTrack18 slots: a PoseTrack18 file has 17 keypoint slots in COCO order whose names are
``nose, head_bottom, head_top, left_ear, right_ear, left_shoulder, ...`` (``association.keypoints.POSETRACK18``):
the COCO ``left_eye`` slot holds ``head_bottom`` and the ``right_eye`` slot ``head_top`` (the convention of
poseval's ``convert.py`` and of every estimator trained on PoseTrack18). An estimator trained on PoseTrack18
therefore writes its 17 outputs slot for slot; ears are written but never evaluated.
:func:`coco17_to_joints15` applies the same slot mapping to get poseval's 15 joints.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from association.keypoints import POSETRACK18

# poseval's Joint ids 0..14 (eval_helpers.Joint); "head_bottom" is poseval's "neck".
JOINT_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "head_bottom", "nose", "head_top",
)
NUM_JOINTS = len(JOINT_NAMES)
# The 17 keypoint slots of a PoseTrack18 file (COCO order; eyes hold head_bottom / head_top).
PT18_KEYPOINT_NAMES: tuple[str, ...] = POSETRACK18.names
NUM_PT18_SLOTS = POSETRACK18.num_keypoints
# slot -> poseval joint id (-1: not evaluated). Also the COCO-17 -> joint mapping (see module docstring).
PT18_SLOT_TO_JOINT: tuple[int, ...] = tuple(
    JOINT_NAMES.index(n) if n in JOINT_NAMES else -1 for n in PT18_KEYPOINT_NAMES)
# joint id -> slot
JOINT_TO_PT18_SLOT: tuple[int, ...] = tuple(PT18_SLOT_TO_JOINT.index(j) for j in range(NUM_JOINTS))
# The skeleton of a PoseTrack18 file's category: the layout's limbs with 1-based keypoint numbers, as the
# official PoseTrack18 annotation files write it ([[16, 14], [14, 12], ...]).
PT18_SKELETON: list[list[int]] = [[a + 1, b + 1] for a, b in POSETRACK18.skeleton]
MIN_SCORE = -9999.0  # poseval's score for a predicted keypoint without one


class PoseTrackFormatError(ValueError):
    """A PoseTrack file poseval would reject (or silently mis-score). The message names file, frame, field."""


class PoseTrackWarning(UserWarning):
    """Accepted input that poseval treats in a surprising way (missing scores, dropped frames...)."""


def format_error(msg: str, path: Any, frame: int | None = None, person: int | None = None,
                 fld: str | None = None) -> PoseTrackFormatError:
    """A :class:`PoseTrackFormatError` whose message starts with ``path, frame F, person P, field 'X': ``."""
    parts = [str(path)]
    if frame is not None:
        parts.append(f"frame {frame}")
    if person is not None:
        parts.append(f"person {person}")
    if fld is not None:
        parts.append(f"field '{fld}'")
    return PoseTrackFormatError(f"{', '.join(parts)}: {msg}")


@dataclass
class Frame:
    """One frame of one sequence, persons as aligned arrays (P persons, poseval's 15 joints).

    keypoints:     (P, 15, 2) float64 image pixels (x right, y down); 0 where ``present`` is False.
    present:       (P, 15) bool, the file lists this joint for this person (poseval ignores is_visible).
    scores:        (P, 15) float64 keypoint scores; NaN where absent; MIN_SCORE where the file gave none.
    track_ids:     (P,) int64.
    head_boxes:    (P, 4) float64 x1, y1, x2, y2 image pixels of the HEAD box (GT); NaN rows if absent.
    boxes:         (P, 4) float64 xyxy image pixels of the person box (2018 ``bbox``); NaN if absent.
    person_scores: (P,) float64 person score; NaN if absent.
    visibility:    (P, 15) float64 ``is_visible`` as written in the file; NaN if absent.
    ignore_regions: polygons, each (V, 2) float64 x, y image pixels (GT only).
    labeled:       the file lists >= 1 person for this frame (poseval's "labeled" criterion: for 2017 a
                   rect without points still counts, for 2018 any annotation counts).
    image_id:      the 2018 ``images[].id`` when it is an integer, else None.
    extra_points:  (E, 4) float64 rows (person, joint or -1, x, y) of additional points of a person in file
                   order: a repeated joint id (poseval uses the first) or an id outside 0..14. They matter
                   only in ignore regions (a removed first point promotes the next one; any point keeps
                   a person alive). ``extra_scores`` (E,) their scores.
    """

    image_name: str
    keypoints: np.ndarray
    present: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray
    head_boxes: np.ndarray
    # None -> the documented default, set by __post_init__ (the attribute is always an array afterwards)
    boxes: np.ndarray = None  # type: ignore[assignment]
    person_scores: np.ndarray = None  # type: ignore[assignment]
    visibility: np.ndarray = None  # type: ignore[assignment]
    ignore_regions: tuple[np.ndarray, ...] = ()
    labeled: bool | None = None  # None -> P > 0
    image_id: int | None = None
    extra_points: np.ndarray = None  # type: ignore[assignment]
    extra_scores: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        p = len(self.track_ids)
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64).reshape(p, NUM_JOINTS, 2)
        self.present = np.asarray(self.present, dtype=bool).reshape(p, NUM_JOINTS)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(p, NUM_JOINTS)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(p)
        self.head_boxes = np.asarray(self.head_boxes, dtype=np.float64).reshape(p, 4)
        if self.boxes is None:
            self.boxes = np.full((p, 4), np.nan)
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(p, 4)
        if self.person_scores is None:
            self.person_scores = np.full(p, np.nan)
        self.person_scores = np.asarray(self.person_scores, dtype=np.float64).reshape(p)
        if self.visibility is None:
            self.visibility = np.full((p, NUM_JOINTS), np.nan)
        self.visibility = np.asarray(self.visibility, dtype=np.float64).reshape(p, NUM_JOINTS)
        self.ignore_regions = tuple(np.asarray(r, dtype=np.float64).reshape(-1, 2) for r in self.ignore_regions)
        if self.labeled is None:
            self.labeled = p > 0
        if self.extra_points is None:
            self.extra_points = np.zeros((0, 4))
        self.extra_points = np.asarray(self.extra_points, dtype=np.float64).reshape(-1, 4)
        if self.extra_scores is None:
            self.extra_scores = np.full(len(self.extra_points), np.nan)
        self.extra_scores = np.asarray(self.extra_scores, dtype=np.float64).reshape(len(self.extra_points))

    @property
    def num_persons(self) -> int:
        return len(self.track_ids)


@dataclass
class Sequence:
    """One PoseTrack sequence file: ``frames`` in file order, ``name`` = file name without extension.

    source_format: "2017" or "2018"; vid_id: the 2018 video id (first video of the file) or None;
    warnings: messages of the :class:`PoseTrackWarning` s raised while reading.
    """

    name: str
    frames: list[Frame]
    path: str | None = None
    source_format: str = "2018"
    vid_id: str | None = None
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ estimator output <-> joints
def coco17_to_joints15(keypoints: np.ndarray, scores: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, 17, 2) keypoints in PoseTrack18 slot order (= COCO-17 order, eyes = head_bottom/head_top)
    -> (N, 15, 2) in poseval joint order; scores (N, 17) -> (N, 15). Ears are dropped. Units unchanged."""
    keypoints = np.asarray(keypoints)
    idx = np.asarray(JOINT_TO_PT18_SLOT)
    out = keypoints[:, idx]
    return out, (None if scores is None else np.asarray(scores)[:, idx])


def joints15_to_coco17(keypoints: np.ndarray, scores: np.ndarray | None = None,
                       fill: float = 0.0) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverse of :func:`coco17_to_joints15`: (N, 15, ...) -> (N, 17, ...) float64; ear slots get ``fill``."""
    keypoints = np.asarray(keypoints)
    n = keypoints.shape[0]
    out = np.full((n, NUM_PT18_SLOTS) + keypoints.shape[2:], fill, dtype=np.float64)
    out[:, list(JOINT_TO_PT18_SLOT)] = keypoints
    sc = None
    if scores is not None:
        sc = np.full((n, NUM_PT18_SLOTS), fill, dtype=np.float64)
        sc[:, list(JOINT_TO_PT18_SLOT)] = scores
    return out, sc
