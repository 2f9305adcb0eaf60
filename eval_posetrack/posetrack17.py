"""PoseTrack 2017 ("annolist") files: reader with validation and writer.

The reader reproduces what poseval keeps of a file (``eval_helpers.load_data_dir``); everything poseval would
reject, and a few things it would silently mis-score (NaN/inf coordinates, negative head boxes), raise
:class:`PoseTrackFormatError` naming the file, the frame index and the field.
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
from .records import MIN_SCORE, NUM_JOINTS, Frame, Sequence, format_error


def parse_posetrack17(data: dict, path: Any = "<memory>", role: str = "pred") -> Sequence:
    """A 2017 ``{"annolist": [...]}`` dict -> Sequence (see module docstring). ``role`` "gt" or "pred"."""
    annolist = data["annolist"]
    if not isinstance(annolist, list):
        raise format_error("'annolist' must be a list of frames", path, None, None, "annolist")
    seq_warn: list[str] = []
    missing_score = unknown_id = False
    frames = []
    for fi, entry in enumerate(annolist):
        if not isinstance(entry, dict):
            raise format_error("frame entry must be an object", path, fi)
        image_name = ""
        img = entry.get("image")
        if isinstance(img, list) and img and isinstance(img[0], dict):
            image_name = str(img[0].get("name", ""))
        ignore: list[np.ndarray] = []
        if "ignore_regions" in entry:
            regions = entry["ignore_regions"]
            if not isinstance(regions, list):
                raise format_error("must be a list of {'point': [...]}", path, fi, None, "ignore_regions")
            for ri, region in enumerate(regions):
                pts = region.get("point") if isinstance(region, dict) else None
                if not isinstance(pts, list):
                    raise format_error(f"region {ri} has no 'point' list", path, fi, None, "ignore_regions")
                try:
                    xs = [fields.first(p["x"], path, fi, None, "ignore_regions.x") for p in pts]
                    ys = [fields.first(p["y"], path, fi, None, "ignore_regions.y") for p in pts]
                except (KeyError, TypeError):
                    raise format_error(f"region {ri}: each point needs 'x': [x], 'y': [y]", path, fi, None,
                               "ignore_regions") from None
                ignore.append(fields.polygon(xs, ys, path, fi, f"ignore_regions[{ri}]"))
        rects = entry.get("annorect")
        if not isinstance(rects, list):
            raise format_error("missing or not a list", path, fi, None, "annorect")
        kps, pres, scs, tids, heads, vis, pscores, extras, extra_sc = [], [], [], [], [], [], [], [], []
        seen_ids: list[int] = []
        for ri, rect in enumerate(rects):
            if not isinstance(rect, dict):
                raise format_error("person entry must be an object", path, fi, ri, "annorect")
            if "track_id" in rect:
                t = fields.track_id(fields.first(rect["track_id"], path, fi, ri, "track_id"), path, fi, ri)
                if role == "pred":
                    if t in seen_ids:
                        raise format_error(f"duplicate track id {t} in one frame (poseval: non-unique tracklet IDs)",
                                   path, fi, ri, "track_id")
                    seen_ids.append(t)
            # poseval's rectHasPoints
            ap = rect.get("annopoints", None)
            if "annopoints" not in rect:
                continue
            if not isinstance(ap, list):
                raise format_error("must be a list like [{'point': [...]}]", path, fi, ri, "annopoints")
            if len(ap) == 0:
                continue
            if not isinstance(ap[0], dict):
                raise format_error("must be a list like [{'point': [...]}]", path, fi, ri, "annopoints")
            if len(ap[0]) == 0 or "point" not in ap[0]:
                continue
            points = ap[0]["point"]
            if not isinstance(points, list):
                raise format_error("must be a list of points", path, fi, ri, "annopoints.point")
            if "track_id" not in rect:
                raise format_error("person with keypoints has no track id", path, fi, ri, "track_id")
            tids.append(t)
            k = np.zeros((NUM_JOINTS, 2))
            p = np.zeros(NUM_JOINTS, bool)
            s = np.full(NUM_JOINTS, np.nan)
            v = np.full(NUM_JOINTS, np.nan)
            person = len(tids) - 1
            for pi, pt in enumerate(points):
                if not isinstance(pt, dict) or "id" not in pt:
                    raise format_error(f"point {pi} has no 'id'", path, fi, ri, "annopoints.point.id")
                if "x" not in pt or "y" not in pt:
                    raise format_error(f"point {pi} has no 'x'/'y'", path, fi, ri, "annopoints.point.x")
                x = fields.first_number(pt["x"], path, fi, ri, "annopoints.point.x")
                y = fields.first_number(pt["y"], path, fi, ri, "annopoints.point.y")
                jid = pt["id"]
                j = -1
                if jid is not None:
                    j0 = fields.first(jid, path, fi, ri, "annopoints.point.id")
                    if fields.is_number(j0) and float(j0) in range(NUM_JOINTS):
                        j = int(j0)
                if j < 0:
                    unknown_id = True
                if "score" in pt:
                    sv = fields.first(pt["score"], path, fi, ri, "annopoints.point.score")
                    if not fields.is_number(sv) or math.isnan(float(sv)):
                        raise format_error(f"point {pi}: score must be a number, got {sv!r:.40}", path, fi, ri,
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
                    if isinstance(iv, list) and iv and fields.is_number(iv[0]):
                        v[j] = float(iv[0])
                else:
                    extras.append((person, j, x, y))
                    extra_sc.append(sv)
            if role == "gt" and all(f in rect for f in ("x1", "y1", "x2", "y2")):
                hb = [fields.first_number(rect[f], path, fi, ri, f) for f in ("x1", "y1", "x2", "y2")]
                if hb[2] < hb[0] or hb[3] < hb[1]:
                    raise format_error(f"head box x1,y1,x2,y2={hb} has a negative size", path, fi, ri, "x2/y2")
            elif all(f in rect for f in ("x1", "y1", "x2", "y2")):
                try:
                    hb = [float(rect[f][0]) for f in ("x1", "y1", "x2", "y2")]
                except (TypeError, ValueError, IndexError, KeyError):
                    hb = [np.nan] * 4
            else:
                hb = [np.nan] * 4
            heads.append(hb)
            ps = rect.get("score")
            pscores.append(float(ps[0]) if isinstance(ps, list) and ps and fields.is_number(ps[0]) else np.nan)
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
        fields.warn(seq_warn, f"{path}: prediction score is missing for some keypoints; using the official "
                        f"fallback score {MIN_SCORE:g}")
    if unknown_id:
        fields.warn(seq_warn, f"{path}: some keypoints have ids outside 0..14; poseval ignores them")
    name = Path(str(path)).name.split(".")[0]
    return Sequence(name=name, frames=frames, path=str(path), source_format="2017", warnings=seq_warn)


def sequence_to_posetrack17(seq: Sequence) -> dict:
    """Sequence -> 2017 ``{"annolist": [...]}`` dict (what poseval reads back identically)."""
    annolist = []
    for fi, fr in enumerate(seq.frames):
        entry: dict = {"image": [{"name": fr.image_name}], "imgnum": [fi + 1]}
        if fr.ignore_regions:
            entry["ignore_regions"] = [{"point": [{"x": [json_number(x)], "y": [json_number(y)]} for x, y in poly]}
                                       for poly in fr.ignore_regions]
        rects = []
        for p in range(fr.num_persons):
            rect: dict = {"track_id": [int(fr.track_ids[p])]}
            if np.isfinite(fr.head_boxes[p]).all():
                x1, y1, x2, y2 = fr.head_boxes[p]
                rect.update(x1=[json_number(x1)], y1=[json_number(y1)], x2=[json_number(x2)], y2=[json_number(y2)])
            if np.isfinite(fr.person_scores[p]):
                rect["score"] = [float(fr.person_scores[p])]
            points = []
            for j in range(NUM_JOINTS):
                if fr.present[p, j]:
                    pt: dict = {"id": [j], "x": [json_number(fr.keypoints[p, j, 0])],
                                "y": [json_number(fr.keypoints[p, j, 1])]}
                    if not np.isnan(fr.scores[p, j]) and fr.scores[p, j] != MIN_SCORE:
                        pt["score"] = [float(fr.scores[p, j])]
                    if np.isfinite(fr.visibility[p, j]):
                        pt["is_visible"] = [json_number(fr.visibility[p, j])]
                    points.append(pt)
            rect["annopoints"] = [{"point": points}]
            rects.append(rect)
        entry["annorect"] = rects
        entry["is_labeled"] = [1 if fr.labeled else 0]
        annolist.append(entry)
    return {"annolist": annolist}


def write_posetrack17(path: str | os.PathLike, seq: Sequence) -> None:
    """Write a Sequence as a 2017 annolist file (atomically)."""
    atomic_write_text(path, json.dumps(sequence_to_posetrack17(seq)))
