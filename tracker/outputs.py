"""Outputs written as the video is processed: PoseTrack 2018/2017 JSON, COCO keypoint results, rendered MP4.

Every JSON file is rewritten atomically (temporary file + rename) every ``flush_every`` frames and when the
run ends, so an interrupted or crashed run leaves valid files holding everything tracked up to the last flush
(Ctrl-C flushes everything). The PoseTrack 2017 file is converted from the 2018 one when the run ends.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from association.keypoints import COCO17, POSETRACK18, KeypointLayout
from eval_posetrack import MAX_TRACK_ID, PoseTrack18Writer, convert_file, is_sequence_name

from .record import PoseRecord
from .render import draw_poses
from .sources import Frame


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


class CocoResultsWriter:
    """COCO keypoint results JSON (a list of {image_id, category_id, keypoints [x,y,score]*K, score,
    track_id, bbox xywh}); ``image_id`` = frame index. Rewritten atomically every ``flush_every`` frames."""

    def __init__(self, path: str | os.PathLike, flush_every: int) -> None:
        self.path = Path(path)
        self.flush_every = max(1, int(flush_every))
        self._items: list[str] = []
        self._pending = 0
        self._flush()

    def add_frame(self, image_id: int, record: PoseRecord) -> None:
        for i in range(len(record)):
            kp = np.concatenate([record.keypoints[i], record.keypoint_scores[i][:, None]], axis=1)
            x1, y1, x2, y2 = (float(v) for v in record.boxes[i])
            self._items.append(json.dumps({
                "image_id": int(image_id), "category_id": 1,
                "keypoints": [round(float(v), 3) for v in kp.reshape(-1)],
                "score": float(record.pose_scores[i]), "track_id": int(record.track_ids[i]),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
            }))
        self._pending += 1
        if self._pending >= self.flush_every:
            self._flush()

    def _flush(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp_", suffix=".json")
        with os.fdopen(fd, "w") as f:
            f.write("[" + ",\n".join(self._items) + "]")
        os.replace(tmp, self.path)
        self._pending = 0

    def close(self) -> None:
        self._flush()


class VideoRenderer:
    """An MP4 (mp4v) of the frames with skeletons and boxes coloured by track id."""

    def __init__(self, path: str | os.PathLike, fps: float, keypoint_threshold: float,
                 skeleton: tuple[tuple[int, int], ...]) -> None:
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 25.0
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
    ``<sequence>.mp4`` (rendered).

    layout: the estimator's keypoint layout. PoseTrack files hold the POSETRACK18 slots: a POSETRACK18
    estimator's poses are written as they are; a COCO17 estimator's get head_bottom / head_top derived from
    the nose and shoulders (see :func:`coco_head_to_posetrack`); another layout cannot be written as PoseTrack.
    The renderer draws the layout's skeleton.
    """

    def __init__(self, out_dir: str | os.PathLike, sequence: str, formats: list[str], *, layout: KeypointLayout,
                 render: bool, fps: float, keypoint_threshold: float, flush_every: int,
                 nframes: int | None = None) -> None:
        posetrack = "posetrack18" in formats or "posetrack17" in formats
        if posetrack and layout.names not in (COCO17.names, POSETRACK18.names):
            raise ValueError(f"output.formats: PoseTrack output needs an estimator with the {COCO17.name} or "
                             f"{POSETRACK18.name} keypoints; this one has the {layout.name} layout "
                             f"({layout.num_keypoints} keypoints)")
        self.layout = layout
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.sequence = sequence
        self.formats = list(formats)
        self.paths: dict[str, Path] = {}
        self._pt18 = None
        if "posetrack18" in formats or "posetrack17" in formats:
            self.paths["posetrack18"] = self.out_dir / f"{sequence}.json"
            self._pt18 = PoseTrack18Writer(self.paths["posetrack18"], flush_every=flush_every, nframes=nframes)
        if "posetrack17" in formats:
            if not is_sequence_name(sequence):
                raise ValueError(f"output.formats: posetrack17 needs a PoseTrack sequence name like "
                                 f"000001_mpiinew_test (the 2017 format encodes it in image names); the source "
                                 f"is named {sequence!r}. Use posetrack18 (any name) or rename the source.")
            self.paths["posetrack17"] = self.out_dir / f"{sequence}_posetrack17.json"
        self._coco = None
        if "coco" in formats:
            self.paths["coco"] = self.out_dir / f"{sequence}_coco.json"
            self._coco = CocoResultsWriter(self.paths["coco"], flush_every=flush_every)
        self._video = None
        if render:
            self.paths["video"] = self.out_dir / f"{sequence}.mp4"
            self._video = VideoRenderer(self.paths["video"], fps, keypoint_threshold, layout.skeleton)
        self.frames_written = 0
        self._id_map: dict[int, int] = {}       # our track id -> PoseTrack id
        self._taken: set[int] = set()           # PoseTrack ids handed out so far
        self._scan = 0                          # lowest PoseTrack id that may still be free
        self._last_seen: dict[int, int] = {}    # our track id -> last frame written

    def add(self, frame: Frame, record: PoseRecord) -> np.ndarray | None:
        """Write one frame's poses; returns the rendered image when rendering (for a live window)."""
        if self._pt18 is not None:
            kp, sc = record.keypoints, record.keypoint_scores
            if self.layout.names == COCO17.names:
                kp, sc = coco_head_to_posetrack(kp, sc)
            self._pt18.add_frame(posetrack_file_name(self.sequence, frame), kp, sc,
                                 self._posetrack_ids(record.track_ids), boxes=record.boxes,
                                 box_scores=record.pose_scores)
        if self._coco is not None:
            self._coco.add_frame(frame.index, record)
        rendered = None
        if self._video is not None:
            rendered = self._video.add_frame(frame.image, record)
        self.frames_written += 1
        return rendered

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
                self._id_map[t] = pid
                self._taken.add(pid)
            self._last_seen[t] = self.frames_written
            out[i] = self._id_map[t]
        return out

    def close(self) -> None:
        """Finish every file; each writer is closed even if another one fails (or Ctrl-C arrives)."""
        errors: list[BaseException] = []
        for closer in (self._close_video, self._close_coco, self._close_posetrack):
            try:
                closer()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other files are closed
                errors.append(exc)
        if errors:
            raise errors[0]

    def _close_video(self) -> None:
        if self._video is not None:
            self._video.close()

    def _close_coco(self) -> None:
        if self._coco is not None:
            self._coco.close()

    def _close_posetrack(self) -> None:
        if self._pt18 is not None:
            self._pt18.close()
            if "posetrack17" in self.formats and self.frames_written:
                convert_file(self.paths["posetrack18"], self.paths["posetrack17"], to="2017", role="pred")
