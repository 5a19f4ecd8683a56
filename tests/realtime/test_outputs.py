"""Only what is used is computed: the pose model's attention outputs are cut from the graph unless they are drawn."""

from __future__ import annotations

import numpy as np
import pytest

import realtime.models as M
from engines.base import ModelError
from tests.realtime.conftest import blob_pose_onnx

pytest.importorskip("onnx", reason="cutting outputs edits the ONNX graph in memory")


@pytest.fixture()
def pose_att(tmp_path):
    return blob_pose_onnx(tmp_path / "pose_att.onnx", attention=True)


def test_backend_keeps_only_the_asked_outputs_and_their_nodes(pose_att) -> None:
    from engines.ort import OrtBackend

    full = OrtBackend(pose_att)
    cut = OrtBackend(pose_att, outputs=["heatmaps"])
    assert [o.name for o in full.session.get_outputs()] == ["heatmaps", "holistic_attention", "part_attention"]
    assert [o.name for o in cut.session.get_outputs()] == ["heatmaps"] and [o.name for o in cut.outputs] == ["heatmaps"]
    assert full.pruned_nodes == 0 and cut.pruned_nodes == 2  # the Identity and the Expand only attention needs
    x = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    a, b = full.run(x), cut.run(x)
    assert len(a) == 3 and len(b) == 1
    np.testing.assert_array_equal(a[0], b[0])
    assert OrtBackend(pose_att, outputs=["heatmaps", "holistic_attention", "part_attention"]).pruned_nodes == 0
    with pytest.raises(ModelError, match="no output"):
        OrtBackend(pose_att, outputs=["heatmap"])


@pytest.mark.parametrize("show, outputs", [(None, 1), ("holistic", 3), ("parts", 3)])
def test_the_cli_runs_attention_only_when_drawn(pose_att, tmp_path, monkeypatch, show, outputs) -> None:
    from realtime.run import main

    loaded = []
    real = M.load_model

    def spy(*a, **k):  # noqa: ANN002, ANN003, ANN202
        b = real(*a, **k)
        loaded.append(b)
        return b

    monkeypatch.setattr(M, "load_model", spy)
    args = ["--source", "demo", "--frames", "2", "--demo-size", "320x240", "--demo-people", "1", "--detector",
            "ground-truth", "--pose", str(pose_att), "--backend", "ort", "--quiet",
            "--output", str(tmp_path / "o.mp4")]
    assert main(args + (["--show-attention", show] if show else [])) == 0
    (pose,) = loaded
    assert len(pose.session.get_outputs()) == outputs
    assert pose.pruned_nodes == (2 if outputs == 1 else 0)
