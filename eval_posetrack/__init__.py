"""PoseTrack 2017/2018 files and the official mAP / MOTA evaluation (identical to poseval).

Other packages import only from here (``from eval_posetrack import read_sequence``). Modules:
``records`` (:class:`Frame`, :class:`Sequence`, poseval's 15 joints, the 17 PoseTrack18 slots and the
COCO-17 slot mapping, :class:`PoseTrackFormatError`), ``naming`` (sequence / image names, image ids, track-id
limit, annotation ids), ``posetrack17`` and ``posetrack18`` (reader with validation and writer of each format;
:class:`PoseTrack18Writer` writes a prediction file frame by frame), ``dispatch`` (format detection,
:func:`read_sequence`, :func:`convert_file`), ``fields`` / ``jsonfile`` (validation and file helpers of the
readers and writers), ``coco_files`` (COCO detection and keypoint results), ``geometry`` (strict
point-in-polygon for ignore regions), ``ap`` (per-frame assignment, pooled VOC AP), ``mot`` (MOTA/MOTP/Prec/Rec
with motmetrics semantics), ``evaluate`` (``evaluate(gt_dir, pred_dir) -> dict``, tables, plot), ``cli``
(``posetrack eval``).

Imports numpy only (motmetrics and matplotlib lazily); no torch.
"""
from .coco_files import CocoDetections, CocoDetectionsError, coco_keypoint_results, read_coco_detections
from .dispatch import convert_file, parse_sequence, read_sequence, write_sequence
from .evaluate import (
    COLUMNS,
    GROUPS,
    METRICS,
    PoseTrackEvalError,
    PreparedSequence,
    evaluate,
    evaluate_prepared,
    format_tables,
    plot_summary,
    prepare_sequence,
    to_json_ready,
)
from .geometry import points_in_any_polygon, points_in_polygon
from .jsonfile import atomic_write_chunks, load_json
from .naming import (
    MAX_FRAMES,
    MAX_TRACK_ID,
    SEQUENCE_TYPES,
    AnnotationIds,
    image_id_of,
    is_sequence_name,
    parse_posetrack18_file_name,
    parse_sequence_name,
    posetrack18_image_name,
)
from .posetrack17 import parse_posetrack17, sequence_to_posetrack17, write_posetrack17
from .posetrack18 import PoseTrack18Writer, parse_posetrack18, sequence_to_posetrack18, write_posetrack18
from .records import (
    JOINT_NAMES,
    JOINT_TO_PT18_SLOT,
    MIN_SCORE,
    NUM_JOINTS,
    NUM_PT18_SLOTS,
    PT18_KEYPOINT_NAMES,
    PT18_SKELETON,
    PT18_SLOT_TO_JOINT,
    Frame,
    PoseTrackFormatError,
    PoseTrackWarning,
    Sequence,
    coco17_to_joints15,
    joints15_to_coco17,
)

__all__ = [
    # records
    "JOINT_NAMES", "JOINT_TO_PT18_SLOT", "MIN_SCORE", "NUM_JOINTS", "NUM_PT18_SLOTS", "PT18_KEYPOINT_NAMES",
    "PT18_SKELETON", "PT18_SLOT_TO_JOINT", "Frame", "PoseTrackFormatError", "PoseTrackWarning", "Sequence",
    "coco17_to_joints15", "joints15_to_coco17",
    # naming
    "MAX_FRAMES", "MAX_TRACK_ID", "SEQUENCE_TYPES", "AnnotationIds", "image_id_of", "is_sequence_name",
    "parse_posetrack18_file_name", "parse_sequence_name", "posetrack18_image_name",
    # files
    "atomic_write_chunks", "convert_file", "load_json",
    "parse_posetrack17", "parse_posetrack18", "parse_sequence", "read_sequence",
    "sequence_to_posetrack17", "sequence_to_posetrack18", "write_posetrack17", "write_posetrack18",
    "write_sequence", "PoseTrack18Writer",
    # COCO detection-results files
    "CocoDetections", "CocoDetectionsError", "coco_keypoint_results", "read_coco_detections",
    # evaluation
    "COLUMNS", "GROUPS", "METRICS", "PoseTrackEvalError", "PreparedSequence", "evaluate", "evaluate_prepared",
    "format_tables", "plot_summary", "prepare_sequence", "to_json_ready", "points_in_any_polygon",
    "points_in_polygon",
]
