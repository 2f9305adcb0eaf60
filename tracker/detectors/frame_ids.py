"""Which image of a detection / annotation file a frame is (file-based detectors).

COCO detection results carry only an ``image_id``. A frame is matched, in this order, by
1. an explicit ``image_ids`` mapping (frame index -> image id);
2. an annotation file (PoseTrack18 / COCO ``images`` with ``id`` and ``file_name``): the frame's name equal
   to a ``file_name``, else equal to a unique file base name or stem (``000000.jpg`` / ``000000``), else
   (ground truth only, or ``match_by_order=True``) the frame index as position in ``images``;
3. the results' own ``file_name`` field, when present;
4. the COCO convention: a frame named ``000000000785.jpg`` is image id 785;
5. the PoseTrack18 image-id convention (``eval_posetrack.parse_posetrack18_file_name``, e.g. 10034180007 for
   frame 7 of ``003418_mpii_test``) when the ``sequence`` is given; the frame number comes from the frame's
   name (``000007.jpg`` -> 7) or its index.
Rules 4 and 5 only match ids that exist in the results file.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from eval_posetrack import parse_posetrack18_file_name
from tracker.sources import Frame

from .base import DetectionFileError


def load_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        with path.open("r", encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DetectionFileError(f"{path}: not valid JSON ({exc})") from exc


def frame_number(frame: Frame) -> int:
    """Frame number from the frame's name (``000007.jpg`` -> 7), else its index."""
    if frame.name:
        m = re.search(r"(\d+)$", Path(frame.name).stem)
        if m:
            return int(m.group(1))
    return frame.index


def posetrack_image_id(sequence: str | None, frame: Frame) -> int | None:
    """The PoseTrack18 image id of ``frame`` of ``sequence`` (e.g. "003418_mpii_test"); None without a
    sequence or when the name does not follow PoseTrack's naming."""
    if sequence is None:
        return None
    try:
        return parse_posetrack18_file_name(f"{Path(sequence).name}/{frame_number(frame):06d}.jpg")[1]
    except ValueError:
        return None


class ImageTable:
    """image id <-> file name lookup from the ``images`` of a PoseTrack18 / COCO annotation file.

    entries: (image id, file name) pairs in file order. sequence: keep only the images in a folder of that name.
    """

    def __init__(self, path: Path, entries: list[tuple[int, str]], sequence: str | None):
        entries = [(int(i), n.replace("\\", "/")) for i, n in entries]
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

    @classmethod
    def from_annotation_file(cls, path: Path, sequence: str | None) -> ImageTable:
        """Read only ``images[].id`` / ``images[].file_name`` of an annotation file, checking each."""
        data = load_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise DetectionFileError(f"{path}: missing list field 'images' (need a PoseTrack18/COCO annotation "
                                     f"file to map image ids to file names)")
        entries = []
        for k, im in enumerate(data["images"]):
            where = f"{path}: images[{k}]"
            if not isinstance(im, dict):
                raise DetectionFileError(f"{where}: must be an object")
            image_id = im.get("id")
            if isinstance(image_id, bool) or not isinstance(image_id, (int, float)) or not float(image_id).is_integer():
                raise DetectionFileError(f"{where}: field 'id' must be an integer, got {image_id!r}")
            name = im.get("file_name")
            if not isinstance(name, str):
                raise DetectionFileError(f"{where}: missing string field 'file_name'")
            entries.append((int(image_id), name))
        return cls(path, entries, sequence)

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
