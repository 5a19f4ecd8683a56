"""realtime.bench.detector_int8: the one-to-one box matching behind its 'kept' column, and its bad-input exit."""

from __future__ import annotations

import numpy as np

from realtime.bench.detector_int8 import main, matched


def test_matching_is_one_to_one_and_needs_the_overlap() -> None:
    ref = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    one = np.array([[0, 0, 10, 10]], np.float32)
    assert matched(ref, one) == 1, "one INT8 box cannot keep two FP32 people"
    assert matched(ref, ref) == 3
    shifted = ref + np.array([6, 0, 6, 0], np.float32)  # IoU 4/16 = 0.25 with its own box
    assert matched(ref[2:], shifted[2:]) == 0
    assert matched(ref[2:], shifted[2:], thr=0.2) == 1
    assert matched(ref, np.zeros((0, 4), np.float32)) == 0


def test_a_missing_video_is_one_line_and_exit_2(tmp_path, capsys) -> None:
    assert main(["--video", str(tmp_path / "nope.avi")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: video") and "nope.avi" in err[0]
