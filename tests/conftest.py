"""Fixtures shared across the test packages."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_pose(tmp_path_factory):
    """A small random-weight MCA pose ONNX (1 stack, 16 channels, part attention), exported and verified."""
    torch = pytest.importorskip("torch", reason="making the test model needs PyTorch")
    import mca
    from engines.export import export_pose

    torch.manual_seed(0)
    model = mca.create_model("mca_tiny", num_stacks=1, channels=16, last_stack_channels=16, stem_channels=16,
                             part_attention_from=1).eval()
    return export_pose(model, tmp_path_factory.mktemp("small_pose") / "pose.onnx")
