"""tools/kpt_threshold.py: which people and joints the drawing-threshold sweep counts, and user errors."""

from __future__ import annotations

import numpy as np
import pytest

from mca.joints import MPII16
from tests.conftest import load_tool


@pytest.fixture(scope="module")
def kt():
    return load_tool("kpt_threshold")


def _person(dx: float = 0.0) -> np.ndarray:
    j = np.zeros((16, 2))
    j[:, 0] = np.arange(16) * 5.0 + dx
    j[MPII16.index("r_shoulder")] = (0.0, 0.0)
    j[MPII16.index("l_hip")] = (30.0, 40.0)  # torso 50 px: right within 10 px
    return j


def test_sweep_counts_people_with_a_labelled_torso_and_only_the_kept_joints(kt) -> None:
    gt = np.stack([_person(), _person(), _person()])
    lab = np.ones((3, 16), bool)
    lab[1, MPII16.index("l_hip")] = False  # no torso label: this person is left out
    lab[2, MPII16.index("l_ankle")] = False  # the reference does not see it
    pred = gt.copy()
    pred[0, MPII16.index("r_wrist")] += 25.0  # wrong (> 0.2 x 50 px)
    conf = np.full((3, 16), 0.9)
    conf[0, MPII16.index("r_wrist")] = 0.3  # a low confidence on the wrong joint
    keep = np.ones(16, bool)
    keep[MPII16.index("head_top")] = False
    r = kt.sweep(pred, conf, gt, lab, keep)
    assert r["people"] == 2 and r["joints"] == 30 and r["unlabelled"] == 1
    t = list(kt.THRESHOLDS)
    lo, hi = t.index(0.0), t.index(0.5)
    assert r["invented"][lo] == 1.0 and r["invented"][hi] == 1.0  # the unseen ankle is drawn at 0.9
    assert r["wrong_drawn"][lo] == 1.0 and r["wrong_drawn"][hi] == 0.0  # 0.5 hides the wrong wrist
    assert r["decision"][lo] == pytest.approx(28 / 30, abs=1e-4) and r["decision"][hi] == pytest.approx(29 / 30, abs=1e-4)


def test_missing_data_is_a_user_error(kt, tmp_path, capsys) -> None:
    rc = kt.main([str(tmp_path / "m.onnx"), "--data", str(tmp_path), "--synthetic-num", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
