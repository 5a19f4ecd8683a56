"""realtime.bench.detector_real: keypoint coverage, one-box-per-person matching, recall, and the pseudo-label
people brought back to frame pixels, on hand-made cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from realtime.bench.detector_real import (Person, _score, coverage_matrix, keypoints_inside, match_people,
                                          pseudo_label_people, summarize)
from realtime.types import Detections


def _person(x0: float, y0: float, w: float = 10.0, h: float = 20.0, k: int = 6) -> np.ndarray:
    """``k`` keypoints on the diagonal of the box (x0, y0, x0 + w, y0 + h), corners included."""
    t = np.linspace(0, 1, k)
    return np.stack([x0 + t * w, y0 + t * h], 1)


def test_keypoints_inside_counts_the_edges_and_nothing_beyond() -> None:
    kps = np.array([[0, 0], [10, 20], [10.01, 5], [5, -0.01]])
    assert keypoints_inside(kps, np.array([0, 0, 10, 20])).tolist() == [True, True, False, False]


def test_coverage_ignores_keypoints_the_teacher_is_not_sure_of() -> None:
    kps = _person(0, 0)[None].copy()
    kps[0, -1] = (500, 500)  # far outside every box, but not confident
    valid = np.ones((1, 6), bool)
    box = np.array([[0, 0, 10, 20]])
    assert coverage_matrix(kps, valid, box)[0, 0] == pytest.approx(5 / 6)
    valid[0, -1] = False
    assert coverage_matrix(kps, valid, box)[0, 0] == 1.0
    with pytest.raises(ValueError):
        coverage_matrix(kps, np.zeros((1, 6), bool), box)


def test_a_box_that_merges_two_people_is_one_persons_box() -> None:
    kps = np.stack([_person(0, 0), _person(12, 0)])
    valid = np.ones((2, 6), bool)
    merged = np.array([[0, 0, 22, 20]])
    m, c = match_people(kps, valid, merged)
    assert sorted(m.tolist()) == [-1, 0] and sorted(c.tolist()) == [0.0, 1.0]
    # with a tight box for the second person, the merged box goes to the first and both are found
    m, c = match_people(kps, valid, np.array([[0, 0, 22, 20], [12, 0, 22, 20]]))
    assert m.tolist() == [0, 1] and c.tolist() == [1.0, 1.0]


def test_matching_prefers_the_box_covering_more_keypoints() -> None:
    kps = _person(0, 0)[None]
    feet_cut = np.array([0, 0, 10, 13])  # covers the upper keypoints only
    whole = np.array([-5, -5, 15, 25])
    m, c = match_people(kps, np.ones((1, 6), bool), np.stack([feet_cut, whole]))
    assert m.tolist() == [1] and c.tolist() == [1.0]
    m, c = match_people(kps, np.ones((1, 6), bool), feet_cut[None])
    assert m.tolist() == [0] and c[0] == pytest.approx(4 / 6)
    m, c = match_people(kps, np.ones((1, 6), bool), np.array([[100, 100, 110, 120]]))  # covers nothing
    assert m.tolist() == [-1] and c.tolist() == [0.0]


def test_summarize_found_means_more_than_half_and_all_covered_means_every_keypoint() -> None:
    r = summarize(np.array([1.0, 0.5, 0.51, 0.0]), found=0.5, area_ratio=np.array([2.0, 9.0, 4.0, 0.0]))
    assert r["people"] == 4 and r["recall"] == 0.5 and r["all_covered"] == 0.25
    assert r["mean_coverage"] == pytest.approx(0.5025)
    assert r["box_over_keypoint_area"] == 3.0  # median over the two found people only
    assert summarize(np.zeros(0))["recall"] is None


def test_score_splits_by_size_and_by_video_or_photo() -> None:
    ok = np.ones(6, bool)
    people = [Person("v.avi#3", _person(0, 0, 10, 50), ok), Person("v.avi#3", _person(100, 0, 40, 200), ok),
              Person("a.jpg", _person(0, 0, 40, 300), ok)]
    dets = {"v.avi#3": Detections(np.array([[0, 0, 10, 50]]), np.array([0.9])),
            "a.jpg": Detections(np.zeros((0, 4)), np.zeros(0))}
    r = _score(people, dets, 0.5)
    assert r["recall"] == pytest.approx(1 / 3, abs=1e-4)
    assert (r["small"]["people"], r["small"]["recall"]) == (1, 1.0)
    assert (r["large"]["people"], r["large"]["recall"]) == (2, 0.0)
    assert (r["video"]["recall"], r["photos"]["recall"]) == (0.5, 0.0)


def test_pseudo_label_people_come_back_to_frame_pixels(tmp_path) -> None:
    from mca.data.pseudo_labels import CONTEXT, PseudoLabels, save_split
    from mca.heatmaps import CropTransform, apply_affine

    box = np.array([100.0, 50.0, 140.0, 150.0])
    frame_kps = np.stack([np.linspace(105, 135, 17), np.linspace(55, 160, 17)], 1)  # the last ones below the box
    to_patch = CropTransform.from_box(box, (256, 256), (256, 256), CONTEXT).frame_to_input
    patch_kps = apply_affine(to_patch, frame_kps)
    scores = np.full(17, 0.9)
    scores[0] = 0.1  # under MoveNet's 0.3
    teacher = np.concatenate([patch_kps, scores[:, None]], 1)[None].astype(np.float32)
    alt = teacher.copy()
    alt[0, :, 2] = 0.4  # under BlazePose's 0.5 everywhere: that teacher has nobody
    lb = PseudoLabels(np.zeros((1, 256, 256, 3), np.uint8), np.zeros((1, 16, 2), np.float32), np.ones((1, 16), bool),
                      np.zeros((1, 4), np.float32), teacher, ["vtest.avi#700"], np.zeros((1, 16, 2), np.float32),
                      np.zeros((1, 16), bool), alt, ("movenet_thunder", "blazepose_heavy"))
    save_split(tmp_path / "test.npz", lb)
    (tmp_path / "manifest.json").write_text(json.dumps({
        "patch": 256, "context": CONTEXT, "min_score": 0.3, "second_teacher": {"min_score": 0.5},
        "items": {"test": [{"source": "vtest.avi#700", "box_frame": box.tolist()}]}}))
    out = pseudo_label_people(tmp_path, min_keypoints=6)
    assert len(out["blazepose_heavy"]) == 0
    (p,) = out["movenet_thunder"]
    assert p.image == "vtest.avi#700" and p.valid.tolist() == [False] + [True] * 16
    np.testing.assert_allclose(p.keypoints, frame_kps, atol=1e-3)
    assert not keypoints_inside(p.keypoints[-1], box)  # the teacher's ankle below the detector's box


def test_a_crowd_box_finds_a_person_but_is_not_tight() -> None:
    ok = np.ones(6, bool)
    people = [Person("a.jpg", _person(0, 0, 10, 20), ok), Person("b.jpg", _person(0, 0, 10, 20), ok)]
    dets = {"a.jpg": Detections(np.array([[0, 0, 12, 22]]), np.array([0.9])),
            "b.jpg": Detections(np.array([[0, 0, 100, 100]]), np.array([0.9]))}  # around a whole crowd
    r = _score(people, dets, 0.5)
    assert r["recall"] == 1.0 and r["recall_tight"] == 0.5


def test_thresholding_after_nms_keeps_what_a_run_at_that_threshold_keeps() -> None:
    from realtime.bench.detector_real import above
    from realtime.detectors import nms

    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 200, (60, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(20, 80, (60, 2))], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 60).astype(np.float32)
    low = nms(boxes, scores, 0.5)
    for t in (0.2, 0.35, 0.7):
        got = above(Detections(boxes[low], scores[low]), t, max_persons=100)
        m = scores >= t
        want = nms(boxes[m], scores[m], 0.5)
        np.testing.assert_array_equal(got.boxes, boxes[m][want])
    assert len(above(Detections(boxes[low], scores[low]), 0.0, max_persons=4)) == 4
