"""scripts/train_pose.py: the time-aware schedule, repeated passes over a cache, and user errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tp():
    spec = importlib.util.spec_from_file_location("train_pose_script", ROOT / "scripts" / "train_pose.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_schedule_ends_with_the_time_budget_even_if_iterations_remain(tp) -> None:
    f0, p0 = tp.lr_factor(100, 1000, 0.0, 600.0, 10, 0.05)
    assert p0 == pytest.approx(0.1) and f0 < 1.0
    f_half, p_half = tp.lr_factor(100, 1000, 300.0, 600.0, 10, 0.05)  # slow machine: time says half-way
    assert p_half == pytest.approx(0.5) and f_half == pytest.approx(0.05 + 0.95 * 0.5)
    f_end, p_end = tp.lr_factor(100, 1000, 700.0, 600.0, 10, 0.05)
    assert p_end == 1.0 and f_end == pytest.approx(0.05)
    assert tp.lr_factor(0, 1000, 0.0, 600.0, 10, 0.05)[0] == pytest.approx(0.1)  # warm-up


class _Cache:
    """A stand-in cached dataset: its item depends on (item, epoch), as a cache's augmentation does."""

    def __init__(self, n: int) -> None:
        self.n, self.epoch = n, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[int, int]:
        return i, self.epoch


def test_each_pass_over_a_cache_gets_new_augmentation(tp) -> None:
    e = tp.Epochs(_Cache(5))
    seen = [e[i] for i in range(12)]
    assert seen[:5] == [(i, 0) for i in range(5)]
    assert seen[5:10] == [(i, 1) for i in range(5)] and seen[10:] == [(0, 2), (1, 2)]
    from mca.data.mix import MixedDataset

    m = MixedDataset([e], [1.0], 20)
    assert m[7] == (2, 1)  # the mix passes its index through unchanged


@pytest.mark.parametrize("s, want", [("data/pseudo:0.5", ("data/pseudo", 0.5)), ("data/pseudo", ("data/pseudo", 1.0))])
def test_source_argument(tp, s, want) -> None:
    path, w = tp._source_arg(s)
    assert (str(path), w) == want


def test_missing_anny_cache_is_a_user_error(tp, tmp_path, capsys) -> None:
    rc = tp.main(["--config", "mca_tiny", "--synthetic", "0", "--anny", f"{tmp_path / 'nothing'}:1",
                  "--out", str(tmp_path / "out"), "--iters", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "last.pt").exists()


def test_no_source_is_a_user_error(tp, tmp_path, capsys) -> None:
    rc = tp.main(["--config", "mca_tiny", "--synthetic", "0", "--out", str(tmp_path / "out"), "--iters", "1"])
    assert rc == 2 and "no training source" in capsys.readouterr().err


def test_init_with_a_larger_input_size_starts_and_a_shape_change_is_a_user_error(tp, tmp_path, capsys) -> None:
    pytest.importorskip("torch", reason="training needs PyTorch (the 'train' extra)")
    import mca
    from mca.checkpoint import save_checkpoint

    ck = save_checkpoint(tmp_path / "m.pt", mca.create_model("mca_tiny", num_stacks=1))
    rc = tp.main(["--init", str(ck), "--set", "channels=32", "--out", str(tmp_path / "bad"), "--iters", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "changes the weights' shapes" in err and len(err.strip().splitlines()) == 1
    # input_size keeps every weight: the run gets as far as its sources (none given here), at 192 px
    rc = tp.main(["--init", str(ck), "--set", "input_size=192", "--synthetic", "0", "--out", str(tmp_path / "ok"),
                  "--iters", "1"])
    assert rc == 2 and "no training source" in capsys.readouterr().err


@pytest.mark.parametrize("share", ["-0.1", "1.5", "half"])
def test_side_views_share_outside_0_1_is_a_user_error(tp, tmp_path, capsys, share) -> None:
    with pytest.raises(SystemExit) as e:
        tp.main(["--side-views", share, "--out", str(tmp_path / "out"), "--iters", "1"])
    assert e.value.code == 2 and "share between 0 and 1" in capsys.readouterr().err


def test_side_views_reach_the_synthetic_renderer(tp, tmp_path) -> None:
    import argparse

    import mca

    cfg = mca.get_config("mca_tiny")
    args = argparse.Namespace(synthetic=1.0, side_views=0.75, seed=0, pseudo=None, anny=None, pseudo_teacher=None)
    data = tp.build_sources(args, cfg, 8)
    assert data.sources[0].renderer.side_share == 0.75
