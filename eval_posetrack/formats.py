"""PoseTrack 2017 ("annolist") and 2018 (COCO-like) files: reading, validation, conversion, writing.

In memory one sequence file is a :class:`Sequence` of :class:`Frame` objects, each a struct of numpy
arrays in poseval's 15-joint order (see :data:`JOINT_NAMES`). Readers reproduce what poseval keeps of a
file (``eval_helpers.load_data_dir`` + ``convert.Video.from_new(...)[0].to_old()``); everything poseval
would reject, and a few things it would silently mis-score (NaN/inf coordinates, negative head boxes),
raise :class:`PoseTrackFormatError` naming the file, the frame index and the field.

COCO-17 <-> PoseTrack18 slots: a PoseTrack18 file has 17 keypoint slots in COCO order whose names are
``nose, head_bottom, head_top, left_ear, right_ear, left_shoulder, ...``; i.e. the COCO ``left_eye`` slot
holds ``head_bottom`` and the ``right_eye`` slot ``head_top`` (the convention of poseval's converter and
of every estimator trained on PoseTrack18). An estimator trained on PoseTrack18 therefore writes its
17 outputs slot for slot; ears are written but never evaluated. :func:`coco17_to_joints15` applies the
same slot mapping to get poseval's 15 joints.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence as SequenceT

import numpy as np

# poseval's Joint ids 0..14 (eval_helpers.Joint); "head_bottom" is poseval's "neck".
JOINT_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "head_bottom", "nose", "head_top",
)
NUM_JOINTS = 15
# The 17 keypoint slots of a PoseTrack18 file (COCO order; eyes hold head_bottom / head_top).
PT18_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)
# slot -> poseval joint id (-1: not evaluated). Also the COCO-17 -> joint mapping (see module docstring).
PT18_SLOT_TO_JOINT: tuple[int, ...] = tuple(
    JOINT_NAMES.index(n) if n in JOINT_NAMES else -1 for n in PT18_KEYPOINT_NAMES)
# joint id -> slot
JOINT_TO_PT18_SLOT: tuple[int, ...] = tuple(PT18_SLOT_TO_JOINT.index(j) for j in range(NUM_JOINTS))
PT18_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
                 [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
MIN_SCORE = -9999.0  # poseval's score for a predicted keypoint without one
MAX_TRACK_ID = 10000  # poseval asserts track_id < MAX_TRACK_ID
_SEQ_TYPES = {"mpii": 1, "bonn": 2, "mpiinew": 3}


class PoseTrackFormatError(ValueError):
    """A PoseTrack file poseval would reject (or silently mis-score). The message names file, frame, field."""


class PoseTrackWarning(UserWarning):
    """Accepted input that poseval treats in a surprising way (missing scores, dropped frames...)."""


def _where(path: Any, frame: int | None = None, person: int | None = None, fld: str | None = None) -> str:
    parts = [str(path)]
    if frame is not None:
        parts.append(f"frame {frame}")
    if person is not None:
        parts.append(f"person {person}")
    if fld is not None:
        parts.append(f"field '{fld}'")
    return ", ".join(parts)


def _err(msg: str, path: Any, frame: int | None = None, person: int | None = None,
         fld: str | None = None) -> PoseTrackFormatError:
    return PoseTrackFormatError(f"{_where(path, frame, person, fld)}: {msg}")


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
    boxes: np.ndarray | None = None
    person_scores: np.ndarray | None = None
    visibility: np.ndarray | None = None
    ignore_regions: tuple[np.ndarray, ...] = ()
    labeled: bool | None = None
    image_id: int | None = None
    extra_points: np.ndarray | None = None
    extra_scores: np.ndarray | None = None

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
    """One PoseTrack sequence file: ``frames`` in file order, ``name`` = file name without extension."""

    name: str
    frames: list[Frame]
    path: str | None = None
    source_format: str = "2018"
    vid_id: str | None = None
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- helpers
_FAST_NUM = (int, float)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real)


def _first(v: Any, path: Any, frame: int, person: int | None, fld: str) -> Any:
    """poseval's ``x[0]`` on a one-element list field."""
    if not isinstance(v, list) or len(v) == 0:
        raise _err(f"expected a non-empty list like [value], got {v!r:.60}", path, frame, person, fld)
    return v[0]


def _number(v: Any, path: Any, frame: int, person: int | None, fld: str, finite: bool = True) -> float:
    if not _is_number(v):
        raise _err(f"expected a number, got {v!r:.60}", path, frame, person, fld)
    x = float(v)
    if finite and not math.isfinite(x):
        raise _err(f"non-finite value {x}", path, frame, person, fld)
    return x


def _track_id(v: Any, path: Any, frame: int, person: int, fld: str = "track_id") -> int:
    if type(v) is int and v < MAX_TRACK_ID:  # fast path
        return v
    if not _is_number(v) or not math.isfinite(float(v)) or float(v) != int(v):
        # poseval would accept a non-integral id; we refuse it (ids are integers in every real file).
        raise _err(f"track id must be an integer, got {v!r:.60}", path, frame, person, fld)
    t = int(v)
    if t >= MAX_TRACK_ID:
        raise _err(f"track id {t} >= {MAX_TRACK_ID} (poseval asserts track_id < {MAX_TRACK_ID})",
                   path, frame, person, fld)
    return t


