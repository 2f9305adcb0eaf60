"""Outputs written as the video is processed: PoseTrack 2018/2017 JSON, COCO keypoint results, rendered MP4.

While a run goes on, every frame's results are appended to one journal, ``<sequence>.partial.jsonl`` (JSON
Lines: a header line, then one line per frame), written and fsynced every ``flush_every`` frames; nothing
already written is rewritten, and nothing already written is kept in memory, so the cost of a flush and the
writer's memory do not depend on how many frames came before. When the run ends (normally, on an error,
Ctrl-C, SIGTERM or SIGHUP) the final files are assembled from the journal by streaming it (constant memory,
each written through a temporary file + rename, readable by everyone like the config beside them) and the
journal is deleted. A run killed outright (SIGKILL, power loss) leaves the journal, complete up to the last
flush; :func:`recover_journal` (run automatically by the next run on the same outputs) assembles it.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from association.keypoints import COCO17, POSETRACK18, KeypointLayout
from eval_posetrack import (
    MAX_TRACK_ID,
    Sequence,
    atomic_write_chunks,
    coco_keypoint_results,
    image_id_of,
    is_sequence_name,
    parse_sequence,
    sequence_to_posetrack17,
    sequence_to_posetrack18,
)

from .record import PoseRecord
from .render import draw_poses
from .sources import Frame

JOURNAL_SUFFIX = ".partial.jsonl"
JOURNAL_VERSION = 1
ANNOTATIONS_PER_IMAGE = 100  # the official PoseTrack numbering: annotation id = image id * 100 + person


class OutputError(OSError):
    """An output cannot be written or recovered (names the file)."""


class OutputWarning(UserWarning):
    """Something about the outputs the user should know (a killed run's journal recovered)."""


class NonFiniteWarning(RuntimeWarning):
    """A person with a NaN or infinite value was left out of the outputs (JSON has no NaN)."""


def posetrack_file_name(sequence: str, frame: Frame) -> str:
    """The image name written for ``frame``: ``images/<sequence>/<name>``, with a 6-digit frame number
    when the source has no file names (video, stream). PoseTrack sequence names (``000001_mpiinew_test``)
    keep the official layout so that ``posetrack eval`` accepts the file."""
    name = frame.name if frame.name and "." in frame.name else f"{frame.index:06d}.jpg"
    return f"images/{sequence}/{Path(name).name}"


def coco_head_to_posetrack(keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 poses -> PoseTrack18 slots for an estimator trained on COCO (no neck / head top).

    keypoints (N,17,2) image px, scores (N,17). PoseTrack18 keeps head_bottom in the left-eye slot and
    head_top in the right-eye slot; a COCO model puts eyes there, which PoseTrack scores as wrong joints.
    We place head_bottom = mid-shoulders + 0.3 (nose - mid-shoulders) and head_top = nose + (nose -
    head_bottom): the ratios measured on 13 fully annotated persons of the PoseTrack18 val annotations
    (|head_top - nose| / |nose - head_bottom| = 0.98 median; |head_bottom - shoulders| / |nose - head_bottom|
    = 0.42). Scores: head_bottom = min(shoulder scores, nose score), head_top = nose score.
    """
    kp = np.array(keypoints, dtype=np.float32, copy=True)
    sc = np.array(scores, dtype=np.float32, copy=True)
    if len(kp) == 0:
        return kp, sc
    nose, shoulders = kp[:, 0], (kp[:, 5] + kp[:, 6]) / 2
    head_bottom = shoulders + 0.3 * (nose - shoulders)
    kp[:, 1] = head_bottom
    kp[:, 2] = nose + (nose - head_bottom)
    sc[:, 1] = np.minimum(np.minimum(sc[:, 5], sc[:, 6]), sc[:, 0])
    sc[:, 2] = sc[:, 0]
    return kp, sc


def finite_persons(record: PoseRecord) -> np.ndarray:
    """(N,) bool: the persons of ``record`` whose box, scores and keypoints are all finite."""
    n = len(record)
    if n == 0:
        return np.zeros(0, bool)
    return (np.isfinite(record.boxes).all(axis=1) & np.isfinite(record.pose_scores)
            & np.isfinite(record.keypoints.reshape(n, -1)).all(axis=1)
            & np.isfinite(record.keypoint_scores.reshape(n, -1)).all(axis=1))


def _round(values: np.ndarray, digits: int = 3) -> list[float]:
    return [round(float(v), digits) for v in np.asarray(values).reshape(-1)]


def coco_items(image_id: int, record: PoseRecord) -> list[dict]:
    """COCO keypoint results of one frame: ``{image_id, category_id, keypoints [x, y, score] * K, score,
    bbox xywh, track_id}`` per person (image px)."""
    return coco_keypoint_results(image_id, record.keypoints, record.keypoint_scores, record.pose_scores,
                                 boxes=record.boxes, extra={"track_id": record.track_ids}, digits=3)


def posetrack18_entries(file_name: str, image_id: int, keypoints: np.ndarray, keypoint_scores: np.ndarray,
                        track_ids: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray,
                        nframes: int | None) -> tuple[dict, list[dict]]:
    """One frame of a PoseTrack 2018 prediction file (the entries ``PoseTrack18Writer`` writes): the image
    and its annotations without their ``id`` (numbered when the file is assembled).

    keypoints (N, 17, 2) image px in PoseTrack18 slot order, keypoint_scores (N, 17), track_ids (N,) in
    [0, MAX_TRACK_ID), boxes (N, 4) xyxy image px, box_scores (N,).
    """
    n = len(track_ids)
    image: dict[str, Any] = {"file_name": file_name, "id": int(image_id), "frame_id": int(image_id),
                             "is_labeled": bool(n > 0)}
    if nframes is not None:
        image["nframes"] = int(nframes)
    anns = []
    for p in range(n):
        kps = np.concatenate([keypoints[p].astype(np.float64), np.ones((len(keypoints[p]), 1))], axis=1)
        x1, y1, x2, y2 = (float(v) for v in boxes[p])
        anns.append({"image_id": int(image_id), "category_id": 1, "track_id": int(track_ids[p]),
                     "keypoints": [float(v) if i % 3 < 2 else 1 for i, v in enumerate(kps.reshape(-1))],
                     "scores": [float(v) for v in keypoint_scores[p]],
                     "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(box_scores[p])})
    return image, anns


def _dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=False)


# ----------------------------------------------------------------------------------------- journal
def _read_journal(path: Path) -> Iterator[dict]:
    """The lines of a journal as dicts; a last line cut short by a kill (no newline, or not JSON) is skipped,
    any other broken line is an error naming the file and line."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith("\n"):
                return  # written after the last flush, cut by a kill: not part of the flushed state
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise OutputError(f"{path}: line {number} is not valid JSON ({exc})") from None


def _posetrack18_chunks(journal: Path, categories: list) -> Iterator[str]:
    """The 2018 file, streamed from the journal in two passes (images, then annotations). Annotation ids:
    image id * 100 + person while image ids increase and a frame has < 100 persons (the official numbering),
    else a counter above every official id of the file, so ids are unique for any number of persons."""
    yield '{"images": ['
    max_image_id = 0
    first = True
    for line in _read_journal(journal):
        if "image" in line:
            yield ("" if first else ",\n") + _dumps(line["image"])
            first = False
            max_image_id = max(max_image_id, int(line["image"]["id"]))
    yield '],\n"annotations": ['
    overflow = (max_image_id + 1) * ANNOTATIONS_PER_IMAGE
    last_image_id = -1
    first = True
    for line in _read_journal(journal):
        if "image" not in line:
            continue
        image_id = int(line["image"]["id"])
        official = image_id > last_image_id
        last_image_id = max(last_image_id, image_id)
        for p, ann in enumerate(line["annotations"]):
            if official and p < ANNOTATIONS_PER_IMAGE:
                ann_id = image_id * ANNOTATIONS_PER_IMAGE + p
            else:
                ann_id, overflow = overflow, overflow + 1
            yield ("" if first else ",\n") + _dumps({"id": ann_id} | ann)
            first = False
    yield '],\n"categories": ' + _dumps(categories) + "}\n"


def _posetrack17_chunks(journal: Path, categories: list, name: str) -> Iterator[str]:
    """The 2017 file, streamed from the journal: each frame converted on its own by the same reader and
    2017 writer as ``convert_file`` (so the result is identical to converting the assembled 2018 file)."""
    yield '{"annolist": ['
    first = True
    fi = 0
    for line in _read_journal(journal):
        if "image" not in line:
            continue
        one = {"images": [line["image"]], "annotations": [{"id": p} | a for p, a in enumerate(line["annotations"])],
               "categories": categories}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seq = parse_sequence(one, name, role="pred")
        entry = sequence_to_posetrack17(seq)["annolist"][0]
        fi += 1
        entry["imgnum"] = [fi]
        yield ("" if first else ",\n") + _dumps(entry)
        first = False
    yield "]}\n"


def _coco_chunks(journal: Path) -> Iterator[str]:
    yield "["
    first = True
    for line in _read_journal(journal):
        for item in line.get("coco", ()):
            yield ("" if first else ",\n") + _dumps(item)
            first = False
    yield "]\n"


def assemble_journal(journal: str | os.PathLike, *, remove: bool = True) -> dict[str, Path]:
    """Write the final files listed in a journal's header from its flushed frames (streaming: memory does
    not grow with the number of frames); returns {format: path}. The journal is deleted afterwards when
    ``remove``. Raises OutputError naming the journal if it is not one."""
    journal = Path(journal)
    try:
        lines = _read_journal(journal)
        header = next(lines, None)
    except OSError as exc:
        raise OutputError(f"{journal}: cannot read the journal ({exc.strerror})") from None
    if not isinstance(header, dict) or header.get("journal") != JOURNAL_VERSION:
        raise OutputError(f"{journal}: not a posetrack output journal (no header line)")
    paths = {fmt: journal.parent / name for fmt, name in header["files"].items()}
    categories = sequence_to_posetrack18(Sequence(name=header["sequence"], frames=[]))["categories"]
    if "coco" in paths:
        atomic_write_chunks(paths["coco"], _coco_chunks(journal))
    if "posetrack18" in paths:
        atomic_write_chunks(paths["posetrack18"], _posetrack18_chunks(journal, categories))
    if "posetrack17" in paths:
        atomic_write_chunks(paths["posetrack17"], _posetrack17_chunks(journal, categories, str(paths["posetrack17"])))
    if remove:
        journal.unlink()
    return paths


def recover_journal(journal: str | os.PathLike) -> dict[str, Path]:
    """Assemble the journal left by a run that was killed (SIGKILL, power loss) into its final files, holding
    every frame up to its last flush; the journal is deleted. Returns {format: path}."""
    return assemble_journal(journal)


def _open_locked(path: Path) -> int:
    """A file descriptor of ``path`` opened for appending (emptied) under an exclusive ``flock``, which the
    kernel releases when the process ends however it ends; OutputError naming the file when another live run
    holds it. Unbuffered: what a flush wrote is exactly what is on disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise OutputError(f"{path}: another run is writing these outputs now (its journal is locked); "
                              f"use another --out folder or wait for it to end") from None
        raise
    os.ftruncate(fd, 0)
    return fd


def _take_over_journal(path: Path) -> dict[str, Path]:
    """Before a run writes ``path``: if a journal is there, either another live run holds its lock
    (OutputError) or a killed run left it, and its flushed frames are assembled into that run's final files
    (a warning names them). Returns {format: path} of the recovered files ({} when there was no journal)."""
    if not path.exists():
        return {}
    if path.stat().st_size == 0:  # killed before its first flush
        path.unlink()
        return {}
    with open(path, "a", encoding="utf-8") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise OutputError(f"{path}: another run is writing these outputs now (its journal is locked); "
                                  f"use another --out folder or wait for it to end") from None
            raise
        paths = recover_journal(path)
    warnings.warn(f"{path}: a run on these outputs was killed; its flushed frames were assembled into "
                  f"{', '.join(str(p) for p in paths.values())}", OutputWarning, stacklevel=3)
    return paths


def output_paths(out_dir: Path, sequence: str, formats: list[str], render: bool) -> dict[str, Path]:
    """{format: path} of the files a run of ``sequence`` writes in ``out_dir`` ("video" for the MP4)."""
    names = {"posetrack18": f"{sequence}.json", "posetrack17": f"{sequence}_posetrack17.json",
             "coco": f"{sequence}_coco.json"}
    paths = {fmt: Path(out_dir) / names[fmt] for fmt in ("posetrack18", "posetrack17", "coco") if fmt in formats}
    if render:
        paths["video"] = Path(out_dir) / f"{sequence}.mp4"
    return paths


def claim_outputs(out_dir: str | os.PathLike, sequence: str, formats: list[str], render: bool,
                  overwrite: bool) -> dict[str, Path]:
    """Check, before any model loads, that a run may write these outputs: no live run writes them (its
    journal is locked), and no earlier run's files are there unless ``overwrite`` (OutputError naming the
    file). A killed run's journal is assembled first (returned {format: path}, with a warning)."""
    out_dir = Path(out_dir)
    recovered = _take_over_journal(out_dir / f"{sequence}{JOURNAL_SUFFIX}")
    existing = [path for path in output_paths(out_dir, sequence, formats, render).values() if path.exists()]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]} exists (the outputs of another run of {sequence!r}); give "
                          f"--overwrite to replace them, or another --out folder")
    return recovered


