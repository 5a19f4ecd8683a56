"""Tracker ids, One Euro smoothing, boxes from keypoints."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.track_cues import BoxKalman, colour_similarity, person_colours
from realtime.tracking import (Deferred, OneEuroFilter, Smoother, Tracker, boxes_from_keypoints, iou_matrix,
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
    a, b = [0, 0, 20, 40], [100, 6, 120, 46]  # b a little nearer the camera: other keypoints when boxes meet
    first = tr.update(_poses([a, b])).track_ids.tolist()
    assert len(set(first)) == 2
    for step in range(1, 30):  # a walks right 3 px/frame, b left; order of detections swaps
        pa = [a[0] + 3 * step, 0, a[2] + 3 * step, 40]
        pb = [b[0] - 3 * step, 6, b[2] - 3 * step, 46]
        ids = tr.update(_poses([pb, pa] if step % 2 else [pa, pb])).track_ids.tolist()
        assert (ids if step % 2 == 0 else ids[::-1]) == first


def test_new_person_gets_an_id_after_min_hits_and_lost_tracks_expire() -> None:
    tr = Tracker(max_missed=2, min_hits=3)
    id0 = tr.update(_poses([[0, 0, 10, 10]])).track_ids[0]
    assert id0 >= 0  # the tracker's first frame: ids at once
    seen = [tr.update(_poses([[0, 0, 10, 10], [50, 50, 60, 60]])).track_ids.tolist() for _ in range(3)]
    assert [s[0] for s in seen] == [id0] * 3
    assert [s[1] for s in seen][:2] == [-1, -1]  # tentative until seen on 3 frames in a row
    id1 = seen[2][1]
    assert id1 >= 0 and id1 != id0
    for _ in range(3):
        tr.update(_poses([]))
    assert tr.tracks == []
    later = [tr.update(_poses([[0, 0, 10, 10]])).track_ids[0] for _ in range(3)]
    assert later[:2] == [-1, -1] and later[2] not in (id0, id1, -1)


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


# -- lifetimes and keypoints (issue 19) --------------------------------------------------
@pytest.mark.parametrize("max_missed", [1, 4])
def test_a_lost_track_lives_exactly_max_missed_frames(max_missed) -> None:
    """Unseen for ``max_missed`` frames the track is still there and takes the person back; one more, it is gone."""
    box = [[100, 100, 140, 200]]
    for gap, alive in ((max_missed, True), (max_missed + 1, False)):
        tr = Tracker(max_missed=max_missed)
        first = tr.update(_poses(box)).track_ids[0]
        for _ in range(gap):
            tr.update(_poses([]))
        assert len(tr.tracks) == int(alive)
        assert bool(tr.update(_poses(box)).track_ids[0] == first) is alive


def _walker(cx: float, cy: float, scale: float, arms_up: bool) -> tuple[np.ndarray, list[float]]:
    kps = _person(0, 0, arms_up)[0] * scale + np.array([cx, cy], np.float32)
    return kps, [*kps.min(0), *kps.max(0)]


def test_a_walking_person_keeps_the_id_when_the_box_jumps() -> None:
    """Walking 6 px a frame towards the camera (2 % larger a frame), then the arms go up: the box jumps
    (IoU below the threshold) and only the keypoints of the frame before, not those of the first, still match."""
    tr = Tracker()
    ids, boxes = [], []
    for f in range(24):
        kps, box = _walker(100 + 6 * f, 200, 1 + 0.02 * f, arms_up=f >= 20)
        boxes.append(box)
        ids.append(int(tr.update(Poses(kps[None], np.ones((1, 6)), [box], [0.9])).track_ids[0]))
    assert iou_matrix([boxes[19]], [boxes[20]])[0, 0] < tr.iou_threshold
    assert ids == [ids[0]] * 24


# -- association: crossings, occlusions, low-score boxes, colours ---------------------------
def _people(spec: list[tuple[list[float], float]], k: int = 4) -> Poses:
    """Poses from (box, box score) pairs, keypoints along each box's diagonal."""
    p = _poses([b for b, _ in spec], k)
    p.box_scores = np.array([s for _, s in spec], np.float32).reshape(-1)
    return p