def parse_posetrack18_file_name(file_name: str) -> tuple[str, int, int]:
    """poseval's ``posetrack18_fname2id`` on a 2018 ``file_name`` -> (video id, image id, frame number).

    ``.../<digits>_<mpii|bonn|mpiinew>[_...]/<number>.<ext>``; raises ValueError otherwise.
    """
    seq_dir = os.path.basename(os.path.dirname(file_name))
    tok = seq_dir.split("_")
    if len(tok) < 2:
        raise ValueError(f"folder {seq_dir!r} is not <number>_<mpii|bonn|mpiinew>[_...]")
    try:
        seqidx = int(tok[0])
    except ValueError:
        raise ValueError(f"folder {seq_dir!r} does not start with a sequence number") from None
    if tok[1] not in _SEQ_TYPES:
        raise ValueError(f"folder {seq_dir!r}: sequence type {tok[1]!r} is not mpii, bonn or mpiinew")
    try:
        frameidx = int(os.path.basename(file_name).split(".")[0])
    except ValueError:
        raise ValueError(f"image name {os.path.basename(file_name)!r} is not <frame number>.<ext>") from None
    if not 0 <= frameidx < 10000:
        raise ValueError(f"frame number {frameidx} outside [0, 10000)")
    return tok[0], _SEQ_TYPES[tok[1]] * 10000000000 + seqidx * 10000 + frameidx, frameidx


def posetrack18_image_name(video: str, frame_index: int, split: str = "val") -> str:
    """A ``file_name`` poseval can parse: ``images/<split>/<video>/<frame_index:06d>.jpg``.

    ``video`` must look like ``000342_mpii_test`` (number, mpii|bonn|mpiinew, optional suffix).
    """
    name = f"images/{split}/{video}/{frame_index:06d}.jpg"
    parse_posetrack18_file_name(name)
    return name


def _polygon(xs: Any, ys: Any, path: Any, frame: int, fld: str) -> np.ndarray:
    if not isinstance(xs, list) or not isinstance(ys, list):
        raise _err("each ignore region must be a list of coordinates", path, frame, None, fld)
    if len(xs) != len(ys):
        # poseval zips and silently truncates; a malformed polygon would mis-score, so refuse it.
        raise _err(f"ignore region has {len(xs)} x but {len(ys)} y coordinates", path, frame, None, fld)
    if len(xs) in (1, 2):
        raise _err(f"ignore region with {len(xs)} points is not a polygon (shapely refuses it)",
                   path, frame, None, fld)
    try:
        poly = np.array([xs, ys], dtype=np.float64).T.reshape(-1, 2)
    except (TypeError, ValueError):
        raise _err("ignore region coordinates must be numbers", path, frame, None, fld) from None
    if not np.isfinite(poly).all():
        raise _err("non-finite ignore region coordinate", path, frame, None, fld)
    return poly


def _warn(seq_warnings: list[str], msg: str) -> None:
    seq_warnings.append(msg)
    warnings.warn(msg, PoseTrackWarning, stacklevel=3)


def _empty_frame(image_name: str, labeled: bool, ignore: tuple, image_id: int | None) -> Frame:
    return Frame(image_name=image_name, keypoints=np.zeros((0, NUM_JOINTS, 2)),
                 present=np.zeros((0, NUM_JOINTS), bool), scores=np.zeros((0, NUM_JOINTS)),
                 track_ids=np.zeros(0, np.int64), head_boxes=np.zeros((0, 4)), ignore_regions=ignore,
                 labeled=labeled, image_id=image_id)


