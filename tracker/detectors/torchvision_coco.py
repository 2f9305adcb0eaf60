"""Person detector kind "torchvision": torchvision's COCO detectors, weights from a file or torchvision's cache
folder, never downloaded here."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tracker.sources import Frame

from .base import Detections, DetectorError, PersonDetector, WeightsNotFoundError, frame_image
from .postprocess import COCO_PERSON_CATEGORY_ID, postprocess

# name -> torchvision weights enum member holding the COCO checkpoint (its URL gives the cache file name)
TORCHVISION_MODELS: dict[str, str] = {
    "fasterrcnn_resnet50_fpn_v2": "FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1",
    "retinanet_resnet50_fpn": "RetinaNet_ResNet50_FPN_Weights.COCO_V1",
    "fcos_resnet50_fpn": "FCOS_ResNet50_FPN_Weights.COCO_V1",
    "ssdlite320_mobilenet_v3_large": "SSDLite320_MobileNet_V3_Large_Weights.COCO_V1",
}


def torchvision_weights_file(model_name: str) -> Path:
    """Where torchvision keeps the COCO weights of ``model_name``: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    import torch
    import torchvision.models as tvm

    if model_name not in TORCHVISION_MODELS:
        raise DetectorError(f"unknown torchvision detector {model_name!r}; choose from {sorted(TORCHVISION_MODELS)}")
    enum_name, member = TORCHVISION_MODELS[model_name].split(".")
    url = getattr(getattr(tvm.detection, enum_name), member).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


class TorchvisionDetector(PersonDetector):
    """A torchvision COCO detector (91-slot labels, person = 1).

    model_name: one of :data:`TORCHVISION_MODELS`. weights_path: a state-dict file; default: torchvision's
    cache file (see :func:`torchvision_weights_file`). device: torch device string. score_threshold,
    nms_iou, class_ids, max_detections: see :func:`postprocess`. batch_size: frames per forward pass.
    The model's own resizing/normalisation (GeneralizedRCNNTransform etc.) is used unchanged.
    """

    def __init__(
        self,
        model_name: str = "fasterrcnn_resnet50_fpn_v2",
        weights_path: str | os.PathLike | None = None,
        device: str = "cpu",
        score_threshold: float = 0.5,
        batch_size: int = 2,
        nms_iou: float | None = 0.6,
        class_ids: Sequence[int] = (COCO_PERSON_CATEGORY_ID,),
        max_detections: int | None = 100,
    ):
        import torch
        import torchvision.models as tvm

        if batch_size < 1:
            raise DetectorError(f"batch_size must be >= 1, got {batch_size}")
        default_path = torchvision_weights_file(model_name)
        path = Path(weights_path) if weights_path is not None else default_path
        if not path.is_file():
            hint = (f"put the file {default_path.name} (from torchvision's "
                    f"{TORCHVISION_MODELS[model_name]} weights) into the folder {default_path.parent}")
            if weights_path is not None:
                raise WeightsNotFoundError(f"weights file for {model_name} not found: {path}; give an existing "
                                           f"state-dict file, or {hint}")
            raise WeightsNotFoundError(f"weights for {model_name} not found and nothing is downloaded: {hint} "
                                       f"(or pass weights_path; the cache folder follows $TORCH_HOME)")
        model = tvm.get_model(model_name, weights=None, weights_backbone=None, num_classes=91)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsNotFoundError(f"cannot load weights file {path}: {exc}") from exc
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise DetectorError(f"{path} does not fit torchvision {model_name}: {str(exc).splitlines()[0]} "
                                f"...") from exc
        self.model_name = model_name
        self.weights_path = path
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.score_threshold = float(score_threshold)
        self.batch_size = int(batch_size)
        self.nms_iou = nms_iou
        self.class_ids = tuple(class_ids) if class_ids is not None else None
        self.max_detections = max_detections

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        import torch

        out: list[Detections] = []
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                out += self._detect_batch(frames[start: start + self.batch_size])
        return out

    def _detect_batch(self, frames: Sequence[Frame]) -> list[Detections]:
        import torch

        batch, out = [], []
        for i, frame in enumerate(frames):
            bgr = frame_image(frame, f"frames[{i}]")
            rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).to(self.device)
            batch.append(rgb.permute(2, 0, 1).float().div_(255.0))  # (3, H, W) RGB in [0, 1]
        for result in self.model(batch):  # boxes already in each input image's pixels
            out.append(postprocess(result["boxes"], result["scores"], result["labels"], self.class_ids,
                                   self.score_threshold, self.nms_iou, self.max_detections))
        return out
