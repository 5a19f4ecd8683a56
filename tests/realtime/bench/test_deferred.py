"""realtime.bench.deferred: outputs compared exactly, a short run on real footage, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from realtime.bench.deferred import main, same_output
from realtime.types import Poses
from tests.realtime.test_real_footage import VTEST


def _poses(n: int, shift: float = 0.0, ids: list[int] | None = None) -> Poses:
    kp = np.arange(n * 3 * 2, dtype=np.float32).reshape(n, 3, 2) + shift
    return Poses(kp, np.full((n, 3), 0.9, np.float32), np.tile(np.float32([0, 0, 10, 20]), (n, 1)), np.ones(n),
                 track_ids=np.array(ids if ids is not None else list(range(n)), np.int64))


def test_same_output_is_exact_on_people_ids_and_keypoints() -> None:
    assert same_output(_poses(2), _poses(2))
    assert not same_output(_poses(2), _poses(1))  # a person more
    assert not same_output(_poses(2), _poses(2, ids=[0, 5]))  # another id
    assert not same_output(_poses(2), _poses(2, shift=1e-3))  # a keypoint moved
    a, b = _poses(1), _poses(1)
    b.scores[0, 1] = 0.5
    assert not same_output(a, b)  # a keypoint score changed


@pytest.mark.skipif(not VTEST.is_file(), reason="needs the shared vtest.avi (../shared/data or $MCA_SHARED/data)")
def test_short_run_reports_identical_frames_and_fewer_crops(tmp_path) -> None:
    assert main(["--frames", "12", "--out", str(tmp_path / "d")]) == 0
    res = json.loads((tmp_path / "d.json").read_text())
    every, lazy = res["rows"]["every box posed"], res["rows"]["deferred (default)"]
    assert res["frames"] == 12 and res["frames_differing"] == 0
    assert every["boxes_seen"] == lazy["boxes_seen"] == every["boxes_posed"] >= lazy["boxes_posed"]
    assert "Frames whose output differs: 0 of 12" in (tmp_path / "d.md").read_text()


def test_missing_video_is_a_one_line_error(tmp_path, capsys) -> None:
    assert main(["--video", str(tmp_path / "none.avi")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "none.avi" in err and len(err.splitlines()) == 1