# ------------------------------------------------------------------------------------------- 2017 reader
def parse_posetrack17(data: dict, path: Any = "<memory>", role: str = "pred") -> Sequence:
    """A 2017 ``{"annolist": [...]}`` dict -> Sequence (see module docstring). ``role`` "gt" or "pred"."""
    annolist = data["annolist"]
    if not isinstance(annolist, list):
        raise _err("'annolist' must be a list of frames", path, None, None, "annolist")
    seq_warn: list[str] = []
    missing_score = unknown_id = False
    frames = []
    for fi, entry in enumerate(annolist):
        if not isinstance(entry, dict):
            raise _err("frame entry must be an object", path, fi)
        image_name = ""
        img = entry.get("image")
        if isinstance(img, list) and img and isinstance(img[0], dict):
            image_name = str(img[0].get("name", ""))
        ignore: list[np.ndarray] = []
        if "ignore_regions" in entry:
            regions = entry["ignore_regions"]
            if not isinstance(regions, list):
                raise _err("must be a list of {'point': [...]}", path, fi, None, "ignore_regions")
            for ri, region in enumerate(regions):
                pts = region.get("point") if isinstance(region, dict) else None
                if not isinstance(pts, list):
                    raise _err(f"region {ri} has no 'point' list", path, fi, None, "ignore_regions")
                try:
                    xs = [_first(p["x"], path, fi, None, "ignore_regions.x") for p in pts]
                    ys = [_first(p["y"], path, fi, None, "ignore_regions.y") for p in pts]
                except (KeyError, TypeError):
                    raise _err(f"region {ri}: each point needs 'x': [x], 'y': [y]", path, fi, None,
                               "ignore_regions") from None
                ignore.append(_polygon(xs, ys, path, fi, f"ignore_regions[{ri}]"))
        rects = entry.get("annorect")
        if not isinstance(rects, list):
            raise _err("missing or not a list", path, fi, None, "annorect")
        kps, pres, scs, tids, heads, vis, pscores, extras, extra_sc = [], [], [], [], [], [], [], [], []
        seen_ids: list[int] = []
        for ri, rect in enumerate(rects):
            if not isinstance(rect, dict):
                raise _err("person entry must be an object", path, fi, ri, "annorect")
            if "track_id" in rect:
                t = _track_id(_first(rect["track_id"], path, fi, ri, "track_id"), path, fi, ri)
                if role == "pred":
                    if t in seen_ids:
                        raise _err(f"duplicate track id {t} in one frame (poseval: non-unique tracklet IDs)",
                                   path, fi, ri, "track_id")
                    seen_ids.append(t)
            # poseval's rectHasPoints
            ap = rect.get("annopoints", None)
            if "annopoints" not in rect:
                continue
            if not isinstance(ap, list):
                raise _err("must be a list like [{'point': [...]}]", path, fi, ri, "annopoints")
            if len(ap) == 0:
                continue
            if not isinstance(ap[0], dict):
                raise _err("must be a list like [{'point': [...]}]", path, fi, ri, "annopoints")
            if len(ap[0]) == 0 or "point" not in ap[0]:
                continue
            points = ap[0]["point"]
            if not isinstance(points, list):
                raise _err("must be a list of points", path, fi, ri, "annopoints.point")
            if "track_id" not in rect:
                raise _err("person with keypoints has no track id", path, fi, ri, "track_id")
            tids.append(t)
            k = np.zeros((NUM_JOINTS, 2))
            p = np.zeros(NUM_JOINTS, bool)
            s = np.full(NUM_JOINTS, np.nan)
            v = np.full(NUM_JOINTS, np.nan)
            person = len(tids) - 1
            for pi, pt in enumerate(points):
                if not isinstance(pt, dict) or "id" not in pt:
                    raise _err(f"point {pi} has no 'id'", path, fi, ri, "annopoints.point.id")
                if "x" not in pt or "y" not in pt:
                    raise _err(f"point {pi} has no 'x'/'y'", path, fi, ri, "annopoints.point.x")
                x = _number(_first(pt["x"], path, fi, ri, "annopoints.point.x"), path, fi, ri, "annopoints.point.x")
                y = _number(_first(pt["y"], path, fi, ri, "annopoints.point.y"), path, fi, ri, "annopoints.point.y")
                jid = pt["id"]
                j = -1
                if jid is not None:
                    j0 = _first(jid, path, fi, ri, "annopoints.point.id")
                    if _is_number(j0) and float(j0) in range(NUM_JOINTS):
                        j = int(j0)
                if j < 0:
                    unknown_id = True
                if "score" in pt:
                    sv = _first(pt["score"], path, fi, ri, "annopoints.point.score")
                    if not _is_number(sv) or math.isnan(float(sv)):
                        raise _err(f"point {pi}: score must be a number, got {sv!r:.40}", path, fi, ri,
                                   "annopoints.point.score")
                    sv = float(sv)
                else:
                    sv = MIN_SCORE
                    if j >= 0:
                        missing_score = True
                if j >= 0 and not p[j]:
                    k[j] = (x, y)
                    p[j] = True
                    s[j] = sv
                    iv = pt.get("is_visible")
                    if isinstance(iv, list) and iv and _is_number(iv[0]):
                        v[j] = float(iv[0])
                else:
                    extras.append((person, j, x, y))
                    extra_sc.append(sv)
            if role == "gt" and all(f in rect for f in ("x1", "y1", "x2", "y2")):
                hb = [_number(_first(rect[f], path, fi, ri, f), path, fi, ri, f) for f in ("x1", "y1", "x2", "y2")]
                if hb[2] < hb[0] or hb[3] < hb[1]:
                    raise _err(f"head box x1,y1,x2,y2={hb} has a negative size", path, fi, ri, "x2/y2")
            elif all(f in rect for f in ("x1", "y1", "x2", "y2")):
                try:
                    hb = [float(rect[f][0]) for f in ("x1", "y1", "x2", "y2")]
                except (TypeError, ValueError, IndexError, KeyError):
                    hb = [np.nan] * 4
            else:
                hb = [np.nan] * 4
            heads.append(hb)
            ps = rect.get("score")
            pscores.append(float(ps[0]) if isinstance(ps, list) and ps and _is_number(ps[0]) else np.nan)
            kps.append(k)
            pres.append(p)
            scs.append(s)
            vis.append(v)
        frames.append(Frame(
            image_name=image_name, keypoints=np.array(kps).reshape(-1, NUM_JOINTS, 2),
            present=np.array(pres, bool).reshape(-1, NUM_JOINTS), scores=np.array(scs).reshape(-1, NUM_JOINTS),
            track_ids=np.array(tids, np.int64), head_boxes=np.array(heads).reshape(-1, 4),
            person_scores=np.array(pscores), visibility=np.array(vis).reshape(-1, NUM_JOINTS),
            ignore_regions=tuple(ignore), labeled=len(rects) > 0,
            extra_points=np.array(extras).reshape(-1, 4), extra_scores=np.array(extra_sc)))
    if missing_score and role == "pred":
        _warn(seq_warn, f"{path}: prediction score is missing for some keypoints; using the official "
                        f"fallback score {MIN_SCORE:g}")
    if unknown_id:
        _warn(seq_warn, f"{path}: some keypoints have ids outside 0..14; poseval ignores them")
    name = Path(str(path)).name.split(".")[0]
    return Sequence(name=name, frames=frames, path=str(path), source_format="2017", warnings=seq_warn)


