"""The tracking configuration: typed dataclasses, loaded from YAML presets in configs/ with unknown keys
rejected and dotted overrides from the command line, resolved once and saved next to every output."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from configs import resolve_preset as _resolve
from configs.loader import ConfigError, load_yaml, save_yaml, to_dict  # noqa: F401


@dataclass
class EstimatorConfig:
    name: str = "blazepose"            # a registered estimator (posetrack estimate --help lists them)
    checkpoint: Optional[str] = None   # weights file; None = the embedded model's cache / random weights
    source: Optional[str] = None       # official | mmpose0x | mmpose1x; None = suggested from the keys
    input_size: Optional[tuple[int, int]] = None  # (width, height) of the crop; None = (192, 256)
    flip_test: bool = True
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    max_batch: int = 32


@dataclass
class DetectorConfig:
    # blazepose (embedded, offline) | torchvision | mmdet | precomputed (COCO results JSON) | gt (PoseTrack file)
    kind: Literal["blazepose", "torchvision", "mmdet", "precomputed", "gt"] = "blazepose"
    model: str = "fasterrcnn_resnet50_fpn_v2"  # torchvision model name
    weights: Optional[str] = None       # torchvision weights file (default: torchvision's cache)
    config: Optional[str] = None        # mmdet config file
    checkpoint: Optional[str] = None    # mmdet checkpoint file
    file: Optional[str] = None          # precomputed detections JSON / PoseTrack annotation JSON (gt)
    annotations: Optional[str] = None   # precomputed: an annotation file mapping image ids to file names
    score_threshold: float = 0.5
    nms_iou: float = 0.6
    batch_size: int = 1
    tile_scales: Optional[list[float]] = None  # blazepose: tile sizes as fractions of the short side (None = 1.0, 0.6)


@dataclass
class FlowConfig:
    name: Literal["dis", "farneback", "raft_small", "raft_large", "none"] = "dis"
    scale: float = 1.0                  # compute the flow at this fraction of the resolution
    preset: Literal["ultrafast", "fast", "medium"] = "fast"  # DIS preset
    weights: Optional[str] = None       # RAFT weights file


@dataclass
class AssociationConfig:
    det_interval: int = 1               # run the detector every k-th frame
    nms_iou: float = 0.5                # merge detected and propagated boxes
    box_enlarge: float = 0.15
    propagate_keypoint_threshold: float = 0.3
    min_propagated_score: float = 0.3
    min_similarity: float = 0.3         # minimum OKS for a match
    max_lost_frames: int = 5            # Q: frames a lost track stays matchable
    oks_keypoint_threshold: float = 0.2
    match: Literal["greedy", "hungarian"] = "greedy"
    pose_nms_oks: Optional[float] = 0.7  # drop a pose whose OKS with a better one exceeds this (None = off)


@dataclass
class OutputConfig:
    formats: list[str] = field(default_factory=lambda: ["posetrack18"])  # posetrack18, posetrack17, coco
    render: bool = False
    render_fps: Optional[float] = None
    keypoint_threshold: float = 0.3     # for drawing
    flush_every: int = 10               # rewrite the JSON files every N frames (always at the end)
    # PoseTrack head joints: from_coco = derive head_bottom/head_top from nose + shoulders (COCO-trained
    # estimators); estimator = the estimator was trained on PoseTrack and predicts them in the eye slots
    head_keypoints: Literal["from_coco", "estimator"] = "from_coco"


@dataclass
class TrackConfig:
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    association: AssociationConfig = field(default_factory=AssociationConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    device: str = "cpu"
    max_frames: Optional[int] = None

    def __post_init__(self) -> None:
        if self.association.det_interval < 1:
            raise ValueError("association.det_interval must be >= 1")
        bad = [f for f in self.output.formats if f not in ("posetrack18", "posetrack17", "coco")]
        if bad:
            raise ValueError(f"output.formats: unknown format(s) {bad}; valid: posetrack18, posetrack17, coco")


def resolve_preset(name_or_path: str | None) -> Path | None:
    """A preset name (``configs/track_<name>.yaml``) or a YAML path -> path; None -> None (defaults)."""
    return _resolve("track", name_or_path)


def load_track_config(preset: str | None = None, overrides: list[str] | None = None) -> TrackConfig:
    return load_yaml(TrackConfig, resolve_preset(preset), overrides)
