"""Identity metrics (ID switches, IDF1, MOTA, ids per person) on hand-made tracks, and the command."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from realtime.bench.evaluate_tracking import (FrameTracks, FrameTruth, TrackStep, identity_metrics,
                                              linear_assignment, main, pooled, refinds)
from realtime.models import BUNDLED
from realtime.tracking import Tracker
from realtime.types import Poses


def _box(x: float) -> list[float]:
    return [x, 0.0, x + 20.0, 40.0]


def _video(ids_a: list[int], ids_b: list[int] | None = None) -> tuple[list[FrameTruth], list[FrameTracks]]:
    """True person 0 (and 1) walking right, tracked with the given ids frame by frame (-1: not output)."""
    truth, tracks = [], []
    for f, ia in enumerate(ids_a):
        gt, gid, boxes, ids = [_box(3 * f)], [0], [_box(3 * f + 1)], [ia]
        if ids_b is not None:
            gt.append(_box(200 - 3 * f))
            gid.append(1)
            boxes.append(_box(201 - 3 * f))
            ids.append(ids_b[f])
        truth.append(FrameTruth(np.array(gt, float), np.array(gid), np.zeros(len(gid), bool)))
        tracks.append(FrameTracks(np.array(boxes, float), np.array(ids)))
    return truth, tracks


def test_a_perfect_tracking_scores_one() -> None:
    m = identity_metrics(*_video([7] * 10, [3] * 10))
    assert (m.idf1, m.idp, m.idr, m.mota) == (1.0, 1.0, 1.0, 1.0)
    assert (m.switches, m.ids, m.people, m.ids_per_person, m.fp, m.fn) == (0, 2, 2, 1.0, 0, 0)


def test_one_switch_halfway() -> None:
    """Person 0 is id 1 for 5 frames, then id 2: one switch; the best pairing keeps 5 of 10 frames, IDF1 = 0.5."""
    m = identity_metrics(*_video([1] * 5 + [2] * 5))
    assert m.switches == 1 and m.ids == 2 and m.ids_per_person == 2.0
    assert m.idf1 == pytest.approx(2 * 5 / (10 + 10))
    assert m.mota == pytest.approx(1 - 1 / 10)
    assert m.ids_matched_per_person == 2.0


def test_two_people_trading_ids() -> None:
    """A and B swap ids after 6 of 10 frames: two switches; IDF1 = 2 (6 + 6) / (20 + 20)."""
    m = identity_metrics(*_video([1] * 6 + [2] * 4, [2] * 6 + [1] * 4))
    assert m.switches == 2 and m.ids == 2 and m.ids_per_person == 1.0
    assert m.idf1 == pytest.approx(2 * 12 / 40)


def test_misses_false_positives_and_untracked_boxes() -> None:
    """A frame without the person is a miss; a box far from anyone a false positive; id -1 is no output."""
    truth, tracks = _video([5, 5, -1, 5, 5])
    tracks[1] = FrameTracks(np.vstack([tracks[1].boxes, [_box(500)]]), np.array([5, 9]))
    m = identity_metrics(truth, tracks)
    assert (m.tp, m.fn, m.fp, m.switches, m.ids) == (4, 1, 1, 0, 2)
    assert m.mota == pytest.approx(1 - (1 + 1) / 5)
    assert m.idf1 == pytest.approx(2 * 4 / (5 + 5))


def test_dont_care_people_and_their_boxes_are_left_out() -> None:
    """A person mostly out of view: not found is no miss, found is no false positive."""
    truth, tracks = _video([4] * 4, [6] * 4)
    for t in truth:
        t.ignore[1] = True
    tracks[2] = FrameTracks(tracks[2].boxes[:1], tracks[2].ids[:1])
    m = identity_metrics(truth, tracks)
    assert (m.people, m.gt, m.tp, m.fp, m.fn, m.idf1) == (1, 4, 4, 0, 0, 1.0)


def test_a_switch_back_after_a_gap_counts_against_the_last_id() -> None:
    """CLEAR-MOT compares with the id last matched, across frames where the person was missed."""
    m = identity_metrics(*_video([1, 1, -1, -1, 2, 2, 1]))
    assert m.switches == 2


def test_one_box_matches_one_person_when_two_last_had_its_id() -> None:
    """A crossing: A had id 1, then B took it while A was missed; when both stand where one box with id 1
    covers them, that box is one hit (and the other person one miss), never two (no negative false positives)."""
    f = lambda boxes, ids: (np.array(boxes, float), np.array(ids))  # noqa: E731
    truth = [FrameTruth(*f([_box(0), _box(100)], [0, 1]), np.zeros(2, bool)),
             FrameTruth(*f([_box(100)], [1]), np.zeros(1, bool)),
             FrameTruth(*f([_box(50), _box(51)], [0, 1]), np.zeros(2, bool))]
    tracks = [FrameTracks(*f([_box(0), _box(100)], [1, 2])), FrameTracks(*f([_box(100)], [1])),
              FrameTracks(*f([_box(50.5)], [1]))]
    m = identity_metrics(truth, tracks)
    assert (m.gt, m.tp, m.fp, m.fn) == (5, 4, 0, 1)
    assert m.switches == 1  # B: 2 -> 1


def test_refinds_report_gaps_and_how_far_the_id_jumped() -> None:
    """Id 1 unseen on frames 2-4 and back 80 px on (a 40 px tall box: 2 heights); id 2 always there."""
    boxes = [[_box(0), _box(200)], [_box(0), _box(200)], [_box(200)], [_box(200)], [_box(200)],
             [_box(80), _box(200)]]
    ids = [[1, 2], [1, 2], [2], [2], [2], [1, 2]]
    back = refinds([FrameTracks(np.array(b, float), np.array(i)) for b, i in zip(boxes, ids)])
    assert back == [(1, 3, pytest.approx(2.0))]


def test_frames_must_line_up() -> None:
    truth, tracks = _video([1, 1])
    with pytest.raises(ValueError, match="frames"):
        identity_metrics(truth, tracks[:1])


def test_pooled_sums_counts() -> None:
    a = identity_metrics(*_video([1] * 5 + [2] * 5))
    b = identity_metrics(*_video([3] * 10))
    p = pooled([a, b])
    assert (p.frames, p.people, p.ids, p.switches, p.gt) == (20, 2, 3, 1, 20)
    assert p.idf1 == pytest.approx(2 * (5 + 10) / (20 + 20))


def _brute(cost: np.ndarray) -> float:
    n, m = cost.shape
    if n <= m:
        return min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
    return _brute(cost.T)


def test_linear_assignment_is_optimal() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m = rng.integers(1, 6, 2)
        cost = rng.integers(0, 6, (n, m)).astype(float) if rng.random() < 0.5 else rng.normal(size=(n, m))
        r, c = linear_assignment(cost)
        assert len(r) == min(n, m) and len(set(r.tolist())) == len(r) and len(set(c.tolist())) == len(c)
        assert cost[r, c].sum() == pytest.approx(_brute(cost))
    assert linear_assignment(np.zeros((0, 3)))[0].shape == (0,)


def test_track_step_feeds_old_and_new_trackers_alike() -> None:
    """The second pass gets the low-score boxes; a tracker without ``high_score`` gets the confident ones."""
    p = Poses(np.zeros((2, 4, 2)) + [[[0, 0]], [[50, 50]]], np.ones((2, 4)), [[0, 0, 10, 10], [50, 50, 60, 60]],
              [0.9, 0.1])

    class Old:
        def update(self, poses: Poses) -> Poses:
            self.seen = len(poses)
            return poses

    old = Old()
    TrackStep(old, high_score=0.25)(p, np.zeros((80, 80, 3), np.uint8))
    assert old.seen == 1
    out = TrackStep(Tracker(), high_score=0.25)(p, np.zeros((80, 80, 3), np.uint8))
    assert out.box_scores.tolist() == [pytest.approx(0.9)]  # the lone low-score box: nobody's, left out


@pytest.mark.parametrize("argv", [["--size", "big"], ["--frames", "-3"], ["--low-conf", "2"],
                                  ["--video", "/no/such.avi"]])
def test_bad_arguments_are_one_error_line(argv, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(not (BUNDLED["mca_tiny_synth"].path.exists() and BUNDLED["yolo_synth"].path.exists()),
                    reason="the bundled demo models are not in this checkout")
def test_the_command_on_a_short_demo(tmp_path, capsys) -> None:
    """Two people, 25 frames: the table is printed, the JSON holds one row per seed and the pooled one."""
    out = tmp_path / "ids.json"
    assert main(["--seeds", "3", "--frames", "25", "--people", "2", "--quiet", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| 3 | 25 |" in text and "| all |" in text
    rows = json.loads(out.read_text())
    assert [r["video"] for r in rows] == ["3", "all"]
    assert rows[0]["frames"] == 25 and 0.0 <= rows[0]["idf1"] <= 1.0 and rows[0]["people"] >= 1
