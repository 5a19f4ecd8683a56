"""engines.recover and tools/onnx_to_checkpoint.py: weights back out of an exported pose model (the deploy
rewrites undone, the function kept, training-ready)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch", reason="recovering PyTorch weights needs PyTorch")
onnx = pytest.importorskip("onnx", reason="reading the export needs the onnx package")

import mca  # noqa: E402
from engines.export import ExportOptions, export_pose  # noqa: E402
from engines.recover import FIRST_MARK, calibrate, max_difference, recover  # noqa: E402
from tests.conftest import load_tool, random_batchnorm  # noqa: E402

SMALL = dict(num_stacks=2, channels=8, last_stack_channels=8, stem_channels=8, hourglass_depth=1,
             part_attention_from=1, crf_iterations=2, attention_kernel=3, input_size=32)


def _trained_like(seed: int = 0):  # noqa: ANN202 - an mca.model.MCANet
    """Random weights everywhere, batch norms included, and (as training leaves them) the two batch norms an HRU
    puts on one input with equal running statistics: the exporter then shares one tensor between two nodes."""
    torch.manual_seed(seed)
    model = random_batchnorm(mca.create_model("mca_tiny", **SMALL).eval())
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
            if hasattr(m, "pool_branch") and hasattr(m, "conv_block"):
                a, b = m.conv_block[0], m.pool_branch[0]
                b.running_mean.copy_(a.running_mean)
                b.running_var.copy_(a.running_var)
    return model


@pytest.fixture(scope="module")
def tool():  # noqa: ANN201
    return load_tool("onnx_to_checkpoint")


@pytest.mark.parametrize("attention", [False, True])
def test_recovered_weights_compute_what_the_file_computes(tmp_path, attention) -> None:  # noqa: ANN001
    model = _trained_like()
    path = export_pose(model, tmp_path / "m.onnx", ExportOptions(attention_outputs=attention))
    rec, folded = recover(path)
    assert folded, "the deploy graph folds some batch norms"
    kept = [n for n, m in rec.named_modules() if isinstance(m, torch.nn.BatchNorm2d) and n not in folded]
    want = dict(model.named_modules())
    for n in kept:  # every batch norm left in the graph comes back as it was, the shared-statistics pair included
        for f in ("weight", "bias", "running_mean", "running_var"):
            torch.testing.assert_close(getattr(dict(rec.named_modules())[n], f), getattr(want[n], f))
    x = torch.rand(3, 3, 32, 32) - 0.5
    with torch.no_grad():
        torch.testing.assert_close(rec(x), model(x), atol=1e-5, rtol=1e-4)
    assert max_difference(rec, path) < 1e-5


def _train_mode_drift(model, x):  # noqa: ANN001, ANN202
    """Mean |training-mode output - eval-mode output| over the mean |eval-mode output| (last stack), on a copy
    (a training-mode pass moves the running statistics)."""
    import copy

    model = copy.deepcopy(model)
    with torch.no_grad():
        model.eval()
        ref = model(x)[-1]
        model.train()
        got = model(x)[-1]
        model.eval()
    return float((got - ref).abs().mean() / ref.abs().mean())


def test_folded_batch_norms_get_statistics_and_stay_the_identity(tmp_path) -> None:  # noqa: ANN001
    from mca.data.datasets import SyntheticPoseDataset, to_network_input

    model = _trained_like(1)
    path = export_pose(model, tmp_path / "m.onnx")
    rec, folded = recover(path)
    ds = SyntheticPoseDataset("mpii16", 32, 8, 16, seed=5)
    x = to_network_input(torch.stack([ds[i]["crop"] for i in range(16)]))
    with torch.no_grad():
        before = rec(x)
    plain_drift = _train_mode_drift(rec, x)
    calibrate(rec, folded, num=16)
    mods = dict(rec.named_modules())
    assert all(not torch.allclose(mods[n].running_var, torch.ones_like(mods[n].running_var)) for n in folded)
    with torch.no_grad():  # eval mode: the same function (float rounding of the random net's large activations)
        after = rec(x)
    for a, b in zip(after, before):
        assert float((a - b).abs().max()) <= 1e-5 * float(b.abs().max())
    # training mode normalises with batch statistics: with identities that changes the network's function
    # (unit-variance activations the folded weights never saw), with calibrated ones much less
    assert _train_mode_drift(rec, x) < plain_drift / 2


def test_the_command_writes_a_checkpoint_that_loads_and_exports_the_same(tool, tmp_path) -> None:  # noqa: ANN001
    from mca.checkpoint import load_checkpoint

    path = export_pose(_trained_like(2), tmp_path / "m.onnx", ExportOptions(attention_outputs=True))
    out = tmp_path / "m.pt"
    assert tool.main([str(path), "-o", str(out)]) == 0
    model, info = load_checkpoint(out)
    assert info["extra"]["recovered_from"] == "m.onnx" and info["extra"]["max_abs_diff"] < 1e-3
    assert model.cfg.channels == 8


def test_files_it_cannot_map_are_a_clear_error(tool, tmp_path, capsys) -> None:  # noqa: ANN001
    path = export_pose(_trained_like(), tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    cfg = json.loads({p.key: p.value for p in proto.metadata_props}["mca.config_json"])
    cfg["channels"] = cfg["last_stack_channels"] = 16  # the metadata names another network than the graph holds
    for p in proto.metadata_props:
        if p.key == "mca.config_json":
            p.value = json.dumps(cfg)
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    assert tool.main([str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert tool.main([str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "x.pt")]) == 2
    assert not (tmp_path / "x.pt").exists()


def test_marker_values_never_collide_with_the_graphs_own_small_constants() -> None:
    """0.5 and 1/255 of the input normalisation and the identities' 0 and 1 round to small integers."""
    assert FIRST_MARK > 2


def test_a_module_graph_comes_back_too(tmp_path) -> None:  # noqa: ANN001
    model = _trained_like(3)
    path = export_pose(model, tmp_path / "m.onnx", ExportOptions(deploy=False, attention_outputs=True))
    rec, _ = recover(path)
    assert max_difference(rec, path) < 1e-5
