"""Joint sets: one place for names, edges and flip pairs."""

from __future__ import annotations

import pytest

from mca.joints import COCO17, JOINT_SETS, JointSet, MPII16, get_joint_set


@pytest.mark.parametrize("js,k", [(MPII16, 16), (COCO17, 17)])
def test_sizes_and_edges(js: JointSet, k: int) -> None:
    assert js.num_joints == k == len(js.flip_index)
    assert all(0 <= a < k and 0 <= b < k for a, b in js.skeleton)
    assert get_joint_set(js.name) is js and JOINT_SETS[js.name] is js


def test_mpii_flip_pairs_are_the_released_ones() -> None:
    assert set(MPII16.flip_pairs) == {(0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)}
    assert MPII16.index("head_top") == 9


@pytest.mark.parametrize("pairs", [((0, 0),), ((0, 1), (1, 2)), ((0, 9),)])
def test_bad_flip_pairs_rejected(pairs) -> None:
    with pytest.raises(ValueError, match="flip pair"):
        JointSet("bad", ("a", "b", "c"), (), pairs)


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(KeyError, match="coco17"):
        get_joint_set("h36m")
    with pytest.raises(KeyError, match="r_ankle"):
        MPII16.index("tail")
