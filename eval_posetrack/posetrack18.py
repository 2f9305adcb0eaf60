"""PoseTrack 2018 (COCO-like) files: reader with validation, writer, and :class:`PoseTrack18Writer` that
writes a prediction file frame by frame.

The reader reproduces what poseval keeps of a file (``eval_helpers.load_data_dir`` +
``convert.Video.from_new(...)[0].to_old()``: the first video of the file, keypoints mapped to the 15 joints by
the category's keypoint names); everything poseval would reject, and a few things it would silently mis-score
(NaN/inf coordinates, negative head boxes), raise :class:`PoseTrackFormatError` naming the file, the frame
index and the field. Files are written with the 17 PoseTrack18 slots (``records.PT18_KEYPOINT_NAMES``).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import fields
from .jsonfile import atomic_write_text, json_number
from .naming import MAX_TRACK_ID, AnnotationIds, image_id_of, parse_posetrack18_file_name
from .records import (
    JOINT_NAMES,
    JOINT_TO_PT18_SLOT,
    MIN_SCORE,
    NUM_JOINTS,
    NUM_PT18_SLOTS,
    PT18_KEYPOINT_NAMES,
    PT18_SKELETON,
    Frame,
    Sequence,
    format_error,
)


# ----------------------------------------------------------------------------------------------- reader
def _conversion_table(data: dict, path: Any) -> list[int]:
    cats = data.get("categories")
    if not isinstance(cats, list) or len(cats) != 1 or not isinstance(cats[0], dict):
        raise format_error("must hold exactly one category (poseval asserts)", path, None, None, "categories")
    cat = cats[0]
    if cat.get("name") != "person":
        raise format_error(f"the category must be named 'person', got {cat.get('name')!r}", path, None, None,
                   "categories[0].name")
    names = cat.get("keypoints")
    if not isinstance(names, list) or len(names) not in (15, 17):
        raise format_error("must list 15 or 17 keypoint names", path, None, None, "categories[0].keypoints")
    table = [JOINT_NAMES.index(n) if isinstance(n, str) and n in JOINT_NAMES else -1 for n in names]
    missing = [JOINT_NAMES[j] for j in range(NUM_JOINTS) if j not in table]
    if missing:
        raise format_error(f"cannot map keypoints: {missing} not found among {names}", path, None, None,
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
            raise format_error(f"annotation {ai} has no track id (required)", path, fi, pi, "track_id")
        tids[ai] = fields.track_id(a["track_id"], path, fi, pi)
        k = a.get("keypoints")
        if not isinstance(k, list) or len(k) != 3 * n_slots:
            raise format_error(f"annotation {ai}: 'keypoints' must be a list of {3 * n_slots} numbers "
                       f"(x, y, v for each of the {n_slots} category keypoints)", path, fi, pi, "keypoints")
        kps.append(k)
        s_list = a.get("scores")
        if s_list:
            if not isinstance(s_list, list) or len(s_list) < need_scores:
                raise format_error(f"annotation {ai}: 'scores' must list one score per keypoint ({n_slots})",
                           path, fi, pi, "scores")
            sc_rows.append(s_list[:n_slots] + [0.0] * (n_slots - len(s_list)))
            sc_idx.append(ai)
        if "bbox_head" in a:
            hb = a["bbox_head"]
            if not isinstance(hb, list) or len(hb) != 4 or not fields.all_numbers(hb):
                raise format_error(f"annotation {ai}: bbox_head must be [x, y, w, h]", path, fi, pi, "bbox_head")
            hb = [float(x) for x in hb]
            if role == "gt":
                if not all(math.isfinite(x) for x in hb):
                    raise format_error(f"annotation {ai}: non-finite bbox_head", path, fi, pi, "bbox_head")
                if hb[2] < 0 or hb[3] < 0:
                    raise format_error(f"annotation {ai}: bbox_head {hb} has a negative width/height",
                               path, fi, pi, "bbox_head")
            heads[ai] = (hb[0], hb[1], hb[0] + hb[2], hb[1] + hb[3])
        bb = a.get("bbox")
        if bb is not None and isinstance(bb, list) and len(bb) == 4 and fields.all_numbers(bb):
            box_rows.append(bb)
            box_idx.append(ai)
        ps = a.get("score")
        if ps is not None and (type(ps) in fields.FAST_NUMBER_TYPES or fields.is_number(ps)):
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
                if not all(fields.is_number(v) for v in r):
                    fi, pi = frame_of.get(ai, (None, None))
                    raise format_error(f"annotation {ai}: values must be numbers", path, fi, pi, fld)
            raise format_error("values must be numbers", path, None, None, fld)
        return arr.astype(np.float64)

    karr = numeric(kps, list(range(A)), "keypoints", 3 * n_slots).reshape(A, n_slots, 3)
    bad = ~np.isfinite(karr).all(axis=(1, 2))
    if bad.any():
        ai = int(np.argmax(bad))
        fi, pi = frame_of.get(ai, (None, None))
        raise format_error(f"annotation {ai}: non-finite keypoint value", path, fi, pi, "keypoints")
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
        raise format_error("missing or empty (poseval needs >= 1 frame)", path, None, None, "images")
    if not isinstance(anns, list):
        raise format_error("must be a list", path, None, None, "annotations")
    first_info: dict = {}
    for ii, im in enumerate(images):
        if not isinstance(im, dict) or "id" not in im:
            raise format_error("image entry without 'id'", path, ii, None, "images.id")
        first_info.setdefault(fields.hashable(im["id"]), im)
    by_image: dict = {}
    for ai, a in enumerate(anns):
        if not isinstance(a, dict) or "image_id" not in a:
            raise format_error(f"annotation {ai} has no 'image_id'", path, None, None, "annotations.image_id")
        by_image.setdefault(fields.hashable(a["image_id"]), []).append(ai)
    seq_warn: list[str] = []
    mapped_slots = [s for s, j in enumerate(table) if j >= 0]
    need_scores = max(mapped_slots) + 1
    # frames of the first video, in image order
    video = None
    dropped = 0
    frame_defs = []  # (image index, image info, annotation indices)
    frame_of: dict = {}
    for ii, im0 in enumerate(images):
        key = fields.hashable(im0["id"])
        im = first_info[key]  # poseval looks images up by id: the first image with this id
        fname = im.get("file_name")
        if not isinstance(fname, str):
            raise format_error("missing file name", path, ii, None, "images.file_name")
        try:
            vid, _, _ = parse_posetrack18_file_name(fname)
        except ValueError as exc:
            raise format_error(f"cannot parse file name {fname!r}: {exc}", path, ii, None, "images.file_name") from None
        if video is None:
            video = vid
        elif vid != video:
            dropped += 1  # poseval evaluates only the first video of a file
            continue
        idx = by_image.get(key, [])
        for pi, ai in enumerate(idx):
            frame_of.setdefault(ai, (ii, pi))
        frame_defs.append((ii, im, idx))
    attached = {ai for im in images for ai in by_image.get(fields.hashable(im["id"]), [])}
    if len(attached) < len(anns):
        fields.warn(seq_warn, f"{path}: {len(anns) - len(attached)} of {len(anns)} annotations have an 'image_id' "
                              f"that matches no image (field 'annotations.image_id'); poseval ignores them")
    karr, sarr, has_scores, tids_all, heads_all, boxes_all, pscores_all = _annotation_arrays(
        anns, n_slots, need_scores, path, role, frame_of, attached)
    if role == "pred":
        if any(not has_scores[ai] for _, _, idx in frame_defs for ai in idx):
            fields.warn(seq_warn, f"{path}: prediction scores are missing; using the official fallback score "
                            f"{MIN_SCORE:g}")
        if sarr.size and np.isnan(sarr[has_scores][:, mapped_slots]).any():
            ai = int(np.nonzero(has_scores & np.isnan(sarr[:, mapped_slots]).any(axis=1))[0][0])
            fi, pi = frame_of.get(ai, (None, None))
            raise format_error(f"annotation {ai}: NaN score", path, fi, pi, "scores")
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
    for ii, im, idx in frame_defs:
        ignore: list[np.ndarray] = []
        if "ignore_regions_x" in im and "ignore_regions_y" in im:
            rx, ry = im["ignore_regions_x"], im["ignore_regions_y"]
            if not isinstance(rx, list) or not isinstance(ry, list) or len(rx) != len(ry):
                raise format_error("ignore_regions_x and ignore_regions_y must be lists of equal length",
                           path, ii, None, "ignore_regions_x")
            ignore = [fields.polygon(xs, ys, path, ii, f"ignore_regions_x[{r}]")
                      for r, (xs, ys) in enumerate(zip(rx, ry))]
        ix = np.asarray(idx, dtype=np.int64)
        tids = tids_all[ix]
        if role == "pred" and len(set(tids.tolist())) != len(tids):
            vals, counts = np.unique(tids, return_counts=True)
            dup = int(vals[counts > 1][0])
            pi = int(np.nonzero(tids == dup)[0][1])
            raise format_error(f"duplicate track id {dup} in one frame (poseval: non-unique tracklet IDs)",
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
        fields.warn(seq_warn, f"{path}: {dropped} image(s) belong to another video than the first one "
                        f"({video}); poseval evaluates only the first video of a file and drops them")
    name = Path(str(path)).name.split(".")[0]
    return Sequence(name=name, frames=frames, path=str(path), source_format="2018", vid_id=video,
                    warnings=seq_warn)


# ----------------------------------------------------------------------------------------------- writers
def _all_integral(a: np.ndarray) -> bool:
    return bool(np.all(a == np.round(a)))


def _categories() -> list[dict]:
    return [{"supercategory": "person", "id": 1, "name": "person", "keypoints": list(PT18_KEYPOINT_NAMES),
             "skeleton": PT18_SKELETON}]


def sequence_to_posetrack18(seq: Sequence) -> dict:
    """Sequence -> 2018 COCO-like dict with the 17 PoseTrack18 slots (ears written as 0, 0, 0)."""
    images, annotations = [], []
    n = len(seq.frames)
    ann_ids = AnnotationIds()
    for fi, fr in enumerate(seq.frames):
        image_id = fr.image_id if fr.image_id is not None else image_id_of(fr.image_name, fi + 1)
        image: dict = {"file_name": fr.image_name, "id": int(image_id), "frame_id": int(image_id),
                       "nframes": n, "is_labeled": bool(fr.labeled)}
        if seq.vid_id is not None:
            image["vid_id"] = seq.vid_id
        if fr.ignore_regions:
            image["ignore_regions_x"] = [[json_number(x) for x in poly[:, 0]] for poly in fr.ignore_regions]
            image["ignore_regions_y"] = [[json_number(y) for y in poly[:, 1]] for poly in fr.ignore_regions]
        images.append(image)
        P = fr.num_persons
        slots = np.asarray(JOINT_TO_PT18_SLOT)
        k17 = np.zeros((P, NUM_PT18_SLOTS, 3))
        s17 = np.zeros((P, NUM_PT18_SLOTS))
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
        k_list = k17.reshape(P, 3 * NUM_PT18_SLOTS).tolist()
        k_list = [[json_number(v) for v in row] for row in k_list] if P and _all_integral(k17) else k_list
        s_list = s17.tolist()
        for p in range(P):
            ann: dict = {"id": ann_ids.take(image_id, p), "image_id": int(image_id), "category_id": 1,
                         "track_id": int(fr.track_ids[p]), "keypoints": k_list[p],
                         "scores": s_list[p] if any_score[p] else []}
            if np.isfinite(fr.head_boxes[p]).all():
                x1, y1, x2, y2 = fr.head_boxes[p]
                ann["bbox_head"] = [json_number(v) for v in (x1, y1, x2 - x1, y2 - y1)]
            if np.isfinite(fr.boxes[p]).all():
                x1, y1, x2, y2 = fr.boxes[p]
                ann["bbox"] = [json_number(v) for v in (x1, y1, x2 - x1, y2 - y1)]
            if np.isfinite(fr.person_scores[p]):
                ann["score"] = float(fr.person_scores[p])
            annotations.append(ann)
    return {"images": images, "annotations": annotations, "categories": _categories()}


def write_posetrack18(path: str | os.PathLike, seq: Sequence) -> None:
    """Write a Sequence as a 2018 COCO-like file (atomically)."""
    atomic_write_text(path, json.dumps(sequence_to_posetrack18(seq)))


class PoseTrack18Writer:
    """Incremental PoseTrack18 prediction file for one video, valid JSON on disk at all times.

    ``add_frame`` appends one frame; every ``flush_every`` frames (and on ``close``) the whole file is
    rewritten through a temporary file and ``os.replace``, so a crash leaves the last flushed state.
    Frame entries are serialised once when added, so a flush costs one write of the file.

    Keypoints come in the 17 PoseTrack18 slots (COCO-17 order; the estimator's eye slots carry
    head_bottom / head_top, see :mod:`eval_posetrack.records`). For ``posetrack eval`` the image names must
    parse as ``.../<number>_<mpii|bonn|mpiinew>[_...]/<frame>.jpg`` (see ``naming.posetrack18_image_name``).
    Annotation ids are unique within the file for any number of persons (``naming.AnnotationIds``).
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
        self._ann_ids = AnnotationIds()
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
        track_ids:       (N,) int, unique within the frame, in [0, MAX_TRACK_ID) = [0, 10000).
        boxes:           (N, 4) float xyxy image pixels or None; box_scores (N,) or None.
        image_id:        the image id written; default: parsed from ``file_name``, else frame index + 1.
        keypoint_mask:   (N, 17) bool, False = keypoint not predicted (written 0, 0, 0); default all True.
        """
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        fi = len(self._images)
        kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_PT18_SLOTS, 2)
        n = kp.shape[0]
        sc = np.asarray(keypoint_scores, dtype=np.float64).reshape(n, NUM_PT18_SLOTS)
        tids = np.asarray(track_ids).reshape(n)
        mask = (np.ones((n, NUM_PT18_SLOTS), bool) if keypoint_mask is None
                else np.asarray(keypoint_mask, bool).reshape(n, NUM_PT18_SLOTS))
        if not np.isfinite(kp[mask]).all() or not np.isfinite(sc[mask]).all():
            raise format_error("non-finite keypoint or score", self.path, fi, None, "keypoints")
        if len(set(tids.tolist())) != n:
            raise format_error(f"duplicate track ids {tids.tolist()}", self.path, fi, None, "track_id")
        if n and (tids.min() < 0 or tids.max() >= MAX_TRACK_ID):
            raise format_error(f"track ids must be in [0, {MAX_TRACK_ID})", self.path, fi, None, "track_id")
        if image_id is None:
            image_id = image_id_of(file_name, fi + 1)
        image = {"file_name": file_name, "id": int(image_id), "frame_id": int(image_id),
                 "is_labeled": bool(n > 0)}
        if self.vid_id is not None:
            image["vid_id"] = self.vid_id
        if self.nframes is not None:
            image["nframes"] = int(self.nframes)
        self._images.append(json.dumps(image))
        for p in range(n):
            kps = []
            for s in range(NUM_PT18_SLOTS):
                if mask[p, s]:
                    x, y = float(kp[p, s, 0]), float(kp[p, s, 1])
                    kps += [x, y, 1]  # visibility 1 so a keypoint at (0, 0) is not taken as missing
                else:
                    kps += [0, 0, 0]
            ann = {"id": self._ann_ids.take(image_id, p), "image_id": int(image_id), "category_id": 1,
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
        atomic_write_text(self.path, text)
        self._pending = 0

    def close(self) -> None:
        if not self._closed:
            self._flush()
            self._closed = True

    def __enter__(self) -> PoseTrack18Writer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
