"""realtime.bench.detect_every: teacher boxes from a pseudo-label manifest, recall and keypoint change (no timings)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from realtime.bench.detect_every import keypoint_change, recall, teacher_boxes
from realtime.bench.stages import BenchError


def _person(box, kp_offset=0.0):
    kps = [[box[0] + 5 + kp_offset, box[1] + 5, 0.9]] * 16
    return {"box": list(box), "keypoints": kps}


def test_teacher_boxes_keep_video_frames_only(tmp_path) -> None:
    m = {"items": {"test": [{"source": "vtest.avi#12", "box_frame": [0, 0, 10, 20]},
                            {"source": "vtest.avi#12", "box_frame": [50, 50, 60, 80]},
                            {"source": "photo_3.jpg", "box_frame": [1, 1, 2, 2]},
                            {"source": "vtest.avi#40", "box_frame": [5, 5, 15, 25]}], "train": []}}
    p = tmp_path / "manifest.json"
    p.write_text(json.dumps(m))
    b = teacher_boxes(p)
    assert sorted(b) == [12, 40] and b[12].shape == (2, 4)
    with pytest.raises(BenchError, match="no labelled video frames"):
        teacher_boxes(p, "train")


def test_recall_is_one_to_one_at_iou_half() -> None:
    labels = {0: np.array([[0, 0, 10, 20], [50, 50, 60, 80]], float), 1: np.array([[0, 0, 10, 20]], float)}
    frames = {0: [_person([0, 0, 10, 20]), _person([1, 0, 11, 20])],  # two posed people on the first label only
              1: [_person([6, 0, 16, 20])]}  # IoU 4/16 = 0.25: not found
    assert recall(labels, frames) == pytest.approx(1 / 3)
    frames[0].append(_person([50, 52, 60, 82]))
    assert recall(labels, frames) == pytest.approx(2 / 3)
    assert recall(labels, {}) == 0


def test_keypoint_change_on_people_both_runs_posed() -> None:
    ref = {0: [_person([0, 0, 10, 20]), _person([100, 0, 110, 20])], 1: []}
    run = {0: [_person([0, 0, 10, 20], kp_offset=3.0)], 1: [_person([0, 0, 10, 20])]}
    mean, p95 = keypoint_change(ref, run)
    assert mean == pytest.approx(3.0) and p95 == pytest.approx(3.0)
    assert np.isnan(keypoint_change(ref, {})[0])
