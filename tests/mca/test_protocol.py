"""Test-time protocols (mca.protocol): decoding into the image, flip, the scale pyramid, MPII's table, the CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mca import heatmaps as H
from mca.protocol import PAPER_SCALES, PRESETS, Protocol, image_argmax, mpii_table, person_crops, predict_people

JOINTS = np.array([[150.3, 90.7], [201.6, 160.2], [171.1, 231.8]])  # frame pixels; joint k is drawn in channel k
BOX = np.array([120.0, 60.0, 240.0, 260.0])
S, HM = 128, 32


def _image() -> np.ndarray:
    img = np.zeros((300, 400, 3), np.uint8)
    yy, xx = np.mgrid[:300, :400]
    for k, (x, y) in enumerate(JOINTS):  # a sub-pixel blob per joint, each in its own colour channel
        img[..., k] = np.clip(255 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0**2)), 0, 255).astype(np.uint8)
    return img


def _model(crops: np.ndarray) -> np.ndarray:
    """A stand-in network whose heatmap k is channel k of the crop, area-averaged to the heatmap grid: it finds
    each joint in any crop, at any scale, mirrored or not."""
    crops = np.asarray(crops)
    out = np.empty((len(crops), 3, HM, HM), np.float32)
    for i, c in enumerate(crops):
        small = cv2.resize(c.astype(np.float32) / 255, (HM, HM), interpolation=cv2.INTER_AREA)
        out[i] = cv2.GaussianBlur(small, (0, 0), 1.0).transpose(2, 0, 1)
    return out


FLIP = (0, 1, 2)


def _predict(protocol: Protocol) -> np.ndarray:
    coords, _ = predict_people(_model, [(_image(), BOX)], S, HM, FLIP, protocol)
    return coords[0]


def _cell() -> float:
    """Frame pixels per heatmap pixel at scale 1 (the box is grown to a square and padded 1.25)."""
    return 1.25 * 200 / HM


@pytest.mark.parametrize("name,tol", [("project", 0.35), ("released", 0.75), ("paper", 0.5)])
def test_protocols_find_the_joints(name, tol) -> None:
    err = np.linalg.norm(_predict(PRESETS[name]) - JOINTS, axis=1)
    assert err.max() < tol * _cell(), err


def test_image_decoding_is_the_upsampled_argmax_in_the_image() -> None:
    """test/main.lua's rule on one scale: the maximum of the bilinearly upsampled map, on whole image pixels, which
    is the heatmap's integer argmax (bilinear interpolation peaks on a grid node) mapped into the image."""
    img = _image()
    crops, mats = person_crops(img, BOX, S, HM, FLIP, (1.0,))
    heat = _model(crops)
    f2h = np.stack([H.compose_affine(H.scale_matrix((S, S), (HM, HM)), m) for m in mats])
    got, peak = image_argmax(heat, f2h, (img.shape[1], img.shape[0]))
    assert np.array_equal(got, np.round(got))  # whole pixels
    node, _ = H.decode_heatmaps(heat[0][None], refine="none")
    at_node = H.apply_affine(H.invert_affine(f2h[0]), node[0])
    assert np.abs(got - at_node).max() <= 1.0
    grid_max = heat[0].reshape(3, -1).max(1)
    assert np.all(peak <= grid_max + 1e-6) and np.all(peak > 0.95 * grid_max)
    # brute force on a hand-written bilinear upsampling over every image pixel (no OpenCV)
    hm = np.maximum(heat[0], 0)
    ys, xs = np.mgrid[:img.shape[0], :img.shape[1]]
    u = f2h[0, 0, 0] * xs + f2h[0, 0, 1] * ys + f2h[0, 0, 2]
    v = f2h[0, 1, 0] * xs + f2h[0, 1, 1] * ys + f2h[0, 1, 2]
    x0, y0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fx, fy = u - x0, v - y0

    def at(yy, xx):
        ok = (xx >= 0) & (xx < HM) & (yy >= 0) & (yy < HM)
        return np.where(ok, hm[:, np.clip(yy, 0, HM - 1), np.clip(xx, 0, HM - 1)], 0.0)

    up = ((1 - fx) * (1 - fy) * at(y0, x0) + fx * (1 - fy) * at(y0, x0 + 1) + (1 - fx) * fy * at(y0 + 1, x0)
          + fx * fy * at(y0 + 1, x0 + 1))
    idx = up.reshape(3, -1).argmax(1)
    ref = np.stack([idx % img.shape[1], idx // img.shape[1]], 1)
    assert np.abs(got - ref).max() <= 1.0


def test_the_pyramid_crops_every_scale_and_fuses_them() -> None:
    seen: list[int] = []

    def model(crops):
        seen.append(len(crops))
        return _model(crops)

    _, mats = person_crops(_image(), BOX, S, HM, FLIP, PAPER_SCALES)
    sides = [S / np.hypot(*m[:, 0]) for m in mats]  # the frame region each crop covers
    np.testing.assert_allclose(np.array(sides) / sides[3], PAPER_SCALES, rtol=1e-6)
    predict_people(model, [(_image(), BOX)] * 2, S, HM, FLIP, PRESETS["paper"], batch=64)
    assert sum(seen) == 2 * 2 * len(PAPER_SCALES)  # two people, each scale with its mirror
    # fusing differs from the single scale (the pyramid interpolates between grids) and stays on the joints
    one, many = _predict(PRESETS["released"]), _predict(PRESETS["paper"])
    assert not np.array_equal(one, many)
    assert np.linalg.norm(many - JOINTS, axis=1).mean() < np.linalg.norm(one - JOINTS, axis=1).mean() + 1.0


def test_flip_swaps_joints_back() -> None:
    """A mirrored crop's maps must have left and right swapped back: with a wrong flip index the two joints get the
    same two-peaked map, so one of them lands on the other."""
    wrong = (1, 0, 2)
    coords, _ = predict_people(_model, [(_image(), BOX)], S, HM, wrong, Protocol(flip=True))
    right = _predict(Protocol(flip=True))
    assert np.linalg.norm(right - JOINTS, axis=1).max() < 0.5 * _cell()
    assert np.linalg.norm(coords[0][:2] - JOINTS[:2], axis=1).max() > 5 * _cell()


def test_multiscale_quarter_rule_fuses_on_the_heatmap_grid() -> None:
    got = _predict(Protocol(decode="quarter", scales=(0.9, 1.0, 1.1)))
    assert np.linalg.norm(got - JOINTS, axis=1).max() < 0.5 * _cell()


def test_bad_protocols_are_refused() -> None:
    with pytest.raises(ValueError, match="decode"):
        Protocol(decode="softargmax")
    with pytest.raises(ValueError, match="scales"):
        Protocol(scales=())


def test_mpii_table_groups_as_published() -> None:
    """Head = head top; sides averaged; the total leaves pelvis and thorax out and pools the other 14 joints."""
    n = 4
    gt = np.zeros((n, 16, 2))
    pred = gt.copy()
    vis = np.ones((n, 16), bool)
    pred[:, 6] = 100.0  # pelvis and thorax always wrong: they do not count
    pred[:, 7] = 100.0
    pred[0, 9] = 100.0  # head top wrong once
    pred[:2, 10] = 100.0  # right wrist wrong twice, left wrist never
    vis[3, 15] = False
    t = mpii_table(pred, gt, vis, np.full(n, 10.0))
    assert t["head"] == pytest.approx(0.75)
    assert t["wrist"] == pytest.approx(0.5 * (0.5 + 1.0))
    assert t["total"] == pytest.approx((14 * n - 1 - 3) / (14 * n - 1))


def test_evaluate_cli_prints_protocol_per_joint_and_total(tmp_path, capsys) -> None:
    torch = pytest.importorskip("torch", reason="the checkpoint path needs PyTorch")
    import mca
    from mca.checkpoint import save_checkpoint
    from mca.evaluate import main as eval_main

    torch.manual_seed(0)
    ck = save_checkpoint(tmp_path / "m.pt", mca.create_model("mca_tiny", num_stacks=1, channels=16,
                                                             last_stack_channels=16, stem_channels=16))
    cv2.imwrite(str(tmp_path / "img.jpg"), _image())
    joints = np.tile(JOINTS[:1], (16, 1)) + np.arange(16)[:, None]
    (tmp_path / "mpii.json").write_text(json.dumps([{"image": "img.jpg", "center": [181.0, 161.0], "scale": 0.8,
                                                     "joints": (joints + 1).tolist(), "joints_vis": [1] * 16}] * 2))
    common = ["--checkpoint", str(ck), "--data", "mpii", "--annotations", str(tmp_path / "mpii.json"),
              "--images", str(tmp_path)]
    assert eval_main([*common, "--protocol", "paper", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "protocol: decode: heatmaps upsampled into the image" in out and "scales 0.7, 0.8" in out
    assert "pckh@0.5 r_wrist:" in out and "mpii table total:" in out and "pckh@0.5:" in out
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["people"] == 2 and 0 <= res["mpii table total"] <= 1
    assert eval_main([*common, "--decode", "image", "--scales", "1,x"]) == 2
    assert "--scales" in capsys.readouterr().err
    assert eval_main(["--checkpoint", str(ck), "--protocol", "released"]) == 2  # synthetic: --flip only
    assert "real data sets" in capsys.readouterr().err
    assert eval_main(["--checkpoint", str(ck), "--num", "3", "--flip"]) == 0  # synthetic people name it too
    out = capsys.readouterr().out
    assert "protocol: decode: heatmap argmax + quarter pixel; flip: yes; single scale" in out and "pckh@0.5:" in out
