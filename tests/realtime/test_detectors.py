"""Detector decode, NMS and letterbox, against hand-made tensors."""

from __future__ import annotations

import numpy as np
import pytest

import engines
from engines.base import ModelError
from realtime.detectors import PersonDetector, _ssd_post, _yolo_post, letterbox, nms
from tests.realtime.conftest import constant_yolo_onnx


@pytest.mark.parametrize("boxes,scores,iou,keep", [
    ([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], [0.9, 0.8, 0.7], 0.5, [0, 2]),
    ([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], [0.7, 0.8, 0.9], 0.5, [2, 1]),
    ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.5, [0, 1]),  # IoU 1/3: both kept
    ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.3, [0]),
    (np.zeros((0, 4)), [], 0.5, []),
])
def test_nms(boxes, scores, iou, keep) -> None:
    assert nms(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores), iou).tolist() == keep


@pytest.mark.parametrize("w,h", [(640, 480), (480, 640), (100, 100), (1920, 1080)])
def test_letterbox_maps_back(w: int, h: int) -> None:
    img = np.zeros((h, w, 3), np.uint8)
    out, s, (px, py) = letterbox(img, 320)
    assert out.shape == (320, 320, 3)
    # The image corners land inside the canvas and map back to the frame.
    for x, y in [(0, 0), (w - 1, h - 1)]:
        lx, ly = x * s + px, y * s + py
        assert -1 <= lx <= 320 and -1 <= ly <= 320
        assert abs((lx - px) / s - x) < 1e-6


def test_yolo_decode_letterbox_inverse_and_nms() -> None:
    # Frame 200x100 letterboxed into 100: scale 0.5, pad y = 25.
    out = np.zeros((1, 5, 3), np.float32)
    out[0, :, 0] = (50, 50, 20, 40, 0.9)  # centre of the frame
    out[0, :, 1] = (51, 50, 20, 40, 0.6)  # duplicate -> suppressed
    out[0, :, 2] = (10, 30, 10, 10, 0.2)  # below threshold
    det = _yolo_post([out], (0.5, (0.0, 25.0)), (200, 100), 0, 0.3, 0.5)
    assert len(det) == 1
    np.testing.assert_allclose(det.boxes[0], [80, 10, 120, 90], atol=1e-4)
    assert det.scores[0] == pytest.approx(0.9)


def test_ssd_decode_person_class_only() -> None:
    num = np.array([3.0], np.float32)
    scores = np.array([[0.9, 0.8, 0.2]], np.float32)
    boxes = np.array([[[0.1, 0.2, 0.5, 0.4], [0.0, 0.0, 1.0, 1.0], [0.2, 0.2, 0.3, 0.3]]], np.float32)
    classes = np.array([[1.0, 3.0, 1.0]], np.float32)  # class 3 (car) and a low score are dropped
    det = _ssd_post([num, scores, boxes, classes], (), (200, 100), 1, 0.3, 0.5)
    assert len(det) == 1
    np.testing.assert_allclose(det.boxes[0], [40, 10, 80, 50], atol=1e-4)


def test_detector_end_to_end_on_a_constant_onnx(tmp_path) -> None:
    pytest.importorskip("onnx")
    path = constant_yolo_onnx(tmp_path / "d.onnx", [(32, 32, 16, 32, 0.9)], size=64)
    det = PersonDetector(engines.load(path), conf=0.5)
    assert det.family == "yolo" and det.input_size == 64
    frame = np.zeros((128, 256, 3), np.uint8)  # scale 0.25, pad y 16
    d = det.detect(frame)
    np.testing.assert_allclose(d.boxes[0], [96, 0, 160, 127], atol=1e-3)  # y clipped to the frame


def test_pose_model_rejected_as_detector(models) -> None:
    with pytest.raises(ModelError, match="pose model"):
        PersonDetector(engines.load(models["pose"]))
