"""Any PoseTrack sequence file: format detection (2017 or 2018, as poseval decides), reading, conversion.

:func:`read_sequence` is the project's one reader of PoseTrack annotation and prediction files.
"""
from __future__ import annotations

import os
from typing import Any

from .jsonfile import load_json
from .posetrack17 import parse_posetrack17, write_posetrack17
from .posetrack18 import parse_posetrack18, write_posetrack18
from .records import PoseTrackFormatError, Sequence, format_error

ROLES = ("gt", "pred")
FORMATS = ("2017", "2018")


def parse_sequence(data: Any, path: Any = "<memory>", role: str = "pred") -> Sequence:
    """Parsed JSON of one sequence file -> Sequence; the format is detected like poseval
    (``"annolist" in data`` -> 2017, else 2018). ``path`` only names the file in error messages.

    role: "gt" (head boxes checked, duplicate track ids allowed) or "pred" (duplicate track ids in a frame
    refused, missing scores warned about).
    """
    if role not in ROLES:
        raise ValueError(f"role must be 'gt' or 'pred', got {role!r}")
    if not isinstance(data, dict):
        raise format_error("top level must be a JSON object", path)
    try:
        if "annolist" in data:
            return parse_posetrack17(data, path, role)
        return parse_posetrack18(data, path, role)
    except PoseTrackFormatError:
        raise
    except (KeyError, TypeError, IndexError, AttributeError) as exc:  # structure we did not foresee
        raise format_error(f"malformed PoseTrack file ({type(exc).__name__}: {exc})", path) from None


def read_sequence(path: str | os.PathLike, role: str = "pred") -> Sequence:
    """Read and validate one PoseTrack 2017 or 2018 sequence file (format detected like poseval).

    Returns a :class:`Sequence` (its frames in file order; a 2018 file contributes its first video only, as
    in poseval). Raises FileNotFoundError, or :class:`PoseTrackFormatError` (a ValueError) naming the file,
    frame, person and field.
    """
    return parse_sequence(load_json(path), path, role)


def write_sequence(path: str | os.PathLike, seq: Sequence, to: str) -> None:
    """Write ``seq`` as a ``to`` = "2017" or "2018" file (atomically)."""
    if to == "2017":
        write_posetrack17(path, seq)
    elif to == "2018":
        write_posetrack18(path, seq)
    else:
        raise ValueError(f"target format must be '2017' or '2018', got {to!r}")


def convert_file(src: str | os.PathLike, dst: str | os.PathLike, to: str, role: str = "gt") -> Sequence:
    """Convert one sequence file to ``to`` = "2017" or "2018"; returns the parsed Sequence."""
    if to not in FORMATS:
        raise ValueError(f"target format must be '2017' or '2018', got {to!r}")
    seq = read_sequence(src, role=role)
    write_sequence(dst, seq, to)
    return seq
