"""PCK / PCKh against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from mca.metrics import head_size, mpii_head_size_from_box, pck, torso_size


def test_pck_hand_computed() -> None:
    gt = np.zeros((2, 3, 2))
    pred = np.array([[[1, 0], [3, 0], [0, 0]], [[0, 0.5], [0, 0], [10, 0]]], float)
    vis = np.array([[1, 1, 0], [1, 1, 1]], bool)
    norm = np.array([10.0, 5.0])
    r = pck(pred, gt, vis, norm, 0.2)  # thresholds 2 px and 1 px
    # person 0: joint0 d=1 hit, joint1 d=3 miss, joint2 invisible; person 1: hit, hit, miss (d=10)
    np.testing.assert_allclose(r.per_joint, [1.0, 0.5, 0.0])
    assert r.total == pytest.approx(3 / 5) and r.count == 5


def test_pck_joint_never_visible_is_nan_and_excluded() -> None:
    r = pck(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), np.array([[1, 0]]), np.array([1.0]), 0.5)
    assert r.per_joint[0] == 1.0 and np.isnan(r.per_joint[1]) and r.total == 1.0


@pytest.mark.parametrize("joint_set,a,b", [("mpii16", 12, 3), ("coco17", 6, 11)])
def test_torso_is_right_shoulder_to_left_hip(joint_set, a, b) -> None:
    k = 16 if joint_set == "mpii16" else 17
    gt = np.zeros((1, k, 2))
    gt[0, a] = [3, 0]
    gt[0, b] = [0, 4]
    assert torso_size(gt, joint_set)[0] == pytest.approx(5.0)


def test_head_sizes() -> None:
    gt = np.zeros((1, 16, 2))
    gt[0, 9] = [0, 0]
    gt[0, 8] = [0, 12]
    assert head_size(gt)[0] == pytest.approx(12)
    assert mpii_head_size_from_box(np.array([[0, 0, 30, 40]]))[0] == pytest.approx(0.6 * 50)
    with pytest.raises(ValueError, match="head_top"):
        head_size(np.zeros((1, 17, 2)), "coco17")
