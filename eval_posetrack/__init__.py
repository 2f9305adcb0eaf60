"""PoseTrack 2017/2018 formats and the official mAP / MOTA evaluation.

Modules: ``formats`` (readers with validation, writers, 2017 <-> 2018 conversion, COCO-17 slot mapping,
``PoseTrack18Writer`` for incremental output), ``geometry`` (strict point-in-polygon for ignore regions),
``ap`` (per-frame assignment, pooled VOC AP), ``mot`` (MOTA/MOTP/Prec/Rec with motmetrics semantics),
``evaluate`` (``evaluate(gt_dir, pred_dir) -> dict``, tables, plot), ``cli`` (``posetrack eval``),
``reference`` (slow literal re-statement of poseval: test oracle, benchmark baseline), ``synthetic``
(benchmark / test workloads).
"""

from .evaluate import evaluate  # noqa: E402  (the Python API: evaluate(gt_dir, pred_dir) -> summary dict)

__all__ = ["evaluate"]
