"""Keypoint layouts: the one definition of each layout's names, left/right flip pairs, OKS sigmas and skeleton.

A :class:`KeypointLayout` travels with every model (``estimators`` ``ModelSpec.layout``), every dataset and
every output format; nothing else in the project spells these facts out again.

- ``COCO17``: the 17 COCO person keypoints (pycocotools / COCO annotation file order), COCO's OKS sigmas
  (pycocotools ``COCOeval.kpt_oks_sigmas``) and COCO's skeleton (0-based).
- ``POSETRACK18``: the 17 keypoint slots of a PoseTrack 2018 annotation file. It is COCO's order with the two
  eye slots holding ``head_bottom`` and ``head_top``; those two are not a left/right pair, so a horizontal
  flip must not swap them (MMPose ``configs/_base_/datasets/posetrack18.py`` the same). PoseTrack has no
  sigmas of its own; MMPose's posetrack18 dataset_info uses COCO's, and so do we.

Imports nothing of this project and no torch: every package may use it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


class LayoutError(ValueError):
    """A keypoint layout is inconsistent (lengths, pair indices), or a layout name is unknown."""


@dataclass(frozen=True)
class KeypointLayout:
    """One keypoint layout.

    name: short id ("coco17", "posetrack18").
    names: (K,) keypoint names, in channel order.
    flip_pairs: index pairs (a, b) swapped by a horizontal flip (left/right), 0-based.
    sigmas: (K,) OKS sigmas (COCO units: the per-keypoint standard deviation relative to the object scale).
    skeleton: index pairs (a, b) drawn as limbs, 0-based.
    """

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    skeleton: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        k = len(self.names)
        if len(set(self.names)) != k:
            raise LayoutError(f"layout {self.name!r}: keypoint names repeat")
        if len(self.sigmas) != k:
            raise LayoutError(f"layout {self.name!r}: {len(self.sigmas)} sigmas for {k} keypoints")
        seen: set[int] = set()
        for what, pairs in (("flip_pairs", self.flip_pairs), ("skeleton", self.skeleton)):
            for a, b in pairs:
                if not (0 <= a < k and 0 <= b < k) or a == b:
                    raise LayoutError(f"layout {self.name!r}: {what} pair ({a}, {b}) is out of range for {k} "
                                      f"keypoints")
        for a, b in self.flip_pairs:
            if a in seen or b in seen:
                raise LayoutError(f"layout {self.name!r}: keypoint {a if a in seen else b} is in two flip pairs")
            seen.update((a, b))

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def flip_permutation(self) -> np.ndarray:
        """(K,) int64 channel permutation swapping each left/right pair (identity elsewhere)."""
        perm = np.arange(self.num_keypoints, dtype=np.int64)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def sigmas_array(self) -> np.ndarray:
        """(K,) float64 OKS sigmas."""
        return np.asarray(self.sigmas, dtype=np.float64)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise LayoutError(f"layout {self.name!r} has no keypoint {name!r}; it has {', '.join(self.names)}") \
                from None

    def to_meta(self) -> dict[str, Any]:
        """Plain data (saved in our checkpoints), readable back by :func:`layout_from_meta`."""
        return {"layout": self.name, "keypoint_names": list(self.names),
                "flip_pairs": [list(p) for p in self.flip_pairs], "sigmas": list(self.sigmas),
                "skeleton": [list(p) for p in self.skeleton]}


# ------------------------------------------------------------------------------------------------ layouts
COCO17 = KeypointLayout(
    name="coco17",
    names=("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
           "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
           "right_knee", "left_ankle", "right_ankle"),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    sigmas=(0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
            0.107, 0.107, 0.087, 0.087, 0.089, 0.089),
    skeleton=((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
              (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
)

POSETRACK18 = KeypointLayout(
    name="posetrack18",
    names=("nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
           "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
           "right_knee", "left_ankle", "right_ankle"),
    flip_pairs=tuple(p for p in COCO17.flip_pairs if p != (1, 2)),
    sigmas=COCO17.sigmas,
    skeleton=COCO17.skeleton,
)

LAYOUTS: Mapping[str, KeypointLayout] = {layout.name: layout for layout in (COCO17, POSETRACK18)}


def get_layout(name: str) -> KeypointLayout:
    """The layout called ``name`` ("coco17", "posetrack18")."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise LayoutError(f"unknown keypoint layout {name!r}; valid: {', '.join(LAYOUTS)}") from None


def layout_from_meta(meta: Mapping[str, Any]) -> KeypointLayout | None:
    """The layout described by checkpoint metadata, or None when it says nothing about keypoints.

    Understands our own ``KeypointLayout.to_meta()`` (key ``layout``) and MMPose 1.x ``meta["dataset_meta"]``
    (``dataset_name``, ``keypoint_id2name``, ``flip_indices``; mmpose ``mmpose/datasets/datasets/utils.py``
    ``parse_pose_metainfo``). A known layout is returned as the project's own object when the names agree;
    an unknown one is built from the metadata.
    """
    if "layout" in meta and meta["layout"] in LAYOUTS:
        return LAYOUTS[meta["layout"]]
    names: tuple[str, ...] | None = None
    if "keypoint_names" in meta:
        names = tuple(meta["keypoint_names"])
    elif "keypoint_id2name" in meta:
        id2name = meta["keypoint_id2name"]
        names = tuple(id2name[i] for i in sorted(id2name))
    if names is None:
        return None
    for layout in LAYOUTS.values():
        if layout.names == names:
            return layout
    if "flip_pairs" in meta:
        pairs = tuple((int(a), int(b)) for a, b in meta["flip_pairs"])
    elif "flip_indices" in meta:
        idx = [int(i) for i in meta["flip_indices"]]
        pairs = tuple((i, j) for i, j in enumerate(idx) if i < j)
    else:
        pairs = ()
    sig = meta.get("sigmas")
    sigmas = tuple(float(s) for s in sig) if sig is not None and len(sig) == len(names) else (0.05,) * len(names)
    skel = tuple((int(a), int(b)) for a, b in meta.get("skeleton", meta.get("skeleton_links", ())))
    return KeypointLayout(str(meta.get("dataset_name", meta.get("layout", "custom"))), names, pairs, sigmas, skel)
