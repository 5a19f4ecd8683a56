"""Cropping and pose decoding land keypoints where they belong in the frame (hand-made 'blob' pose model)."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.models import ModelError, load_model
from realtime.pose import Cropper, PoseEstimator, PoseModelInfo
from realtime.types import Detections
from tests.realtime.conftest import blob_frame, blob_pose_onnx, constant_yolo_onnx


@pytest.fixture(scope="module")
def blob(tmp_path_factory):
    return load_model(blob_pose_onnx(tmp_path_factory.mktemp("blob") / "blob.onnx"), backend="ort")


@pytest.mark.parametrize("frame_wh,centre,box", [
    ((320, 240), (160, 120), (110, 40, 210, 200)),  # blob in the middle of a tall box
    ((320, 240), (130, 70), (110, 40, 210, 200)),  # off-centre inside the box
    ((640, 360), (600, 300), (560, 200, 639, 359)),  # at the frame's corner: the crop runs off the frame
    ((200, 600), (100, 450), (20, 300, 180, 590)),  # portrait frame, wide box
])
@pytest.mark.parametrize("flip", [False, True])
def test_keypoints_come_back_to_the_blob(blob, frame_wh, centre, box, flip) -> None:
    frame = blob_frame(frame_wh, centre, sigma=0.05 * max(box[2] - box[0], box[3] - box[1]))
    est = PoseEstimator(blob, flip_test=flip)
    crops = Cropper(est.info.input_size, est.info.heatmap_size).crop(frame, Detections([box], [0.9]))
    poses = est.estimate(crops)
    assert poses.keypoints.shape == (1, 16, 2)
    # one heatmap pixel covers 1.25 * max(box side) / 16 frame px; the quarter-pixel rule is within half of it
    hm_px = 1.25 * max(box[2] - box[0], box[3] - box[1]) / est.info.heatmap_size
    err = np.linalg.norm(poses.keypoints[0] - np.asarray(centre), axis=1)
    assert err.max() <= 0.75 * hm_px, (err.max(), hm_px)
    assert (poses.scores[0] > 0.3).all()


def test_batches_split_by_max_batch_give_the_same_keypoints(blob) -> None:
    frame = blob_frame((640, 360), (300, 180))
    boxes = np.array([[250 + 7 * i, 100 + 3 * i, 350 + 5 * i, 300 - 2 * i] for i in range(7)], np.float32)
    crops = Cropper(64, 16).crop(frame, Detections(boxes, np.linspace(0.9, 0.5, 7)))
    whole = PoseEstimator(blob, max_batch=16).estimate(crops)
    split = PoseEstimator(blob, max_batch=3).estimate(crops)
    np.testing.assert_allclose(whole.keypoints, split.keypoints, atol=1e-4)
    assert whole.attention.shape == (7, 16, 16) and whole.part_attention.shape == (7, 16, 16, 16)
    assert len(whole.transforms) == 7


def test_no_person_gives_empty_poses(blob) -> None:
    est = PoseEstimator(blob)
    poses = est.estimate(Cropper(64, 16).crop(np.zeros((50, 50, 3), np.uint8), Detections()))
    assert len(poses) == 0 and poses.keypoints.shape == (0, 16, 2)


def test_degenerate_box_still_crops(blob) -> None:
    crops = Cropper(64, 16).crop(np.zeros((50, 50, 3), np.uint8), Detections([[10, 10, 10, 30]], [0.5]))
    assert crops.images.shape == (1, 64, 64, 3)


@pytest.mark.parametrize("edit,match", [
    ({"mca.input_layout": "NCHW"}, "input is NCHW/uint8/BGR"),
    ({"mca.input_channels": "RGB"}, "input is NHWC/uint8/RGB"),
    ({"mca.heatmap_size": None}, "incomplete pose metadata"),
    ({"mca.flip_index": "[0, 1]"}, "flip index and joint names differ"),
])
def test_pose_metadata_is_checked(tmp_path, edit, match) -> None:
    import onnx

    path = blob_pose_onnx(tmp_path / "p.onnx")
    m = onnx.load(str(path))
    keep = [(p.key, p.value) for p in m.metadata_props]
    del m.metadata_props[:]
    for k, v in keep:
        v = edit.get(k, v)
        if v is not None:
            m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(path))
    with pytest.raises(ModelError, match=match):
        PoseModelInfo(load_model(path, backend="ort"))


def test_detector_rejected_as_pose(tmp_path) -> None:
    with pytest.raises(ModelError, match="is a person detector"):
        PoseModelInfo(load_model(constant_yolo_onnx(tmp_path / "d.onnx", [(1, 1, 1, 1, 0.5)]), backend="ort"))
