"""AP50 and matching against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.bench.evaluate_detector import average_precision, match_frame


@pytest.mark.parametrize("scores,tp,n_gt,ap", [
    ([0.9, 0.8], [True, True], 2, 1.0),
    ([0.9, 0.8], [True, False], 2, 0.5),
    ([0.9, 0.8, 0.7], [False, True, True], 2, 2 / 3),  # interpolated precision at both recalls: 2/3
    ([], [], 3, 0.0),
])
def test_average_precision(scores, tp, n_gt, ap) -> None:
    assert average_precision(np.array(scores), np.array(tp, bool), n_gt) == pytest.approx(ap)


def test_match_frame_duplicates_are_false_positives_and_ignored_people_dropped() -> None:
    gt = np.array([[0, 0, 10, 20], [50, 50, 60, 70]], np.float32)
    ignore = np.array([False, True])
    det = np.array([[0, 0, 10, 20], [1, 0, 11, 20], [50, 50, 60, 70], [100, 100, 110, 110]], np.float32)
    scores, flags = match_frame(det, np.array([0.9, 0.8, 0.7, 0.6]), gt, ignore)
    assert scores == [0.9, 0.8, 0.6] and flags == [True, False, False]
