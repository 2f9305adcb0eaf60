"""The one COCO keypoint-results builder: items pycocotools accepts, with the fields each caller asks for."""
import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from eval_posetrack import coco_keypoint_results


def _gt(tmp_path):
    gt = {"images": [{"id": 7, "width": 100, "height": 100, "file_name": "a.jpg"}],
          "annotations": [], "categories": [{"id": 1, "name": "person", "keypoints": ["a", "b"], "skeleton": []}]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    return COCO(str(path))


def test_items_load_into_pycocotools_with_boxes_and_extra_fields(tmp_path):
    kps = np.array([[[10.123456, 20.5], [30.0, 40.0]], [[1.0, 2.0], [3.0, 4.0]]], np.float32)
    ks = np.array([[0.9, 0.1], [0.5, 0.25]], np.float32)
    items = coco_keypoint_results(7, kps, ks, np.array([0.8, 0.3]), boxes=np.array([[0, 0, 10, 20], [5, 5, 6, 9]]),
                                  extra={"track_id": np.array([3, 4])}, digits=3)
    assert [it["track_id"] for it in items] == [3, 4] and isinstance(items[0]["track_id"], int)
    assert items[0]["keypoints"][:3] == [10.123, 20.5, 0.9]
    assert items[1]["bbox"] == [5.0, 5.0, 1.0, 4.0]
    res = _gt(tmp_path).loadRes(items)
    assert len(res.anns) == 2 and {a["image_id"] for a in res.anns.values()} == {7}


def test_full_precision_without_digits_and_shape_errors():
    items = coco_keypoint_results(1, np.full((1, 2, 2), 1 / 3), np.ones((1, 2)), np.ones(1))
    assert items[0]["keypoints"][0] == pytest.approx(1 / 3, abs=1e-15) and "bbox" not in items[0]
    with pytest.raises(ValueError, match="disagree"):
        coco_keypoint_results(1, np.zeros((2, 3, 2)), np.zeros((2, 2)), np.zeros(2))
