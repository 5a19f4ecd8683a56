"""The pipeline keeps the model's accuracy: demo keypoints vs ground truth, bundled models."""

from __future__ import annotations

import pytest

from realtime.bench.evaluate_pipeline import compare, main
from realtime.run import DEFAULT_DEMO_DETECTOR, DEFAULT_POSE

pytestmark = pytest.mark.skipif(not (DEFAULT_POSE.exists() and DEFAULT_DEMO_DETECTOR.exists()),
                                reason="the bundled demo models are not in this checkout")


def test_pipeline_loses_nothing_against_the_model_alone() -> None:
    r = compare(DEFAULT_POSE, DEFAULT_DEMO_DETECTOR, seed=5, frames=30, people=3, size=(960, 540))
    assert r.frames == 30
    assert r.joints_gt > 300
    # With true boxes, the pipeline's own stages (crop, batch, decode, track; smoothing off) change nothing:
    # the same joints are hits as with the model alone.
    assert r.pipeline_gt == r.model_gt
    # recall counts people with half their joints in view (measured 0.93 here; AP50 of the detector is 0.825)
    assert r.recall >= 0.8
    # the detector's boxes instead of the true ones cost little on the people it finds (measured over 5 seeds
    # with python -m realtime.bench.evaluate_pipeline: -0.018 pooled, per seed -0.042..+0.004)
    assert r.pipeline_det >= r.model_found - 0.05, r


def test_evaluate_pipeline_cli_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "1", "--frames", "4", "--people", "2", "--size", "640x360"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | 4 |" in out and "pipeline, true boxes" in out


@pytest.mark.parametrize("argv", [["--size", "big"], ["--pose", "/nonexistent.onnx"]])
def test_evaluate_pipeline_cli_bad_input(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error:")
