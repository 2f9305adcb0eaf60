"""Frame sources: video files, webcams, network streams, image folders and PoseTrack sequences.

Every source yields :class:`Frame` objects one at a time (video files are decoded in small chunks, never
the whole video at once) and is a context manager::

    with open_source("clip.mp4") as source:
        for frame in source:          # frame.image: (H, W, 3) uint8 BGR
            ...

Dispatch of :func:`open_source` (first match wins):

* ``int`` or a string of digits (``0``, ``"1"``) -> webcam device through ``cv2.VideoCapture``;
* ``rtsp://``, ``rtmp://``, ``http://``, ``https://``, ``udp://``, ``tcp://`` URLs -> network stream through
  ``cv2.VideoCapture`` (FFmpeg backend; MJPEG over HTTP works with opencv-python-headless);
* a folder -> its images (jpg/jpeg/png/bmp) in natural order (``2.jpg`` before ``10.jpg``); a PoseTrack
  sequence folder is such a folder, and its name is the sequence name;
* a ``.json`` file -> a PoseTrack18 / COCO annotation file: its ``images`` in file order, each
  ``file_name`` resolved against ``image_root``;
* an image file -> a single frame;
* any other file -> a video file through ``decord``.

A missing or unreadable source raises :class:`SourceError` (an ``OSError``) naming the path. A frame that
fails to decode in the middle of a video or folder is reported with a :class:`FrameSkippedWarning` naming
the source and the frame index, and skipped: iteration goes on with the next frame. ``Frame.index`` is the
frame's position in the source (video frame number, position in the sorted file list), so a skipped frame
leaves a gap rather than renumbering the rest.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "Frame",
    "FrameSource",
    "SourceError",
    "FrameSkippedWarning",
    "IMAGE_EXTENSIONS",
    "STREAM_SCHEMES",
    "open_source",
    "natural_sort_key",
    "VideoFileSource",
    "CaptureSource",
    "ImageListSource",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
DEFAULT_FOLDER_FPS = 30.0


class SourceError(OSError):
    """A source cannot be opened or read (missing file, unreadable video, unreachable stream)."""


class FrameSkippedWarning(RuntimeWarning):
    """One frame of a source failed to decode and was skipped."""


@dataclass
class Frame:
    """One decoded frame.

    index: position of the frame in its source (0-based; video frame number, position in the file list).
    timestamp: seconds since the start of the source.
    image: (H, W, 3) uint8 BGR image.
    name: the image file name for folders (``"000000.jpg"``), the annotation ``file_name`` for PoseTrack
        JSON sources (``"images/val/003418_mpii_test/000000.jpg"``), else ``f"{index:06d}"``.
    """

    index: int
    timestamp: float
    image: np.ndarray
    name: str | None = None


def natural_sort_key(text: str) -> tuple:
    """Key that orders digit runs by value: ``"2.jpg" < "10.jpg"``; case-insensitive otherwise."""
    parts = re.split(r"(\d+)", text)
    return tuple((0, int(p), p) if p.isdigit() else (1, p.lower(), p) for p in parts if p != "")


def _warn_skip(source: str, index: int, reason: str) -> None:
    message = f"{source}: frame {index} could not be decoded and was skipped ({reason[:200]})"
    logger.debug(message)
    warnings.warn(message, FrameSkippedWarning, stacklevel=3)


class FrameSource:
    """Base class: an iterable of :class:`Frame` with ``name``, ``fps``, ``num_frames`` and ``close()``.

    name: short name of the source (video stem, folder name = PoseTrack sequence name, device/URL).
    fps: frames per second (declared by the container/stream, or the configured folder fps).
    num_frames: number of frames when known in advance (files, folders), else ``None`` (live streams).
    """

    name: str
    fps: float
    num_frames: int | None

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying reader; safe to call twice."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        if self.num_frames is None:
            raise TypeError(f"source {self.name!r} is a live stream: its length is not known")
        return self.num_frames

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, fps={self.fps}, num_frames={self.num_frames})"


class VideoFileSource(FrameSource):
    """A video file decoded with decord, ``chunk_size`` frames at a time via ``get_batch``, or with OpenCV
    (``cv2.VideoCapture``, frame by frame) where decord fails: when decord cannot open the file (a GIF:
    "broken metadata") or returns nonsense (a 16x16 or 1x1 video comes out as 6- or 96-channel frames).
    ``backend`` says which one reads the file.

    Timestamps are decord's per-frame presentation start times (seconds), or OpenCV's positions. decord
    returns RGB; frames are converted to BGR. A chunk that fails to decode is retried frame by frame (a frame
    that fails again is tried once more on a freshly opened reader, whose decoder state the failure has not
    spoilt) and only the frames that still fail are skipped (with a :class:`FrameSkippedWarning`).
    """

    def __init__(self, path: str | os.PathLike, chunk_size: int = 8, num_threads: int = 0):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        try:
            import decord
        except ImportError as exc:  # pragma: no cover - decord is a hard dependency
            raise SourceError(f"cannot read video {self.path}: decord is not installed ({exc})") from exc
        self._decord = decord
        self._num_threads = num_threads
        self.chunk_size = int(chunk_size)
        self.name = self.path.stem
        self.backend = "decord"
        self._cap: cv2.VideoCapture | None = None
        try:
            self._reader = decord.VideoReader(str(self.path), ctx=decord.cpu(0), num_threads=num_threads)
            problem = None if len(self._reader) else "no frames"
            if problem is None:
                first = self._reader[0].asnumpy()
                if first.ndim != 3 or first.shape[2] != 3:
                    problem = f"frames of shape {first.shape}"
        except Exception as exc:  # decord raises DECORDError / RuntimeError for broken containers
            problem = _one_line(exc)
        if problem is not None:
            self._reader = None
            self._open_opencv(problem)
            return
        self.num_frames = len(self._reader)
        fps = float(self._reader.get_avg_fps())
        self.fps = fps if np.isfinite(fps) and fps > 0 else DEFAULT_FOLDER_FPS

    def _open_opencv(self, decord_problem: str) -> None:
        """Read the file with OpenCV instead (decord said ``decord_problem``); SourceError naming both."""
        cap = cv2.VideoCapture(str(self.path))
        ok, image = cap.read() if cap.isOpened() else (False, None)
        if not ok or image is None:
            cap.release()
            raise SourceError(f"cannot open video {self.path}: decord: {decord_problem}; OpenCV cannot read a "
                              f"frame of it either")
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        logger.info("%s: decord gives %s; reading it with OpenCV", self.path, decord_problem)
        self.backend = "opencv"
        self._cap = cap
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.num_frames = count if count > 0 else None
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if np.isfinite(fps) and 0 < fps <= 1000 else DEFAULT_FOLDER_FPS

    def _iter_opencv(self) -> Iterator[Frame]:
        assert self._cap is not None
        index = 0
        while True:
            ok, image = self._cap.read()
            if not ok or image is None:
                return
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            elif image.shape[2] == 4:
                image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
            pos = float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0
            timestamp = pos if np.isfinite(pos) and pos > 0 else index / self.fps
            yield Frame(index=index, timestamp=timestamp, image=np.ascontiguousarray(image), name=f"{index:06d}")
            index += 1

    def _timestamps(self, indices: list[int]) -> np.ndarray:
        """(len(indices),) float64 seconds: decord's start times, or index / fps when unavailable."""
        try:
            ts = np.asarray(self._reader.get_frame_timestamp(indices), dtype=np.float64).reshape(len(indices), -1)
            starts = ts[:, 0]
            if np.all(np.isfinite(starts)):
                return starts
        except Exception:  # some containers have no usable timestamps
            pass
        return np.asarray(indices, dtype=np.float64) / self.fps

    def _decode_chunk(self, indices: list[int]) -> list[tuple[int, np.ndarray]]:
        try:
            batch = self._reader.get_batch(indices).asnumpy()  # (n, H, W, 3) uint8 RGB
            return [(i, img) for i, img in zip(indices, batch)]
        except Exception as chunk_exc:
            logger.debug("%s: chunk %s failed (%s); retrying frame by frame", self.path, indices, chunk_exc)
        out = []
        for i in indices:
            try:
                out.append((i, self._reader[i].asnumpy()))
                continue
            except Exception:  # noqa: BLE001 - decord's errors have no common class
                pass
            try:  # a failed decode can leave the reader's decoder in a bad state: retry on a fresh reader
                self._reader = self._decord.VideoReader(str(self.path), ctx=self._decord.cpu(0),
                                                        num_threads=self._num_threads)
                out.append((i, self._reader[i].asnumpy()))
            except Exception as exc:
                _warn_skip(str(self.path), i, _one_line(exc))
        return out

    def __iter__(self) -> Iterator[Frame]:
        if self.backend == "opencv":
            if self._cap is None:
                raise SourceError(f"video {self.path} is closed")
            yield from self._iter_opencv()
            return
        if self._reader is None:
            raise SourceError(f"video {self.path} is closed")
        assert self.num_frames is not None
        for start in range(0, self.num_frames, self.chunk_size):
            indices = list(range(start, min(start + self.chunk_size, self.num_frames)))
            decoded = self._decode_chunk(indices)
            if not decoded:
                continue
            times = dict(zip(indices, self._timestamps(indices)))
            for i, rgb in decoded:
                if rgb.ndim != 3 or rgb.shape[2] != 3:
                    _warn_skip(str(self.path), i, f"unexpected frame shape {rgb.shape}")
                    continue
                bgr = np.ascontiguousarray(rgb[:, :, ::-1])
                yield Frame(index=i, timestamp=float(times[i]), image=bgr, name=f"{i:06d}")

    def close(self) -> None:
        self._reader = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class CaptureSource(FrameSource):
    """A webcam device or a network stream read with ``cv2.VideoCapture``.

    Timestamps: the stream's ``CAP_PROP_POS_MSEC`` when it reports increasing values, else the wall-clock
    time since the first frame. Iteration ends when the stream ends (``read()`` fails) or after
    ``max_frames`` frames.
    """

    def __init__(
        self,
        spec: str | int,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        max_frames: int | None = None,
        fps: float | None = None,
    ):
        self.spec = spec
        self.is_device = isinstance(spec, int)
        self.name = f"camera{spec}" if self.is_device else _stream_name(str(spec))
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000),
        ]
        if self.is_device:
            cap = cv2.VideoCapture(int(spec), cv2.CAP_ANY, params)
        else:
            cap = cv2.VideoCapture(str(spec), cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            what = f"webcam device {spec}" if self.is_device else f"stream {spec}"
            raise SourceError(f"cannot open {what} with OpenCV (backend unavailable, device busy or "
                              f"address unreachable within {open_timeout_s:g} s)")
        self._cap = cap
        declared = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        # MJPEG/HTTP streams often declare nonsense (0 or 1000 fps): fall back to the given/typical value.
        if fps is not None:
            self.fps = float(fps)
        elif np.isfinite(declared) and 0 < declared <= 240:
            self.fps = declared
        else:
            self.fps = DEFAULT_FOLDER_FPS
        self.num_frames = None
        self.max_frames = max_frames

    def __iter__(self) -> Iterator[Frame]:
        if self._cap is None:
            raise SourceError(f"{self.name} is closed")
        start = None
        first_pos = last_pos = 0.0
        use_pos = True
        index = 0
        while self.max_frames is None or index < self.max_frames:
            ok, image = self._cap.read()
            if not ok or image is None:
                logger.info("%s: stream ended after %d frames", self.name, index)
                return
            now = time.monotonic()
            if start is None:
                start = now
            pos = float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
            if index == 0:
                first_pos = pos
            elif use_pos and not (np.isfinite(pos) and pos > last_pos):
                use_pos = False  # the stream gives no usable positions: switch to wall-clock time
            last_pos = pos
            # relative to the first frame: a stream joined mid-way still starts at 0
            timestamp = (pos - first_pos) / 1000.0 if use_pos else now - start
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            elif image.shape[2] == 4:
                image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
            yield Frame(index=index, timestamp=float(timestamp), image=image, name=f"{index:06d}")
            index += 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageListSource(FrameSource):
    """An ordered list of image files, read with ``cv2.imread`` one at a time.

    paths: the image files in frame order. names: per-file ``Frame.name`` (default: the file names).
    fps: frames per second used for timestamps (``index / fps``).
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        name: str,
        fps: float = DEFAULT_FOLDER_FPS,
        names: Sequence[str] | None = None,
        origin: str | None = None,
    ):
        if not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps}")
        self.paths = [Path(p) for p in paths]
        self.names = list(names) if names is not None else [p.name for p in self.paths]
        if len(self.names) != len(self.paths):
            raise ValueError(f"{len(self.names)} names for {len(self.paths)} image paths")
        self.name = name
        self.fps = float(fps)
        self.num_frames = len(self.paths)
        self.origin = origin or name

    def __iter__(self) -> Iterator[Frame]:
        for index, (path, frame_name) in enumerate(zip(self.paths, self.names)):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # always (H, W, 3) uint8 BGR, or None
            if image is None:
                reason = "file missing" if not path.is_file() else "not a readable image"
                _warn_skip(f"{self.origin} ({path})", index, reason)
                continue
            yield Frame(index=index, timestamp=index / self.fps, image=image, name=frame_name)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".strip()


def _stream_name(url: str) -> str:
    # Drop credentials (user:password@) from URLs used as names.
    return re.sub(r"//[^/@]*@", "//", url)


def _list_images(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_sort_key(p.name))


def _annotation_source(path: Path, image_root: str | os.PathLike | None, fps: float) -> ImageListSource:
    try:
        with path.open("r", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read annotation file {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: not valid JSON ({exc})") from exc
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list) or not images:
        raise SourceError(f"{path}: expected a PoseTrack/COCO annotation file with a non-empty 'images' list")
    names = []
    for i, item in enumerate(images):
        if not isinstance(item, dict) or not isinstance(item.get("file_name"), str):
            raise SourceError(f"{path}: images[{i}] has no string field 'file_name'")
        names.append(item["file_name"])
    if image_root is None:
        # Not given: the PoseTrack layout keeps annotations in <root>/annotations/<split>/, and file names
        # are relative to <root>; take the nearest ancestor of the JSON where the first file exists.
        root = next((a for a in path.resolve().parents if (a / names[0]).is_file()), None)
        if root is None:
            raise SourceError(f"{path}: images[0].file_name {names[0]!r} not found under any parent folder "
                              f"of the annotation file; pass image_root")
    else:
        root = Path(image_root)
        if not root.is_dir():
            raise SourceError(f"image root folder not found: {root}")
    seq_name = path.stem
    vid = images[0].get("vid_id")
    if len(set(Path(n).parent for n in names)) == 1:
        seq_name = Path(names[0]).parent.name or seq_name  # PoseTrack: images/val/<sequence>/<frame>.jpg
    elif vid is not None:
        seq_name = str(vid)
    return ImageListSource([root / n for n in names], name=seq_name, fps=fps, names=names, origin=str(path))


def open_source(
    spec: str | int | os.PathLike,
    *,
    fps: float | None = None,
    image_root: str | os.PathLike | None = None,
    chunk_size: int = 8,
    open_timeout_s: float = 10.0,
    read_timeout_s: float = 10.0,
    max_frames: int | None = None,
) -> FrameSource:
    """Open a frame source (see the module docstring for the dispatch rules).

    fps: for image folders / annotation files, the frame rate used for timestamps (default 30); for
        streams, overrides the declared rate; ignored for video files (their own rate is used).
    image_root: folder against which a PoseTrack annotation file's ``file_name`` entries are resolved
        (default: the nearest ancestor of the JSON file where they exist).
    chunk_size: frames decoded per decord ``get_batch`` call for video files.
    open_timeout_s, read_timeout_s, max_frames: for webcams and streams.
    """
    if isinstance(spec, (bool, float)):
        raise SourceError(f"not a source: {spec!r} (give a path, a URL or a webcam index)")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return CaptureSource(int(spec), open_timeout_s, read_timeout_s, max_frames, fps)
    if isinstance(spec, str) and spec.lower().startswith(STREAM_SCHEMES):
        return CaptureSource(spec, open_timeout_s, read_timeout_s, max_frames, fps)
    folder_fps = DEFAULT_FOLDER_FPS if fps is None else float(fps)
    path = Path(spec)
    if not path.exists():
        raise SourceError(f"source not found: {path}")
    if path.is_dir():
        files = _list_images(path)
        if not files:
            raise SourceError(f"no images ({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)}) in folder {path}")
        return ImageListSource(files, name=path.resolve().name, fps=folder_fps, origin=str(path))
    if not os.access(path, os.R_OK):
        raise SourceError(f"source not readable (permission denied): {path}")
    if path.suffix.lower() == ".json":
        return _annotation_source(path, image_root, folder_fps)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        if cv2.imread(str(path), cv2.IMREAD_COLOR) is None:
            raise SourceError(f"cannot decode image {path}")
        return ImageListSource([path], name=path.stem, fps=folder_fps, origin=str(path))
    return VideoFileSource(path, chunk_size=chunk_size)
