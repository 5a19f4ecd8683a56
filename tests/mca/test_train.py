"""Augmentation keeps labels on the pixels; training lowers the loss; checkpoints are safe."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs PyTorch (the 'train' extra)")

import mca  # noqa: E402
from mca import heatmaps as H  # noqa: E402
from mca.checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from mca.data.augment import make_sample  # noqa: E402
from mca.data.datasets import SyntheticPoseDataset, to_network_input  # noqa: E402
from mca.train import heatmap_loss, main as train_main  # noqa: E402


@pytest.mark.parametrize("seed", range(6))
def test_augmented_target_sits_on_the_marked_pixel(seed: int) -> None:
    """Warp an image with one bright joint; the decoded target lands on the bright pixel in the crop."""
    img = np.zeros((300, 400, 3), np.uint8)
    joint = np.array([[230.0, 140.0], [0.0, 0.0]])  # joint 1 off-image -> weight 0
    img[139:142, 229:232] = 255
    s = make_sample(img, joint, np.array([True, False]), np.array([180, 60, 280, 260]), 128, 32,
                    (1, 0), np.random.default_rng(seed))
    assert s.crop.shape == (128, 128, 3) and s.target.shape == (2, 32, 32)
    # With a flip the joint moves to slot 1 (flip index (1, 0)); find which slot carries it.
    slot = int(np.argmax(s.weight))
    assert s.weight.sum() == 1
    got, _ = H.decode_heatmaps(s.target[slot][None], refine="gaussian")
    in_crop = H.apply_affine(H.heatmap_to_input_matrix((32, 32), (128, 128)), got)[0]
    ys, xs = np.nonzero(s.crop.max(2) > 30)
    assert len(xs) > 0
    w = s.crop.max(2)[ys, xs].astype(float)
    np.testing.assert_allclose(in_crop, [np.average(xs, weights=w), np.average(ys, weights=w)], atol=1.5)


def test_synthetic_dataset_items_are_consistent() -> None:
    ds = SyntheticPoseDataset("mpii16", 128, 32, length=4, seed=3)
    a, b = ds[1], ds[1]
    assert torch.equal(a["crop"], b["crop"]) and torch.equal(a["target"], b["target"])
    assert a["crop"].dtype == torch.uint8 and a["target"].shape == (16, 32, 32)
    assert float(a["weight"].sum()) >= 1


def test_a_few_training_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    model = mca.create_model("mca_tiny", num_stacks=1, channels=32, last_stack_channels=32, part_attention_from=1)
    ds = SyntheticPoseDataset("mpii16", 128, 32, length=8, seed=0)
    batch = torch.utils.data.default_collate([ds[i] for i in range(8)])
    x = to_network_input(batch["crop"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(12):
        loss = heatmap_loss(model(x), batch["target"], batch["weight"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_checkpoint_round_trip_and_errors(tmp_path) -> None:
    model = mca.create_model("mca_tiny", num_stacks=1).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, epoch=3, metrics={"pck@0.2": 0.5})
    loaded, info = load_checkpoint(path)
    assert info["config_name"] == "mca_tiny" and info["epoch"] == 3 and info["metrics"]["pck@0.2"] == 0.5
    assert loaded.cfg == model.cfg
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[-1], model(x)[-1])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not an mca-pose checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_overrides_keep_weights_or_fail_clearly(tmp_path) -> None:
    """Fine-tuning at a larger input: same weights, bigger heatmaps; a shape-changing field is refused."""
    model = mca.create_model("mca_tiny", num_stacks=1).eval()
    path = save_checkpoint(tmp_path / "m.pt", model)
    big, _ = load_checkpoint(path, overrides={"input_size": 192})
    assert big.cfg.input_size == 192 and big.cfg.heatmap_size == 48
    for (name, a), b in zip(model.state_dict().items(), big.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    with torch.no_grad():
        assert big(torch.randn(1, 3, 192, 192))[-1].shape[-2:] == (48, 48)
    with pytest.raises(CheckpointError, match="channels changes the weights' shapes"):
        load_checkpoint(path, overrides={"channels": 32, "last_stack_channels": 32})
    with pytest.raises(CheckpointError, match="unknown config field"):
        load_checkpoint(path, overrides={"no_such_field": 1})


def test_train_cli_smoke_and_resume(tmp_path) -> None:
    args = ["--config", "mca_tiny", "--epochs", "1", "--iters-per-epoch", "2", "--batch-size", "2", "--val-size", "4",
            "--workers", "0", "--out", str(tmp_path)]
    assert train_main(args) == 0
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,") and len(log) == 2
    _, info = load_checkpoint(tmp_path / "last.pt")
    assert info["epoch"] == 1 and "pck@0.2" in info["metrics"]
    assert train_main([*args[:3], "2", *args[4:], "--resume", str(tmp_path / "last.pt")]) == 0
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 3
    assert train_main(["--config", "nope"]) == 2
