"""MoveNet peers: the decode of hand-made output tensors, and the converted models on the shared photos.

The decode tests need no model; the real-model tests need ``tools/convert_movenet.py`` to have written
``peers/*.onnx`` (git-ignored, not in users' clones) and the shared photos (only the project's machines).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.models import ModelError
from realtime.bench.peers import MoveNet, decode_multi, decode_single, peer_path
from realtime.types import Detections
from tests.realtime.conftest import constant_movenet_onnx, shared_data_dir

PHOTOS = sorted((shared_data_dir() / "real-people").glob("*.jpg"))
IDENTITY = np.array([[1, 0, 0], [0, 1, 0]], np.float64)


def _single_out(y: float, x: float, score: float = 0.9) -> np.ndarray:
    out = np.zeros((1, 1, 17, 3), np.float32)
    out[..., 0], out[..., 1], out[..., 2] = y, x, score
    return out


@pytest.mark.parametrize("y, x, input_wh, affine, want_xy", [
    # (y, x) normalised -> (x, y) pixels; normalised 0 and 1 are the outer edges, pixel centres are integers
    (0.5, 0.25, (192, 192), IDENTITY, (47.5, 95.5)),
    (0.0, 1.0, (100, 50), IDENTITY, (99.5, -0.5)),  # x scales by the width, y by the height
    (0.5, 0.5, (10, 10), np.array([[2, 0, 100], [0, 2, 7]], np.float64), (109.0, 16.0)),  # then input -> frame
])
def test_decode_single_maps_normalised_yx_to_frame_xy(y, x, input_wh, affine, want_xy) -> None:
    kps, scores = decode_single(_single_out(y, x), input_wh, affine)
    assert kps.shape == (17, 2) and scores.shape == (17,)
    np.testing.assert_allclose(kps, np.tile(want_xy, (17, 1)), atol=1e-4)


@pytest.mark.parametrize("bad", [np.zeros((1, 1, 16, 3)), np.zeros((1, 1, 17, 2)), np.zeros((2, 1, 17, 3))])
def test_decode_single_rejects_wrong_shapes(bad) -> None:
    with pytest.raises(ModelError):
        decode_single(bad, (10, 10), IDENTITY)


def _multi_out(people: list[tuple[float, tuple[float, float, float, float]]]) -> np.ndarray:
    """(1, 6, 56) with the given (score, (ymin, xmin, ymax, xmax)) rows; keypoints at each box centre."""
    out = np.zeros((1, 6, 56), np.float32)
    for i, (score, (y0, x0, y1, x1)) in enumerate(people):
        out[0, i, 0:51:3], out[0, i, 1:51:3], out[0, i, 2:51:3] = (y0 + y1) / 2, (x0 + x1) / 2, 0.8
        out[0, i, 51:55], out[0, i, 55] = (y0, x0, y1, x1), score
    return out


@pytest.mark.parametrize("people, min_score, want_scores", [
    ([(0.9, (0.1, 0.1, 0.5, 0.3))], 0.2, [0.9]),
    ([(0.1, (0.1, 0.1, 0.5, 0.3)), (0.7, (0.2, 0.5, 0.9, 0.7))], 0.2, [0.7]),  # weak slot dropped
    ([(0.3, (0.1, 0.1, 0.5, 0.3)), (0.6, (0.2, 0.5, 0.9, 0.7))], 0.2, [0.6, 0.3]),  # best first
    ([], 0.2, []),
])
def test_decode_multi_keeps_confident_people_best_first(people, min_score, want_scores) -> None:
    kps, sc, boxes, box_scores = decode_multi(_multi_out(people), (320, 256), IDENTITY, min_score)
    np.testing.assert_allclose(box_scores, want_scores, atol=1e-6)
    assert kps.shape == (len(want_scores), 17, 2) and sc.shape == (len(want_scores), 17)
    for k, b in zip(kps, boxes):  # keypoints at the box centre, box xyxy in pixels of the (320 x 256) input
        np.testing.assert_allclose(k[0], [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2], atol=1e-3)
        assert b[2] > b[0] and b[3] > b[1]


def test_decode_multi_box_corners_in_pixels() -> None:
    _, _, boxes, _ = decode_multi(_multi_out([(0.9, (0.25, 0.5, 0.75, 1.0))]), (320, 256), IDENTITY)
    np.testing.assert_allclose(boxes[0], [159.5, 63.5, 319.5, 191.5], atol=1e-3)


def test_whole_frame_single_pose_undoes_the_letterbox(tmp_path) -> None:
    # a 200 x 100 frame is letterboxed into a 200-pixel square centred on it: y=0.5 is the frame's middle row
    m = MoveNet(constant_movenet_onnx(tmp_path / "s.onnx", _single_out(0.5, 0.25), size=64))
    poses = m.estimate(np.zeros((100, 200, 3), np.uint8))
    assert len(poses) == 1
    np.testing.assert_allclose(poses.keypoints[0, 0], [49.5, 49.5], atol=0.2)


def test_single_pose_on_boxes_runs_once_per_box(tmp_path) -> None:
    m = MoveNet(constant_movenet_onnx(tmp_path / "s.onnx", _single_out(0.5, 0.5), size=64), crop_padding=1.0)
    det = Detections(np.array([[10, 10, 30, 50], [100, 20, 140, 60]], np.float32), np.array([0.9, 0.8], np.float32))
    poses = m.estimate(np.zeros((120, 200, 3), np.uint8), det)
    assert len(poses) == 2 and len(m.infer_ms) == 2
    np.testing.assert_allclose(poses.keypoints[:, 0], [[20, 30], [120, 40]], atol=0.2)  # the crop centres
    assert len(m.estimate(np.zeros((120, 200, 3), np.uint8), Detections())) == 0  # nobody detected: nobody


@pytest.mark.parametrize("frame_hw", [(100, 200), (200, 100), (256, 256)])
def test_multipose_maps_back_through_resize_and_padding(tmp_path, frame_hw) -> None:
    h, w = frame_hw
    # the box is the frame's top-left quarter in *padded input* coordinates, so work them out from the resize
    size = 64
    s = size / max(h, w)
    rw, rh = round(w * s), round(h * s)
    pw, ph = -(-rw // 32) * 32, -(-rh // 32) * 32
    y1, x1 = (rh / 2) / ph, (rw / 2) / pw
    m = MoveNet(constant_movenet_onnx(tmp_path / "m.onnx", _multi_out([(0.9, (0.0, 0.0, y1, x1))]), size=None),
                size=size)
    poses = m.estimate(np.zeros((h, w, 3), np.uint8))
    np.testing.assert_allclose(poses.boxes[0], [-0.5, -0.5, w / 2 - 0.5, h / 2 - 0.5], atol=0.2)


def test_multipose_size_must_be_a_multiple_of_32(tmp_path) -> None:
    with pytest.raises(ModelError, match="multiple of 32"):
        MoveNet(constant_movenet_onnx(tmp_path / "m.onnx", _multi_out([]), size=None), size=100)


def test_unknown_peer_name_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown MoveNet"):
        peer_path("nonexistent")


@pytest.mark.skipif(not PHOTOS, reason="the shared photos (shared/data/real-people, or $MCA_SHARED) are absent")
@pytest.mark.parametrize("name", ["lightning", "thunder", "multipose"])
def test_converted_movenet_finds_a_person_on_the_shared_photos(name: str) -> None:
    path = peer_path(name)
    if not path.is_file():
        pytest.skip(f"{path} is absent: make it with 'python tools/convert_movenet.py -o peers/' (tooling venv)")
    m = MoveNet(path, threads=1)
    found = 0
    for photo in PHOTOS:
        img = cv2.imread(str(photo))
        poses = m.estimate(img)
        if len(poses) and poses.scores[0].mean() >= 0.3:
            found += 1
            h, w = img.shape[:2]
            # a head cut off by the photo's edge may be placed in the letterbox, so test the body's centre only
            cx, cy = poses.keypoints[0, 5:13].mean(0)  # shoulders, elbows, wrists, hips
            assert 0 <= cx <= w and 0 <= cy <= h, f"the person's centre ({cx:.0f}, {cy:.0f}) is outside the photo"
    assert found >= len(PHOTOS) // 2, f"{name} found a person on only {found} of {len(PHOTOS)} photos"