def test_a_crossing_with_a_merged_box_keeps_two_ids() -> None:
    """A walks right in front, B left behind; while they overlap B is hidden and the detector also
    reports one box around both.  Still two ids, each on its own person after the crossing."""
    tr = Tracker()
    seen: dict[str, set[int]] = {"a": set(), "b": set()}
    everything: set[int] = set()
    for f in range(40):
        xa, xb = 100 + 5 * f, 300 - 5 * f
        a, b = [xa, 100, xa + 40, 220], [xb, 110, xb + 36, 218]
        spec = [(a, 0.9)]
        hidden = abs(xa - xb) < 40
        if hidden:
            spec.append(([min(xa, xb), 100, max(xa, xb) + 40, 220], 0.6))  # the merged box
        else:
            spec.append((b, 0.8))
        ids = tr.update(_people(spec)).track_ids.tolist()
        everything.update(i for i in ids if i >= 0)
        seen["a"].add(ids[0])
        if not hidden:
            seen["b"].add(ids[1])
    assert len(everything) == 2
    assert len(seen["a"]) == 1 and len(seen["b"]) == 1 and seen["a"] != seen["b"]


def test_a_person_missed_for_40_frames_is_found_again_where_they_walked() -> None:
    """Walking 4 px a frame, unseen for 40 frames (1.6 s at 25 fps), found where they should be; someone
    standing elsewhere all along keeps their own id."""
    tr = Tracker()
    walker = lambda f: [50 + 4 * f, 100, 90 + 4 * f, 200]  # noqa: E731
    still = [600, 100, 640, 200]
    ids = [tr.update(_people([(walker(f), 0.9), (still, 0.9)])).track_ids.tolist() for f in range(10)]
    for f in range(10, 50):
        tr.update(_people([(still, 0.9)]))
    back = tr.update(_people([(walker(50), 0.9), (still, 0.9)])).track_ids.tolist()
    assert ids[0] == ids[-1] and back == ids[0]


def test_a_low_score_box_keeps_a_track_alive_and_starts_none() -> None:
    """Half hidden for 80 frames (longer than max_missed) the detector scores the person 0.15, below its
    threshold 0.25: the track follows them, with its id, in the output.  A low-score box nobody's track
    takes (nobody there) is left out, and starts no track."""
    tr = Tracker(max_missed=30)
    box = lambda f: [50 + 2 * f, 100, 90 + 2 * f, 200]  # noqa: E731
    first = tr.update(_people([(box(0), 0.9)]), high_score=0.25).track_ids[0]
    for f in range(1, 81):
        out = tr.update(_people([(box(f), 0.15), ([600, 300, 640, 400], 0.15)]), high_score=0.25)
        assert out.track_ids.tolist() == [first]
        np.testing.assert_allclose(out.boxes[0], box(f))
    assert tr.update(_people([(box(81), 0.9)]), high_score=0.25).track_ids.tolist() == [first]
    assert len(tr.tracks) == 1


def _deferring(full: Poses, low: float) -> tuple[Poses, Deferred, list[list[int]]]:
    """``full`` with its boxes under ``low`` not posed yet (no confident joint) and a Deferred that poses them from
    ``full``; the list records each request."""
    rows = np.nonzero(full.box_scores < low)[0]
    part = Poses(full.keypoints.copy(), full.scores.copy(), full.boxes, full.box_scores)
    part.scores[rows] = 0.0
    asked: list[list[int]] = []

    def pose(r: np.ndarray) -> Poses:
        asked.append(r.tolist())
        return Poses(full.keypoints[r], full.scores[r], full.boxes[r], full.box_scores[r])

    regions = np.asarray(full.boxes[rows], np.float64) + np.array([-10, -10, 10, 10])  # a padded crop
    return part, Deferred(rows, regions, pose), asked


