"""Teacher pseudo-labels: the COCO-17 -> MPII-16 mapping, the frame split, storage, and the agreement metric."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mca.data.augment import make_sample
from mca.data.pseudo_labels import (UPPER_NECK_FRACTION, PseudoLabels, coco_to_mpii, context_patch, flip_consistent,
                                    load_split, mirror_coco, save_split, split_frames, spread_indices,
                                    teacher_agreement)
from mca.joints import COCO17, MPII16


def _coco_person() -> tuple[np.ndarray, np.ndarray]:
    """Distinct coordinates per COCO keypoint (x = 10 * index, y = 100 + 7 * index), all confident."""
    k = np.arange(17, dtype=np.float64)
    return np.stack([10 * k, 100 + 7 * k], 1), np.full(17, 0.9)


def _mid(a: str, b: str, kps: np.ndarray) -> np.ndarray:
    return (kps[COCO17.index(a)] + kps[COCO17.index(b)]) / 2


@pytest.mark.parametrize("mpii, expect", [
    ("r_ankle", lambda k: k[COCO17.index("r_ankle")]),
    ("l_knee", lambda k: k[COCO17.index("l_knee")]),
    ("r_hip", lambda k: k[COCO17.index("r_hip")]),
    ("l_wrist", lambda k: k[COCO17.index("l_wrist")]),
    ("r_elbow", lambda k: k[COCO17.index("r_elbow")]),
    ("l_shoulder", lambda k: k[COCO17.index("l_shoulder")]),
    ("pelvis", lambda k: _mid("l_hip", "r_hip", k)),
    ("thorax", lambda k: _mid("l_shoulder", "r_shoulder", k)),
    ("upper_neck", lambda k: _mid("l_shoulder", "r_shoulder", k)
     + UPPER_NECK_FRACTION * (k[COCO17.index("nose")] - _mid("l_shoulder", "r_shoulder", k))),
])
def test_mapping_places_each_mpii_joint(mpii, expect) -> None:
    kps, sc = _coco_person()
    joints, vis = coco_to_mpii(kps, sc)
    np.testing.assert_allclose(joints[MPII16.index(mpii)], expect(kps), atol=1e-4)
    assert vis[MPII16.index(mpii)]


def test_head_top_is_never_labelled() -> None:
    kps, sc = _coco_person()
    _, vis = coco_to_mpii(kps, np.ones(17))
    assert not vis[MPII16.index("head_top")] and vis.sum() == 15


@pytest.mark.parametrize("weak, hidden", [
    ("r_shoulder", {"r_shoulder", "thorax", "upper_neck"}),
    ("nose", {"upper_neck"}),
    ("l_hip", {"l_hip", "pelvis"}),
    ("l_eye", set()),  # eyes and ears are not used
    ("r_ankle", {"r_ankle"}),
])
def test_a_low_score_hides_every_joint_made_from_it(weak, hidden) -> None:
    kps, sc = _coco_person()
    sc[COCO17.index(weak)] = 0.29
    _, vis = coco_to_mpii(kps, sc, min_score=0.3)
    assert {MPII16.names[j] for j in np.flatnonzero(~vis)} == hidden | {"head_top"}


def test_mapping_is_batched_and_checks_shapes() -> None:
    kps, sc = _coco_person()
    joints, vis = coco_to_mpii(np.stack([kps, kps + 5]), np.stack([sc, sc]))
    assert joints.shape == (2, 16, 2) and vis.shape == (2, 16)
    np.testing.assert_allclose(joints[1] - joints[0], 5, atol=1e-4)
    with pytest.raises(ValueError, match="COCO-17"):
        coco_to_mpii(np.zeros((16, 2)), np.zeros(16))


@pytest.mark.parametrize("n, train, test, holdout, gap", [(795, 160, 50, 0.25, 20), (100, 50, 50, 0.25, 5),
                                                          (800, 10, 10, 0.5, 0)])
def test_split_holds_out_a_later_contiguous_part_with_a_gap(n, train, test, holdout, gap) -> None:
    tr, te = split_frames(n, train, test, holdout, gap)
    start = round(n * (1 - holdout))
    assert len(tr) and len(te) and tr.max() < start - gap and te.min() >= start and te.max() < n
    assert len(np.intersect1d(tr, te)) == 0
    if len(tr) < (start - gap) // 2:  # sparse sampling: spread out, never consecutive
        assert np.diff(tr).min() > 1


@pytest.mark.parametrize("n, count, lo, hi, want", [(10, 3, 0, None, [0, 4, 9]), (10, 20, 2, 5, [2, 3, 4]),
                                                     (10, 3, 5, 5, [])])
def test_spread_indices(n, count, lo, hi, want) -> None:
    assert spread_indices(n, count, lo, hi).tolist() == want


def test_bad_holdout_is_an_error() -> None:
    with pytest.raises(ValueError, match="holdout"):
        split_frames(100, 10, 10, holdout=1.0)


def _labels(n: int = 6, size: int = 96) -> PseudoLabels:
    rng = np.random.default_rng(0)
    box = np.array([30, 12, 66, 84], np.float32)
    joints = np.stack([np.stack([rng.uniform(box[0], box[2], 16), rng.uniform(box[1], box[3], 16)], 1)
                       for _ in range(n)]).astype(np.float32)
    vis = np.ones((n, 16), bool)
    vis[:, MPII16.index("head_top")] = False
    vis[0, MPII16.index("r_shoulder")] = False  # no torso: left out of the agreement
    images = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
    return PseudoLabels(images, joints, vis, np.tile(box, (n, 1)), np.zeros((n, 17, 3), np.float32),
                        [f"p{i}" for i in range(n)])


def test_save_and_load_round_trip(tmp_path) -> None:
    lb = _labels()
    save_split(tmp_path / "s.npz", lb)
    back = load_split(tmp_path / "s.npz")
    for a in ("images", "joints", "visible", "boxes", "teacher"):
        np.testing.assert_array_equal(getattr(back, a), getattr(lb, a))
    assert back.sources == lb.sources
    with pytest.raises(FileNotFoundError, match="pseudo_label"):
        load_split(tmp_path / "missing.npz")


@pytest.mark.parametrize("shift_px, want", [(0.0, 1.0), (50.0, 0.0)])
def test_agreement_is_pck_against_the_teacher(shift_px, want) -> None:
    lb = _labels()
    targets = []
    for i in range(1, len(lb)):  # person 0 has no right shoulder: not scored
        s = make_sample(lb.images[i], lb.joints[i] + shift_px, np.ones(16, bool), lb.boxes[i], 64, 16,
                        MPII16.flip_index)
        targets.append(s.target)
    it = iter(targets)

    def run(x: np.ndarray) -> np.ndarray:  # heatmaps peaked at (shifted) teacher joints
        return np.stack([next(it) for _ in range(len(x))])

    res = teacher_agreement(run, lb, 64, 16, batch=2)
    assert res["people"] == len(lb) - 1 and res["joints"] == 15 * (len(lb) - 1)
    assert res["pck@0.2"] == pytest.approx(want, abs=1e-6)
    assert res["per_joint"]["head_top"] is None


def test_context_patch_maps_the_box_into_the_patch() -> None:
    img = np.zeros((200, 300, 3), np.uint8)
    patch, m = context_patch(img, np.array([100, 50, 140, 130], np.float64), 160, context=2.0)
    assert patch.shape == (160, 160, 3)
    from mca import heatmaps as H

    corners = H.apply_affine(m, np.array([[100, 50], [140, 130]], np.float64))
    np.testing.assert_allclose(corners[1, 1] - corners[0, 1], 80, atol=1e-6)  # 80 px tall box, 160 px for 2 x 80


def test_dataset_items_match_the_synthetic_keys_and_never_weight_head_top() -> None:
    pytest.importorskip("torch", reason="the training dataset needs PyTorch (the 'train' extra)")
    from mca.data.pseudo_labels import PseudoLabelDataset

    ds = PseudoLabelDataset(_labels(), 64, 16, length=12, seed=1)
    assert len(ds) == 12
    for i in range(12):
        b = ds[i]
        assert tuple(b["crop"].shape) == (64, 64, 3) and tuple(b["target"].shape) == (16, 16, 16)
        assert float(b["weight"][MPII16.index("head_top")]) == 0.0
    a, b = ds[0], ds[6]  # the same patch, different jitter
    assert not np.array_equal(a["crop"].numpy(), b["crop"].numpy())


def test_two_teachers_round_trip_and_either_can_be_primary(tmp_path) -> None:
    lb = _labels()
    alt_j, alt_v = lb.joints + 3.0, ~lb.visible
    two = PseudoLabels(lb.images, lb.joints, lb.visible, lb.boxes, lb.teacher, lb.sources, alt_j, alt_v,
                       lb.teacher + 1, ("movenet_thunder", "blazepose_heavy"))
    save_split(tmp_path / "s.npz", two)
    first = load_split(tmp_path / "s.npz")
    np.testing.assert_array_equal(first.joints, lb.joints)
    other = load_split(tmp_path / "s.npz", teacher="blazepose_heavy")
    np.testing.assert_array_equal(other.joints, alt_j)
    np.testing.assert_array_equal(other.visible, alt_v)
    np.testing.assert_array_equal(other.alt_joints, lb.joints)  # the first teacher rides along for measuring
    assert other.teacher_names == ("blazepose_heavy", "movenet_thunder")
    with pytest.raises(ValueError, match="not 'openpose'"):
        load_split(tmp_path / "s.npz", teacher="openpose")
    with pytest.raises(ValueError, match="second teacher"):
        PseudoLabels(lb.images, lb.joints, lb.visible, lb.boxes, lb.teacher, lb.sources, alt_j, None, None)


def test_blazepose_landmarks_map_to_coco_by_name() -> None:
    from mca.data.pseudo_labels import BLAZEPOSE_TO_COCO, blazepose_to_coco

    lm = np.zeros((33, 4))
    lm[:, 0] = np.arange(33)  # x = BlazePose index
    lm[:, 3] = 0.9
    kps, sc = blazepose_to_coco(lm)
    # BlazePose 15/16 are the left/right wrists, 27/28 the ankles; COCO names them the same way
    assert kps[COCO17.index("l_wrist"), 0] == 15 and kps[COCO17.index("r_wrist"), 0] == 16
    assert kps[COCO17.index("l_ankle"), 0] == 27 and kps[COCO17.index("r_ankle"), 0] == 28
    assert len(BLAZEPOSE_TO_COCO) == 17 and (sc == 0.9).all()
    lm[:] = np.nan  # nobody found
    kps, sc = blazepose_to_coco(lm)
    assert (sc == 0).all() and np.isfinite(kps).all()


def test_the_pseudo_label_tool_runs_its_detector_in_fp32_on_every_cpu(tmp_path, monkeypatch) -> None:
    """First run on a VNNI CPU: the automatic INT8 choice swapped in person_ssdlite.int8.onnx, which found 964
    training people instead of 1,017, while the manifest named the FP32 file."""
    import realtime.models as models
    from tests.conftest import load_tool

    seen: dict = {}

    def fake_load(path, **kw):  # noqa: ANN001, ANN003, ANN202 - stands in for realtime.models.load_model
        seen.update(kw, path=path)
        raise models.ModelError("stop here")

    monkeypatch.setattr(models, "load_model", fake_load)
    (tmp_path / "teacher.onnx").write_bytes(b"")
    (tmp_path / "v.avi").write_bytes(b"")
    tool = load_tool("pseudo_label")
    rc = tool.main(["--teacher", str(tmp_path / "teacher.onnx"), "--video", str(tmp_path / "v.avi"),
                    "--photos", "--out", str(tmp_path / "out")])
    assert rc == 2 and seen["int8"] == "off" and str(seen["path"]).endswith("person_ssdlite.onnx")


def test_mirror_coco_undoes_a_mirrored_image_and_swaps_sides() -> None:
    """A keypoint at pixel x of a W-wide image sits at W-1-x in cv2.flip(image, 1), under the other side's name."""
    kps, _ = _coco_person()
    width = 640
    on_mirror = kps[list(COCO17.flip_index)].copy()  # what a perfect teacher says on the mirrored image
    on_mirror[:, 0] = width - 1 - on_mirror[:, 0]
    np.testing.assert_allclose(mirror_coco(on_mirror, width), kps)
    img = np.zeros((4, 9), np.uint8)
    img[2, 6] = 255
    assert cv2.flip(img, 1)[2, 9 - 1 - 6] == 255  # the convention mirror_coco undoes


