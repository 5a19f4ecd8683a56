"""mca.train's options: the release's loss on every map, the official PCKh in validation, the background map,
mixed precision and channels-last, config overrides, bad combinations."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs PyTorch")

import mca.train as T  # noqa: E402  (attributes looked up per test: each one fails on its own)

TINY = ["--config", "mca_tiny", "--set", "channels=16", "--set", "stem_channels=16", "--set", "last_stack_channels=16",
        "--set", "num_stacks=1", "--epochs", "1", "--iters-per-epoch", "1", "--batch-size", "2", "--val-size", "2",
        "--threads", "1", "--workers", "0", "--device", "cpu"]


def _first_loss(out: Path) -> float:
    with (out / "steps.csv").open() as f:
        return float(next(csv.DictReader(f))["loss"])


def test_all_maps_loss_counts_absent_joints() -> None:
    """The release's MSECriterion: an absent joint's zero map is a target too; the masked loss ignores it."""
    target = torch.zeros(1, 2, 4, 4)
    target[0, 0, 1, 1] = 1.0
    weight = torch.tensor([[1.0, 0.0]])  # joint 1 absent
    out = target.clone()
    out[0, 1] = 0.5  # wrong only on the absent joint's map
    assert float(T.heatmap_loss([out], target, weight)) == 0.0
    assert float(T.heatmap_loss([out], target, weight, mask=False)) == pytest.approx(0.25 * 16 / 32)
    assert float(T.heatmap_loss([out, out], target, weight, mask=False)) == pytest.approx(2 * 0.25 * 16 / 32)


def test_loss_option_reaches_training(tmp_path) -> None:
    assert T.main([*TINY, "--out", str(tmp_path / "m")]) == 0
    assert T.main([*TINY, "--loss", "all-maps", "--out", str(tmp_path / "a")]) == 0
    masked, every = _first_loss(tmp_path / "m"), _first_loss(tmp_path / "a")  # same model, same batch
    assert every > masked > 0  # random init: non-zero output on the maps the mask leaves out


def test_background_map_target_is_the_joints_maximum() -> None:
    target = torch.rand(2, 3, 4, 4)
    weight = torch.ones(2, 3)
    out = torch.rand(2, 4, 4, 4)  # 3 joints + the background map
    expect = ((out - torch.cat([target, target.amax(1, keepdim=True)], 1)) ** 2).mean()
    assert float(T.stack_loss([out], target, weight)) == pytest.approx(float(expect), rel=1e-6)


def test_background_config_trains_and_evaluates(tmp_path) -> None:
    assert T.main([*TINY, "--set", "background_map=true", "--out", str(tmp_path)]) == 0
    from mca.checkpoint import load_checkpoint

    model, _ = load_checkpoint(tmp_path / "last.pt")
    assert model.cfg.background_map and model(torch.zeros(1, 3, 128, 128))[-1].shape[1] == 16


def test_validation_uses_official_head_sizes_when_there_are_some() -> None:
    gt = np.zeros((2, 16, 2))
    gt[:, 9] = (0.0, -18.0)  # head top 18 px above the upper neck (joint 8 at the origin)
    pred = gt.copy()
    pred[:, 0] += (10.0, 0.0)  # right ankle 10 px off: within 0.5 x 20.6, not within 0.5 x 18
    vis = np.ones((2, 16), bool)
    official = T.validation_metrics(pred, gt, vis, np.full(2, 20.6), "mpii16")
    fallback = T.validation_metrics(pred, gt, vis, np.full(2, np.nan), "mpii16")
    assert official["pckh official"] == 1.0 and official["pckh@0.5"] == 1.0
    assert fallback["pckh official"] == 0.0 and fallback["pckh@0.5"] == pytest.approx(15 / 16)


def test_training_on_mpii_mat_validates_with_head_boxes(tmp_path) -> None:
    import cv2
    import scipy.io

    img = np.full((180, 220, 3), 40, np.uint8)
    cv2.imwrite(str(tmp_path / "img.jpg"), img)
    pts = np.linspace([95, 30], [135, 160], 16)
    points = [{"id": j, "x": float(x + 1), "y": float(y + 1), "is_visible": 1} for j, (x, y) in enumerate(pts)]
    rect = {"x1": 101.0, "y1": 23.0, "x2": 121.0, "y2": 51.0, "scale": 0.65, "objpos": {"x": 111.0, "y": 91.0},
            "annopoints": {"point": points}}
    anno = [{"image": {"name": "img.jpg"}, "annorect": rect}] * 4
    scipy.io.savemat(str(tmp_path / "mpii.mat"), {"RELEASE": {"annolist": anno, "img_train": np.ones(4)}})
    assert T.main([*TINY, "--data", "mpii", "--annotations", str(tmp_path / "mpii.mat"), "--images", str(tmp_path),
                       "--out", str(tmp_path / "run")]) == 0
    with (tmp_path / "run" / "log.csv").open() as f:
        assert next(csv.DictReader(f))["pckh_official"] == "1"
    (tmp_path / "mpii.json").write_text(json.dumps([{"image": "img.jpg", "center": [111.0, 91.0], "scale": 0.65,
                                                     "joints": (pts + 1).tolist(), "joints_vis": [1] * 16}] * 4))
    assert T.main([*TINY, "--data", "mpii", "--annotations", str(tmp_path / "mpii.json"), "--images",
                       str(tmp_path), "--out", str(tmp_path / "run2")]) == 0
    with (tmp_path / "run2" / "log.csv").open() as f:
        assert next(csv.DictReader(f))["pckh_official"] == "0"  # no head boxes in the json form


def test_bf16_autocast_and_channels_last_run(tmp_path) -> None:
    assert T.main([*TINY, "--amp", "bf16", "--channels-last", "--out", str(tmp_path)]) == 0
    assert np.isfinite(_first_loss(tmp_path))


@pytest.mark.parametrize("extra,match", [
    (["--amp", "fp16"], "fp16 needs CUDA"),
    (["--batch-size", "3", "--micro-batch", "2"], "not a multiple"),
    (["--set", "nonsense=1"], "unknown config field"),
    (["--set", "num_stacks"], "KEY=VALUE"),
    (["--device", "cuda:0"], "CUDA"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, extra, match) -> None:
    if extra[:2] == ["--device", "cuda:0"] and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert T.main([*TINY, *extra, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and match in err[0]


def test_resume_refuses_another_config(tmp_path, capsys) -> None:
    assert T.main([*TINY, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert T.main([*TINY, "--set", "channels=32", "--resume", str(tmp_path / "last.pt"),
                       "--out", str(tmp_path)]) == 2
    assert "another config" in capsys.readouterr().err