def test_deferred_boxes_are_posed_only_where_a_left_over_track_can_take_them() -> None:
    """A walks right; a railing far from anyone scores 0.15 on every frame.  While A's own box scores 0.9, the
    first pass takes A's track, so neither A's second (0.12) box nor the railing is posed; when A's box drops to
    0.15 (half hidden) that box alone is posed and keeps A's id.  Ids and outputs are those of posing every box."""
    box = lambda f: [50 + 2 * f, 100, 90 + 2 * f, 200]  # noqa: E731
    rail = [500, 300, 560, 330]
    frames = [[(box(0), 0.9)]]
    frames += [[(box(f), 0.9), ([54 + 2 * f, 105, 94 + 2 * f, 190], 0.12), (rail, 0.15)] for f in range(1, 6)]
    frames += [[(box(f), 0.15), (rail, 0.15)] for f in range(6, 12)]
    eager, lazy = Tracker(), Tracker()
    requests = []
    for spec in frames:
        want = eager.update(_people(spec), high_score=0.25)
        part, deferred, asked = _deferring(_people(spec), 0.25)
        got = lazy.update(part, high_score=0.25, deferred=deferred)
        requests.append(asked)
        assert got.track_ids.tolist() == want.track_ids.tolist()
        np.testing.assert_array_equal(got.keypoints, want.keypoints)
    assert requests[:6] == [[]] * 6  # A taken by the first pass: nothing posed late
    assert requests[6:] == [[[0]]] * 6  # the hidden A's box, not the railing
    assert got.track_ids.tolist() == [0]


def test_deferred_reach_counts_keypoints_as_well_as_box_overlap() -> None:
    """The second pass also takes a box whose pose is near the track's (OKS), even with little box overlap: such a
    box is posed; one whose crop is far from every joint of the track is not."""
    tr = Tracker()
    kps, b = _person(100, 150, False)
    tr.update(Poses(kps[None], np.ones((1, 6)), [b], [0.9]), high_score=0.25)
    _, up = _person(100, 150, True)  # arms up: a much larger box, the same body joints
    far = [400, 100, 440, 200]
    full = Poses(np.stack([_person(100, 150, True)[0], _person(420, 150, False)[0]]), np.ones((2, 6)), [up, far],
                 [0.15, 0.15])
    assert iou_matrix(np.array([b]), np.array([up]))[0, 0] < 0.5
    part, deferred, asked = _deferring(full, 0.25)
    out = tr.update(part, high_score=0.25, deferred=deferred)
    assert asked == [[0]] and out.track_ids.tolist() == [0]


def test_a_deferred_box_must_be_under_the_judged_band() -> None:
    tr = Tracker()
    tr.update(_people([([0, 0, 10, 10], 0.9)]))
    with pytest.raises(ValueError, match="under the band"):
        tr.update(_people([([0, 0, 10, 10], 0.9)]), high_score=0.25,
                  deferred=Deferred(np.array([0]), np.array([[0, 0, 10, 10]]), lambda r: _people([])))


def _dressed(image: np.ndarray, cx: float, cy: float, shirt: tuple[int, int, int],
             trousers: tuple[int, int, int]) -> np.ndarray:
    """Paint a _person's clothes at (cx, cy); returns its keypoints."""
    x, y = int(cx), int(cy)
    image[y - 45:y + 7, x - 17:x + 18] = shirt
    image[y + 7:y + 46, x - 13:x + 14] = trousers
    return _person(cx, cy, False)[0]


RED, BLUE, GREEN, YELLOW = (40, 40, 220), (200, 60, 30), (40, 200, 40), (30, 220, 230)


def test_person_colours_tell_people_apart() -> None:
    img = np.full((300, 600, 3), 128, np.uint8)
    kps = np.stack([_dressed(img, 100, 150, RED, BLUE), _dressed(img, 300, 150, RED, BLUE),
                    _dressed(img, 500, 150, GREEN, YELLOW)])
    p = Poses(kps, np.ones((3, 6)), [[*k.min(0), *k.max(0)] for k in kps], np.ones(3))
    c = person_colours(img, p)
    assert c.shape[:2] == (3, 2)
    np.testing.assert_allclose(c.sum(-1), 1.0, atol=1e-6)  # each body part is a distribution
    sim = colour_similarity(c, c)
    assert sim[0, 1] > 0.95 and sim[0, 2] < 0.2


