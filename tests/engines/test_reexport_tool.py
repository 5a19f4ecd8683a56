"""tools/reexport_pose.py: an older (module-graph) pose ONNX rebuilt from its own weights and re-exported."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="re-exporting needs PyTorch (the 'train' extra)")

from engines.export import ExportOptions, export_pose  # noqa: E402
from engines.ort import OrtBackend  # noqa: E402
from tests.conftest import load_tool  # noqa: E402
from tests.engines.conftest import randomized_model  # noqa: E402


@pytest.mark.parametrize("attention", [False, True])
def test_old_module_graph_is_rebuilt_and_reexported(tmp_path, attention: bool, capsys) -> None:
    model = randomized_model("mca_tiny", seed=5, num_stacks=1, channels=16, last_stack_channels=16,
                             stem_channels=16, part_attention_from=0)
    old = export_pose(model, tmp_path / "old.onnx", ExportOptions(attention_outputs=attention, deploy=False))
    tool = load_tool("reexport_pose")
    assert tool.main([str(old), "-o", str(tmp_path / "new.onnx")]) == 0
    x = np.random.default_rng(1).integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    a, b = OrtBackend(old).run(x), OrtBackend(tmp_path / "new.onnx").run(x)
    assert len(a) == len(b) == (3 if attention else 1)
    assert max(float(np.abs(p - q).max()) for p, q in zip(a, b)) <= 1e-4
    assert OrtBackend(tmp_path / "new.onnx").metadata["mca.graph"] == "deploy"
    # a deploy graph is refused with one line, nothing written
    assert tool.main([str(tmp_path / "new.onnx"), "-o", str(tmp_path / "again.onnx")]) == 2
    assert "already a deploy graph" in capsys.readouterr().err and not (tmp_path / "again.onnx").exists()
