"""The heatmap codec and crop geometry against numbers worked out by hand.

``test_heatmaps.py`` checks round trips and properties; these pin the exact values
(Gaussian width, truncation window, aspect growth, matrices, flip-test arithmetic),
so that a changed constant or a swapped axis fails.  They were written from the
mutation run's survivors (``scripts/mutation.sh heatmaps``).
"""

from __future__ import annotations

import numpy as np
import pytest

from mca import heatmaps as H

SIG = 1.75


def _g(d: np.ndarray | float) -> np.ndarray:
    return np.exp(-np.asarray(d, float) ** 2 / (2 * SIG**2))


def test_encode_values_window_and_dtype() -> None:
    """Joint at (5.3, 7.6) on a 16x12 map: exp(-d^2 / (2 * 1.75^2)) on the 7x7 window around (5, 8), zero elsewhere."""
    out = H.encode_heatmaps(np.array([[5.3, 7.6]], np.float32), None, (16, 12))
    assert out.shape == (1, 12, 16) and out.dtype == np.float32
    want = np.zeros((12, 16))
    xs, ys = np.arange(2, 9), np.arange(5, 12)
    want[5:12, 2:9] = np.outer(_g(ys - 7.6), _g(xs - 5.3))
    np.testing.assert_allclose(out[0], want, atol=1e-6)


def test_encode_edges_invisible_and_off_map_joints() -> None:
    joints = [[0.4, 0.2], [-20.0, 5.0], [9.0, 9.0], [3.0, 3.0]]
    out = H.encode_heatmaps(joints, [1, 1, 1, 0], 10)
    # a joint at the corner: its window is cut by the map's edge, the pixel (0, 0) is still drawn
    assert out[0, 0, 0] == pytest.approx(_g(0.4) * _g(0.2), abs=1e-6)
    assert (out[0, 4:] == 0).all() and (out[0, :, 4:] == 0).all()
    assert not out[1].any()  # its window lies off the map
    assert out[2, 9, 9] == pytest.approx(1.0) and out[2, 6, 6] == pytest.approx(_g(3) ** 2, abs=1e-6)
    assert not out[3].any()  # invisible (visibility given as ints)
    one = H.encode_heatmaps([[5.0, 5.0]], None, 12, radius=1)  # the radius argument is the window
    assert np.count_nonzero(one[0]) == 9
    # a map only one pixel wide still gets the column that holds the joint
    thin = H.encode_heatmaps([[0.0, 2.0]], None, (1, 6))
    assert thin.shape == (1, 6, 1) and thin[0, 2, 0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"joints must be \(K, 2\), got \(2, 3\)"):
        H.encode_heatmaps(np.zeros((2, 3)), None, 8)
    with pytest.raises(ValueError, match=r"joints must be \(K, 2\), got \(4,\)"):
        H.encode_heatmaps(np.zeros(4), None, 8)


def test_decode_none_quarter_and_gaussian_near_the_edges() -> None:
    w, h = 12, 10
    yy, xx = np.mgrid[0:h, 0:w]
    peaks = [(1.3, 8.4), (10.35, 1.2), (6.0, 4.0)]  # argmax at x=1 / y=8, x=10 / y=1: one pixel in from the edge
    hm = np.stack([np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * SIG**2)) for x, y in peaks])[None].astype(np.float64)
    g, conf = H.decode_heatmaps(hm, refine="gaussian")
    assert g.dtype == np.float32 and conf.dtype == np.float32 and g.shape == (1, 3, 2)
    np.testing.assert_allclose(g[0], peaks, atol=1e-4)  # exact for a sampled Gaussian
    q, _ = H.decode_heatmaps(hm, refine="quarter")
    np.testing.assert_allclose(q[0], [(1.25, 8.25), (10.25, 1.25), (6.0, 4.0)])
    n, c = H.decode_heatmaps(hm, refine="none")
    np.testing.assert_array_equal(n[0], [(1, 8), (10, 1), (6, 4)])
    np.testing.assert_allclose(c[0], [hm[0, i].max() for i in range(3)], rtol=1e-6)


@pytest.mark.parametrize("refine", ["quarter", "gaussian"])
def test_decode_peaks_on_the_border_are_not_shifted(refine: str) -> None:
    hm = np.zeros((4, 6, 8), np.float32)
    hm[0, 0, 0] = hm[1, 5, 7] = hm[2, 0, 7] = hm[3, 5, 0] = 1.0
    hm[0, 1, 1] = hm[1, 4, 6] = hm[2, 1, 6] = hm[3, 4, 1] = 0.5  # a neighbour inside: still no shift off the map
    c, _ = H.decode_heatmaps(hm, refine=refine)
    np.testing.assert_array_equal(c, [(0, 0), (7, 5), (7, 0), (0, 5)])


def test_decode_gaussian_falls_back_to_the_quarter_rule() -> None:
    hm = np.zeros((1, 5, 5), np.float32)
    hm[0, 2, 2], hm[0, 2, 3] = 1.0, 0.5  # left neighbour 0: no log-parabola, so a quarter pixel right
    c, _ = H.decode_heatmaps(hm, refine="gaussian")
    np.testing.assert_allclose(c[0], (2.25, 2.0))


def test_decode_refusals() -> None:
    with pytest.raises(ValueError, match=r"heatmaps must be \(\.\.\., K, H, W\), got \(4, 4\)"):
        H.decode_heatmaps(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="refine must be 'quarter', 'gaussian' or 'none', got 'cubic'"):
        H.decode_heatmaps(np.zeros((1, 4, 4)), refine="cubic")