# ------------------------------------------------------------------------------------------- 2018 reader
def _conversion_table(data: dict, path: Any) -> list[int]:
    cats = data.get("categories")
    if not isinstance(cats, list) or len(cats) != 1 or not isinstance(cats[0], dict):
        raise _err("must hold exactly one category (poseval asserts)", path, None, None, "categories")
    cat = cats[0]
    if cat.get("name") != "person":
        raise _err(f"the category must be named 'person', got {cat.get('name')!r}", path, None, None,
                   "categories[0].name")
    names = cat.get("keypoints")
    if not isinstance(names, list) or len(names) not in (15, 17):
        raise _err("must list 15 or 17 keypoint names", path, None, None, "categories[0].keypoints")
    table = [JOINT_NAMES.index(n) if isinstance(n, str) and n in JOINT_NAMES else -1 for n in names]
    missing = [JOINT_NAMES[j] for j in range(NUM_JOINTS) if j not in table]
    if missing:
        raise _err(f"cannot map keypoints: {missing} not found among {names}", path, None, None,
                   "categories[0].keypoints")
    return table


def _annotation_arrays(anns: list, n_slots: int, need_scores: int, path: Any, role: str,
                       frame_of: dict, attached: set) -> tuple:
    """Validate every annotation and stack keypoints / scores of the whole file into arrays.

    Returns karr (A, S, 3) float64, sarr (A, S) float64 (NaN rows where no scores), has_scores (A,),
    track ids (A,), head boxes (A, 4) xyxy, boxes (A, 4) xyxy, person scores (A,). ``frame_of`` maps an
    annotation index to (frame index, person index) for error messages.
    """
    A = len(anns)
    kps, sc_rows, sc_idx, box_rows, box_idx = [], [], [], [], []
    tids = np.zeros(A, np.int64)
    heads = np.full((A, 4), np.nan)
    boxes = np.full((A, 4), np.nan)
    pscores = np.full(A, np.nan)
    for ai, a in enumerate(anns):
        fi, pi = frame_of.get(ai, (None, None))
        if ai not in attached:  # poseval never reads an annotation of no image
            kps.append([0] * (3 * n_slots))
            continue
        if "track_id" not in a:
            raise _err(f"annotation {ai} has no track id (required)", path, fi, pi, "track_id")
        tids[ai] = _track_id(a["track_id"], path, fi, pi)
        k = a.get("keypoints")
        if not isinstance(k, list) or len(k) != 3 * n_slots:
            raise _err(f"annotation {ai}: 'keypoints' must be a list of {3 * n_slots} numbers "
                       f"(x, y, v for each of the {n_slots} category keypoints)", path, fi, pi, "keypoints")
        kps.append(k)
        s_list = a.get("scores")
        if s_list:
            if not isinstance(s_list, list) or len(s_list) < need_scores:
                raise _err(f"annotation {ai}: 'scores' must list one score per keypoint ({n_slots})",
                           path, fi, pi, "scores")
            sc_rows.append(s_list[:n_slots] + [0.0] * (n_slots - len(s_list)))
            sc_idx.append(ai)
        if "bbox_head" in a:
            hb = a["bbox_head"]
            if not isinstance(hb, list) or len(hb) != 4 or not all(type(x) in _FAST_NUM or _is_number(x) for x in hb):
                raise _err(f"annotation {ai}: bbox_head must be [x, y, w, h]", path, fi, pi, "bbox_head")
            hb = [float(x) for x in hb]
            if role == "gt":
                if not all(math.isfinite(x) for x in hb):
                    raise _err(f"annotation {ai}: non-finite bbox_head", path, fi, pi, "bbox_head")
                if hb[2] < 0 or hb[3] < 0:
                    raise _err(f"annotation {ai}: bbox_head {hb} has a negative width/height",
                               path, fi, pi, "bbox_head")
            heads[ai] = (hb[0], hb[1], hb[0] + hb[2], hb[1] + hb[3])
        bb = a.get("bbox")
        if bb is not None and isinstance(bb, list) and len(bb) == 4 and all(type(x) in _FAST_NUM or _is_number(x) for x in bb):
            box_rows.append(bb)
            box_idx.append(ai)
        ps = a.get("score")
        if ps is not None and (type(ps) in _FAST_NUM or _is_number(ps)):
            pscores[ai] = float(ps)
    if box_rows:
        bb = np.array(box_rows, dtype=np.float64)
        boxes[box_idx] = np.stack([bb[:, 0], bb[:, 1], bb[:, 0] + bb[:, 2], bb[:, 1] + bb[:, 3]], axis=1)

    def numeric(rows: list, idx: list, fld: str, width: int) -> np.ndarray:
        try:
            arr = np.array(rows) if rows else np.zeros((0, width))
            ok = arr.dtype.kind in "iufb" and arr.shape == (len(rows), width)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            for r, ai in zip(rows, idx):
                if not all(_is_number(v) for v in r):
                    fi, pi = frame_of.get(ai, (None, None))
                    raise _err(f"annotation {ai}: values must be numbers", path, fi, pi, fld)
            raise _err("values must be numbers", path, None, None, fld)
        return arr.astype(np.float64)

    karr = numeric(kps, list(range(A)), "keypoints", 3 * n_slots).reshape(A, n_slots, 3)
    bad = ~np.isfinite(karr).all(axis=(1, 2))
    if bad.any():
        ai = int(np.argmax(bad))
        fi, pi = frame_of.get(ai, (None, None))
        raise _err(f"annotation {ai}: non-finite keypoint value", path, fi, pi, "keypoints")
    sarr = np.full((A, n_slots), np.nan)
    has_scores = np.zeros(A, bool)
    if sc_rows:
        sarr[sc_idx] = numeric(sc_rows, sc_idx, "scores", n_slots)
        has_scores[sc_idx] = True
    return karr, sarr, has_scores, tids, heads, boxes, pscores


