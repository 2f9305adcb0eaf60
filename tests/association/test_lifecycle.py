"""PoseAssociator's life cycle (tentative -> confirmed -> lost -> removed), re-identification of tracks lost for
seconds (motion gate, appearance) and camera cuts, on the synthetic scene of test_tracker."""
from __future__ import annotations

import numpy as np
import pytest

from association import AssociationInputError, boxes_from_keypoints
from association import PoseAssociator as _PoseAssociator
from association.appearance import PoseAppearance
from association.keypoints import COCO17

from .test_tracker import TEMPLATE

FPS = 25.0


def PoseAssociator(**settings) -> _PoseAssociator:  # noqa: N802
    base = dict(min_similarity=0.3, max_lost_frames=5, keypoint_score_threshold=0.2, method="greedy",
                sigmas=COCO17.sigmas)
    return _PoseAssociator(**(base | settings))


def person(x: float, y: float = 150.0) -> np.ndarray:
    return (TEMPLATE + [x, y]).astype(np.float32)


def frame(poses: list[np.ndarray], score: float = 0.9):
    kps = np.stack(poses) if poses else np.zeros((0, 17, 2), np.float32)
    scores = np.full(kps.shape[:2], score, np.float32)
    return kps, scores, boxes_from_keypoints(kps, scores, 0.2, enlarge=0.15)


def step(assoc, poses, t, score=0.9, pose_score=None, descriptors=None):
    kps, scores, boxes = frame(poses, score)
    ps = None if pose_score is None else np.full(len(poses), pose_score)
    ids = assoc.update(kps, scores, boxes, confirm_scores=ps, timestamp=t / FPS, descriptors=descriptors)
    return ids, assoc.last_confirmed.copy()


def test_defaults_are_the_papers_tracker():
    a = PoseAssociator()
    ids, conf = step(a, [person(100)], 0)
    assert conf.tolist() == [True]  # min_hits=1: confirmed at once
    for t in range(1, 7):  # lost for 6 > Q=5 frames: forgotten (no re-identification without max_lost_seconds)
        step(a, [], t)
    ids2, _ = step(a, [person(100)], 7)
    assert ids2[0] != ids[0]


def test_tentative_until_min_hits_or_a_high_score_and_removed_at_the_first_miss():
    a = PoseAssociator(min_hits=3, confirm_score=0.8)
    confirmed = [step(a, [person(100)], t)[1][0] for t in range(3)]
    assert confirmed == [False, False, True]
    # a false positive seen once then never again: tentative, removed at its first miss
    ids, conf = step(a, [person(100), person(400)], 3)
    assert conf.tolist() == [True, False]
    step(a, [person(100)], 4)
    ids5, _ = step(a, [person(100), person(400)], 5)
    assert ids5[1] != ids[1]  # a new track: the tentative one was removed
    assert len(a) == 2
    # one high-confidence pose confirms at once
    _, conf = step(a, [person(100), person(250)], 6, pose_score=0.9)
    assert conf.tolist() == [True, True]


def test_lost_confirmed_track_is_reidentified_within_seconds_inside_the_motion_gate():
    a = PoseAssociator(min_hits=2, max_lost_seconds=3.0, reid_min_similarity=0.3, reid_gate=1.0,
                       reid_gate_rate=0.5)
    x = 100.0
    for t in range(10):  # walks right at 2 px/frame = 50 px/s
        ids, _ = step(a, [person(x + 2 * t)], t)
    tid = ids[0]
    for t in range(10, 60):  # hidden for 2 s (50 frames, far beyond Q = 5)
        step(a, [], t)
    back, conf = step(a, [person(x + 2 * 60)], 60)  # reappears where its motion predicts
    assert back[0] == tid and conf[0]
    for t in range(61, 61 + 90):  # hidden 3.6 s > max_lost_seconds: forgotten
        step(a, [], t)
    assert len(a) == 0


def test_reidentification_refuses_a_person_outside_the_gate():
    a = PoseAssociator(min_hits=1, max_lost_seconds=3.0, reid_min_similarity=0.3, reid_gate=1.0,
                       reid_gate_rate=0.5)
    for t in range(5):
        ids, _ = step(a, [person(100)], t)
    for t in range(5, 30):
        step(a, [], t)
    far, _ = step(a, [person(500)], 30)  # 400 px away after 1 s: gate = (1 + 0.5) x ~140 px
    assert far[0] != ids[0]


def _painted(colours: list[tuple[int, int, int]], xs: list[float]) -> np.ndarray:
    """A 360x640 BGR image with each person's body region filled with its colour."""
    img = np.full((360, 640, 3), 90, np.uint8)
    for colour, x in zip(colours, xs):
        img[80:230, int(x) - 30:int(x) + 30] = colour
    return img


def test_appearance_picks_the_right_person_after_a_camera_cut():
    """Two people; a cut moves the view: motion is reset, appearance alone brings the ids back (swapped sides)."""
    app = PoseAppearance(COCO17)
    a = PoseAssociator(min_hits=1, max_lost_seconds=3.0, reid_min_similarity=0.6)
    red, blue = (30, 30, 220), (220, 60, 30)
    for t in range(5):
        kps, sc, _ = frame([person(150), person(450)])
        desc = app.describe(_painted([red, blue], [150, 450]), kps, sc)
        ids, _ = step(a, [person(150), person(450)], t, descriptors=desc)
    a.camera_cut()
    with pytest.raises(AssociationInputError, match="camera_cut"):
        a.predict(None)
        a.camera_cut()
    kps, sc, boxes = frame([person(150), person(450)])
    desc = app.describe(_painted([blue, red], [150, 450]), kps, sc)  # now blue left, red right
    after = a.update(kps, sc, boxes, timestamp=5 / FPS, descriptors=desc)
    assert after.tolist() == [ids[1], ids[0]]


