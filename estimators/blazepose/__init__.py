"""BlazePose (MediaPipe 0.10.14, TFLite): the landmark model as an estimator and the person detector model.

Modules: ``rois`` (ROI rules, crop and inverse), ``tflite`` (the one interpreter cache both models use),
``landmarks`` (:class:`BlazePoseEstimator`, its :data:`SPEC`), ``detector`` (the tiled multi-person
:class:`BlazePoseDetector` model: anchors, decoding, weighted NMS), ``weights`` (fetching and checking the two
``.tflite`` files from the PyPI wheel ``mediapipe==0.10.14``). Importing this package registers the
"blazepose" spec; it imports no torch.
"""
from __future__ import annotations

from ..registry import register
from .detector import BlazePoseDetector, PersonRois
from .landmarks import (
    BLAZEPOSE33_NAMES,
    COCO_FROM_BLAZEPOSE,
    POSE_FLAG_THRESHOLD,
    SPEC,
    BlazePoseEstimator,
    BlazePoseResult,
    create_blazepose_estimator,
)
from .rois import BlazePoseInputError, Rois, crop_rois, rois_for_boxes, rois_from_alignment_points, rois_from_boxes

register(SPEC)

__all__ = [
    "BLAZEPOSE33_NAMES", "COCO_FROM_BLAZEPOSE", "POSE_FLAG_THRESHOLD", "SPEC", "BlazePoseDetector",
    "BlazePoseEstimator", "BlazePoseInputError", "BlazePoseResult", "PersonRois", "Rois", "create_blazepose_estimator",
    "crop_rois", "rois_for_boxes", "rois_from_alignment_points", "rois_from_boxes",
]