def parse_posetrack18(data: dict, path: Any = "<memory>", role: str = "pred") -> Sequence:
    """A 2018 COCO-like dict -> Sequence of its FIRST video (as poseval's ``convert_videos(data)[0]``)."""
    table = _conversion_table(data, path)
    n_slots = len(table)
    images = data.get("images")
    anns = data.get("annotations", [])
    if not isinstance(images, list) or not images:
        raise _err("missing or empty (poseval needs >= 1 frame)", path, None, None, "images")
    if not isinstance(anns, list):
        raise _err("must be a list", path, None, None, "annotations")
    first_info: dict = {}
    for ii, im in enumerate(images):
        if not isinstance(im, dict) or "id" not in im:
            raise _err("image entry without 'id'", path, ii, None, "images.id")
        first_info.setdefault(_hashable(im["id"]), im)
    by_image: dict = {}
    for ai, a in enumerate(anns):
        if not isinstance(a, dict) or "image_id" not in a:
            raise _err(f"annotation {ai} has no 'image_id'", path, None, None, "annotations.image_id")
        by_image.setdefault(_hashable(a["image_id"]), []).append(ai)
    seq_warn: list[str] = []
    mapped_slots = [s for s, j in enumerate(table) if j >= 0]
    need_scores = max(mapped_slots) + 1
    # frames of the first video, in image order
    video = None
    dropped = 0
    frame_defs = []  # (image index, image info, annotation indices)
    frame_of: dict = {}
    for ii, im0 in enumerate(images):
        key = _hashable(im0["id"])
        im = first_info[key]  # poseval looks images up by id: the first image with this id
        fname = im.get("file_name")
        if not isinstance(fname, str):
            raise _err("missing file name", path, ii, None, "images.file_name")
        try:
            vid, _, _ = parse_posetrack18_file_name(fname)
        except ValueError as exc:
            raise _err(f"cannot parse file name {fname!r}: {exc}", path, ii, None, "images.file_name") from None
        if video is None:
            video = vid
        elif vid != video:
            dropped += 1  # poseval evaluates only the first video of a file
            continue
        idx = by_image.get(key, [])
        for pi, ai in enumerate(idx):
            frame_of.setdefault(ai, (ii, pi))
        frame_defs.append((ii, im, idx))
    attached = {ai for im in images for ai in by_image.get(_hashable(im["id"]), [])}
    karr, sarr, has_scores, tids_all, heads_all, boxes_all, pscores_all = _annotation_arrays(
        anns, n_slots, need_scores, path, role, frame_of, attached)
    if role == "pred":
        if any(not has_scores[ai] for _, _, idx in frame_defs for ai in idx):
            _warn(seq_warn, f"{path}: prediction scores are missing; using the official fallback score "
                            f"{MIN_SCORE:g}")
        if sarr.size and np.isnan(sarr[has_scores][:, mapped_slots]).any():
            ai = int(np.nonzero(has_scores & np.isnan(sarr[:, mapped_slots]).any(axis=1))[0][0])
            fi, pi = frame_of.get(ai, (None, None))
            raise _err(f"annotation {ai}: NaN score", path, fi, pi, "scores")
    keep = ~((karr[:, :, 0] == 0) & (karr[:, :, 1] == 0) & (karr[:, :, 2] == 0))  # (A, S)
    slot_scores = np.where(has_scores[:, None], sarr, MIN_SCORE)
    A = len(anns)
    # first kept slot of each joint (slot order), and later kept slots of the same joint as extras
    kp = np.zeros((A, NUM_JOINTS, 2))
    pres = np.zeros((A, NUM_JOINTS), bool)
    sc = np.full((A, NUM_JOINTS), np.nan)
    vis = np.full((A, NUM_JOINTS), np.nan)
    slots_of = [[s for s in range(n_slots) if table[s] == j] for j in range(NUM_JOINTS)]
    extra_rows: list[tuple] = []
    for j, slots in enumerate(slots_of):
        for s in reversed(slots):  # the earliest kept slot wins
            k = keep[:, s]
            kp[k, j] = karr[k, s, :2]
            pres[k, j] = True
            sc[k, j] = slot_scores[k, s]
            vis[k, j] = karr[k, s, 2]
        if len(slots) > 1:
            for ai in range(A):
                kept = [s for s in slots if keep[ai, s]]
                for s in kept[1:]:
                    extra_rows.append((ai, j, karr[ai, s, 0], karr[ai, s, 1], slot_scores[ai, s]))
    frames: list[Frame] = []
    for fi, (ii, im, idx) in enumerate(frame_defs):
        ignore: list[np.ndarray] = []
        if "ignore_regions_x" in im and "ignore_regions_y" in im:
            rx, ry = im["ignore_regions_x"], im["ignore_regions_y"]
            if not isinstance(rx, list) or not isinstance(ry, list) or len(rx) != len(ry):
                raise _err("ignore_regions_x and ignore_regions_y must be lists of equal length",
                           path, ii, None, "ignore_regions_x")
            ignore = [_polygon(xs, ys, path, ii, f"ignore_regions_x[{r}]") for r, (xs, ys) in enumerate(zip(rx, ry))]
        ix = np.asarray(idx, dtype=np.int64)
        tids = tids_all[ix]
        if role == "pred" and len(set(tids.tolist())) != len(tids):
            vals, counts = np.unique(tids, return_counts=True)
            dup = int(vals[counts > 1][0])
            pi = int(np.nonzero(tids == dup)[0][1])
            raise _err(f"duplicate track id {dup} in one frame (poseval: non-unique tracklet IDs)",
                       path, ii, pi, "track_id")
        ex = [(idx.index(r[0]), r[1], r[2], r[3]) for r in extra_rows if r[0] in idx] if extra_rows else []
        exs = [r[4] for r in extra_rows if r[0] in idx] if extra_rows else []
        image_id = im["id"] if isinstance(im["id"], int) else None
        frames.append(Frame(image_name=im["file_name"], keypoints=kp[ix], present=pres[ix], scores=sc[ix],
                            track_ids=tids, head_boxes=heads_all[ix], boxes=boxes_all[ix],
                            person_scores=pscores_all[ix], visibility=vis[ix], ignore_regions=tuple(ignore),
                            labeled=len(idx) > 0, image_id=image_id,
                            extra_points=np.array(ex).reshape(-1, 4), extra_scores=np.array(exs)))
    if dropped:
        _warn(seq_warn, f"{path}: {dropped} image(s) belong to another video than the first one "
                        f"({video}); poseval evaluates only the first video of a file and drops them")
    name = Path(str(path)).name.split(".")[0]
    return Sequence(name=name, frames=frames, path=str(path), source_format="2018", vid_id=video,
                    warnings=seq_warn)


