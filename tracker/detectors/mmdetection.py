"""Person detector kind "mmdet": any MMDetection 3.x config + checkpoint (an optional dependency, imported
only when such a detector is built)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tracker.sources import Frame

from .base import Detections, DetectorError, PersonDetector, WeightsNotFoundError, frame_image
from .postprocess import MMDET_PERSON_LABEL, postprocess

MMDET_INSTALL_HINT = ("MMDetection is not installed: run `make mmdet` (scripts/build_mmcv.sh VENV) to build "
                      "mmcv 2.1.0 with its ops against this torch and install mmengine and mmdet 3.3.0")


class MMDetDetector(PersonDetector):
    """An MMDetection 3.x detector (80 contiguous COCO labels, person = 0).

    config: an mmdet config file (path) or an ``mmengine.Config``. checkpoint: its weights file (None:
    random initialisation, for tests only). device, score_threshold, nms_iou, class_ids, max_detections:
    as in :func:`postprocess`. Frames are given to mmdet as BGR numpy arrays (its own default).
    """

    def __init__(
        self,
        config: str | os.PathLike | Any,
        checkpoint: str | os.PathLike | None,
        device: str = "cpu",
        score_threshold: float = 0.5,
        nms_iou: float | None = None,
        class_ids: Sequence[int] = (MMDET_PERSON_LABEL,),
        max_detections: int | None = 100,
    ):
        try:
            from mmdet.apis import inference_detector, init_detector
        except ImportError as exc:
            raise DetectorError(f"{MMDET_INSTALL_HINT} (import failed: {exc})") from exc
        if isinstance(config, (str, os.PathLike)) and not Path(config).is_file():
            raise WeightsNotFoundError(f"mmdet config file not found: {config}")
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise WeightsNotFoundError(f"mmdet checkpoint file not found: {checkpoint}")
        self._inference_detector = inference_detector
        cfg = str(config) if isinstance(config, os.PathLike) else config
        self.model = init_detector(cfg, None if checkpoint is None else str(checkpoint), device=device)
        self.score_threshold = float(score_threshold)
        self.nms_iou = nms_iou
        self.class_ids = tuple(class_ids) if class_ids is not None else None
        self.max_detections = max_detections

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        if len(frames) == 0:
            return []
        images = [frame_image(f, f"frames[{i}]") for i, f in enumerate(frames)]
        results = self._inference_detector(self.model, images)  # list of DetDataSample
        out = []
        for sample in results:
            inst = sample.pred_instances
            out.append(postprocess(inst.bboxes.detach().cpu(), inst.scores.detach().cpu(),
                                   inst.labels.detach().cpu(), self.class_ids, self.score_threshold,
                                   self.nms_iou, self.max_detections))
        return out
