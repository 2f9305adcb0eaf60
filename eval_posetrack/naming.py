"""PoseTrack naming and id rules: sequence names, image file names, image ids, track ids, annotation ids.

The one definition of these rules in the project. They are poseval's (``eval_helpers.posetrack18_fname2id``
and the ``track_id < 10000`` assertion of ``eval_helpers.load_data_dir``):

- a sequence (video) is named ``<number>_<type>[_<anything>]`` with type ``mpii``, ``bonn`` or ``mpiinew``,
  e.g. ``000342_mpii_test``; a 2018 ``file_name`` is ``.../<sequence>/<frame number>.<ext>`` with the frame
  number in [0, 10000);
- the image id is ``type code * 10^10 + sequence number * 10^4 + frame number`` (type codes mpii 1, bonn 2,
  mpiinew 3);
- track ids are integers in [0, :data:`MAX_TRACK_ID`).
"""
from __future__ import annotations

import os

SEQUENCE_TYPES: dict[str, int] = {"mpii": 1, "bonn": 2, "mpiinew": 3}  # type -> code in image ids
MAX_TRACK_ID = 10000  # poseval asserts track_id < MAX_TRACK_ID
MAX_FRAMES = 10000  # frame numbers are in [0, MAX_FRAMES) (4 decimal digits of the image id)
# The official annotation files number the annotations of an image image_id * 100 + person index.
ANNOTATIONS_PER_IMAGE_ID = 100


def parse_sequence_name(name: str) -> tuple[int, str]:
    """``"000342_mpii_test"`` -> (342, "mpii"); raises ValueError naming what is wrong."""
    tok = name.split("_")
    if len(tok) < 2:
        raise ValueError(f"folder {name!r} is not <number>_<mpii|bonn|mpiinew>[_...]")
    try:
        number = int(tok[0])
    except ValueError:
        raise ValueError(f"folder {name!r} does not start with a sequence number") from None
    if tok[1] not in SEQUENCE_TYPES:
        raise ValueError(f"folder {name!r}: sequence type {tok[1]!r} is not mpii, bonn or mpiinew")
    return number, tok[1]


def is_sequence_name(name: str) -> bool:
    """True iff ``name`` is a PoseTrack sequence name (see :func:`parse_sequence_name`)."""
    try:
        parse_sequence_name(name)
    except ValueError:
        return False
    return True


def parse_posetrack18_file_name(file_name: str) -> tuple[str, int, int]:
    """poseval's ``posetrack18_fname2id`` on a 2018 ``file_name`` -> (video id, image id, frame number).

    ``.../<digits>_<mpii|bonn|mpiinew>[_...]/<number>.<ext>``; raises ValueError otherwise.
    """
    seq_dir = os.path.basename(os.path.dirname(file_name))
    number, kind = parse_sequence_name(seq_dir)
    try:
        frameidx = int(os.path.basename(file_name).split(".")[0])
    except ValueError:
        raise ValueError(f"image name {os.path.basename(file_name)!r} is not <frame number>.<ext>") from None
    if not 0 <= frameidx < MAX_FRAMES:
        raise ValueError(f"frame number {frameidx} outside [0, {MAX_FRAMES})")
    return seq_dir.split("_")[0], SEQUENCE_TYPES[kind] * 10000000000 + number * MAX_FRAMES + frameidx, frameidx


def posetrack18_image_name(video: str, frame_index: int, split: str = "val") -> str:
    """A ``file_name`` poseval can parse: ``images/<split>/<video>/<frame_index:06d>.jpg``.

    ``video`` must look like ``000342_mpii_test`` (number, mpii|bonn|mpiinew, optional suffix).
    """
    name = f"images/{split}/{video}/{frame_index:06d}.jpg"
    parse_posetrack18_file_name(name)
    return name


def image_id_of(file_name: str, fallback: int) -> int:
    """The image id of a 2018 ``file_name`` (:func:`parse_posetrack18_file_name`), or ``fallback``."""
    try:
        return parse_posetrack18_file_name(file_name)[1]
    except ValueError:
        return fallback


class AnnotationIds:
    """Annotation ids of one 2018 file, unique within the file for any number of persons per image.

    Person ``p`` of image ``image_id`` gets ``image_id * 100 + p`` (the official files' numbering) when
    ``p < 100`` and that id is still free; any other person gets the next free id of a counter starting at 1
    (the official numbering of a parsed image id is >= 10^12, so the two ranges meet only for
    made-up image ids, and then the free-id check keeps them apart). poseval does not read annotation ids;
    COCO tools need them unique.
    """

    def __init__(self) -> None:
        self._used: set[int] = set()
        self._next = 1

    def take(self, image_id: int, person: int) -> int:
        """The id of person ``person`` (0-based index in its image) of image ``image_id``."""
        ann_id = int(image_id) * ANNOTATIONS_PER_IMAGE_ID + person
        if person >= ANNOTATIONS_PER_IMAGE_ID or ann_id in self._used:
            while self._next in self._used:
                self._next += 1
            ann_id = self._next
        self._used.add(ann_id)
        return ann_id
