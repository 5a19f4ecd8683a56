"""The pipeline loses nothing against the model alone: demo keypoints vs ground truth, bundled models."""

from __future__ import annotations

import numpy as np
import pytest

import engines
from realtime.detectors import PersonDetector
from realtime.pipeline import Pipeline, PipelineConfig, Summary, _score_demo
from realtime.pose import Cropper, PoseEstimator
from realtime.run import DEFAULT_DEMO_DETECTOR, DEFAULT_POSE
from realtime.sources import DemoSource
from realtime.types import Detections

pytestmark = pytest.mark.skipif(not (DEFAULT_POSE.exists() and DEFAULT_DEMO_DETECTOR.exists()),
                                reason="the bundled demo models are not in this checkout")


def test_pipeline_keeps_the_models_accuracy_on_the_demo() -> None:
    pose = PoseEstimator(engines.load(DEFAULT_POSE, backend="ort"))
    det = PersonDetector(engines.load(DEFAULT_DEMO_DETECTOR, backend="ort"))
    frames = 40
    summary = Pipeline(det, pose, PipelineConfig(smooth=False)).run(DemoSource(frames, (960, 540), 3, seed=5))
    # The model alone on the same frames, fed the ground-truth boxes.
    alone = Summary()
    cropper = Cropper(pose.info.input_size, pose.info.heatmap_size)
    for f in DemoSource(frames, (960, 540), 3, seed=5).frames():
        people = f.ground_truth.people
        boxes = np.stack([p.box for p in people]) if people else np.zeros((0, 4), np.float32)
        poses = pose.estimate(cropper.crop(f.image, Detections(boxes, np.ones(len(boxes)))))
        _score_demo(alone, f.ground_truth, poses)
    assert summary.frames_out == frames
    # Detector quality (AP50 0.82 on held-out scenes) bounds recall; the claim tested is about keypoints.
    assert summary.recall is not None and summary.recall >= 0.6
    assert summary.pck is not None and alone.pck is not None
    assert summary.pck >= alone.pck - 0.05, (summary.pck, alone.pck)
