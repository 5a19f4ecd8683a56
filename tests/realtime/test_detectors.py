"""Detector decode, NMS and letterbox, against hand-made tensors and hand-made ONNX graphs."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.detectors import DETECTOR_FAMILIES, PersonDetector, _ssd_post, _yolo_post, letterbox, nms
from realtime.models import ModelError, load_model
from tests.realtime.conftest import blob_pose_onnx, constant_ssd_onnx, constant_yolo_onnx


@pytest.mark.parametrize("boxes,scores,iou,keep", [
    ([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], [0.9, 0.8, 0.7], 0.5, [0, 2]),
    ([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], [0.7, 0.8, 0.9], 0.5, [2, 1]),
    ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.5, [0, 1]),  # IoU 1/3: both kept
    ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.3, [0]),
    ([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], [0.5, 0.9, 0.7], 0.5, [1]),  # exact duplicates
    ([[0, 0, 10, 10], [2, 2, 4, 4]], [0.9, 0.8], 0.5, [0, 1]),  # contained box: IoU 0.04, kept
    (np.zeros((0, 4)), [], 0.5, []),
])
def test_nms(boxes, scores, iou, keep) -> None:
    assert nms(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores), iou).tolist() == keep


@pytest.mark.parametrize("w,h,size,scale,pad", [
    (640, 480, 320, 0.5, (0, 40)),
    (480, 640, 320, 0.5, (40, 0)),
    (100, 100, 320, 3.2, (0, 0)),
    (1920, 1080, 640, 1 / 3, (0, 140)),
    (7, 300, 64, 64 / 300, (31, 0)),  # a sliver: 7 px wide -> 1.49 -> 1 px; pad round(31.5 - 0.1)
])
def test_letterbox_scale_padding_and_grey(w, h, size, scale, pad) -> None:
    img = np.full((h, w, 3), 200, np.uint8)
    out, s, (px, py) = letterbox(img, size)
    assert out.shape == (size, size, 3)
    assert s == pytest.approx(scale) and (px, py) == pad
    if py > 0:
        assert (out[: int(py)] == 114).all() and (out[int(py) + 1: size - int(py) - 1] == 200).all()
    if px > 0:
        assert (out[:, : int(px)] == 114).all()


@pytest.mark.parametrize("frame_wh,ctx,row,expect", [
    # frame 200x100 letterboxed into 100: scale 0.5, pad y 25; a centred 20x40 box -> 40x80 in the frame
    ((200, 100), (0.5, (0.0, 25.0)), (50, 50, 20, 40), [80, 10, 120, 90]),
    # portrait 100x200 into 100: pad x 25
    ((100, 200), (0.5, (25.0, 0.0)), (50, 50, 20, 40), [30, 60, 70, 140]),
    # a box past the canvas edge is clipped to the frame
    ((200, 100), (0.5, (0.0, 25.0)), (95, 50, 20, 40), [170, 10, 199, 90]),
])
def test_yolo_decode_inverts_the_letterbox(frame_wh, ctx, row, expect) -> None:
    out = np.zeros((1, 5, 1), np.float32)
    out[0, :, 0] = (*row, 0.9)
    det = _yolo_post({"output0": out}, ctx, frame_wh, 0, 0.3, 0.5)
    np.testing.assert_allclose(det.boxes[0], expect, atol=1e-4)


def test_yolo_decode_threshold_and_nms() -> None:
    out = np.zeros((1, 5, 3), np.float32)
    out[0, :, 0] = (50, 50, 20, 40, 0.9)
    out[0, :, 1] = (51, 50, 20, 40, 0.6)  # duplicate -> suppressed
    out[0, :, 2] = (10, 30, 10, 10, 0.2)  # below threshold
    det = _yolo_post({"o": out}, (0.5, (0.0, 25.0)), (200, 100), 0, 0.3, 0.5)
    assert len(det) == 1 and det.scores[0] == pytest.approx(0.9)


@pytest.mark.parametrize("person_class,expect", [(0, []), (2, [0.8])])
def test_yolo_uses_the_person_class_row_only(person_class, expect) -> None:
    out = np.zeros((1, 4 + 3, 2), np.float32)
    out[0, :4, 0] = (20, 20, 10, 10)
    out[0, 4 + 1, 0] = 0.9  # class 1 (not a person): ignored
    out[0, :4, 1] = (60, 60, 10, 10)
    out[0, 4 + 2, 1] = 0.8
    det = _yolo_post({"o": out}, (1.0, (0.0, 0.0)), (100, 100), person_class, 0.3, 0.5)
    assert det.scores.tolist() == pytest.approx(expect)


def test_ssd_decode_person_class_only_by_name_and_by_order() -> None:
    num = np.array([3.0], np.float32)
    scores = np.array([[0.9, 0.8, 0.2]], np.float32)
    boxes = np.array([[[0.1, 0.2, 0.5, 0.4], [0.0, 0.0, 1.0, 1.0], [0.2, 0.2, 0.3, 0.3]]], np.float32)
    classes = np.array([[1.0, 3.0, 1.0]], np.float32)  # class 3 (car) and a low score are dropped
    named = {"detection_classes:0": classes, "num_detections:0": num, "detection_boxes:0": boxes,
             "detection_scores:0": scores}  # any order: matched by name
    for outputs in (named, [num, scores, boxes, classes]):
        det = _ssd_post(outputs, (), (200, 100), 1, 0.3, 0.5)
        assert len(det) == 1
        np.testing.assert_allclose(det.boxes[0], [40, 10, 80, 50], atol=1e-4)


def test_yolo_onnx_end_to_end_letterbox_inversion(tmp_path) -> None:
    path = constant_yolo_onnx(tmp_path / "d.onnx", [(32, 32, 16, 32, 0.9)], size=64)
    det = PersonDetector(load_model(path, backend="ort"), conf=0.5)
    assert det.family == "yolo" and det.input_size == 64
    frame = np.zeros((128, 256, 3), np.uint8)  # scale 0.25, pad y 16
    d = det.detect(frame)
    np.testing.assert_allclose(d.boxes[0], [96, 0, 160, 127], atol=1e-3)  # y clipped to the frame


def test_yolo_onnx_person_class_from_metadata(tmp_path) -> None:
    path = constant_yolo_onnx(tmp_path / "d.onnx", [(32, 32, 16, 16, 0.9)], num_classes=3, person_class=2,
                              score_row=4 + 2)
    det = PersonDetector(load_model(path, backend="ort"), conf=0.5)
    assert det.person_class == 2 and len(det.detect(np.zeros((64, 64, 3), np.uint8))) == 1


@pytest.mark.parametrize("metadata", [True, False])  # without metadata the family is told from the output names
def test_ssd_onnx_end_to_end(tmp_path, metadata) -> None:
    path = constant_ssd_onnx(tmp_path / "s.onnx", [(0.1, 0.2, 0.5, 0.4), (0.5, 0.5, 0.9, 0.9)], [0.9, 0.7],
                             [1.0, 1.0], metadata=metadata)
    det = PersonDetector(load_model(path, backend="ort"), conf=0.3)
    assert det.family == "ssd" and det.person_class == 1
    d = det.detect(np.zeros((100, 200, 3), np.uint8))
    np.testing.assert_allclose(d.boxes, [[40, 10, 80, 50], [100, 50, 180, 90]], atol=1e-3)
    assert PersonDetector(load_model(path, backend="ort"), conf=0.3, max_persons=1).detect(np.zeros((100, 200, 3), np.uint8)) \
        .scores.tolist() == pytest.approx([0.9])


def test_families_are_a_registry_with_their_own_defaults(tmp_path) -> None:
    assert set(DETECTOR_FAMILIES) >= {"yolo", "ssd"}
    assert DETECTOR_FAMILIES["yolo"].person_class == 0 and DETECTOR_FAMILIES["ssd"].person_class == 1
    yolo = load_model(constant_yolo_onnx(tmp_path / "y.onnx", [(32, 32, 16, 16, 0.3)]), backend="ort")
    ssd = load_model(constant_ssd_onnx(tmp_path / "s.onnx", [(0.1, 0.1, 0.5, 0.5)], [0.3], [1.0]), backend="ort")
    frame = np.zeros((64, 64, 3), np.uint8)
    # a 0.3 score passes YOLO's default threshold (0.25) but not SSD's (0.35); an explicit one wins
    assert [len(PersonDetector(b).detect(frame)) for b in (yolo, ssd)] == [1, 0]
    assert [len(PersonDetector(b, conf=0.2).detect(frame)) for b in (yolo, ssd)] == [1, 1]


def test_pose_model_rejected_as_detector(tmp_path) -> None:
    with pytest.raises(ModelError, match="pose model"):
        PersonDetector(load_model(blob_pose_onnx(tmp_path / "p.onnx"), backend="ort"))


def test_unknown_family_is_a_clear_error(tmp_path) -> None:
    import onnx

    path = constant_yolo_onnx(tmp_path / "d.onnx", [(32, 32, 16, 16, 0.9)])
    m = onnx.load(str(path))
    for p in m.metadata_props:
        if p.key == "mca.detector_family":
            p.value = "detr"
    onnx.save(m, str(path))
    with pytest.raises(ModelError, match="unknown detector family 'detr'"):
        PersonDetector(load_model(path, backend="ort"))


def test_ground_truth_detector_keeps_people_in_view_larger_first() -> None:
    from types import SimpleNamespace

    from realtime.detectors import GroundTruthDetector
    from realtime.models import ModelError

    def person(box, visible):  # noqa: ANN001, ANN202
        return SimpleNamespace(box=np.array(box, np.float32), visible=np.array(visible, bool))

    people = [person([0, 0, 10, 10], [1, 1, 1, 0]), person([0, 0, 50, 80], [1, 1, 0, 0]),
              person([5, 5, 90, 90], [1, 0, 0, 0])]  # the last has a quarter of its joints in view: left out
    det = GroundTruthDetector(min_visible=0.5).detect_frame(SimpleNamespace(ground_truth=SimpleNamespace(people=people)))
    np.testing.assert_array_equal(det.boxes, [[0, 0, 50, 80], [0, 0, 10, 10]])
    assert len(GroundTruthDetector(max_persons=1).detect_frame(
        SimpleNamespace(ground_truth=SimpleNamespace(people=people)))) == 1
    with pytest.raises(ModelError, match="needs frames with ground truth"):
        GroundTruthDetector().detect_frame(SimpleNamespace(ground_truth=None))


def _yxyx(boxes_xyxy: list[list[float]], wh: tuple[int, int] = (100, 100)) -> np.ndarray:
    w, h = wh
    b = np.asarray(boxes_xyxy, np.float32)
    return np.stack([b[:, 1] / h, b[:, 0] / w, b[:, 3] / h, b[:, 2] / w], 1)[None]


def test_ssd_decoded_does_the_graphs_nms_first_then_the_merge() -> None:
    """Three full-height boxes A > B > C: IoU(A, B) 0.54, IoU(B, C) 0.67, IoU(A, C) 0.33.  The TF graph's NMS
    (0.6) keeps A and B and drops C under B; the merge (0.5) then drops B: only A, as the uncut graph gave.  One
    NMS at 0.5 would have kept C (it overlaps A by 0.33 only)."""
    from realtime.detectors import _ssd_decoded_post

    xyxy = np.asarray([[0, 0, 40, 100], [12, 0, 52, 100], [20, 0, 60, 100]], np.float32)
    scores = np.array([[[0.0, 0.9], [0.0, 0.8], [0.0, 0.7]]], np.float32)
    det = _ssd_decoded_post({"boxes": _yxyx(xyxy.tolist()), "scores": scores}, (), (100, 100), 1, 0.3, 0.5)
    np.testing.assert_allclose(det.boxes, [[0, 0, 40, 99]], atol=1e-4)  # clipped to the frame like every family
    assert nms(xyxy, scores[0, :, 1], 0.5).tolist() == [0, 2]  # what a single NMS would have said
    assert nms(xyxy, scores[0, :, 1], 0.6).tolist() == [0, 1]  # the graph's own step


def test_ssd_decoded_threshold_class_clip_and_per_class_cap() -> None:
    from realtime.detectors import _bind_ssd_decoded, _ssd_decoded_post

    boxes = _yxyx([[-10, -5, 30, 50], [60, 60, 90, 120], [0, 60, 20, 90], [70, 0, 95, 30]])
    scores = np.array([[[0.1, 0.9, 0.0], [0.2, 0.5, 0.95], [0.1, 0.25, 0.0], [0.0, 0.6, 0.0]]], np.float32)
    det = _ssd_decoded_post({"boxes": boxes, "scores": scores}, (), (100, 100), 1, 0.3, 0.5)
    np.testing.assert_allclose(det.scores, [0.9, 0.6, 0.5])  # class 1's column only, 0.25 under the threshold
    np.testing.assert_allclose(det.boxes[0], [0, 0, 30, 50], atol=1e-4)  # clipped into the frame
    np.testing.assert_allclose(det.boxes[2], [60, 60, 90, 99], atol=1e-4)
    capped = _bind_ssd_decoded({"mca.nms_iou": "0.6", "mca.max_per_class": "2"})
    assert len(capped({"boxes": boxes, "scores": scores}, (), (100, 100), 1, 0.3, 0.5)) == 2
    with pytest.raises(ModelError, match="beyond the model's 3 score columns"):
        _ssd_decoded_post({"boxes": boxes, "scores": scores}, (), (100, 100), 3, 0.3, 0.5)
    with pytest.raises(ModelError, match="outputs 'boxes' and 'scores'"):
        _ssd_decoded_post({"detection_boxes": boxes}, (), (100, 100), 1, 0.3, 0.5)
    with pytest.raises(ModelError, match="not a number"):
        _bind_ssd_decoded({"mca.nms_iou": "wide"})
