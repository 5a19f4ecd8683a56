"""The graph chain with ONNX Runtime standing in for TensorRT: the same keypoints as today's stages
(PersonDetector -> Cropper -> PoseEstimator) on the demo and on real footage, with the frame uploaded
once and only candidates and keypoints coming back."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

pytest.importorskip("onnx", reason="the chain builds its graphs with the 'onnx' package")

import engines  # noqa: E402
from engines.base import ModelError  # noqa: E402
from realtime.chain import ChainConfig, GraphChain  # noqa: E402
from realtime.detectors import PersonDetector  # noqa: E402
from realtime.models import bundled_path  # noqa: E402
from realtime.pose import Cropper, PoseEstimator  # noqa: E402
from realtime.sources import DemoSource  # noqa: E402
from realtime.types import Detections  # noqa: E402
from tests.realtime.conftest import shared_data_dir  # noqa: E402

VTEST = shared_data_dir() / "real-video" / "vtest.avi"
TOL_PX = 0.5  # the acceptance: keypoints within half a pixel of today's pipeline


def _paths(*names: str):
    paths = [bundled_path(n) for n in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"bundled models missing: {missing}")
    return [str(p) for p in paths]


def _today(det_path: str, pose_path: str):
    det = PersonDetector(engines.load(det_path, backend="ort", threads=1))
    pose = PoseEstimator(engines.load(pose_path, backend="ort", threads=1))
    crop = Cropper(pose.info.input_size, pose.info.heatmap_size, pose.info.crop_padding)
    return lambda img: pose.estimate(crop.crop(img, det.detect(img)))


def _compare(chain: GraphChain, today, frames: list[np.ndarray]) -> int:
    people = 0
    for img in frames:
        want = today(img)
        chain.transfers.clear()
        got = chain.process(img)
        np.testing.assert_array_equal(got.boxes, want.boxes)  # the letterbox is exact, so are the boxes
        assert got.keypoints.shape == want.keypoints.shape
        if len(want):
            err = np.linalg.norm(got.keypoints - want.keypoints, axis=2)
            assert err.max() <= TOL_PX, f"keypoints {err.max():.2f} px from today's pipeline"
            np.testing.assert_allclose(got.scores, want.scores, atol=1e-6)
        # one frame upload, and nothing near a frame's size comes back
        assert chain.transfers.count("up", "frame") == 1
        assert chain.transfers.bytes("down") < img.nbytes / 50
        assert {n for n, _ in chain.transfers.downloads} <= {"candidates", "boxes", "scores", "peaks", "peak_scores",
                                                             "num_detections:0",
                                                             "detection_scores:0", "detection_boxes:0",
                                                             "detection_classes:0"}
        people += len(want)
    return people


@pytest.fixture(scope="module")
def demo_frames() -> list[np.ndarray]:
    return [f.image for f, _ in zip(DemoSource(num_frames=4, people=4, seed=3).frames(), range(4))]


@pytest.fixture(scope="module")
def vtest_frames() -> list[np.ndarray]:
    if not VTEST.exists():
        pytest.skip("../shared/data/real-video/vtest.avi is absent (only the project's machines have it)")
    cap, frames = cv2.VideoCapture(str(VTEST)), []
    for i in range(120):
        ok, img = cap.read()
        if ok and i % 40 == 0:
            frames.append(img)
    return frames


def test_chain_equals_todays_pipeline_on_the_demo(demo_frames, tmp_path) -> None:
    det, pose = _paths("yolo_synth", "mca_tiny_synth")
    chain = GraphChain(det, pose, ChainConfig(threads=1, cache_dir=tmp_path))
    assert _compare(chain, _today(det, pose), demo_frames) >= 8


@pytest.mark.parametrize("detector", ["ssdlite", "yolo_synth"])
def test_chain_equals_todays_pipeline_on_vtest(vtest_frames, detector: str, tmp_path) -> None:
    det, pose = _paths(detector, "mca_tiny_real")
    chain = GraphChain(det, pose, ChainConfig(threads=1, cache_dir=tmp_path))
    assert _compare(chain, _today(det, pose), vtest_frames) >= 6


def test_chain_stage_hooks_batches_and_empty_frames(demo_frames, tmp_path) -> None:
    det, pose = _paths("yolo_synth", "mca_tiny_synth")
    chain = GraphChain(det, pose, ChainConfig(threads=1, max_batch=1, cache_dir=tmp_path))
    img = demo_frames[0]
    found = chain.detector.detect(img)
    assert len(found) >= 2  # several people, so max_batch=1 splits the pose runs
    poses = chain.pose.estimate_frame(img, found)
    want = _today(det, pose)(img)
    np.testing.assert_array_equal(poses.keypoints, want.keypoints)
    assert chain.transfers.count("up", "frame") == 1  # the pose stage reused the detector's upload
    assert chain.transfers.count("down", "peaks") == len(found)
    assert chain.pose.info.num_joints == 16 and chain.pose.attention is False
    empty = chain.estimate(img, Detections())
    assert len(empty) == 0 and empty.keypoints.shape == (0, 16, 2)
    assert len(chain.process(np.zeros((200, 300, 3), np.uint8))) == 0  # a new size builds its graphs
    chain.close()


def test_chain_warns_when_the_top_k_may_cut_people(demo_frames, tmp_path, caplog) -> None:
    det, pose = _paths("yolo_synth", "mca_tiny_synth")
    chain = GraphChain(det, pose, ChainConfig(threads=1, candidates=3, cache_dir=tmp_path))
    with caplog.at_level(logging.WARNING, logger="realtime.chain"):
        chain.detect(demo_frames[0])
    assert "candidates" in caplog.text


def test_chain_rejects_models_of_the_wrong_kind(tmp_path) -> None:
    det, pose = _paths("yolo_synth", "mca_tiny_synth")
    with pytest.raises(ModelError, match="pose model"):
        GraphChain(pose, pose, ChainConfig(cache_dir=tmp_path))
    with pytest.raises(ModelError, match="person detector"):
        GraphChain(det, det, ChainConfig(cache_dir=tmp_path))
    with pytest.raises(ModelError, match="backend"):
        GraphChain(det, pose, ChainConfig(backend="tvm", cache_dir=tmp_path))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="ONNX"):
        GraphChain(bad, pose, ChainConfig(cache_dir=tmp_path))
