"""Tracker ids, One Euro smoothing, boxes from keypoints."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.tracking import (OneEuroFilter, Smoother, Tracker, boxes_from_keypoints, iou_matrix,
                               keypoint_similarity)
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


def _person(cx: float, cy: float, arms_up: bool) -> tuple[np.ndarray, list[float]]:
    """A 6-joint stick figure and its box: raising the arms changes the box, not the body joints."""
    body = np.array([[cx, cy - 40], [cx, cy], [cx - 10, cy + 40], [cx + 10, cy + 40]], np.float32)
    arms = np.array([[cx - 60, cy - 70], [cx + 60, cy - 70]] if arms_up else [[cx - 15, cy], [cx + 15, cy]],
                    np.float32)
    kps = np.concatenate([body, arms])
    return kps, [*kps.min(0), *kps.max(0)]


@pytest.mark.parametrize("use_keypoints,same_id", [(True, True), (False, False)])
def test_keypoints_keep_the_id_when_the_box_jumps(use_keypoints, same_id) -> None:
    """Arms thrown up and out: the box grows fourfold (IoU < threshold) while the body joints stay put."""
    tr = Tracker(use_keypoints=use_keypoints)
    ids = []
    for arms_up in (False, False, True):
        kps, box = _person(100, 100, arms_up)
        p = Poses(kps[None], np.ones((1, 6)), [box], [0.9])
        ids.append(int(tr.update(p).track_ids[0]))
    assert iou_matrix([_person(100, 100, False)[1]], [_person(100, 100, True)[1]])[0, 0] < tr.iou_threshold
    assert ids[0] == ids[1]
    assert (ids[2] == ids[0]) is same_id


@pytest.mark.parametrize("shift,ok_joints,expect", [
    (0.0, 6, 1.0),
    (10.0, 6, float(np.exp(-100 / (2 * 10.0 ** 2)))),  # scale 100 -> kappa * scale = 10 px
    (0.0, 2, 0.0),  # too few joints confident in both poses
])
def test_keypoint_similarity(shift, ok_joints, expect) -> None:
    a = np.random.default_rng(0).uniform(0, 100, (1, 6, 2))
    b = a + [shift, 0.0]
    ok = np.zeros((1, 6), bool)
    ok[0, :ok_joints] = True
    sim = keypoint_similarity(a, ok, b, np.ones((1, 6), bool), np.array([100.0]))
    assert sim.shape == (1, 1) and sim[0, 0] == pytest.approx(expect)


def test_lost_track_is_predicted_forward_while_missed() -> None:
    """A person walking at 4 px/frame, unseen for 3 frames, is recognised where they should be."""
    tr = Tracker(iou_threshold=0.5, use_keypoints=False)
    first = None
    for f in range(6):
        ids = tr.update(_poses([[4 * f, 0, 4 * f + 20, 40]])).track_ids
        first = ids[0] if first is None else first
    for _ in range(3):
        tr.update(_poses([]))
    assert tr.update(_poses([[4 * 9, 0, 4 * 9 + 20, 40]])).track_ids[0] == first


def test_one_euro_first_steps_match_the_formula() -> None:
    f = OneEuroFilter(min_cutoff=1.0, beta=0.5, d_cutoff=2.0)
    assert f(np.array([10.0]), 0.0)[0] == 10.0  # the first sample passes through
    dt = 0.1
    a_d = 1 / (1 + 1 / (2 * np.pi * 2.0) / dt)
    dx = a_d * (20.0 - 10.0) / dt
    fc = 1.0 + 0.5 * abs(dx)
    a = 1 / (1 + 1 / (2 * np.pi * fc) / dt)
    assert f(np.array([20.0]), dt)[0] == pytest.approx(a * 20 + (1 - a) * 10)
    assert f(np.array([0.0]), dt)[0] == 0.0  # time not moving forward restarts the filter


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
