"""Tracker ids, One Euro smoothing, boxes from keypoints."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.tracking import OneEuroFilter, Smoother, Tracker, boxes_from_keypoints, iou_matrix
from realtime.types import Detections, Poses


def _poses(boxes: list[list[float]], k: int = 4) -> Poses:
    b = np.array(boxes, np.float32).reshape(-1, 4)
    kps = np.stack([np.linspace(bb[:2], bb[2:], k) for bb in b]) if len(b) else np.zeros((0, k, 2))
    return Poses(kps, np.ones((len(b), k)), b, np.ones(len(b)))


def test_iou_matrix() -> None:
    m = iou_matrix([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(m, [[1.0, 1 / 3, 0.0]])


def test_ids_follow_moving_and_crossing_people() -> None:
    tr = Tracker()
    a, b = [0, 0, 20, 40], [100, 0, 120, 40]
    first = tr.update(_poses([a, b])).track_ids.tolist()
    assert len(set(first)) == 2
    for step in range(1, 30):  # a walks right 3 px/frame, b left; order of detections swaps
        pa = [a[0] + 3 * step, 0, a[2] + 3 * step, 40]
        pb = [b[0] - 3 * step, 0, b[2] - 3 * step, 40]
        ids = tr.update(_poses([pb, pa] if step % 2 else [pa, pb])).track_ids.tolist()
        assert (ids if step % 2 == 0 else ids[::-1]) == first


def test_new_person_gets_new_id_and_lost_tracks_expire() -> None:
    tr = Tracker(max_missed=2)
    id0 = tr.update(_poses([[0, 0, 10, 10]])).track_ids[0]
    id1 = tr.update(_poses([[0, 0, 10, 10], [50, 50, 60, 60]])).track_ids
    assert id1[0] == id0 and id1[1] != id0
    for _ in range(3):
        tr.update(_poses([]))
    assert tr.tracks == []
    assert tr.update(_poses([[0, 0, 10, 10]])).track_ids[0] not in (id0, id1[1])


def test_one_euro_reduces_jitter_and_follows_motion() -> None:
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    noisy = 100 + rng.normal(0, 2, 200)
    out = np.array([f(np.array([v]), t / 30)[0] for t, v in enumerate(noisy)])
    assert out[20:].std() < 0.5 * noisy[20:].std()
    g = OneEuroFilter(min_cutoff=1.0, beta=1.0)
    step = [g(np.array([0.0 if t < 10 else 100.0]), t / 30)[0] for t in range(40)]
    assert step[-1] == pytest.approx(100.0, abs=1.0)


def test_smoother_keeps_filters_per_track() -> None:
    sm = Smoother()
    p = _poses([[0, 0, 10, 10], [50, 50, 60, 60]])
    p.track_ids = np.array([3, 7])
    sm.smooth(p, 0.0)
    assert set(sm.filters) == {3, 7}
    q = _poses([[0, 0, 10, 10]])
    q.track_ids = np.array([3])
    sm.smooth(q, 0.04)
    assert set(sm.filters) == {3}


def test_boxes_from_keypoints() -> None:
    p = _poses([[10, 20, 30, 60]])
    p.scores[0, 0] = 0.0
    d = boxes_from_keypoints(p, (100, 100), margin=0.0)
    assert isinstance(d, Detections) and len(d) == 1
    kp = p.keypoints[0][1:]
    np.testing.assert_allclose(d.boxes[0], [*kp.min(0), *kp.max(0)], atol=1e-4)


@pytest.mark.parametrize("kw,msg", [
    (dict(boxes=np.zeros((2, 4)), scores=np.zeros(3)), "differ"),
    (dict(boxes=[[10, 0, 5, 5]], scores=[1.0]), "x0 <= x1"),
])
def test_detections_are_checked(kw, msg) -> None:
    with pytest.raises(ValueError, match=msg):
        Detections(**kw)
