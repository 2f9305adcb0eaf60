"""Field checks shared by the 2017 and 2018 readers: each raises :class:`PoseTrackFormatError` naming the
file, the frame, the person and the field."""
from __future__ import annotations

import json
import math
import numbers
import warnings
from typing import Any

import numpy as np

from .naming import MAX_TRACK_ID
from .records import PoseTrackWarning, format_error

FAST_NUMBER_TYPES = (int, float)  # checked by type() first: most values of a real file are plain numbers


def is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real)


def first(v: Any, path: Any, frame: int, person: int | None, fld: str) -> Any:
    """poseval's ``x[0]`` on a one-element list field."""
    if not isinstance(v, list) or len(v) == 0:
        raise format_error(f"expected a non-empty list like [value], got {v!r:.60}", path, frame, person, fld)
    return v[0]


def number(v: Any, path: Any, frame: int, person: int | None, fld: str, finite: bool = True) -> float:
    if not is_number(v):
        raise format_error(f"expected a number, got {v!r:.60}", path, frame, person, fld)
    x = float(v)
    if finite and not math.isfinite(x):
        raise format_error(f"non-finite value {x}", path, frame, person, fld)
    return x


def first_number(v: Any, path: Any, frame: int, person: int | None, fld: str) -> float:
    """A finite number written as ``[value]`` (2017 files)."""
    return number(first(v, path, frame, person, fld), path, frame, person, fld)


def all_numbers(values: list) -> bool:
    return all(type(x) in FAST_NUMBER_TYPES or is_number(x) for x in values)


def track_id(v: Any, path: Any, frame: int | None, person: int | None, fld: str = "track_id") -> int:
    if type(v) is int and v < MAX_TRACK_ID:  # fast path
        return v
    if not is_number(v) or not math.isfinite(float(v)) or float(v) != int(v):
        # poseval would accept a non-integral id; we refuse it (ids are integers in every real file).
        raise format_error(f"track id must be an integer, got {v!r:.60}", path, frame, person, fld)
    t = int(v)
    if t >= MAX_TRACK_ID:
        raise format_error(f"track id {t} >= {MAX_TRACK_ID} (poseval asserts track_id < {MAX_TRACK_ID})",
                           path, frame, person, fld)
    return t


def polygon(xs: Any, ys: Any, path: Any, frame: int, fld: str) -> np.ndarray:
    """An ignore region -> (V, 2) float64 x, y image pixels."""
    if not isinstance(xs, list) or not isinstance(ys, list):
        raise format_error("each ignore region must be a list of coordinates", path, frame, None, fld)
    if len(xs) != len(ys):
        # poseval zips and silently truncates; a malformed polygon would mis-score, so refuse it.
        raise format_error(f"ignore region has {len(xs)} x but {len(ys)} y coordinates", path, frame, None, fld)
    if len(xs) in (1, 2):
        raise format_error(f"ignore region with {len(xs)} points is not a polygon (shapely refuses it)",
                           path, frame, None, fld)
    try:
        poly = np.array([xs, ys], dtype=np.float64).T.reshape(-1, 2)
    except (TypeError, ValueError):
        raise format_error("ignore region coordinates must be numbers", path, frame, None, fld) from None
    if not np.isfinite(poly).all():
        raise format_error("non-finite ignore region coordinate", path, frame, None, fld)
    return poly


def warn(seq_warnings: list[str], msg: str) -> None:
    """Record ``msg`` in the sequence's warnings and raise it as a :class:`PoseTrackWarning`."""
    seq_warnings.append(msg)
    warnings.warn(msg, PoseTrackWarning, stacklevel=3)


def hashable(v: Any) -> Any:
    """A JSON value usable as a dict key (poseval compares ids by value)."""
    return json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v
