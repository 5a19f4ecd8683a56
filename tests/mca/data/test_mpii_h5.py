"""MPII .h5 crop convention: applied once, on the real valid.h5 and on both file kinds written here."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from mca import heatmaps as H
from mca.data.augment import AugmentConfig
from mca.data.real import RealPoseDataset, load_mpii

h5py = pytest.importorskip("h5py", reason="MPII .h5 files need h5py")

SHARED = Path(os.environ.get("MCA_SHARED", Path(__file__).resolve().parents[4] / "shared"))
VALID = SHARED / "data" / "mpii-annot" / "valid.h5"


def _crop(ds: RealPoseDataset, i: int) -> tuple[np.ndarray, float]:
    """Centre and side (frame pixels) of the crop the dataset really makes for person ``i`` (no augmentation)."""
    s = ds.sample(i)
    to_frame = H.invert_affine(s.frame_to_input)
    n = ds.input_size
    centre = H.apply_affine(to_frame, np.array([[(n - 1) / 2, (n - 1) / 2]]))[0]
    return centre, float(np.hypot(*to_frame[:, 0]) * n)


@pytest.mark.skipif(not VALID.is_file(), reason=f"the shared MPII valid.h5 is absent ({VALID}; set MCA_SHARED)")
def test_real_valid_h5_crops_are_the_released_ones(tmp_path) -> None:
    """valid.h5 already holds c + 15 s and 1.25 s: the crop is 200 x scale around the stored centre, as test/main.lua."""
    recs = load_mpii(VALID)
    assert len(recs) == 2958
    with h5py.File(VALID, "r") as f:
        center, scale = f["center"][()], f["scale"][()]
    # record 0, through the whole sample path: a box of side 200 x 5.898 = 1179.6 px around (965, 409.78), 0-based
    cv2.imwrite(str(tmp_path / recs[0].image), np.zeros((1080, 1920, 3), np.uint8))
    ds = RealPoseDataset(recs[:1], tmp_path, "mpii16", 256, 64, train=False)
    c, side = _crop(ds, 0)
    np.testing.assert_allclose(c, [965.0, 409.7773], atol=1e-3)
    assert side == pytest.approx(1179.62, abs=0.01)
    # every person: the crop make_sample builds from the box is 200 s around c - 1
    pad = AugmentConfig().padding
    got = np.array([np.r_[H.box_to_center_size(r.box, 1.0, pad)[0], H.box_to_center_size(r.box, 1.0, pad)[1][0]]
                    for r in recs])
    np.testing.assert_allclose(got[:, :2], center - 1, atol=1e-3)
    np.testing.assert_allclose(got[:, 2], 200 * scale, rtol=1e-5)
    assert all(r.head_size and r.head_size > 0 for r in recs)  # 'normalize': the official PCKh head size


RAW = [  # (objpos x, objpos y, scale), 1-based as in the .mat: raw values
    (111.0, 91.0, 0.65), (300.0, 210.0, 1.37), (57.0, 140.0, 0.91), (420.0, 99.0, 2.113)]


def _write(path: Path, kind: str, istrain: list[int] | None = None) -> None:
    """The same people as a split file (convention included) or as the combined annot.h5 (raw + istrain)."""
    raw = np.array(RAW, np.float64)
    c, s = raw[:, :2].copy(), raw[:, 2].copy()
    if kind == "split":
        c[:, 1] += 15 * s
        s = s * 1.25
    n = len(raw)
    with h5py.File(path, "w") as f:
        f["imgname"] = np.array([b"img.jpg"] * n, dtype="S13")
        f["center"], f["scale"] = c, s
        part = np.tile(np.linspace(20, 200, 32).reshape(1, 16, 2), (n, 1, 1))
        f["part"], f["visible"], f["normalize"] = part, np.ones((n, 16)), np.full(n, 30.0)
        f["index"], f["person"] = np.arange(n, dtype=np.float64), np.zeros(n)
        if istrain is not None:
            f["istrain"] = np.array(istrain, np.float64)


def test_split_and_combined_files_give_the_same_crops(tmp_path) -> None:
    """The convention is applied once: the split file's adjusted values and annot.h5's raw ones crop identically."""
    cv2.imwrite(str(tmp_path / "img.jpg"), np.zeros((500, 700, 3), np.uint8))
    _write(tmp_path / "valid.h5", "split")
    _write(tmp_path / "annot.h5", "combined", istrain=[1, 1, 1, 1])
    split, comb = load_mpii(tmp_path / "valid.h5"), load_mpii(tmp_path / "annot.h5")
    for i, (x, y, s) in enumerate(RAW):
        a = _crop(RealPoseDataset(split, tmp_path, "mpii16", 64, 16, train=False), i)
        b = _crop(RealPoseDataset(comb, tmp_path, "mpii16", 64, 16, train=False), i)
        # the released crop: 200 x 1.25 s around objpos + (0, 15 s), 0-based
        for c, side in (a, b):
            np.testing.assert_allclose(c, [x - 1, y - 1 + 15 * s], atol=1e-4)
            assert side == pytest.approx(250 * s, rel=1e-5)


def test_combined_file_keeps_only_labelled_training_people(tmp_path) -> None:
    _write(tmp_path / "annot.h5", "combined", istrain=[1, 0, 2, 1])  # 0: test image, 2: training image without joints
    recs = load_mpii(tmp_path / "annot.h5")
    assert [r.image_id for r in recs] == [0, 3]


@pytest.mark.skipif(not VALID.is_file(), reason=f"the shared MPII valid.h5 is absent ({VALID}; set MCA_SHARED)")
def test_real_valid_h5_is_detected_as_a_split_file() -> None:
    from mca.data.real import detect_h5_convention

    with h5py.File(VALID, "r") as f:
        got, why = detect_h5_convention(set(f.keys()), f["center"][()], f["scale"][()])
    assert got == "split" and "100%" in why, why


@pytest.mark.parametrize("kind,istrain,expected", [
    ("split", None, "split"),  # the evidence (c_y - 12 s whole) and no istrain agree
    ("combined", [1, 1, 1, 1], "combined"),
    ("combined", None, "combined"),  # raw values without istrain: the whole-pixel centres decide
])
def test_convention_detection(tmp_path, kind, istrain, expected) -> None:
    from mca.data.real import detect_h5_convention

    _write(tmp_path / "a.h5", kind, istrain)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        got, why = detect_h5_convention(set(f.keys()), f["center"][()], f["scale"][()])
    assert got == expected and why


def test_forced_convention_overrides_detection(tmp_path) -> None:
    _write(tmp_path / "valid.h5", "split")
    auto = load_mpii(tmp_path / "valid.h5")
    forced = load_mpii(tmp_path / "valid.h5", h5_convention="combined")  # a wrong choice: applied a second time
    side = lambda r: r.box[2] - r.box[0]  # noqa: E731
    assert side(forced[1]) == pytest.approx(1.25 * side(auto[1]), rel=1e-5)
