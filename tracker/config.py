"""The tracking configuration: typed dataclasses, loaded from YAML presets (``configs/track_*.yaml``) with
unknown keys rejected, then command-line flags (typed values), then dotted ``KEY=VALUE`` overrides; resolved
once and saved next to every output.

The defaults live here and only here: the components (PoseTracker, PoseAssociator, the detectors, the flow
backends, the estimators) take every setting explicitly. ``detector``, ``estimator`` and ``flow`` are tagged
unions: their ``kind`` picks the dataclass, and only that kind's keys are accepted. Every check runs in
``__post_init__`` with the dotted key in the message, so a bad value is reported before any model loads.
This module imports no torch (only ``configs`` and the torch-free ``estimators.precision``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from configs import resolve_preset as _resolve
from configs.loader import ConfigError, from_dict, parse_override, read_yaml, save_yaml, set_value, to_dict
from estimators.precision import PRECISIONS

__all__ = ["ConfigError", "TrackConfig", "load_track_config", "resolve_preset", "save_yaml", "to_dict"]

CheckpointFormat = Literal["official", "mmpose0x", "mmpose1x", "native"]  # estimators.checkpoints.FORMATS
OUTPUT_FORMATS = ("posetrack18", "posetrack17", "coco")


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def _check_fraction(value: float, key: str, *, low_open: bool = False) -> None:
    ok = (0.0 < value <= 1.0) if low_open else (0.0 <= value <= 1.0)
    _require(ok, key, f"expected a number in {'(0, 1]' if low_open else '[0, 1]'}, got {value}")


# ------------------------------------------------------------------------------------------- estimator
@dataclass
class BlazePoseEstimatorConfig:
    """The embedded BlazePose landmark model (MediaPipe Pose, full), run through TFLite."""

    kind: Literal["blazepose"] = "blazepose"
    checkpoint: str | None = None   # landmark .tflite file; None = the verified copy in the weights cache
    max_batch: int = 32                # person crops per interpreter call

    def __post_init__(self) -> None:
        _require(self.max_batch >= 1, "estimator.max_batch", f"expected >= 1, got {self.max_batch}")


@dataclass
class TopDownEstimatorConfig:
    """A registered top-down heatmap estimator (``posetrack estimate --help`` lists them)."""

    kind: Literal["topdown"] = "topdown"
    name: str = "hrnet_w32"
    checkpoint: str | None = None   # weights file; required unless random_weights (no weights are built in)
    checkpoint_format: CheckpointFormat | None = None  # None = recognised from the checkpoint's keys
    input_size: tuple[int, int] | None = None  # (width, height) of the crop; None = the model's own
    flip_test: bool = True
    precision: str = "fp32"           # one of estimators.precision.PRECISIONS
    max_batch: int = 32                # person crops per forward
    random_weights: bool = False       # allow running without a checkpoint (benchmarks only: poses are noise)

    def __post_init__(self) -> None:
        _require(bool(self.name), "estimator.name", "must name a registered estimator")
        _require(self.max_batch >= 1, "estimator.max_batch", f"expected >= 1, got {self.max_batch}")
        _require(self.precision in PRECISIONS, "estimator.precision",
                 f"{self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.input_size is not None:
            _require(all(v > 0 for v in self.input_size), "estimator.input_size",
                     f"expected positive (width, height), got {self.input_size}")
        _require(self.name not in ONE_PASS_NAMES, "estimator.name",
                 f"{self.name!r} is a one-pass (bottom-up) model: use estimator.kind=multiposenet "
                 f"(--estimator {self.name})")


# the one-pass (bottom-up) models: their person subnet is the detector (detector.kind=own)
MultiPoseNetName = Literal["multiposenet_r50", "multiposenet_r101"]  # estimators.multiposenet.VARIANTS
ONE_PASS_NAMES = get_args(MultiPoseNetName)
ASSIGN_MODES = ("prn", "max", "ucr")  # estimators.multiposenet.ASSIGN_MODES


@dataclass
class MultiPoseNetEstimatorConfig:
    """MultiPoseNet (bottom-up): one network pass per frame gives the keypoint heatmaps and the person boxes
    (detector.kind=own); the PRN assigns keypoints to every detected and flow-propagated box."""

    kind: Literal["multiposenet"] = "multiposenet"
    name: MultiPoseNetName = "multiposenet_r50"
    checkpoint: str | None = None   # `network` + `prn` state dicts; required unless random_weights (none shipped)
    input_size: tuple[int, int] | None = None  # (width, height) the frame is fitted into; None = the model's own
    assign: str = "prn"                # prn | max | ucr (paper Table 3; ucr needs the checkpoint's ucr_prior)
    peak_threshold: float = 0.1        # minimum heatmap value of a keypoint peak
    max_batch: int = 64                # person boxes per PRN forward
    random_weights: bool = False       # allow running without a checkpoint (benchmarks only: poses are noise)

    def __post_init__(self) -> None:
        _require(self.assign in ASSIGN_MODES, "estimator.assign",
                 f"{self.assign!r} is not one of {', '.join(ASSIGN_MODES)}")
        _check_fraction(self.peak_threshold, "estimator.peak_threshold")
        _require(self.max_batch >= 1, "estimator.max_batch", f"expected >= 1, got {self.max_batch}")
        if self.input_size is not None:
            _require(all(v > 0 for v in self.input_size), "estimator.input_size",
                     f"expected positive (width, height), got {self.input_size}")


EstimatorConfig = BlazePoseEstimatorConfig | TopDownEstimatorConfig | MultiPoseNetEstimatorConfig


def estimator_kind(name: str) -> str:
    """The ``estimator.kind`` of a registered estimator name (``--estimator NAME``)."""
    if name in ONE_PASS_NAMES:
        return "multiposenet"
    return "blazepose" if name == "blazepose" else "topdown"


# -------------------------------------------------------------------------------------------- detector
@dataclass
class BlazePoseDetectorConfig:
    """The embedded BlazePose person detector, tiled (offline, no torch)."""

    kind: Literal["blazepose"] = "blazepose"
    score_threshold: float = 0.4       # tiles holding two overlapping people score 0.4-0.5
    tile_scales: list[float] = field(default_factory=lambda: [1.0, 0.6])  # tile sizes / the short side
    max_views: int = 32                # full frame + tiles per frame at most (larger tiles past it, with a warning)

    def __post_init__(self) -> None:
        _check_fraction(self.score_threshold, "detector.score_threshold", low_open=True)
        _require(len(self.tile_scales) > 0 and all(0.0 < s <= 1.0 for s in self.tile_scales),
                 "detector.tile_scales", f"expected fractions in (0, 1], got {self.tile_scales}")
        _require(self.max_views >= 1, "detector.max_views", f"expected >= 1, got {self.max_views}")


@dataclass
class TorchvisionDetectorConfig:
    """A torchvision detection model (COCO person class)."""

    kind: Literal["torchvision"] = "torchvision"
    model: str = "fasterrcnn_resnet50_fpn_v2"
    weights: str | None = None      # weights file; None = torchvision's cache file
    score_threshold: float = 0.5
    nms_iou: float = 0.6
    batch_size: int = 1

    def __post_init__(self) -> None:
        _check_fraction(self.score_threshold, "detector.score_threshold", low_open=True)
        _check_fraction(self.nms_iou, "detector.nms_iou", low_open=True)
        _require(self.batch_size >= 1, "detector.batch_size", f"expected >= 1, got {self.batch_size}")


@dataclass
class MMDetDetectorConfig:
    """An MMDetection model (config + checkpoint files)."""

    kind: Literal["mmdet"] = "mmdet"
    config: str | None = None       # required to run
    checkpoint: str | None = None   # required to run
    score_threshold: float = 0.5

    def __post_init__(self) -> None:
        _check_fraction(self.score_threshold, "detector.score_threshold", low_open=True)


@dataclass
class PrecomputedDetectorConfig:
    """Detections read from a COCO detection-results JSON (e.g. the released PoseTrack18 person boxes)."""

    kind: Literal["precomputed"] = "precomputed"
    file: str | None = None         # required to run (--detections)
    annotations: str | None = None  # an annotation file mapping image ids to file names
    score_threshold: float = 0.4       # MMPose's PoseTrack18 configs: det_bbox_thr=0.4

    def __post_init__(self) -> None:
        _check_fraction(self.score_threshold, "detector.score_threshold", low_open=True)


@dataclass
class GroundTruthDetectorConfig:
    """The annotated boxes of a PoseTrack 2018 annotation file (oracle detector)."""

    kind: Literal["gt"] = "gt"
    file: str | None = None         # required to run (--detections)


@dataclass
class CenterNetDetectorConfig:
    """CenterNet (MobileNetV3, COCO), a converted TF.js graph; weights from `posetrack weights fetch`."""

    kind: Literal["centernet"] = "centernet"
    weights: str | None = None      # centernet.json (with its .bin); None = the fetched copy in the weights cache
    score_threshold: float = 0.3       # person heatmap peak (sigmoid)
    nms_iou: float = 0.5
    batch_size: int = 1

    def __post_init__(self) -> None:
        _check_fraction(self.score_threshold, "detector.score_threshold", low_open=True)
        _check_fraction(self.nms_iou, "detector.nms_iou", low_open=True)
        _require(self.batch_size >= 1, "detector.batch_size", f"expected >= 1, got {self.batch_size}")


@dataclass
class NanoDetDetectorConfig:
    """NanoDet (COCO), a converted TF.js graph; weights from `posetrack weights fetch`."""

    kind: Literal["nanodet"] = "nanodet"
    weights: str | None = None      # nanodet.json (with its .bin); None = the fetched copy in the weights cache
    score_threshold: float = 0.3       # person class score (sigmoid)
    nms_iou: float = 0.5
    batch_size: int = 1

    def __post_init__(self) -> None:
        _check_fraction(self.score_threshold, "detector.score_threshold", low_open=True)
        _check_fraction(self.nms_iou, "detector.nms_iou", low_open=True)
        _require(self.batch_size >= 1, "detector.batch_size", f"expected >= 1, got {self.batch_size}")


@dataclass
class MultiPoseDetectorConfig:
    """MoveNet multipose (bottom-up, up to 6 people), a converted TF.js graph: person boxes, and poses that
    seed the top-down pass (``poses: seed``, boxes only) or replace it for the detected boxes (``replace``)."""

    kind: Literal["movenet_multipose"] = "movenet_multipose"
    weights: str | None = None      # movenet-multipose.json; None = the fetched copy in the weights cache
    score_threshold: float = 0.2       # instance score (centre peak x mean confident keypoint score)
    nms_iou: float = 0.5
    long_side: int = 512               # the frame is resized to this long side (rounded to a multiple of 32)
    poses: Literal["seed", "replace"] = "seed"

    def __post_init__(self) -> None:
        _check_fraction(self.score_threshold, "detector.score_threshold", low_open=True)
        _check_fraction(self.nms_iou, "detector.nms_iou", low_open=True)
        _require(self.long_side >= 32 and self.long_side % 32 == 0, "detector.long_side",
                 f"expected a multiple of 32 (>= 32), got {self.long_side}")
        _require(self.poses in ("seed", "replace"), "detector.poses",
                 f"expected 'seed' or 'replace', got {self.poses!r}")


@dataclass
class OwnDetectorConfig:
    """The one-pass estimator's own person subnet (MultiPoseNet's RetinaNet head), from the same network pass
    as the keypoints; chosen by ``--estimator multiposenet_*`` unless ``--detector`` says otherwise."""

    kind: Literal["own"] = "own"
    score_threshold: float = 0.3       # person score (sigmoid) after NMS at IoU 0.3 (paper sec. 4.1)
    max_detections: int = 100          # boxes kept per frame, best-scoring

    def __post_init__(self) -> None:
        _check_fraction(self.score_threshold, "detector.score_threshold", low_open=True)
        _require(self.max_detections >= 1, "detector.max_detections", f"expected >= 1, got {self.max_detections}")


DetectorConfig = (BlazePoseDetectorConfig | TorchvisionDetectorConfig | MMDetDetectorConfig
                  | PrecomputedDetectorConfig | GroundTruthDetectorConfig | CenterNetDetectorConfig
                  | NanoDetDetectorConfig | MultiPoseDetectorConfig | OwnDetectorConfig)
# detectors a one-pass estimator runs with: its own person subnet, or boxes given by a file (the network still
# runs once per frame); a second detector network would be a second pass per frame and is refused
ONE_PASS_DETECTORS = ("own", "gt", "precomputed")

# ------------------------------------------------------------------------------------------------ flow
FLOW_SCALE = 0.5  # the flow is computed at this fraction of the resolution


def _check_scale(scale: float) -> None:
    _require(0.0 < scale <= 1.0, "flow.scale", f"expected 0 < scale <= 1 (0.5 = half resolution), got {scale}")


@dataclass
class DISFlowConfig:
    """OpenCV Dense Inverse Search flow."""

    kind: Literal["dis"] = "dis"
    preset: Literal["ultrafast", "fast", "medium"] = "ultrafast"
    scale: float = FLOW_SCALE

    def __post_init__(self) -> None:
        _check_scale(self.scale)


@dataclass
class FarnebackFlowConfig:
    """OpenCV Farneback flow."""

    kind: Literal["farneback"] = "farneback"
    scale: float = FLOW_SCALE

    def __post_init__(self) -> None:
        _check_scale(self.scale)


@dataclass
class RaftFlowConfig:
    """torchvision RAFT (small or large)."""

    kind: Literal["raft_small", "raft_large"] = "raft_small"
    weights: str | None = None      # weights file; None = torchvision's cache file
    scale: float = FLOW_SCALE

    def __post_init__(self) -> None:
        _check_scale(self.scale)


@dataclass
class NoFlowConfig:
    """No optical flow: no propagated boxes (the detector runs every frame), association without motion."""

    kind: Literal["none"] = "none"


FlowConfig = DISFlowConfig | FarnebackFlowConfig | RaftFlowConfig | NoFlowConfig


# ----------------------------------------------------------------------------- propagation, association
@dataclass
class PropagationConfig:
    """Boxes carried from the previous frame by the flow, and merging them with the detections."""

    det_interval: int = 1              # run the detector every k-th frame (flow carries people in between)
    nms_iou: float = 0.5               # IoU above which detected and propagated boxes merge (best score kept)
    box_enlarge: float = 0.15          # propagated box = keypoint extent enlarged by this fraction
    keypoint_threshold: float = 0.3    # keypoints scoring below this do not shape propagated boxes
    min_score: float = 0.3             # a propagated pose whose mean keypoint score is below this is dropped
    pose_nms_oks: float | None = 0.7  # drop a pose whose OKS with a better one exceeds this (None = off)
    duplicate_oks: float = 0.5         # a propagated pose whose OKS with a detected pose exceeds this is dropped
    max_frames: int = 25               # a track is propagated at most this many frames without a detection
    max_persons: int = 100             # at most this many boxes per frame are estimated (best-scoring kept)
    prefer_detected: bool = True       # box NMS ranks detected boxes above propagated ones (BlazePose presets: off)
    min_detected_score: float = 0.2    # a detected pose whose mean keypoint score is below this is dropped

    def __post_init__(self) -> None:
        _require(self.det_interval >= 1, "propagation.det_interval", f"must be >= 1, got {self.det_interval}")
        _check_fraction(self.min_detected_score, "propagation.min_detected_score")
        _check_fraction(self.duplicate_oks, "propagation.duplicate_oks")
        _require(self.max_frames >= 1, "propagation.max_frames", f"expected >= 1, got {self.max_frames}")
        _require(self.max_persons >= 1, "propagation.max_persons", f"expected >= 1, got {self.max_persons}")
        _check_fraction(self.nms_iou, "propagation.nms_iou", low_open=True)
        _require(self.box_enlarge >= 0, "propagation.box_enlarge", f"expected >= 0, got {self.box_enlarge}")
        _check_fraction(self.keypoint_threshold, "propagation.keypoint_threshold")
        _check_fraction(self.min_score, "propagation.min_score")
        if self.pose_nms_oks is not None:
            _check_fraction(self.pose_nms_oks, "propagation.pose_nms_oks")


@dataclass
class AssociationConfig:
    """Track ids: flow-warped OKS matching with the recent tracks."""

    min_similarity: float = 0.3        # minimum OKS for a match
    max_lost_frames: int = 5           # frames a lost track stays matchable
    keypoint_threshold: float = 0.2    # keypoints scoring below this do not count in OKS
    match: Literal["greedy", "hungarian"] = "greedy"
    min_hits: int = 3                  # matched frames in a row that confirm a track (1 = no life cycle)
    confirm_score: float | None = 0.5  # a detector box score that confirms its track at once (None = never)
    max_lost_seconds: float = 3.0      # a lost confirmed track stays re-identifiable this long (0 = off)
    reid_min_similarity: float = 0.5   # appearance (and motion-gate) similarity for re-identification
    reid_gate: float = 1.0             # motion gate radius in person sizes ...
    reid_gate_rate: float = 1.0        # ... plus this many person sizes per second lost
    reid_min_appearance: float = 0.5   # appearance similarity re-identification needs on its own (0 = none)
    appearance: bool = True            # colour histograms along the pose as the re-identification cue
    cut_threshold: float | None = 40.0  # mean grey-level change (0-255) that marks a camera cut (None = off)

    def __post_init__(self) -> None:
        _require(self.min_hits >= 1, "association.min_hits", f"expected >= 1, got {self.min_hits}")
        _require(self.max_lost_seconds >= 0, "association.max_lost_seconds",
                 f"expected >= 0, got {self.max_lost_seconds}")
        _check_fraction(self.reid_min_similarity, "association.reid_min_similarity")
        _check_fraction(self.reid_min_appearance, "association.reid_min_appearance")
        _require(self.reid_gate >= 0 and self.reid_gate_rate >= 0, "association.reid_gate",
                 f"reid_gate and reid_gate_rate must be >= 0, got {self.reid_gate}, {self.reid_gate_rate}")
        if self.cut_threshold is not None:
            _require(0 < self.cut_threshold <= 255, "association.cut_threshold",
                     f"expected a grey-level change in (0, 255], got {self.cut_threshold}")
        _check_fraction(self.min_similarity, "association.min_similarity")
        _require(self.max_lost_frames >= 0, "association.max_lost_frames",
                 f"expected >= 0, got {self.max_lost_frames}")
        _check_fraction(self.keypoint_threshold, "association.keypoint_threshold")


@dataclass
class OutputConfig:
    formats: list[str] = field(default_factory=lambda: ["posetrack18"])  # posetrack18, posetrack17, coco
    render: bool = False
    render_fps: float | None = None  # None = the source's frame rate
    keypoint_threshold: float = 0.3     # for drawing
    flush_every: int = 10               # append the frames to the journal and fsync it every N frames
    fill_gaps: int = 5                  # frames of a confirmed track's gap interpolated in the files (0 = off)
    smooth_files: bool = False          # One-Euro smoothing of the keypoints written to the JSON files
    smooth_render: bool = True          # ... of the keypoints drawn (rendered video, live window)
    smooth_min_cutoff: float = 1.0      # Hz, One-Euro cutoff at rest (lower = smoother, more lag)
    smooth_beta: float = 0.01           # Hz per px/s, how fast the cutoff rises with speed

    def __post_init__(self) -> None:
        _require(self.fill_gaps >= 0, "output.fill_gaps", f"expected >= 0, got {self.fill_gaps}")
        _require(self.smooth_min_cutoff > 0 and self.smooth_beta >= 0, "output.smooth_min_cutoff",
                 f"smooth_min_cutoff must be > 0 and smooth_beta >= 0, got {self.smooth_min_cutoff}, "
                 f"{self.smooth_beta}")
        _require(len(self.formats) > 0, "output.formats", f"expected at least one of {', '.join(OUTPUT_FORMATS)}")
        bad = [f for f in self.formats if f not in OUTPUT_FORMATS]
        _require(not bad, "output.formats", f"unknown format(s) {bad}; valid: {', '.join(OUTPUT_FORMATS)}")
        _require(self.flush_every >= 1, "output.flush_every", f"expected >= 1, got {self.flush_every}")
        if self.render_fps is not None:
            _require(self.render_fps > 0, "output.render_fps", f"expected > 0, got {self.render_fps}")


@dataclass
class TrackConfig:
    # the default preset (configs/track_default.yaml): NanoDet person boxes + MoveNet thunder (no flip test)
    estimator: EstimatorConfig = field(default_factory=lambda: TopDownEstimatorConfig(
        name="movenet_thunder", flip_test=False))
    detector: DetectorConfig = field(default_factory=NanoDetDetectorConfig)
    flow: FlowConfig = field(default_factory=DISFlowConfig)
    propagation: PropagationConfig = field(default_factory=PropagationConfig)
    association: AssociationConfig = field(default_factory=AssociationConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    device: str = "cpu"
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.max_frames is not None:
            _require(self.max_frames >= 1, "max_frames", f"expected >= 1, got {self.max_frames}")
        # the one-pass mode: detector "own" is the estimator's person subnet, so it needs a one-pass estimator;
        # a one-pass estimator takes its own boxes or given ones (gt, precomputed), not a second detector network
        one_pass = isinstance(self.estimator, MultiPoseNetEstimatorConfig)
        _require(one_pass or self.detector.kind != "own", "detector.kind",
                 f"'own' is the person subnet of a one-pass estimator (estimator.kind=multiposenet, e.g. --estimator "
                 f"multiposenet_r50); estimator.kind is {self.estimator.kind!r}")
        _require(not one_pass or self.detector.kind in ONE_PASS_DETECTORS, "detector.kind",
                 f"{self.detector.kind!r} cannot run with estimator.kind=multiposenet, whose network is the detector: "
                 f"use detector.kind=own (what --estimator {getattr(self.estimator, 'name', '')} chooses without "
                 f"--detector) or boxes from a file (gt, precomputed)")

    def check_runnable(self) -> None:
        """The detector files a run needs, which a preset may leave to the command line (checked before any
        model loads; the estimator factory refuses a model without weights itself, also before loading)."""
        d = self.detector
        if isinstance(d, MMDetDetectorConfig):
            _require(bool(d.config and d.checkpoint), "detector.config",
                     "detector.kind=mmdet needs detector.config (an mmdet config file) and detector.checkpoint")
        if isinstance(d, PrecomputedDetectorConfig):
            _require(bool(d.file), "detector.file",
                     "detector.kind=precomputed needs a COCO detection results JSON (--detections FILE)")
        if isinstance(d, GroundTruthDetectorConfig):
            _require(bool(d.file), "detector.file",
                     "detector.kind=gt needs a PoseTrack 2018 annotation JSON (--detections FILE)")


def resolve_preset(name_or_path: str | None) -> Path | None:
    """A preset name (``configs/track_<name>.yaml``) or a YAML path -> path; None -> None (defaults)."""
    return _resolve("track", name_or_path)


def load_track_config(preset: str | None = None, overrides: list[str] | None = None, *,
                      settings: list[tuple[str, Any]] | None = None) -> TrackConfig:
    """The resolved config: the preset (None = the defaults above), then ``settings`` (dotted key, typed
    value) pairs in order, e.g. from command-line flags, then dotted ``KEY=VALUE`` text overrides.

    Setting a section's ``kind`` to another kind starts that section afresh (``("detector.kind", "gt")``
    drops the preset's BlazePose detector keys). Raises ConfigError naming the file and the dotted key.
    """
    path = resolve_preset(preset)
    data: dict = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    for key, value in settings or []:
        set_value(data, key.split("."), value)
    for text in overrides or []:
        keys, value = parse_override(text)
        set_value(data, keys, value, what=f"override {text!r}")
    if settings or overrides:
        source += " + flags/overrides"
    return from_dict(TrackConfig, data, source)