def test_flip_test_arithmetic_in_both_layouts() -> None:
    """A 'model' whose joint k is (k + 1) x the image's brightness: the flip test averages channel k with the
    mirrored pass's channel flip[k], so it returns (k + 1 + flip[k] + 1) / 2 x the brightness."""
    flip = [1, 0, 2]
    img = np.random.default_rng(0).uniform(0, 1, (2, 5, 7))  # (N, H, W): neither symmetric nor square

    def run_nchw(b: np.ndarray) -> np.ndarray:  # (N, 1, H, W) -> (N, 3, H, W)
        return b[:, :1] * np.arange(1, 4)[None, :, None, None]

    def run_nhwc(b: np.ndarray) -> np.ndarray:  # (N, H, W, 1) -> (N, 3, H, W)
        return run_nchw(np.moveaxis(b, -1, 1))

    want = img[:, None] * ((np.arange(1, 4) + np.array(flip) + 1) / 2)[None, :, None, None]
    np.testing.assert_allclose(H.flip_test(run_nchw, img[:, None], flip), want, rtol=1e-12)
    np.testing.assert_allclose(H.flip_test(run_nhwc, img[..., None], flip, channels_last=True), want, rtol=1e-12)
    with pytest.raises(ValueError, match="3 heatmaps but a flip index of 2 joints"):
        H.flip_heatmaps(np.zeros((1, 3, 4, 4)), [1, 0])


@pytest.mark.parametrize("box,aspect,padding,centre,size", [
    ((10, 20, 50, 120), 1.0, 1.25, (30, 70), (125, 125)),     # tall: widened to square
    ((10, 20, 50, 120), 0.75, 1.0, (30, 70), (75, 100)),      # tall, 3:4 input
    ((0, 0, 100, 20), 1.0, 1.0, (50, 10), (100, 100)),        # wide: heightened
    ((0, 0, 100, 20), 2.0, 1.5, (50, 10), (150, 75)),         # wide, 2:1 input
    ((5, 5, 45, 25), 2.0, 1.0, (25, 15), (40, 20)),           # already 2:1: unchanged
])
def test_box_to_center_size_by_hand(box, aspect, padding, centre, size) -> None:
    c, s = H.box_to_center_size(box, aspect, padding)
    assert c.dtype == np.float64 and s.dtype == np.float64
    np.testing.assert_allclose(c, centre)
    np.testing.assert_allclose(s, size)


@pytest.mark.parametrize("box", [(10, 10, 10, 20), (10, 10, 20, 10), (10, 10, 5, 20)])
def test_degenerate_boxes_are_refused(box) -> None:
    with pytest.raises(ValueError, match="degenerate box"):
        H.box_to_center_size(box)


def test_crop_matrix_by_hand() -> None:
    m = H.crop_matrix((50.0, 40.0), (100.0, 80.0), (64, 48))  # defaults: no rotation, no flip
    sx, sy = 64 / 100, 48 / 80
    np.testing.assert_allclose(m, [[sx, 0, 31.5 - sx * 50], [0, sy, 23.5 - sy * 40]], atol=1e-12)
    f = H.crop_matrix((50.0, 40.0), (100.0, 80.0), (64, 48), flip=True)
    np.testing.assert_allclose(f, [[-sx, 0, 31.5 + sx * 50], [0, sy, 23.5 - sy * 40]], atol=1e-12)
    # 90 degrees counter-clockwise in the image: a point right of the centre lands above the crop's centre
    r = H.crop_matrix((50.0, 40.0), (100.0, 100.0), (64, 64), rotation_deg=90.0)
    np.testing.assert_allclose(H.apply_affine(r, np.array([[60.0, 40.0]])), [[31.5, 31.5 - 6.4]], atol=1e-9)


def test_scale_compose_invert_apply() -> None:
    np.testing.assert_allclose(H.scale_matrix((32, 32), (128, 128)), [[4, 0, 1.5], [0, 4, 1.5]])
    np.testing.assert_allclose(H.scale_matrix((16, 8), (64, 16)), [[4, 0, 1.5], [0, 2, 0.5]])
    a = np.array([[2.0, 1.0, 3.0], [0.5, -1.0, 4.0]])
    b = np.array([[1.0, -2.0, 0.5], [3.0, 1.0, -1.0]])
    p = np.array([[1.0, 2.0], [-3.0, 0.5]])
    np.testing.assert_allclose(H.apply_affine(H.compose_affine(a, b), p), H.apply_affine(a, H.apply_affine(b, p)))
    np.testing.assert_allclose(H.apply_affine(a, p), [[7.0, 2.5], [-2.5, 2.0]])
    np.testing.assert_allclose(H.apply_affine(H.invert_affine(a), H.apply_affine(a, p)), p, atol=1e-12)
    batched = H.apply_affine(np.stack([a, b]), np.stack([p, p]))  # (N, 2, 3) with (N, K, 2)
    np.testing.assert_allclose(batched, [H.apply_affine(a, p), H.apply_affine(b, p)])


def test_crop_transform_and_warp_use_the_box_and_padding() -> None:
    t = H.CropTransform.from_box((10, 20, 50, 120), (64, 64), (16, 16), padding=1.0)
    np.testing.assert_allclose(t.frame_to_input, H.crop_matrix((30, 70), (100, 100), (64, 64)))
    img = np.zeros((200, 200, 3), np.uint8)
    img[70, 30] = 255  # the box centre: lands on the crop's centre pixels
    crop = H.warp_crop(img, t)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    ys, xs = np.nonzero(crop[..., 0])
    assert abs(ys.mean() - 31.5) < 0.6 and abs(xs.mean() - 31.5) < 0.6
    edge = H.warp_crop(img, H.CropTransform.from_box((150, 150, 250, 250), (32, 32), (8, 8)), border_value=7)
    assert (edge[-4:, -4:, 0] == 7).all()  # outside the frame: the border value (first channel for a scalar)
