"""JSON files: reading with an error naming the file, atomic writes, numbers written as the official files."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .records import format_error


def load_json(path: str | os.PathLike) -> Any:
    """The parsed JSON of ``path``; :class:`PoseTrackFormatError` naming the file if it is not valid JSON
    (FileNotFoundError if it does not exist)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise format_error(f"not valid JSON ({exc})", path) from None
    except UnicodeDecodeError as exc:
        raise format_error(f"not a UTF-8 JSON file ({exc})", path) from None


def atomic_write_chunks(path: str | os.PathLike, chunks: Iterable[str]) -> None:
    """Write the text ``chunks`` to ``path`` through a temporary file + fsync + os.replace, so readers never see
    half a file (streamed: the chunks need not fit in memory). The file gets the usual mode (0666 & ~umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_chunks`)."""
    atomic_write_chunks(path, (text,))


def json_number(v: float) -> float | int:
    """``v`` as an int when it is integral (the official files write 12, not 12.0), else as a float."""
    v = float(v)
    return int(v) if v.is_integer() and abs(v) < 2 ** 53 else v
