"""Shared fixtures: models with randomised BN statistics, so export checks are meaningful."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="export tests need PyTorch (the 'train' extra)")

import mca  # noqa: E402

# Full-size configs keep their structure (stride, L, widths ratio) at reduced depth/width in the default run.
REDUCED = {"mca_paper": dict(num_stacks=2, channels=32, last_stack_channels=64, part_attention_from=1),
           "mca_4s": dict(num_stacks=2, channels=32, last_stack_channels=32, part_attention_from=1)}


def randomized_model(name: str, seed: int = 0, full: bool = False, **over: object) -> "torch.nn.Module":
    """Random weights and BN statistics; the big configs reduced unless ``full``."""
    torch.manual_seed(seed)
    model = mca.create_model(name, **{**({} if full else REDUCED.get(name, {})), **over})
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory):
    """Cache of exported ONNX files keyed by (config, custom_op, attention, full size)."""
    from engines.export import ExportOptions, export_pose

    cache: dict[tuple, tuple] = {}
    root = tmp_path_factory.mktemp("onnx")

    def get(name: str, custom_op: bool = False, attention: bool = False, full: bool = False):
        key = (name, custom_op, attention, full)
        if key not in cache:
            model = randomized_model(name, full=full)
            path = root / f"{name}_{int(custom_op)}{int(attention)}{int(full)}.onnx"
            export_pose(model, path, ExportOptions(attention_outputs=attention, custom_op=custom_op))
            cache[key] = (model, path)
        return cache[key]

    return get
