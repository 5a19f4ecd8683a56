"""Fixtures shared across the test packages."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """CPU tests run on ONNX Runtime even where TensorRT and a GPU exist (``auto`` would build engines); the GPU
    tests (``-m gpu``) name their backend and leave ``auto`` alone."""
    if "gpu" not in (config.option.markexpr or ""):
        os.environ.setdefault("MCA_POSE_BACKEND", "ort")

TOOLS = Path(__file__).resolve().parents[1] / "tools"

# The bundled models have INT8 twins that engines.cpu.int8_plan picks on VNNI / ARM-dot CPUs: tests that compare a
# bundled model's numbers run FP32 on every CPU unless they ask (tests/realtime/test_int8_choice.py clears this).
os.environ.setdefault("MCA_INT8", "off")


def load_tool(name: str):  # noqa: ANN201 - a module loaded from tools/ (scripts, not a package)
    """``tools/<name>.py`` as a module, for testing the tools' functions."""
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def random_batchnorm(model, eps: float | None = None):  # noqa: ANN001, ANN201 - a torch module, returned
    """Random running statistics (and ``eps``) in every BatchNorm2d, so a conversion or fold is checked against
    statistics that change the result, not the identity defaults."""
    import torch

    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                if eps is not None:
                    mod.eps = eps
    return model


def small_pose_model(seed: int = 0):  # noqa: ANN201 - an mca.model.MCANet (torch imported lazily)
    """A small random-weight MCA network: 1 stack, 16 channels, 128x128 input."""
    torch = pytest.importorskip("torch", reason="making the test model needs PyTorch")
    import mca

    torch.manual_seed(seed)
    return mca.create_model("mca_tiny", num_stacks=1, channels=16, last_stack_channels=16, stem_channels=16,
                            part_attention_from=1).eval()


@pytest.fixture(scope="session")
def small_pose(tmp_path_factory):
    """:func:`small_pose_model` exported (deploy graph) and verified."""
    from engines.export import export_pose

    return export_pose(small_pose_model(), tmp_path_factory.mktemp("small_pose") / "pose.onnx")
