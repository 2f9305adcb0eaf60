"""Turn a resolved TrackConfig into components (values in, objects out): the one place that reads configs."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .config import MultiPoseNetEstimatorConfig, NoFlowConfig, TopDownEstimatorConfig, TrackConfig
from .pipeline import PoseTracker, Propagation


def _settings(section: Any) -> dict[str, Any]:
    """A config section's fields without its ``kind`` (the factories take the kind separately)."""
    return {k: v for k, v in asdict(section).items() if k != "kind"}


def build_estimator(cfg: TrackConfig):
    """The configured estimator (``estimators.factory.create_estimator``)."""
    from estimators.factory import create_estimator

    e = cfg.estimator
    if isinstance(e, TopDownEstimatorConfig):
        return create_estimator(e.name, e.checkpoint, e.checkpoint_format, input_size=e.input_size,
                                device=cfg.device, precision=e.precision, flip_test=e.flip_test,
                                max_batch=e.max_batch, random_weights=e.random_weights)
    if isinstance(e, MultiPoseNetEstimatorConfig):
        size = {} if e.input_size is None else {"input_size": e.input_size}  # None: the estimator's own
        return create_estimator(e.name, e.checkpoint, device=cfg.device, max_batch=e.max_batch,
                                random_weights=e.random_weights, assign=e.assign, peak_threshold=e.peak_threshold,
                                **size)
    return create_estimator(e.kind, e.checkpoint, device=cfg.device, max_batch=e.max_batch)


def build_detector(cfg: TrackConfig, sequence: str | None = None, estimator=None):
    """The configured person detector; ``sequence`` (the source's name) lets precomputed PoseTrack
    detections be matched to frames by the PoseTrack image-id convention; ``estimator``: the one-pass
    estimator whose person subnet ``detector.kind: own`` is (the same object the tracker estimates with)."""
    from .detectors import create_detector

    own = {"estimator": estimator} if cfg.detector.kind == "own" else {}
    return create_detector(cfg.detector.kind, device=cfg.device, sequence=sequence, **own,
                           **_settings(cfg.detector))


def build_flow(cfg: TrackConfig):
    """The configured flow backend, or None for ``flow.kind: none`` (no propagation)."""
    if isinstance(cfg.flow, NoFlowConfig):
        return None
    from flow import create_flow

    kwargs = _settings(cfg.flow)
    if "weights" in kwargs:  # RAFT
        kwargs = {"weights_path": kwargs.pop("weights"), "device": cfg.device, **kwargs}
    return create_flow(cfg.flow.kind, **kwargs)


def build_propagation(cfg: TrackConfig) -> Propagation:
    return Propagation(**asdict(cfg.propagation))


def build_associator(cfg: TrackConfig, sigmas: tuple[float, ...]):
    """A fresh PoseAssociator; ``sigmas``: the estimator's layout's (K,) OKS sigmas."""
    from association import PoseAssociator

    a = cfg.association
    return PoseAssociator(min_similarity=a.min_similarity, max_lost_frames=a.max_lost_frames,
                          keypoint_score_threshold=a.keypoint_threshold, method=a.match, sigmas=sigmas,
                          min_hits=a.min_hits, confirm_score=a.confirm_score, max_lost_seconds=a.max_lost_seconds,
                          reid_min_similarity=a.reid_min_similarity, reid_gate=a.reid_gate,
                          reid_gate_rate=a.reid_gate_rate, reid_min_appearance=a.reid_min_appearance)


def build_tracker(cfg: TrackConfig, estimator=None, detector=None, flow=None,
                  sequence: str | None = None) -> PoseTracker:
    """A PoseTracker from the config; pass ready components to override (e.g. share one estimator).

    The files a run needs are checked first (``TrackConfig.check_runnable``), before any model loads.
    """
    cfg.check_runnable()
    if estimator is None:
        estimator = build_estimator(cfg)  # refuses a model without weights before building it
    if detector is None:
        detector = build_detector(cfg, sequence, estimator=estimator)  # kind "own": the estimator's subnet
    if flow is None:
        flow = build_flow(cfg)
    from association.appearance import PoseAppearance
    from association.smoothing import KeypointSmoother

    o = cfg.output
    smoother = None
    if o.smooth_files or o.smooth_render:
        smoother = KeypointSmoother(min_cutoff=o.smooth_min_cutoff, beta=o.smooth_beta, d_cutoff=1.0,
                                    score_threshold=o.keypoint_threshold, forget_after=1.0)
    appearance = PoseAppearance(estimator.layout) if cfg.association.appearance else None
    return PoseTracker(estimator, detector, flow, build_associator(cfg, estimator.layout.sigmas),
                       build_propagation(cfg), appearance=appearance, cut_threshold=cfg.association.cut_threshold,
                       fill_gaps=o.fill_gaps, smoother=smoother, smooth_files=o.smooth_files)