def test_flip_consistency_drops_only_the_pairs_answered_crossed() -> None:
    kps, _ = _coco_person()
    c = COCO17.index
    assert flip_consistent(kps, kps).all()  # same answer both ways: sure of every side
    back = kps.copy()
    back[[c("l_ankle"), c("r_ankle")]] = back[[c("r_ankle"), c("l_ankle")]]  # ankles the other way round
    ok = flip_consistent(kps, back + 1.0)  # plus a small shift: positions need not match exactly
    assert not ok[c("l_ankle")] and not ok[c("r_ankle")]
    assert ok.sum() == 15
    collapsed = kps.copy()
    collapsed[c("l_knee")] = collapsed[c("r_knee")]
    assert flip_consistent(collapsed, collapsed[list(COCO17.flip_index)]
                           )[[c("l_knee"), c("r_knee")]].all()  # both on one spot: a tie says nothing of sides
    batch = np.stack([kps, kps])
    assert flip_consistent(batch, np.stack([kps, back])).sum(1).tolist() == [17, 15]
    with pytest.raises(ValueError, match="COCO-17"):
        flip_consistent(kps[:5], kps[:5])


def test_the_tool_drops_the_pairs_a_teacher_names_crossed_on_the_mirror() -> None:
    """A teacher that names the ankles by where they are in the image (always the left one "l_ankle") is right
    on one of the two images only: its ankle labels go, the rest stays."""
    from types import SimpleNamespace

    from realtime.types import Detections, Poses
    from tests.conftest import load_tool

    tool = load_tool("pseudo_label")
    c = COCO17.index
    img = np.zeros((200, 300, 3), np.uint8)
    img[:, :150] = 90  # the image and its mirror differ

    class Teacher:
        def estimate(self, image, dets):  # noqa: ANN001, ANN202
            kps = np.tile([[150.0, 100.0]], (17, 1))
            kps[:, 1] += 5 * np.minimum(np.arange(17), COCO17.flip_index)  # a pair at one height
            left_is_bright = image[0, 0, 0] == 90
            kps[c("l_ankle"), 0], kps[c("r_ankle"), 0] = (140.0, 160.0) if left_is_bright else (160.0, 140.0)
            # the knees as a sure teacher names them: mirrored, the person's left knee looks like a right one
            kps[c("l_knee"), 0], kps[c("r_knee"), 0] = (159.0, 139.0) if left_is_bright else (160.0, 140.0)
            return Poses(kps[None], np.full((1, 17), 0.9), dets.boxes, dets.scores)

    class Detector:
        def detect(self, image):  # noqa: ANN001, ANN202
            return Detections(np.array([[100.0, 20.0, 200.0, 180.0]], np.float32), np.array([0.9], np.float32))

    args = SimpleNamespace(min_height=10, min_score=0.3, min_joints=4, patch=64)
    plain = tool.label_people(img, Detector(), Teacher(), "x", args)[0]
    checked = tool.label_people(img, Detector(), Teacher(), "x", args, flip_check=True)[0]
    assert plain["flip_dropped"] == 0 and plain["visible"][MPII16.index("l_ankle")]
    assert checked["flip_dropped"] == 2
    assert not checked["visible"][MPII16.index("l_ankle")] and not checked["visible"][MPII16.index("r_ankle")]
    assert checked["visible"][MPII16.index("l_knee")] and checked["visible"][MPII16.index("r_knee")]


@pytest.mark.parametrize("setting, split, want", [("train", "train", True), ("train", "test", False),
                                                  ("all", "test", True), ("off", "train", False)])
def test_held_out_labels_stay_the_teachers_own_by_default(setting, split, want) -> None:
    """The held-out split is the yardstick for agreement with MoveNet: filtering it would move the yardstick."""
    from types import SimpleNamespace

    from tests.conftest import load_tool

    assert load_tool("pseudo_label")._flip_check(SimpleNamespace(flip_check=setting), split) is want
