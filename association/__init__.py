"""OKS similarity, greedy/Hungarian matching and track id bookkeeping."""
from association.boxes import BoxInputError, boxes_from_keypoints
from association.matching import MatchingInputError, greedy_match, hungarian_match
from association.oks import COCO_SIGMAS, OKSInputError, box_areas, oks_matrix
from association.tracker import AssociationInputError, PoseAssociator, TrackSnapshot

__all__ = [
    "AssociationInputError", "BoxInputError", "COCO_SIGMAS", "MatchingInputError", "OKSInputError",
    "PoseAssociator", "TrackSnapshot", "box_areas", "boxes_from_keypoints", "greedy_match",
    "hungarian_match", "oks_matrix",
]
