"""scripts/train_real_detector.py: pseudo-boxes, the held-out frames it must never read, the metadata stamp."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trd():
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("train_real_detector_script", ROOT / "scripts" / "train_real_detector.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_keypoint_box_grows_for_head_and_feet_and_stays_in_the_frame(trd) -> None:
    kps = np.zeros((17, 2))
    kps[:, 0] = np.linspace(100, 120, 17)
    kps[:, 1] = np.linspace(50, 150, 17)  # eyes at 50, ankles at 150: 100 px tall
    ok = np.ones(17, bool)
    x0, y0, x1, y1 = trd.keypoint_box(kps, ok, (640, 480))
    assert y0 == pytest.approx(35.0) and y1 == pytest.approx(157.0)  # 15 % above the eyes, 7 % below the ankles
    assert x0 < 100 and x1 > 120  # width at least a quarter of the height, grown on both sides
    ok[:] = False
    ok[[0, 16]] = True
    kps[0] = (2, 1)
    x0, y0, _, _ = trd.keypoint_box(kps, ok, (640, 480))
    assert x0 == 0.0 and y0 == 0.0  # clipped, never negative


def test_pseudo_boxes_add_only_ssdlite_boxes_no_multipose_person_covers(trd) -> None:
    kps = np.zeros((1, 17, 2))
    kps[0, :, 0] = np.linspace(100, 130, 17)
    kps[0, :, 1] = np.linspace(100, 200, 17)
    scores = np.ones((1, 17))
    multipose = SimpleNamespace(estimate=lambda img: SimpleNamespace(keypoints=kps, scores=scores,
                                                                     box_scores=np.array([0.9])))
    ssd_boxes = np.array([[95.0, 85.0, 135.0, 207.0],   # the multipose person again: dropped
                          [400.0, 100.0, 440.0, 200.0],  # someone multipose missed: kept
                          [500.0, 100.0, 540.0, 200.0]])  # under the score: dropped
    ssdlite = SimpleNamespace(detect=lambda img: SimpleNamespace(boxes=ssd_boxes, scores=np.array([0.9, 0.5, 0.2])))
    img = np.zeros((480, 640, 3), np.uint8)
    boxes, n_mp, n_ssd = trd.pseudo_boxes(img, multipose, ssdlite, 0.3, 0.3, 6, 0.35, 0.3)
    assert (n_mp, n_ssd) == (1, 1)
    np.testing.assert_allclose(boxes[1], ssd_boxes[1])
    scores[0, 6:] = 0.0  # only 6 confident keypoints ... still a person
    assert trd.pseudo_boxes(img, multipose, ssdlite, 0.3, 0.3, 6, 0.35, 0.3)[1] == 1
    scores[0, 5:] = 0.0  # 5: not a person any more, and the SSDLite box over it becomes a label
    _, n_mp, n_ssd = trd.pseudo_boxes(img, multipose, ssdlite, 0.3, 0.3, 6, 0.35, 0.3)
    assert (n_mp, n_ssd) == (0, 2)


def test_real_images_never_read_the_held_out_quarter(trd, tmp_path: Path) -> None:
    video = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(100):
        w.write(np.full((48, 64, 3), i, np.uint8))
    w.release()
    from mca.data.pseudo_labels import split_frames

    held_out = set(int(i) for i in split_frames(100, 0, 100, 0.25)[1])
    got = trd.real_images(video, 1, [])
    idx = [int(name.split("_")[1]) for name, _ in got]
    assert idx == list(range(min(held_out) - 20))  # everything before the held-out quarter and its gap
    assert not held_out & set(idx)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        trd.real_images(video, 1, [tmp_path / "nope.png"])


def test_stamp_writes_the_detector_metadata_the_runtime_reads(trd, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx", reason="onnx writes the test model")
    from onnx import helper

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])])
    m = helper.make_model(g)
    m.metadata_props.add(key="names", value="{0: 'person'}")
    m.metadata_props.add(key="mca.domain", value="stale")
    src = tmp_path / "export.onnx"
    onnx.save(m, str(src))
    import train_demo_detector

    train_demo_detector.stamp(src, tmp_path / "out" / "det.onnx", 320, domain="real+synthetic", train_s=12.3,
                              source="test")
    props = [(p.key, p.value) for p in onnx.load(str(tmp_path / "out" / "det.onnx")).metadata_props]
    meta = dict(props)
    assert meta["names"] == "{0: 'person'}"  # the exporter's own entries kept
    assert meta["mca.domain"] == "real+synthetic" and meta["mca.detector_family"] == "yolo"
    assert meta["mca.input_size"] == "320" and meta["mca.train_seconds"] == "12"
    assert [k for k, _ in props].count("mca.domain") == 1  # replaced, not added twice


def test_without_ultralytics_it_is_one_error_line(trd, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # import fails whether or not it is installed
    assert trd.main(["--work", "/nonexistent"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ultralytics is not installed")