def _hashable(v: Any) -> Any:
    return json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v


def parse_sequence(data: Any, path: Any = "<memory>", role: str = "pred") -> Sequence:
    """Detect the format like poseval (``"annolist" in data`` -> 2017, else 2018) and parse."""
    if role not in ("gt", "pred"):
        raise ValueError(f"role must be 'gt' or 'pred', got {role!r}")
    if not isinstance(data, dict):
        raise _err("top level must be a JSON object", path)
    try:
        if "annolist" in data:
            return parse_posetrack17(data, path, role)
        return parse_posetrack18(data, path, role)
    except PoseTrackFormatError:
        raise
    except (KeyError, TypeError, IndexError, AttributeError) as exc:  # structure we did not foresee
        raise _err(f"malformed PoseTrack file ({type(exc).__name__}: {exc})", path) from None


def read_sequence(path: str | os.PathLike, role: str = "pred") -> Sequence:
    """Read one PoseTrack 2017 or 2018 sequence file (format detected like poseval)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise _err(f"not valid JSON ({exc})", path) from None
    return parse_sequence(data, path, role)


# ----------------------------------------------------------------------------------------------- writers
def _num(v: float) -> float | int:
    v = float(v)
    return int(v) if v.is_integer() and abs(v) < 2 ** 53 else v


def sequence_to_posetrack17(seq: Sequence) -> dict:
    """Sequence -> 2017 ``{"annolist": [...]}`` dict (what poseval reads back identically)."""
    annolist = []
    for fi, fr in enumerate(seq.frames):
        entry: dict = {"image": [{"name": fr.image_name}], "imgnum": [fi + 1]}
        if fr.ignore_regions:
            entry["ignore_regions"] = [{"point": [{"x": [_num(x)], "y": [_num(y)]} for x, y in poly]}
                                       for poly in fr.ignore_regions]
        rects = []
        for p in range(fr.num_persons):
            rect: dict = {"track_id": [int(fr.track_ids[p])]}
            if np.isfinite(fr.head_boxes[p]).all():
                x1, y1, x2, y2 = fr.head_boxes[p]
                rect.update(x1=[_num(x1)], y1=[_num(y1)], x2=[_num(x2)], y2=[_num(y2)])
            if np.isfinite(fr.person_scores[p]):
                rect["score"] = [float(fr.person_scores[p])]
            points = []
            for j in range(NUM_JOINTS):
                if fr.present[p, j]:
                    pt: dict = {"id": [j], "x": [_num(fr.keypoints[p, j, 0])], "y": [_num(fr.keypoints[p, j, 1])]}
                    if not np.isnan(fr.scores[p, j]) and fr.scores[p, j] != MIN_SCORE:
                        pt["score"] = [float(fr.scores[p, j])]
                    if np.isfinite(fr.visibility[p, j]):
                        pt["is_visible"] = [_num(fr.visibility[p, j])]
                    points.append(pt)
            rect["annopoints"] = [{"point": points}]
            rects.append(rect)
        entry["annorect"] = rects
        entry["is_labeled"] = [1 if fr.labeled else 0]
        annolist.append(entry)
    return {"annolist": annolist}


def _all_integral(a: np.ndarray) -> bool:
    return bool(np.all(a == np.round(a)))


def _categories() -> list[dict]:
    return [{"supercategory": "person", "id": 1, "name": "person", "keypoints": list(PT18_KEYPOINT_NAMES),
             "skeleton": PT18_SKELETON}]


def _image_id(file_name: str, fallback: int) -> int:
    try:
        return parse_posetrack18_file_name(file_name)[1]
    except ValueError:
        return fallback


def sequence_to_posetrack18(seq: Sequence) -> dict:
    """Sequence -> 2018 COCO-like dict with the 17 PoseTrack18 slots (ears written as 0, 0, 0)."""
    images, annotations = [], []
    n = len(seq.frames)
    for fi, fr in enumerate(seq.frames):
        image_id = fr.image_id if fr.image_id is not None else _image_id(fr.image_name, fi + 1)
        image: dict = {"file_name": fr.image_name, "id": int(image_id), "frame_id": int(image_id),
                       "nframes": n, "is_labeled": bool(fr.labeled)}
        if seq.vid_id is not None:
            image["vid_id"] = seq.vid_id
        if fr.ignore_regions:
            image["ignore_regions_x"] = [[_num(x) for x in poly[:, 0]] for poly in fr.ignore_regions]
            image["ignore_regions_y"] = [[_num(y) for y in poly[:, 1]] for poly in fr.ignore_regions]
        images.append(image)
        P = fr.num_persons
        slots = np.asarray(JOINT_TO_PT18_SLOT)
        k17 = np.zeros((P, 17, 3))
        s17 = np.zeros((P, 17))
        pres = fr.present
        vis = np.where(np.isfinite(fr.visibility), fr.visibility, 1.0)
        # a present keypoint at (0, 0) with v = 0 would read back as missing: write v = 1 there
        zero = (fr.keypoints[..., 0] == 0) & (fr.keypoints[..., 1] == 0) & (vis == 0)
        vis = np.where(zero, 1.0, vis)
        k17[:, slots, :2] = np.where(pres[..., None], fr.keypoints, 0.0)
        k17[:, slots, 2] = np.where(pres, vis, 0.0)
        has_sc = pres & ~np.isnan(fr.scores) & (fr.scores != MIN_SCORE)
        any_score = has_sc.any(axis=1)
        s17[:, slots] = np.where(pres & ~np.isnan(fr.scores), fr.scores, 0.0)
        k_list = k17.reshape(P, 51).tolist()
        k_list = [[_num(v) for v in row] for row in k_list] if P and _all_integral(k17) else k_list
        s_list = s17.tolist()
        for p in range(P):
            ann: dict = {"id": int(image_id) * 100 + p, "image_id": int(image_id), "category_id": 1,
                         "track_id": int(fr.track_ids[p]), "keypoints": k_list[p],
                         "scores": s_list[p] if any_score[p] else []}
            if np.isfinite(fr.head_boxes[p]).all():
                x1, y1, x2, y2 = fr.head_boxes[p]
                ann["bbox_head"] = [_num(x1), _num(y1), _num(x2 - x1), _num(y2 - y1)]
            if np.isfinite(fr.boxes[p]).all():
                x1, y1, x2, y2 = fr.boxes[p]
                ann["bbox"] = [_num(x1), _num(y1), _num(x2 - x1), _num(y2 - y1)]
            if np.isfinite(fr.person_scores[p]):
                ann["score"] = float(fr.person_scores[p])
            annotations.append(ann)
    return {"images": images, "annotations": annotations, "categories": _categories()}


def _atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file + os.replace, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_posetrack17(path: str | os.PathLike, seq: Sequence) -> None:
    """Write a Sequence as a 2017 annolist file (atomically)."""
    _atomic_write_text(path, json.dumps(sequence_to_posetrack17(seq)))


def write_posetrack18(path: str | os.PathLike, seq: Sequence) -> None:
    """Write a Sequence as a 2018 COCO-like file (atomically)."""
    _atomic_write_text(path, json.dumps(sequence_to_posetrack18(seq)))


def convert_file(src: str | os.PathLike, dst: str | os.PathLike, to: str, role: str = "gt") -> Sequence:
    """Convert one sequence file to ``to`` = "2017" or "2018"; returns the parsed Sequence."""
    seq = read_sequence(src, role=role)
    if to == "2017":
        write_posetrack17(dst, seq)
    elif to == "2018":
        write_posetrack18(dst, seq)
    else:
        raise ValueError(f"target format must be '2017' or '2018', got {to!r}")
    return seq


# ------------------------------------------------------------------------------ estimator output -> file
def coco17_to_joints15(keypoints: np.ndarray, scores: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, 17, 2) keypoints in PoseTrack18 slot order (= COCO-17 order, eyes = head_bottom/head_top)
    -> (N, 15, 2) in poseval joint order; scores (N, 17) -> (N, 15). Ears are dropped."""
    keypoints = np.asarray(keypoints)
    idx = np.asarray(JOINT_TO_PT18_SLOT)
    out = keypoints[:, idx]
    return out, (None if scores is None else np.asarray(scores)[:, idx])