def test_bad_lifecycle_settings():
    for kw, key in ((dict(min_hits=0), "min_hits"), (dict(max_lost_seconds=-1), "max_lost_seconds"),
                    (dict(reid_min_similarity=2), "reid_min_similarity"), (dict(confirm_score=np.nan),
                                                                           "confirm_score")):
        with pytest.raises(AssociationInputError, match=key):
            PoseAssociator(**kw)
    a = PoseAssociator()
    kps, sc, boxes = frame([person(100)])
    with pytest.raises(AssociationInputError, match="confirm_scores"):
        a.update(kps, sc, boxes, confirm_scores=np.ones(3))
    with pytest.raises(AssociationInputError, match="descriptors"):
        a.update(kps, sc, boxes, descriptors=np.ones(3))


def _vtest_frame(path, index: int) -> np.ndarray:
    from tracker.sources import open_source

    with open_source(path) as source:
        for frame in source:
            if frame.index == index:
                return frame.image
    raise AssertionError(f"{path} has no frame {index}")


def _in_box(box) -> np.ndarray:
    """The test template scaled into a person box (xyxy px of the real video)."""
    x0, y0, x1, y1 = box
    scale = (y1 - y0) / 125.0  # the template is 125 px tall (y -65..60)
    return (TEMPLATE * scale + [(x0 + x1) / 2, y0 + 65 * scale]).astype(np.float32)


@pytest.mark.parametrize("with_appearance", [True, False])
def test_person_hidden_a_few_frames_and_moved_on_comes_back_by_appearance(sample_video, with_appearance):
    """Real pixels of OpenCV's vtest.avi (frame 0: person A in box [256, 221, 280, 310], person C in
    [647, 243, 681, 322]). A is missed for 3 frames (within Q = 5) and reappears 60 px to the right: the OKS with
    the stale pose is ~0, so only the second pass can give the id back; for a track lost within Q it does so by
    appearance only (by the gate alone a false positive next to a missed person would take the id)."""
    image = _vtest_frame(sample_video, 0)
    box_a, box_c = (256, 221, 280, 310), (647, 243, 681, 322)
    app = PoseAppearance(COCO17)
    a = PoseAssociator(min_hits=2, max_lost_seconds=3.0, reid_min_similarity=0.5)

    def seen(img, poses, t):
        kps, sc, boxes = frame(poses)
        desc = app.describe(img, kps, sc) if with_appearance else None
        return a.update(kps, sc, boxes, timestamp=t / FPS, descriptors=desc)

    for t in range(3):
        ids = seen(image, [_in_box(box_a), _in_box(box_c)], t)
    for t in range(3, 6):
        seen(image, [_in_box(box_c)], t)
    moved = image.copy()
    x0, y0, x1, y1 = box_a
    moved[y0:y1, x0 + 60:x1 + 60] = image[y0:y1, x0:x1]  # A's real pixels, 60 px on
    back = seen(moved, [_in_box((x0 + 60, y0, x1 + 60, y1)), _in_box(box_c)], 6)
    assert back[1] == ids[1]
    assert (back[0] == ids[0]) == with_appearance


def test_a_person_who_stops_while_hidden_is_reidentified_where_they_stopped():
    """The gate spans the segment from the last centre to the extrapolated one: walking at 250 px/s, then hidden
    for 2 s while standing (people stop to talk behind a post): the velocity alone would put them 500 px on,
    outside a gate of (1 + 0.5 x 2) person sizes (~250 px)."""
    a = PoseAssociator(min_hits=1, max_lost_seconds=3.0, reid_min_similarity=0.3, reid_gate=1.0,
                       reid_gate_rate=0.5)
    for t in range(6):
        ids, _ = step(a, [person(100 + 10 * t)], t)
    for t in range(6, 56):
        step(a, [], t)
    back, _ = step(a, [person(160)], 56)
    assert back[0] == ids[0]
    far, _ = step(a, [person(160), person(160 + 600)], 57)  # nobody is re-identified outside the segment's gate
    assert far[0] == ids[0] and far[1] != ids[0]


def test_reidentification_refuses_a_pose_of_another_scale():
    """A far-away walker (half the size or less) inside the gate is someone else: a new id."""
    a = PoseAssociator(min_hits=1, max_lost_seconds=3.0, reid_min_similarity=0.3, reid_gate=1.0,
                       reid_gate_rate=1.0)
    for t in range(5):
        ids, _ = step(a, [person(300)], t)
    for t in range(5, 30):
        step(a, [], t)
    small = (TEMPLATE * 0.4 + [330.0, 150.0]).astype(np.float32)
    other, _ = step(a, [small], 30)
    assert other[0] != ids[0]
    a2 = PoseAssociator(min_hits=1, max_lost_seconds=3.0, reid_min_similarity=0.3, reid_gate=1.0,
                        reid_gate_rate=1.0)
    for t in range(5):
        ids2, _ = step(a2, [person(300)], t)
    for t in range(5, 30):
        step(a2, [], t)
    same, _ = step(a2, [(TEMPLATE * 0.8 + [330.0, 150.0]).astype(np.float32)], 30)
    assert same[0] == ids2[0]
