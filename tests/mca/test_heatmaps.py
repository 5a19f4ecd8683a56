"""Heatmap codec and frame <-> crop <-> heatmap geometry (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from mca import heatmaps as H
from mca.joints import COCO17, MPII16

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("size", [64, 48, 32, (48, 64)])
@pytest.mark.parametrize("sigma", [1.75, 1.0, 2.5])
def test_encode_decode_round_trip_within_0_1_px(size: int | tuple[int, int], sigma: float) -> None:
    w, h = (size, size) if isinstance(size, int) else size
    joints = np.column_stack([RNG.uniform(2, w - 3, 16), RNG.uniform(2, h - 3, 16)])
    hm = H.encode_heatmaps(joints, None, size, sigma=sigma)
    assert hm.shape == (16, h, w)
    got, conf = H.decode_heatmaps(hm, refine="gaussian")
    assert np.abs(got - joints).max() < 0.1
    assert (conf > 0.8).all()
    # The released quarter-pixel rule is within a quarter pixel plus rounding.
    q, _ = H.decode_heatmaps(hm, refine="quarter")
    assert np.abs(q - joints).max() <= 0.5 + 1e-6


def test_quarter_rule_is_exact_on_integer_joints_and_shifts_towards_neighbour() -> None:
    j = np.array([[10.0, 12.0]])
    q, _ = H.decode_heatmaps(H.encode_heatmaps(j, None, 32), refine="quarter")
    np.testing.assert_allclose(q, j)
    q, _ = H.decode_heatmaps(H.encode_heatmaps(np.array([[10.3, 12.0]]), None, 32), refine="quarter")
    np.testing.assert_allclose(q, [[10.25, 12.0]])


def test_released_target_is_7x7_peak_1_and_invisible_is_empty() -> None:
    hm = H.encode_heatmaps(np.array([[20.0, 20.0], [5.0, 5.0]]), np.array([1, 0]), 64)
    assert hm[0].max() == pytest.approx(1.0)
    assert (hm[0] > 0).sum() == 49
    assert hm[1].sum() == 0
    # sigma 1.75: the value one pixel away is exp(-1 / (2 * 1.75^2)).
    assert hm[0, 20, 21] == pytest.approx(np.exp(-1 / (2 * 1.75**2)), rel=1e-6)


def test_decode_batched_shapes_and_confidence() -> None:
    hm = np.zeros((3, 4, 16, 16), np.float32)
    hm[1, 2, 5, 7] = 0.7
    coords, conf = H.decode_heatmaps(hm)
    assert coords.shape == (3, 4, 2) and conf.shape == (3, 4)
    assert conf[1, 2] == pytest.approx(0.7)
    np.testing.assert_allclose(coords[1, 2], [7, 5])


@pytest.mark.parametrize("refine", ["quarter", "gaussian"])
def test_decode_peak_on_border_does_not_crash(refine: str) -> None:
    hm = np.zeros((1, 8, 8), np.float32)
    hm[0, 0, 7] = 1.0
    coords, _ = H.decode_heatmaps(hm, refine=refine)
    np.testing.assert_allclose(coords[0], [7, 0])


def test_decode_rejects_bad_refine() -> None:
    with pytest.raises(ValueError, match="refine"):
        H.decode_heatmaps(np.zeros((1, 4, 4)), refine="dark")


@pytest.mark.parametrize("joint_set", [MPII16, COCO17])
def test_flip_index_is_an_involution_swapping_left_right(joint_set) -> None:
    idx = np.array(joint_set.flip_index)
    np.testing.assert_array_equal(idx[idx], np.arange(joint_set.num_joints))
    for i, name in enumerate(joint_set.names):
        other = joint_set.names[idx[i]]
        if name.startswith(("l_", "r_")):
            assert other[2:] == name[2:] and other[0] != name[0]
        else:
            assert other == name


@pytest.mark.parametrize("joint_set", [MPII16, COCO17])
def test_flip_test_of_symmetric_input_is_symmetric(joint_set) -> None:
    k = joint_set.num_joints
    w_in = np.random.default_rng(1).normal(size=(k, 3))

    def run(batch: np.ndarray) -> np.ndarray:
        # A deliberately asymmetric "model": per-joint mixes of channels plus an x ramp.
        n, c, h, w = batch.shape
        ramp = np.linspace(0, 1, w)[None, None, None, :]
        return np.einsum("kc,nchw->nkhw", w_in, batch) + ramp * np.arange(k)[None, :, None, None]

    half = np.random.default_rng(2).normal(size=(2, 3, 8, 4))
    symmetric = np.concatenate([half, half[..., ::-1]], axis=-1)
    out = H.flip_test(run, symmetric, joint_set.flip_index)
    assert not np.allclose(run(symmetric), H.flip_heatmaps(run(symmetric), joint_set.flip_index))
    np.testing.assert_allclose(out, H.flip_heatmaps(out, joint_set.flip_index), atol=1e-12)


def test_flip_heatmaps_moves_a_left_joint_to_the_mirrored_right_slot() -> None:
    hm = H.encode_heatmaps(np.array([[3.0, 4.0]] * 16), np.eye(16)[13], 16)  # l_shoulder only
    back, _ = H.decode_heatmaps(H.flip_heatmaps(hm, MPII16.flip_index), refine="gaussian")
    np.testing.assert_allclose(back[12], [16 - 1 - 3.0, 4.0], atol=1e-4)  # r_shoulder slot


@pytest.mark.parametrize("box,rot,out_wh", [
    ((100, 50, 220, 300), 0.0, (128, 128)), ((5, 5, 40, 20), 30.0, (192, 256)),
    ((300, 100, 360, 400), -45.0, (256, 256)),
])
def test_crop_and_frame_maps_invert_each_other(box, rot, out_wh) -> None:
    t = H.CropTransform.from_box(box, out_wh, (out_wh[0] // 4, out_wh[1] // 4), rotation_deg=rot)
    pts = RNG.uniform(0, 500, size=(20, 2))
    np.testing.assert_allclose(H.apply_affine(t.input_to_frame, H.apply_affine(t.frame_to_input, pts)), pts, atol=1e-9)
    np.testing.assert_allclose(H.apply_affine(t.heatmap_to_frame, H.apply_affine(t.frame_to_heatmap, pts)), pts, atol=1e-9)
    # The box centre lands on the crop centre.
    c = np.array([[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]])
    np.testing.assert_allclose(H.apply_affine(t.frame_to_input, c), [[(out_wh[0] - 1) / 2, (out_wh[1] - 1) / 2]], atol=1e-9)


def test_heatmap_pixel_centres_map_to_input_block_centres() -> None:
    m = H.heatmap_to_input_matrix((64, 64), (256, 256))
    np.testing.assert_allclose(H.apply_affine(m, np.array([[0.0, 0.0], [63.0, 10.0]])), [[1.5, 1.5], [253.5, 41.5]])


def test_box_is_grown_to_aspect_and_padded() -> None:
    c, s = H.box_to_center_size((0, 0, 50, 200), aspect=0.75, padding=1.25)
    np.testing.assert_allclose(c, [25, 100])
    np.testing.assert_allclose(s, [150 * 1.25, 200 * 1.25])
    with pytest.raises(ValueError, match="degenerate"):
        H.box_to_center_size((10, 10, 10, 20))


def test_warp_crop_puts_a_marked_frame_pixel_where_the_map_says() -> None:
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[100:103, 200:203] = 255  # a 3x3 mark centred on (201, 101)
    t = H.CropTransform.from_box((150, 60, 260, 200), (128, 128), (32, 32), rotation_deg=20)
    crop = H.warp_crop(frame, t)
    expect = H.apply_affine(t.frame_to_input, np.array([[201.0, 101.0]]))[0]
    ys, xs = np.nonzero(crop[..., 0] > 40)
    w = crop[ys, xs, 0].astype(float)
    np.testing.assert_allclose([np.average(xs, weights=w), np.average(ys, weights=w)], expect, atol=0.35)
    # ... and decoding a target drawn there maps back to the frame pixel.
    hm = H.encode_heatmaps(H.apply_affine(t.frame_to_heatmap, np.array([[201.0, 101.0]])), None, 32)
    got, _ = H.decode_heatmaps(hm, refine="gaussian")
    np.testing.assert_allclose(H.apply_affine(t.heatmap_to_frame, got), [[201.0, 101.0]], atol=0.5)