def joints15_to_coco17(keypoints: np.ndarray, scores: np.ndarray | None = None,
                       fill: float = 0.0) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverse of :func:`coco17_to_joints15`; ear slots get ``fill``."""
    keypoints = np.asarray(keypoints)
    n = keypoints.shape[0]
    out = np.full((n, 17) + keypoints.shape[2:], fill, dtype=np.float64)
    out[:, list(JOINT_TO_PT18_SLOT)] = keypoints
    sc = None
    if scores is not None:
        sc = np.full((n, 17), fill, dtype=np.float64)
        sc[:, list(JOINT_TO_PT18_SLOT)] = scores
    return out, sc


class PoseTrack18Writer:
    """Incremental PoseTrack18 prediction file for one video, valid JSON on disk at all times.

    ``add_frame`` appends one frame; every ``flush_every`` frames (and on ``close``) the whole file is
    rewritten through a temporary file and ``os.replace``, so a crash leaves the last flushed state.
    Frame entries are serialised once when added, so a flush costs one write of the file.

    Keypoints come in the 17 PoseTrack18 slots (COCO-17 order; the estimator's eye slots carry
    head_bottom / head_top, see the module docstring). For ``posetrack eval`` the image names must
    parse as ``.../<number>_<mpii|bonn|mpiinew>[_...]/<frame>.jpg`` (see :func:`posetrack18_image_name`).
    """

    def __init__(self, path: str | os.PathLike, flush_every: int = 1, vid_id: str | None = None,
                 nframes: int | None = None):
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        self.path = Path(path)
        self.flush_every = int(flush_every)
        self.vid_id = vid_id
        self.nframes = nframes
        self._images: list[str] = []
        self._annotations: list[str] = []
        self._pending = 0
        self._closed = False
        self._flush()

    def add_frame(self, file_name: str, keypoints: np.ndarray, keypoint_scores: np.ndarray,
                  track_ids: np.ndarray, boxes: np.ndarray | None = None,
                  box_scores: np.ndarray | None = None, image_id: int | None = None,
                  keypoint_mask: np.ndarray | None = None) -> None:
        """Append one frame.

        file_name:       image name (relative path as in PoseTrack18, e.g. images/val/000342_mpii_test/000000.jpg).
        keypoints:       (N, 17, 2) float image pixels, PoseTrack18 slot order.
        keypoint_scores: (N, 17) float.
        track_ids:       (N,) int, unique within the frame, in [0, 10000).
        boxes:           (N, 4) float xyxy image pixels or None; box_scores (N,) or None.
        keypoint_mask:   (N, 17) bool, False = keypoint not predicted (written 0, 0, 0); default all True.
        """
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        fi = len(self._images)
        kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 17, 2)
        n = kp.shape[0]
        sc = np.asarray(keypoint_scores, dtype=np.float64).reshape(n, 17)
        tids = np.asarray(track_ids).reshape(n)
        mask = np.ones((n, 17), bool) if keypoint_mask is None else np.asarray(keypoint_mask, bool).reshape(n, 17)
        if not np.isfinite(kp[mask]).all() or not np.isfinite(sc[mask]).all():
            raise _err("non-finite keypoint or score", self.path, fi, None, "keypoints")
        if len(set(tids.tolist())) != n:
            raise _err(f"duplicate track ids {tids.tolist()}", self.path, fi, None, "track_id")
        if n and (tids.min() < 0 or tids.max() >= MAX_TRACK_ID):
            raise _err(f"track ids must be in [0, {MAX_TRACK_ID})", self.path, fi, None, "track_id")
        if image_id is None:
            image_id = _image_id(file_name, fi + 1)
        image = {"file_name": file_name, "id": int(image_id), "frame_id": int(image_id),
                 "is_labeled": bool(n > 0)}
        if self.vid_id is not None:
            image["vid_id"] = self.vid_id
        if self.nframes is not None:
            image["nframes"] = int(self.nframes)
        self._images.append(json.dumps(image))
        for p in range(n):
            kps = []
            for s in range(17):
                if mask[p, s]:
                    x, y = float(kp[p, s, 0]), float(kp[p, s, 1])
                    kps += [x, y, 1]  # visibility 1 so a keypoint at (0, 0) is not taken as missing
                else:
                    kps += [0, 0, 0]
            ann = {"id": int(image_id) * 100 + p, "image_id": int(image_id), "category_id": 1,
                   "track_id": int(tids[p]), "keypoints": kps,
                   "scores": [float(v) if m else 0.0 for v, m in zip(sc[p], mask[p])]}
            if boxes is not None:
                x1, y1, x2, y2 = (float(v) for v in np.asarray(boxes, dtype=np.float64).reshape(n, 4)[p])
                ann["bbox"] = [x1, y1, x2 - x1, y2 - y1]
            if box_scores is not None:
                ann["score"] = float(np.asarray(box_scores).reshape(n)[p])
            self._annotations.append(json.dumps(ann))
        self._pending += 1
        if self._pending >= self.flush_every:
            self._flush()

    def _flush(self) -> None:
        text = ('{"images": [' + ", ".join(self._images) + '], "annotations": ['
                + ", ".join(self._annotations) + '], "categories": ' + json.dumps(_categories()) + "}")
        _atomic_write_text(self.path, text)
        self._pending = 0

    def close(self) -> None:
        if not self._closed:
            self._flush()
            self._closed = True

    def __enter__(self) -> "PoseTrack18Writer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
