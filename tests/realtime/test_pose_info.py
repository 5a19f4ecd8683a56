"""What the pose stage reads from a model and how it crops: every metadata field, default and refusal.

A plain Python stand-in backend carries the metadata, so each field's parsing is checked
by value and each refusal by its message (the messages tell a user what to do).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from mca import heatmaps as H
from mca.joints import get_joint_set
from realtime.models import ModelError
from realtime.pose import Cropper, PoseEstimator, PoseModelInfo
from realtime.types import Crops, Detections

JS = get_joint_set("mpii16")


def _meta(**over: str | None) -> dict[str, str]:
    m = {"mca.kind": "pose", "mca.config": "mca_tiny", "mca.joint_set": "mpii16",
         "mca.joint_names": json.dumps(list(JS.names)), "mca.flip_index": json.dumps(list(JS.flip_index)),
         "mca.skeleton": json.dumps([list(e) for e in JS.skeleton]), "mca.input_size": "128",
         "mca.heatmap_size": "32", "mca.input_layout": "NHWC", "mca.input_dtype": "uint8", "mca.input_channels": "BGR"}
    for k, v in over.items():
        key = "mca." + k
        if v is None:
            m.pop(key, None)
        else:
            m[key] = v
    return m


def _backend(meta: dict[str, str], outputs=("heatmaps",), heat: np.ndarray | None = None):  # noqa: ANN202
    done = [0]

    def run(crops: np.ndarray) -> list[np.ndarray]:  # the next rows of ``heat``, one per crop
        i = done[0]
        done[0] += len(crops)
        return [heat[i:i + len(crops)]]

    shapes = {"heatmaps": ["batch", 16, 32, 32], "holistic_attention": ["batch", 1, 32, 32],
              "part_attention": ["batch", 16, 32, 32]}
    return SimpleNamespace(path="stand-in.onnx", metadata=meta,
                           inputs=[SimpleNamespace(name="crops", shape=["batch", 128, 128, 3])],
                           outputs=[SimpleNamespace(name=n, shape=shapes.get(n, ["batch", 16, 32, 32])) for n in outputs],
                           run=run if heat is not None else None)


def test_every_field_is_read_by_value() -> None:
    info = PoseModelInfo(_backend(_meta(crop_padding="1.5"), ("holistic_attention", "heatmaps", "part_attention")))
    assert (info.input_size, info.heatmap_size) == (128, 32)
    assert info.flip_index == tuple(JS.flip_index) and info.joint_names == tuple(JS.names)
    assert info.skeleton == tuple(tuple(e) for e in JS.skeleton)
    assert all(type(v) is int for e in info.skeleton for v in e)
    assert info.crop_padding == 1.5 and info.joint_set == "mpii16" and info.config == "mca_tiny"
    assert (info.heatmap_index, info.attention_index, info.part_attention_index) == (1, 0, 2)
    assert info.num_joints == 16


def test_defaults_for_the_optional_fields() -> None:
    info = PoseModelInfo(_backend(_meta(input_layout=None, input_dtype=None, input_channels=None, joint_set=None,
                                        config=None)))
    assert info.crop_padding == H.DEFAULT_PADDING
    assert info.joint_set == "mpii16" and info.config == "?"
    assert info.attention_index is None and info.part_attention_index is None and info.heatmap_index == 0


@pytest.mark.parametrize("over,outputs,message", [
    (dict(kind="detector"), ("heatmaps",), "is a person detector (give it as --detector); --pose needs a model"),
    (dict(kind=None), ("heatmaps",), "is not an mca-pose model (no mca.kind=pose metadata)"),
    (dict(skeleton=None), ("heatmaps",), "stand-in.onnx: incomplete pose metadata ('mca.skeleton')"),
    (dict(input_size="big"), ("heatmaps",), "incomplete pose metadata"),
    (dict(input_layout="NCHW"), ("heatmaps",), "input is NCHW/uint8/BGR; the pipeline feeds NHWC/uint8/BGR"),
    (dict(input_dtype="float32"), ("heatmaps",), "input is NHWC/float32/BGR"),
    (dict(input_channels="RGB"), ("heatmaps",), "input is NHWC/uint8/RGB"),
    (dict(flip_index="[1, 0]"), ("heatmaps",), "flip index and joint names differ in length"),
    (dict(crop_padding="wide"), ("heatmaps",), "mca.crop_padding is not a number"),
    ({}, ("logits",), "stand-in.onnx: no 'heatmaps' output"),
])
def test_refusals_say_what_is_wrong(over, outputs, message) -> None:
    with pytest.raises(ModelError) as e:
        PoseModelInfo(_backend(_meta(**over), outputs))
    assert message in str(e.value)


def test_cropper_uses_its_padding_and_grows_a_degenerate_box_by_one_pixel() -> None:
    img = np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8)
    boxes = np.array([[20, 10, 60, 100], [30, 40, 30, 40]], np.float32)  # the second has no width or height
    crops = Cropper(64, 16, padding=1.5).crop(img, Detections(boxes, np.ones(2, np.float32)))
    assert crops.images.shape == (2, 64, 64, 3) and crops.images.dtype == np.uint8
    want = [H.CropTransform.from_box([20, 10, 60, 100], (64, 64), (16, 16), 1.5),
            H.CropTransform.from_box([30, 40, 31, 41], (64, 64), (16, 16), 1.5)]
    for t, w in zip(crops.transforms, want):
        np.testing.assert_allclose(t.frame_to_input, w.frame_to_input, atol=1e-9)
        assert t.heatmap_wh == (16, 16)
    np.testing.assert_array_equal(crops.images[0], H.warp_crop(img, want[0]))
    # a non-square input: height and width are not confused
    wide = Cropper(64, 16, padding=1.0).crop(img, Detections(boxes[:1], np.ones(1, np.float32)))
    np.testing.assert_allclose(wide.transforms[0].frame_to_input,
                               H.CropTransform.from_box(boxes[0], (64, 64), (16, 16), 1.0).frame_to_input)


def test_decode_refuses_a_heatmap_count_that_is_not_the_joint_count() -> None:
    crops = Crops(np.zeros((1, 128, 128, 3), np.uint8), [H.CropTransform.from_box([0, 0, 10, 10], (128, 128),
                                                                                   (32, 32))],
                  Detections(np.array([[0, 0, 10, 10]], np.float32), np.ones(1, np.float32)))
    est = PoseEstimator(_backend(_meta(), heat=np.zeros((1, 15, 32, 32), np.float32)))
    with pytest.raises(ModelError, match=r"stand-in.onnx: 15 heatmaps but 16 joint names"):
        est.estimate(crops)


def test_confidences_are_clipped_to_0_1_and_keypoints_are_float32() -> None:
    heat = np.full((2, 16, 32, 32), -0.5, np.float32)
    heat[0, :, 10, 20] = 2.0  # above 1 at the peak
    heat[1, :, 5, 5] = 0.3
    t = H.CropTransform.from_box([0, 0, 100, 100], (128, 128), (32, 32))
    det = Detections(np.array([[0, 0, 100, 100]] * 2, np.float32), np.array([0.9, 0.8], np.float32))
    crops = Crops(np.zeros((2, 128, 128, 3), np.uint8), [t, t], det)
    poses = PoseEstimator(_backend(_meta(), heat=heat), max_batch=1).estimate(crops)
    assert poses.keypoints.dtype == np.float32 and poses.keypoints.shape == (2, 16, 2)
    np.testing.assert_allclose(poses.scores[0], 1.0)
    np.testing.assert_allclose(poses.scores[1], 0.3, atol=1e-6)
    np.testing.assert_allclose(poses.keypoints[0, 0], H.apply_affine(t.heatmap_to_frame, np.array([[20.0, 10.0]]))[0],
                               atol=1e-4)
    np.testing.assert_allclose(poses.box_scores, [0.9, 0.8], atol=1e-6)
    assert poses.boxes is not det.boxes  # a copy: tracking may change the poses' boxes
    empty = PoseEstimator(_backend(_meta(), heat=heat)).estimate(
        Crops(np.zeros((0, 128, 128, 3), np.uint8), [], Detections(np.zeros((0, 4), np.float32),
                                                                   np.zeros(0, np.float32))))
    assert len(empty) == 0 and empty.keypoints.shape == (0, 16, 2)
