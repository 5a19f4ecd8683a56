"""Cropping and pose decoding land keypoints where they belong in the frame (hand-made 'blob' pose model)."""

from __future__ import annotations

import json

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
    # issue 17.8: metadata that disagrees with the graph (was: silently wrong keypoints or a traceback later)
    ({"mca.heatmap_size": "32"}, "mca.heatmap_size is 32 but the graph's heatmaps are 16x16"),
    ({"mca.input_size": "96"}, "mca.input_size is 96 but the graph's input is 64x64"),
    ({"mca.skeleton": "[[0, 1], [15, 16]]"}, "mca.skeleton names a joint outside 0..15"),
    ({"mca.flip_index": json.dumps([0] * 16)}, "mca.flip_index is not a permutation"),
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


class MirrorBody:
    """A pose stand-in whose joints differ: each left joint peaks ``d`` heatmap pixels to the right of the crop's
    bright spot, each right joint ``d`` to its left, centre joints on it (as a body seen from the front).

    It is mirror-consistent, so a correct flip test (mirror back *and* swap left/right) gives the same keypoints
    as no flip test; averaging without the swap pulls every side joint onto the centre.
    """

    def __init__(self, inner, d: int = 3) -> None:
        from mca.joints import MPII16

        self.inner, self.d = inner, d
        self.offset = np.array([d if n.startswith("l_") else -d if n.startswith("r_") else 0 for n in MPII16.names])

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def run(self, crops: np.ndarray) -> list[np.ndarray]:
        outs = self.inner.run(crops)
        hm = outs[0]
        n, k, h, w = hm.shape
        shifted = np.zeros_like(hm)
        for i in range(n):
            y, x = np.unravel_index(np.argmax(hm[i, 0]), (h, w))
            for j in range(k):
                xx = int(np.clip(x + self.offset[j], 0, w - 1))
                shifted[i, j, y, xx] = 1.0
                shifted[i, j, y, max(xx - 1, 0)] = shifted[i, j, y, min(xx + 1, w - 1)] = 0.5
        return [shifted, *outs[1:]]


def test_flip_test_swaps_left_and_right_joints(blob) -> None:
    """Issue 19: --flip-test must swap joints when it mirrors back (the old test model gave every joint one map)."""
    body = MirrorBody(blob)
    frame = blob_frame((320, 240), (160, 120), sigma=6)
    box = (110, 40, 210, 200)
    plain = PoseEstimator(body)
    crops = Cropper(plain.info.input_size, plain.info.heatmap_size).crop(frame, Detections([box], [0.9]))
    direct = plain.estimate(crops).keypoints[0]
    flipped = PoseEstimator(body, flip_test=True).estimate(crops).keypoints[0]
    left = [j for j, o in enumerate(body.offset) if o > 0]
    hm_px = 1.25 * 160 / plain.info.heatmap_size
    assert (direct[left, 0] - 160 > 2 * hm_px).all(), "left joints lie right of the spot (a real spread)"
    np.testing.assert_allclose(flipped, direct, atol=0.5 * hm_px)


def test_flip_test_keeps_the_attention_maps(blob) -> None:
    """Issue 17.8: --flip-test with --show-attention drew no overlay (the maps were dropped)."""
    frame = blob_frame((320, 240), (160, 120))
    est = PoseEstimator(blob, flip_test=True, attention=True)
    crops = Cropper(est.info.input_size, est.info.heatmap_size).crop(frame, Detections([(110, 40, 210, 200)], [0.9]))
    poses = est.estimate(crops)
    ref = PoseEstimator(blob, attention=True).estimate(crops)
    assert poses.attention is not None and poses.part_attention is not None
    np.testing.assert_allclose(poses.attention, ref.attention, atol=1e-6)
