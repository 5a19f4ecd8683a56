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


@pytest.mark.parametrize("shift,area,expect", [
    (0.0, 100.0, 1.0),                       # perfect
    (1.0, 100.0, None),                      # hand-computed below
    (50.0, 100.0, 0.0),                      # far off: ~0
])
def test_oks_matches_the_formula(shift, area, expect) -> None:
    from mca.metrics import COCO_SIGMAS, oks

    gt = np.zeros((1, 17, 2))
    gt[0, :, 0] = np.arange(17) * 10
    vis = np.ones((1, 17), bool)
    vis[0, 3] = False  # an unlabelled joint is ignored
    pred = gt + [shift, 0.0]
    got = oks(pred, gt, vis, area)[0]
    if expect is None:  # exp(-1 / (2 * area * (2 sigma)^2)) averaged over the 16 labelled joints
        k2 = (2 * COCO_SIGMAS) ** 2
        expect = np.mean([np.exp(-1.0 / (2 * area * k2[j])) for j in range(17) if j != 3])
    assert got == pytest.approx(expect, abs=1e-6)
    assert np.isnan(oks(pred, gt, np.zeros((1, 17), bool), area)[0])


def test_coco_ap_is_one_for_perfect_keypoints_and_less_for_shifted() -> None:
    pytest.importorskip("pycocotools", reason="COCO AP uses pycocotools")
    from mca.metrics import coco_keypoint_ap

    rng = np.random.default_rng(0)
    images, anns, perfect, shifted = [], [], [], []
    for i in range(6):
        images.append({"id": i, "width": 640, "height": 480})
        kp = np.concatenate([rng.uniform(100, 300, (17, 2)), np.full((17, 1), 2)], 1)
        anns.append({"id": i + 1, "image_id": i, "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                     "num_keypoints": 17, "area": 200.0 * 200.0, "bbox": [100, 100, 200, 200], "iscrowd": 0})
        perfect.append({"image_id": i, "category_id": 1, "keypoints": kp.reshape(-1).tolist(), "score": 0.9})
        moved = kp.copy()
        moved[:, :2] += 12.0
        shifted.append({"image_id": i, "category_id": 1, "keypoints": moved.reshape(-1).tolist(), "score": 0.9})
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    assert coco_keypoint_ap(gt, perfect)["AP"] == pytest.approx(1.0)
    # by hand: every person's OKS = mean_j exp(-(12^2 + 12^2) / (2 * 200^2 * (2 sigma_j)^2)) = 0.712 (COCO sigmas),
    # so the detections match at OKS thresholds .50-.70 (5 of 10) and at none from .75: AP 0.5, AP50 1, AP75 0
    from mca.metrics import COCO_SIGMAS

    expected_oks = float(np.mean(np.exp(-288.0 / (2 * 200.0 ** 2 * (2 * COCO_SIGMAS) ** 2))))
    assert 0.70 < expected_oks < 0.75
    res = coco_keypoint_ap(gt, shifted)
    assert res["AP"] == pytest.approx(0.5, abs=1e-6) and res["AR"] == pytest.approx(0.5, abs=1e-6)
    assert res["AP50"] == pytest.approx(1.0, abs=1e-6) and res["AP75"] == pytest.approx(0.0, abs=1e-6)


# ----------------------------------------------------------------------------- left/right
from mca.metrics import lr_heatmap_correlation, side_pair_names, side_summary, side_swap  # noqa: E402


def test_side_pair_names_from_the_flip_pairs() -> None:
    pairs = side_pair_names("mpii16")
    assert pairs["ankle"] == (5, 0) and pairs["wrist"] == (15, 10) and len(pairs) == 6
    assert side_pair_names("coco17")["eye"] == (1, 2)


def _pair_case(pred_l, pred_r):
    gt = np.zeros((1, 16, 2))
    gt[0, 5], gt[0, 0] = (10.0, 0.0), (0.0, 0.0)  # l_ankle, r_ankle
    pred = gt.copy()
    pred[0, 5], pred[0, 0] = pred_l, pred_r
    return side_swap(pred, gt, np.ones((1, 16), bool), {"ankle": (5, 0)})["ankle"]


@pytest.mark.parametrize("pl, pr, swap, collapse", [
    ((10.0, 0.0), (0.0, 0.0), 0.0, 0.0),  # right
    ((0.0, 0.0), (10.0, 0.0), 1.0, 0.0),  # swapped
    ((0.5, 0.0), (9.0, 1.0), 1.0, 0.0),  # swapped, not exactly
    ((10.0, 0.0), (10.0, 0.0), 0.0, 1.0),  # both on the left ankle: collapsed, the sum rule cannot call it swapped
    ((0.0, 0.5), (0.0, 0.0), 0.0, 1.0),  # both on the right one
])
def test_side_swap_hand_made(pl, pr, swap, collapse) -> None:
    r = _pair_case(pl, pr)
    assert (r["swap"], r["collapse"], r["pairs"]) == (swap, collapse, 1.0)


def test_side_swap_leaves_out_unlabelled_and_touching_pairs() -> None:
    gt = np.zeros((3, 16, 2))
    gt[:, 5] = [[10, 0], [10, 0], [0.5, 0]]
    vis = np.ones((3, 16), bool)
    vis[1, 0] = False
    r = side_swap(gt[:, :, :], gt, vis, {"ankle": (5, 0)}, norm=np.full(3, 10.0), min_sep=0.1)["ankle"]
    assert r["pairs"] == 1.0 and r["swap"] == 0.0


def test_lr_correlation_is_one_for_identical_maps_and_low_for_separate_peaks() -> None:
    from mca import heatmaps as H

    a = H.encode_heatmaps(np.array([[5.0, 5.0], [25.0, 20.0]]), None, 32)
    same = np.stack([a[0], a[0]])[None]
    apart = a[None]
    assert lr_heatmap_correlation(same, {"x": (0, 1)})["x"] == pytest.approx(1.0)
    assert lr_heatmap_correlation(apart, {"x": (0, 1)})["x"] < 0.05
    flat = np.zeros((1, 2, 32, 32))
    assert np.isnan(lr_heatmap_correlation(flat, {"x": (0, 1)})["x"])


def test_side_summary_reports_what_the_total_hides() -> None:
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (20, 16, 2))
    pred = gt.copy()
    pred[:, [0, 5]] = gt[:, [5, 0]]  # every ankle pair swapped
    out = side_summary(pred, gt, np.ones((20, 16), bool), None, "mpii16", np.full(20, 30.0))
    assert out["side-swap ankle"] == 1.0 and out["side-swap knee"] == 0.0
    assert out["side-swap all"] == pytest.approx(1 / 6, abs=0.01)  # a few random pairs touch: left out
    assert out["pck@0.2 head_top"] == 1.0 and out["pck@0.2 l_ankle"] < 0.5


def test_side_swap_by_view_splits_front_side_and_back() -> None:
    """People facing the camera (|yaw| < 45), seen side on and from behind are counted apart (yaw wraps at 180)."""
    from mca.evaluate import side_swap_by_view

    rng = np.random.default_rng(1)
    gt = rng.uniform(0, 100, (6, 16, 2))
    pred = gt.copy()
    yaw = np.array([10.0, -30.0, 90.0, -100.0, 170.0, -175.0])
    pred[4:, [0, 5, 1, 4]] = gt[4:, [5, 0, 4, 1]]  # the two back views: ankles and knees swapped
    out = side_swap_by_view(pred, gt, np.ones((6, 16), bool), yaw, np.full(6, 30.0), "mpii16", min_sep=0.0)
    assert out["side-swap all front"] == 0.0 and out["side-swap all side"] == 0.0
    assert out["side-swap all back"] == pytest.approx(2 / 6)  # 2 of the 6 pairs per person
    assert out["side pairs front"] == out["side pairs side"] == out["side pairs back"] == 12.0


def test_rendered_people_carry_their_body_yaw() -> None:
    from mca.data.synthetic import SceneRenderer

    people = [p for i in range(4) for p in SceneRenderer("mpii16", (256, 256), seed=3).render(i).people]
    yaw = np.array([p.yaw for p in people])
    assert len(people) and np.isfinite(yaw).all() and (np.abs(yaw) <= 180).all() and len(set(yaw.round(3))) > 1


def test_draw_threshold_sweep_on_a_hand_made_case() -> None:
    from mca.metrics import draw_threshold_sweep

    # four right joints (conf .9 .8 .6 .3), one labelled but wrong (.7), two the reference does not label (.5, .1)
    conf = np.array([.9, .8, .6, .3, .7, .5, .1])
    correct = np.array([1, 1, 1, 1, 0, 0, 0], bool)
    labelled = np.array([1, 1, 1, 1, 1, 0, 0], bool)
    r = draw_threshold_sweep(conf, correct, labelled, np.array([0.0, 0.4, 0.55, 0.95]))
    np.testing.assert_allclose(r["recall"], [1.0, 0.75, 0.75, 0.0])
    np.testing.assert_allclose(r["precision"][:3], [4 / 7, 3 / 5, 3 / 4])
    assert np.isnan(r["precision"][3])
    np.testing.assert_allclose(r["invented"], [1.0, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(r["wrong_drawn"], [1.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(r["decision"], [4 / 7, 4 / 7, 5 / 7, 3 / 7])


def test_draw_threshold_sweep_rejects_a_right_joint_without_a_label() -> None:
    from mca.metrics import draw_threshold_sweep

    with pytest.raises(ValueError, match="without a label"):
        draw_threshold_sweep(np.array([.5]), np.array([True]), np.array([False]), np.array([.2]))