@pytest.mark.parametrize("with_image,veto", [(True, 0.3), (True, None), (False, 0.3)])
def test_colours_keep_a_hidden_person_s_id_from_a_newcomer(with_image, veto) -> None:
    """Red walks behind a pillar for 20 frames; meanwhile green steps out where red would be.  With the
    frame, red's lost track refuses green (other clothes: the ``lost_colour_floor`` veto), and takes red
    back when red comes out 80 px further on than their walk predicts (no box overlap: by the clothes
    alone); on boxes and keypoints alone, or without the veto, green takes red's id."""
    tr = Tracker(lost_colour_floor=veto)
    red_id, green_ids, red_back = None, set(), None
    for f in range(45):
        img = np.full((300, 800, 3), 128, np.uint8)
        people = []
        if f < 10 or f >= 30:
            people.append((_dressed(img, 100 + 6 * f + (80 if f >= 30 else 0), 150, RED, BLUE), "red"))
        if f >= 12:
            people.append((_dressed(img, 100 + 6 * 13, 150, GREEN, YELLOW), "green"))  # stands still
        kps = np.stack([k for k, _ in people]) if people else np.zeros((0, 6, 2))
        p = Poses(kps, np.ones((len(people), 6)), [[*k.min(0), *k.max(0)] for k in kps], np.ones(len(people)))
        ids = tr.update(p, image=img if with_image else None).track_ids.tolist()
        for (_, who), i in zip(people, ids):
            if who == "red" and f < 10:
                red_id = i
            elif who == "green" and i >= 0:
                green_ids.add(i)
            elif who == "red" and f == 44:
                red_back = i
    assert red_id is not None and red_id >= 0
    if with_image and veto is not None:
        assert red_id not in green_ids and red_back == red_id
    else:
        assert red_id in green_ids


def test_box_kalman_learns_the_motion_and_holds_the_size_while_lost() -> None:
    k = BoxKalman(np.array([0, 0, 20, 40.0]))
    for f in range(1, 30):
        k.predict()
        k.update(np.array([5 * f, 0, 5 * f + 20, 40.0]))
    k.x[6:] = [1.0, 2.0]  # a size rate left over from a noisy box
    k.predict(lost=True)
    np.testing.assert_allclose(k.box, [150, 0, 170, 40], atol=0.5)  # one step on, the same size


def test_one_person_boxed_twice_is_one_person() -> None:
    """A second, larger box around the same person (same keypoints) is dropped; the more confident stays."""
    kps = _person(100, 100, False)[0]
    p = Poses(np.stack([kps, kps]), np.ones((2, 6)), [[80, 50, 120, 150], [60, 30, 150, 170]], [0.5, 0.8])
    out = Tracker().update(p)
    assert len(out) == 1 and out.box_scores[0] == pytest.approx(0.8)


def test_a_limb_inside_a_tracked_person_starts_no_track() -> None:
    """A detector box on a leg of a tracked person (mostly inside their box) never gets an id."""
    tr = Tracker()
    for f in range(6):
        out = tr.update(_people([([100, 100, 160, 300], 0.9)] + ([([120, 220, 150, 300], 0.8)] if f else [])))
        if f:
            assert out.track_ids.tolist()[1] == -1


def test_reset_forgets_tracks_and_the_next_frame_gets_new_ids_at_once() -> None:
    """Unrelated photos: after ``reset`` nobody inherits an earlier photo's id, and nobody waits ``min_hits``."""
    tr = Tracker()
    first = tr.update(_poses([[0, 0, 20, 40], [100, 0, 120, 40]])).track_ids.tolist()
    tr.reset()
    again = tr.update(_poses([[0, 0, 20, 40]])).track_ids.tolist()
    assert tr.tracks and again[0] >= 0 and again[0] not in first


def test_on_the_first_frame_an_unconfident_pose_still_gets_an_id_and_keeps_it() -> None:
    """A pose model of low joint scores (0.3, below ``new_track_keypoints``): the person found on the
    tracker's first frame is tracked; a newcomer of such a pose later is not (a false detection, maybe)."""
    tr = Tracker()
    one = _poses([[0, 0, 40, 100]])
    one.scores[:] = 0.3
    ids = [int(tr.update(one).track_ids[0]) for _ in range(5)]
    assert ids == [0] * 5
    two = _poses([[0, 0, 40, 100], [200, 0, 240, 100]])
    two.scores[:] = 0.3
    for _ in range(5):
        out = tr.update(two).track_ids.tolist()
    assert out == [0, -1]


