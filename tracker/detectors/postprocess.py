"""Common post-processing of raw detections: class filter, score threshold, class-wise NMS, top-k."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import Detections, DetectorError

COCO_PERSON_CATEGORY_ID = 1  # COCO category id / torchvision label of "person" (91-slot label space)
MMDET_PERSON_LABEL = 0  # mmdet uses contiguous 80-class labels: person is 0


def postprocess(boxes: Any, scores: Any, labels: Any | None, class_ids: Sequence[int] | None, score_threshold: float,
                nms_iou: float | None, max_detections: int | None = None) -> Detections:
    """Filter the raw detections of one image.

    boxes: (N, 4) xyxy image pixels (numpy or torch). scores: (N,). labels: (N,) integer class ids (None =
    all one class). class_ids: labels to keep (None = keep all). score_threshold: keep scores >= it. nms_iou:
    IoU for class-wise NMS (torchvision.ops.batched_nms; None = no NMS). max_detections: keep at most this many,
    best first. Returns Detections sorted by decreasing score.
    """
    import torch
    from torchvision.ops import batched_nms

    b = torch.as_tensor(boxes).float().reshape(-1, 4)
    s = torch.as_tensor(scores).float().reshape(-1)
    lab = torch.zeros(s.shape[0], dtype=torch.int64) if labels is None else torch.as_tensor(labels).long().reshape(-1)
    if not (b.shape[0] == s.shape[0] == lab.shape[0]):
        raise DetectorError(f"postprocess: {b.shape[0]} boxes, {s.shape[0]} scores, {lab.shape[0]} labels")
    keep = s >= score_threshold
    if class_ids is not None:
        keep &= torch.isin(lab, torch.as_tensor(list(class_ids), dtype=torch.int64, device=lab.device))
    b, s, lab = b[keep], s[keep], lab[keep]
    if nms_iou is not None and b.shape[0] > 0:
        order = batched_nms(b, s, lab, float(nms_iou))  # sorted by decreasing score
    else:
        order = torch.argsort(s, descending=True, stable=True)
    if max_detections is not None:
        order = order[: int(max_detections)]
    return Detections(b[order].cpu().numpy(), s[order].cpu().numpy())