# ----------------------------------------------------------------------------------------- writers
class VideoRenderer:
    """An MP4 (mp4v) of the frames with skeletons and boxes coloured by track id."""

    def __init__(self, path: str | os.PathLike, fps: float, keypoint_threshold: float,
                 skeleton: tuple[tuple[int, int], ...]) -> None:
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 and math.isfinite(fps) else 25.0
        self.keypoint_threshold = keypoint_threshold
        self.skeleton = skeleton
        self._writer: cv2.VideoWriter | None = None

    def add_frame(self, image: np.ndarray, record: PoseRecord) -> np.ndarray:
        out = draw_poses(image, record, self.keypoint_threshold, self.skeleton)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = out.shape[:2]
            self._size = (w, h)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise OSError(f"{self.path}: OpenCV cannot open an MP4 writer here")
        if out.shape[1::-1] != self._size:  # OpenCV silently drops frames of another size: resize them
            out = cv2.resize(out, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(out)
        return out

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


class TrackOutputs:
    """All outputs of one tracked sequence, in ``out_dir``:
    ``<sequence>.json`` (PoseTrack 2018), ``<sequence>_posetrack17.json``, ``<sequence>_coco.json``,
    ``<sequence>.mp4`` (rendered); while running, the journal ``<sequence>.partial.jsonl`` (see the module
    docstring). Per frame the cost and the memory are constant: one journal line, one fsync per flush.
    A run owns its outputs: existing files of the same names are an OutputError unless ``overwrite``, and the
    journal is locked (``flock``) while the run lasts, so a concurrent run on the same outputs is refused.

    layout: the estimator's keypoint layout. PoseTrack files hold the POSETRACK18 slots: a POSETRACK18
    estimator's poses are written as they are; a COCO17 estimator's get head_bottom / head_top derived from
    the nose and shoulders (see :func:`coco_head_to_posetrack`); another layout cannot be written as PoseTrack.
    The renderer draws the layout's skeleton. A person with a NaN or infinite value is left out (with a
    :class:`NonFiniteWarning`): JSON has no NaN.
    """

    def __init__(self, out_dir: str | os.PathLike, sequence: str, formats: list[str], *, layout: KeypointLayout,
                 render: bool, fps: float, keypoint_threshold: float, flush_every: int,
                 nframes: int | None = None, overwrite: bool = False) -> None:
        if not formats and not render:
            raise ValueError("output.formats: no output format requested")
        posetrack = "posetrack18" in formats or "posetrack17" in formats
        if posetrack and layout.names not in (COCO17.names, POSETRACK18.names):
            raise ValueError(f"output.formats: PoseTrack output needs an estimator with the {COCO17.name} or "
                             f"{POSETRACK18.name} keypoints; this one has the {layout.name} layout "
                             f"({layout.num_keypoints} keypoints)")
        if "posetrack17" in formats and not is_sequence_name(sequence):
            raise ValueError(f"output.formats: posetrack17 needs a PoseTrack sequence name like "
                             f"000001_mpiinew_test (the 2017 format encodes it in image names); the source "
                             f"is named {sequence!r}. Use posetrack18 (any name) or rename the source.")
        if flush_every < 1:
            raise ValueError(f"output.flush_every: expected >= 1, got {flush_every}")
        self.layout = layout
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.sequence = sequence
        self.formats = list(formats)
        self.flush_every = int(flush_every)
        self.nframes = nframes
        self.paths = output_paths(self.out_dir, sequence, formats, render)
        self._posetrack = posetrack
        self._coco = "coco" in formats
        self._video = None
        if render:
            self._video = VideoRenderer(self.paths["video"], fps, keypoint_threshold, layout.skeleton)
        self.journal_path = self.out_dir / f"{sequence}{JOURNAL_SUFFIX}"
        self.recovered: dict[str, Path] = {}    # the files of a killed run's journal assembled at start
        self._journal: int | None = None         # the journal's file descriptor while running
        self._journal_size = 0
        self._pending: list[str] = []
        self.recovered = claim_outputs(self.out_dir, sequence, formats, render, overwrite)
        for path in self.paths.values():
            if path.exists():
                path.unlink()  # a reader never sees the old run's files next to this run's journal
        if self._posetrack or self._coco:
            json_paths = {k: v.name for k, v in self.paths.items() if k != "video"}
            self._journal = _open_locked(self.journal_path)
            self._pending.append(_dumps({"journal": JOURNAL_VERSION, "sequence": sequence, "files": json_paths,
                                         "pid": os.getpid()}) + "\n")
        self.frames_written = 0          # frames given to add()
        self.frames_flushed = 0          # frames on disk in the journal
        self.persons_dropped = 0         # persons left out for a non-finite value
        self._closed = False
        self._id_map: dict[int, int] = {}       # our track id -> PoseTrack id (at most MAX_TRACK_ID entries)
        self._taken: set[int] = set()           # PoseTrack ids handed out so far (at most MAX_TRACK_ID)
        self._scan = 0                          # lowest PoseTrack id that may still be free
        self._last_seen: dict[int, int] = {}    # our track id -> last frame written (same keys as _id_map)
        self.flush()

    def add(self, frame: Frame, record: PoseRecord) -> np.ndarray | None:
        """Write one frame's poses; returns the rendered image when rendering (for a live window)."""
        if self._closed:
            raise ValueError(f"{self.out_dir}: outputs are closed")
        keep = finite_persons(record)
        if not keep.all():
            self.persons_dropped += int((~keep).sum())
            warnings.warn(f"frame {frame.index}: {int((~keep).sum())} person(s) with a NaN or infinite value "
                          f"left out of the outputs", NonFiniteWarning, stacklevel=2)
            record = record[keep]
        line: dict[str, Any] = {"frame": int(frame.index)}
        if self._posetrack:
            kp, sc = record.keypoints, record.keypoint_scores
            if self.layout.names == COCO17.names:
                kp, sc = coco_head_to_posetrack(kp, sc)
            file_name = posetrack_file_name(self.sequence, frame)
            image_id = image_id_of(file_name, self.frames_written + 1)
            line["image"], line["annotations"] = posetrack18_entries(
                file_name, image_id, kp, sc, self._posetrack_ids(record.track_ids), record.boxes,
                record.pose_scores, self.nframes)
        if self._coco:
            line["coco"] = coco_items(frame.index, record)
        if self._journal is not None:
            self._pending.append(_dumps(line) + "\n")
        rendered = None
        if self._video is not None:
            rendered = self._video.add_frame(frame.image, record.for_display())  # smoothed keypoints
        self.frames_written += 1
        if len(self._pending) >= self.flush_every:
            self.flush()
        return rendered

    def flush(self) -> None:
        """Append the frames added since the last flush to the journal, in one write, and fsync it."""
        if self._journal is None:
            return
        data = "".join(self._pending).encode("utf-8")
        count = sum(1 for line in self._pending if line.startswith('{"frame"'))
        self._pending = []
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._journal, view):]
            os.fsync(self._journal)
        except OSError:
            # disk full, I/O error, ...: cut the journal back to its last flushed state so it stays valid
            # (the frames of this flush are lost), and write no more to it
            fd, self._journal = self._journal, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._journal_size)
                os.fsync(fd)
            os.close(fd)
            raise
        self._journal_size += len(data)
        self.frames_flushed += count

    def _posetrack_ids(self, track_ids: np.ndarray) -> np.ndarray:
        """Track ids -> ids in [0, MAX_TRACK_ID) as poseval requires: our own ids while they fit; past that a new
        track takes the lowest unused id, and once all are used, the id of the track not seen for the longest
        time (never one of this frame)."""
        current = {int(t) for t in track_ids}
        out = np.empty(len(track_ids), np.int64)
        for i, t in enumerate(int(t) for t in track_ids):
            if t not in self._id_map:
                if t < MAX_TRACK_ID and t not in self._taken:
                    pid = t
                else:
                    while self._scan < MAX_TRACK_ID and self._scan in self._taken:
                        self._scan += 1
                    if self._scan < MAX_TRACK_ID:
                        pid = self._scan
                    else:
                        old = min((k for k in self._id_map if k not in current), key=self._last_seen.__getitem__)
                        pid = self._id_map.pop(old)
                        del self._last_seen[old]
                self._id_map[t] = pid
                self._taken.add(pid)
            self._last_seen[t] = self.frames_written
            out[i] = self._id_map[t]
        return out

    def close(self) -> None:
        """Finish every file; each writer is closed even if another one fails (or Ctrl-C arrives). On a failure
        of the assembly (disk full, ...) the journal is kept, so :func:`recover_journal` can finish later."""
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        for closer in (self._close_video, self._close_json):
            try:
                closer()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other files are closed
                errors.append(exc)
        if errors:
            raise errors[0]

    def _close_video(self) -> None:
        if self._video is not None:
            self._video.close()

    def _close_json(self) -> None:
        if not (self._posetrack or self._coco):
            return
        try:
            if self._journal is not None:
                self.flush()
        finally:
            if self._journal is not None:
                os.close(self._journal)  # also releases the lock
                self._journal = None
        try:
            assemble_journal(self.journal_path)
        except OSError as exc:
            raise OutputError(f"{self.out_dir}: cannot write the final files ({exc}); the journal "
                              f"{self.journal_path} keeps the {self.frames_flushed} flushed frames and the next "
                              f"run on this folder assembles them") from exc

