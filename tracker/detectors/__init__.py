"""Person detectors behind one interface and one factory.

``create_detector(kind, *, device, sequence, **settings)`` builds a :class:`PersonDetector`;
``detect(frames) -> list[Detections]``, one per frame, boxes in that frame's image pixels. Kinds (one module
each): ``blazepose`` (the embedded tiled BlazePose detector; gives ``Detections.roi_points``), ``torchvision``
(torchvision COCO detectors, weights never downloaded), ``mmdet`` (MMDetection 3.x, optional), ``precomputed``
(a COCO detection-results JSON), ``centernet`` / ``nanodet`` (CenterNet / NanoDet, converted TF.js
graphs), ``movenet_multipose`` (MoveNet multipose: boxes, and poses in ``Detections.poses``), ``gt`` (oracle
boxes from a PoseTrack annotation file), ``own`` (the person subnet of a one-pass estimator, given as
``estimator``: MultiPoseNet's boxes from the same network pass as its keypoints). Importing this
package imports no torch; each kind imports what it needs when built.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import DetectionFileError, Detections, DetectorError, PersonDetector, WeightsNotFoundError
from .blazepose import BlazePosePersonDetector
from .centernet import CenterNetDetector
from .ground_truth import GroundTruthDetector
from .mmdetection import MMDetDetector
from .movenet_multipose import MultiPoseDetector
from .nanodet import NanoDetDetector
from .own import OwnPersonDetector
from .postprocess import COCO_PERSON_CATEGORY_ID, MMDET_PERSON_LABEL, postprocess
from .precomputed import PrecomputedDetector
from .torchvision_coco import TORCHVISION_MODELS, TorchvisionDetector, torchvision_weights_file

# kind -> its settings (exactly the tracking config's fields of that kind)
KIND_SETTINGS: Mapping[str, tuple[str, ...]] = {
    "blazepose": ("score_threshold", "tile_scales", "max_views"),
    "torchvision": ("model", "weights", "score_threshold", "nms_iou", "batch_size"),
    "mmdet": ("config", "checkpoint", "score_threshold"),
    "precomputed": ("file", "annotations", "score_threshold"),
    "gt": ("file",),
    "centernet": ("weights", "score_threshold", "nms_iou", "batch_size"),
    "nanodet": ("weights", "score_threshold", "nms_iou", "batch_size"),
    "movenet_multipose": ("weights", "score_threshold", "nms_iou", "long_side", "poses"),
    "own": ("score_threshold", "max_detections"),
}
_REQUIRED: Mapping[str, tuple[tuple[str, str], ...]] = {
    "mmdet": (("config", "an mmdet config file"), ("checkpoint", "its checkpoint file")),
    "precomputed": (("file", "a COCO detection-results JSON"),),
    "gt": (("file", "a PoseTrack annotation JSON"),),
    "own": (("score_threshold", "a person score in (0, 1]"), ("max_detections", "boxes kept per frame")),
}


def create_detector(kind: str, *, device: str = "cpu", sequence: str | None = None, estimator: Any = None,
                    **settings: Any) -> PersonDetector:
    """The person detector of ``kind`` with that kind's settings (see :data:`KIND_SETTINGS`).

    device: torch device of the torchvision / mmdet models (BlazePose runs on the CPU; files need none).
    sequence: the source's name (e.g. a PoseTrack sequence "003418_mpii_test"): precomputed detections are
    matched to frames by the PoseTrack image-id convention and a merged annotation file is restricted to it.
    estimator: for kind ``own`` only, the one-pass estimator whose person subnet detects (the tracker's).
    A setting given as None takes the detector's default (for ``nms_iou``: no extra NMS).
    """
    if kind not in KIND_SETTINGS:
        raise DetectorError(f"unknown detector kind {kind!r}; choose from {', '.join(KIND_SETTINGS)}")
    allowed = KIND_SETTINGS[kind]
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise DetectorError(f"detector kind {kind!r} has no setting {', '.join(map(repr, unknown))}; its settings: "
                            f"{', '.join(allowed)}")
    for field, what in _REQUIRED.get(kind, ()):
        if not settings.get(field):
            raise DetectorError(f"detector kind {kind!r} needs detector.{field} ({what})")
    if (estimator is not None) != (kind == "own"):
        raise DetectorError(f"detector kind {kind!r}: " + ("needs the one-pass estimator (estimator=...)"
                                                           if kind == "own" else
                                                           "takes no estimator (only kind 'own' does)"))
    given = {k: v for k, v in settings.items() if v is not None}
    threshold = {"score_threshold": given["score_threshold"]} if "score_threshold" in given else {}
    if kind == "own":
        return OwnPersonDetector(estimator, **given)
    if kind == "blazepose":
        return BlazePosePersonDetector(**given)
    if kind == "torchvision":
        kw = {"model_name": given.pop("model")} if "model" in given else {}
        if "weights" in given:
            kw["weights_path"] = given.pop("weights")
        if "nms_iou" in settings:
            kw["nms_iou"] = given.pop("nms_iou", None)
        return TorchvisionDetector(device=device, **kw, **given)
    if kind == "mmdet":
        return MMDetDetector(given["config"], given["checkpoint"], device=device, **threshold)
    if kind == "centernet":
        if "nms_iou" in settings:
            given["nms_iou"] = settings["nms_iou"]
        return CenterNetDetector(device=device, **given)
    if kind == "nanodet":
        if "nms_iou" in settings:
            given["nms_iou"] = settings["nms_iou"]
        return NanoDetDetector(device=device, **given)
    if kind == "movenet_multipose":
        return MultiPoseDetector(device=device, **given)
    if kind == "precomputed":
        return PrecomputedDetector(given["file"], annotation_path=given.get("annotations"), sequence=sequence,
                                   **threshold)
    return GroundTruthDetector(given["file"], sequence=sequence)


__all__ = [
    "COCO_PERSON_CATEGORY_ID", "KIND_SETTINGS", "MMDET_PERSON_LABEL", "TORCHVISION_MODELS", "BlazePosePersonDetector",
    "CenterNetDetector", "MultiPoseDetector", "NanoDetDetector",
    "DetectionFileError", "Detections", "DetectorError", "GroundTruthDetector", "MMDetDetector", "OwnPersonDetector",
    "PersonDetector",
    "PrecomputedDetector", "TorchvisionDetector", "WeightsNotFoundError", "create_detector", "postprocess",
    "torchvision_weights_file",
]