def test_a_box_under_the_threshold_is_kept_where_its_pose_finds_a_person() -> None:
    """verify_score 0.2 under a threshold of 0.35: after a first frame (someone else), a newcomer scored 0.25 with a
    sure pose (mean joint score 0.8) is output and gets an id after min_hits frames; a 0.25 box with an unsure pose
    (0.4, a railing) and a 0.15 box (under the band) with a sure one are left out and start nothing.  Without
    verify_score the sure 0.25 box is left out as before."""
    def frame(f: int) -> Poses:
        p = _people([([20, 20, 60, 120], 0.9), ([100 + f, 50, 140 + f, 150], 0.25), ([300, 50, 340, 150], 0.25),
                     ([500, 50, 540, 150], 0.15)])
        p.scores[1], p.scores[2], p.scores[3] = 0.8, 0.4, 0.8
        return p

    for verify, ids in ((0.2, [[0, -1], [0, -1], [0, 1], [0, 1]]), (None, [[0], [0], [0], [0]])):
        tr = Tracker()
        tr.update(_people([([20, 20, 60, 120], 0.9)]), high_score=0.35)
        got = []
        for f in range(1, 5):
            out = tr.update(frame(f), high_score=0.35, verify_score=verify)
            if verify is not None:
                np.testing.assert_allclose(out.boxes[-1], [100 + f, 50, 140 + f, 150])
            got.append(out.track_ids.tolist())
        assert got == ids, verify


def test_iou_and_containment_by_hand() -> None:
    """Worked by hand: a 4x2 box against a 4x4 one overlapping it by 2x1, boxes apart in x only and in x and y
    (no overlap, never a negative one), and boxes smaller than one pixel (no floor of 1 on the area)."""
    from realtime.tracking import _contained

    a = np.array([[0, 0, 4, 2]], np.float64)
    b = np.array([[2, 1, 6, 5], [5, 0, 7, 2], [5, 3, 7, 4]], np.float64)
    np.testing.assert_allclose(iou_matrix(a, b), [[2 / 22, 0, 0]])
    np.testing.assert_allclose(iou_matrix(b, a), [[2 / 22], [0], [0]])
    np.testing.assert_allclose(_contained(a, b), [[2 / 8, 0, 0]])
    np.testing.assert_allclose(_contained(b, a), [[2 / 16], [0], [0]])
    tiny, unit = np.array([[0, 0, 0.5, 0.5]]), np.array([[0, 0, 1, 1]])
    np.testing.assert_allclose(iou_matrix(tiny, tiny), [[1.0]])
    np.testing.assert_allclose(_contained(tiny, unit), [[1.0]])
    np.testing.assert_allclose(iou_matrix(tiny, unit), [[0.25]])


def test_boxes_from_keypoints_by_hand() -> None:
    """Skipped (under 3 joints at >= 0.2, a score of exactly 0.2 counting), then a box of the joints plus 0.12 of
    the longer side on every side, clipped to the frame (w - 1, h - 1), and one too flat to keep (height < 2)."""
    kps = np.array([[[5, 5], [6, 6], [7, 7]],  # only 2 confident joints: no box, the next people still get theirs
                    [[10, 20], [30, 20], [20, 70]],  # 20 wide, 50 tall: margin 6
                    [[1, 2], [95, 3], [50, 70]],  # margin 11.28: clipped on every side of a 100x80 frame
                    [[50, 50], [55, 50], [52, 50]]], np.float32)  # 5 wide, flat: 6.2 x 1.2 after the margin
    scores = np.array([[0.9, 0.9, 0.1], [0.2, 0.9, 0.9], [1, 1, 1], [1, 1, 1]], np.float32)
    p = Poses(kps, scores, np.zeros((4, 4), np.float32), np.array([0.1, 0.7, 0.8, 0.9], np.float32))
    d = boxes_from_keypoints(p, (100, 80))
    np.testing.assert_allclose(d.boxes, [[4, 14, 36, 76], [0, 0, 99, 79]], atol=1e-5)
    np.testing.assert_allclose(d.scores, [0.7, 0.8])
    assert d.boxes.dtype == np.float32
