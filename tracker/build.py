"""Turn a resolved TrackConfig into components (values in, objects out): the one place that reads configs."""
from __future__ import annotations

from .config import TrackConfig
from .pipeline import PoseTracker


def build_estimator(cfg: TrackConfig):
    from estimators.inference import create_estimator

    e = cfg.estimator
    kwargs = dict(device=cfg.device, precision=e.precision, flip_test=e.flip_test, max_batch=e.max_batch)
    if e.input_size is not None:
        kwargs["input_size"] = tuple(e.input_size)
    return create_estimator(e.name, checkpoint=e.checkpoint, source=e.source, **kwargs)


def build_detector(cfg: TrackConfig, sequence: str | None = None):
    """The configured person detector; ``sequence`` (the source's name) lets precomputed PoseTrack
    detections be matched to frames by the PoseTrack image-id convention."""
    d = cfg.detector
    if d.kind == "blazepose":
        from .blazepose_detector import BlazePoseDetector

        kwargs = {} if d.tile_scales is None else {"scales": tuple(d.tile_scales)}
        return BlazePoseDetector(score_threshold=d.score_threshold, **kwargs)
    from . import detectors

    if d.kind == "torchvision":
        return detectors.TorchvisionDetector(d.model, weights_path=d.weights, device=cfg.device,
                                             score_threshold=d.score_threshold, nms_iou=d.nms_iou,
                                             batch_size=d.batch_size)
    if d.kind == "mmdet":
        if not d.config:
            raise ValueError("detector.kind=mmdet needs detector.config (an mmdet config file) and detector.checkpoint")
        return detectors.MMDetDetector(d.config, d.checkpoint, device=cfg.device, score_threshold=d.score_threshold)
    if d.kind == "precomputed":
        if not d.file:
            raise ValueError("detector.kind=precomputed needs detector.file (a COCO detection results JSON)")
        return detectors.PrecomputedDetector(d.file, annotation_path=d.annotations, sequence=sequence,
                                            score_threshold=d.score_threshold)
    if d.kind == "gt":
        if not d.file:
            raise ValueError("detector.kind=gt needs detector.file (a PoseTrack 2018 annotation JSON)")
        return detectors.GroundTruthDetector(d.file)
    raise ValueError(f"unknown detector.kind {d.kind!r}")


def build_flow(cfg: TrackConfig):
    from flow import create_flow

    f = cfg.flow
    if f.name == "none":
        return None
    kwargs: dict = {"scale": f.scale}
    if f.name == "dis":
        kwargs["preset"] = f.preset
    if f.name.startswith("raft"):
        kwargs["weights_path"] = f.weights
        kwargs["device"] = cfg.device
    return create_flow(f.name, **kwargs)


def build_tracker(cfg: TrackConfig, estimator=None, detector=None, flow=None, sequence: str | None = None) -> PoseTracker:
    """A PoseTracker from the config; pass ready components to override (e.g. share one estimator)."""
    a = cfg.association
    return PoseTracker(
        estimator if estimator is not None else build_estimator(cfg),
        detector if detector is not None else build_detector(cfg, sequence),
        flow if flow is not None else build_flow(cfg),
        det_interval=a.det_interval,
        nms_iou=a.nms_iou,
        box_enlarge=a.box_enlarge,
        propagate_keypoint_threshold=a.propagate_keypoint_threshold,
        min_propagated_score=a.min_propagated_score,
        min_similarity=a.min_similarity,
        max_lost_frames=a.max_lost_frames,
        oks_keypoint_threshold=a.oks_keypoint_threshold,
        match=a.match,
        pose_nms_oks=a.pose_nms_oks,
    )
