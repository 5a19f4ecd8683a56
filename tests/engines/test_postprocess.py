"""The post-processing graphs: the in-graph heatmap decode equals mca.heatmaps.decode_heatmaps, and the
YOLO top-k candidates give the host decode the same detections as the full output."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the graph builders need the 'onnx' package")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from engines.base import ModelError  # noqa: E402
from engines.postprocess import CANDIDATES, PEAK_SCORES, PEAKS, with_heatmap_decode, with_yolo_candidates  # noqa: E402
from mca import heatmaps as H  # noqa: E402
from realtime.detectors import _yolo_post  # noqa: E402


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _identity_pose(k: int, h: int, w: int):
    """A 'pose model' whose heatmaps are its input, plus an attention output the decode drops."""
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["heatmaps"]),
                           helper.make_node("Identity", ["x"], ["part_attention"])], "pose",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", k, h, w])],
                          [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["batch", k, h, w]),
                           helper.make_tensor_value_info("part_attention", TensorProto.FLOAT, ["batch", k, h, w])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _hard_heatmaps(n: int = 6, k: int = 5, h: int = 9, w: int = 11, seed: int = 0) -> np.ndarray:
    """Random maps plus the cases that trip a decoder: peaks on every border, ties, plateaus, all negative."""
    rng = np.random.default_rng(seed)
    hm = rng.normal(size=(n, k, h, w)).astype(np.float32)
    hm[0, 0, 0, 0] = hm[0, 1, -1, -1] = hm[0, 2, 0, -1] = hm[0, 3, -1, 3] = 9.0  # corners and edges
    hm[1, 0] = 1.0  # a plateau: first index wins, both neighbours equal
    hm[1, 1, 4, 5] = hm[1, 1, 2, 7] = 7.0  # a tie between two peaks
    hm[1, 2, 4, 5], hm[1, 2, 4, 6], hm[1, 2, 4, 4] = 5.0, 4.0, 4.0  # equal neighbours: no shift
    hm[2] = -np.abs(hm[2]) - 1  # nothing positive
    return hm


@pytest.mark.parametrize("refine", ["quarter", "none"])
def test_heatmap_decode_equals_decode_heatmaps(refine: str) -> None:
    hm = _hard_heatmaps()
    m = with_heatmap_decode(_identity_pose(5, 9, 11), refine, keep=("heatmaps",))
    assert [o.name for o in m.graph.output] == ["heatmaps", PEAKS, PEAK_SCORES]
    peaks, scores = _session(m).run([PEAKS, PEAK_SCORES], {"x": hm})
    want, conf = H.decode_heatmaps(hm, refine=refine)
    np.testing.assert_array_equal(peaks, want)
    np.testing.assert_array_equal(scores, conf)


def test_heatmap_decode_on_the_bundled_pose_model() -> None:
    from realtime.models import bundled_path

    path = bundled_path("mca_tiny_synth")
    if not path.exists():
        pytest.skip("bundled pose model missing")
    m = with_heatmap_decode(str(path))
    assert [o.name for o in m.graph.output] == [PEAKS, PEAK_SCORES]  # attention outputs dropped
    full = _session(onnx.load(str(path)))
    x = np.random.default_rng(1).integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    peaks, scores = _session(m).run(None, {"crops": x})
    want, conf = H.decode_heatmaps(full.run(["heatmaps"], {"crops": x})[0])
    np.testing.assert_array_equal(peaks, want)
    np.testing.assert_array_equal(scores, conf)


def test_heatmap_decode_rejects_what_it_cannot_do() -> None:
    with pytest.raises(ModelError, match="gaussian"):
        with_heatmap_decode(_identity_pose(2, 4, 4), "gaussian")
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    with pytest.raises(ModelError, match="no output 'heatmaps'"):
        with_heatmap_decode(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def _constant_head(raw: np.ndarray):
    g = helper.make_graph([helper.make_node("Add", ["x", "raw"], ["output0"])], "yolo",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(raw.shape))],
                          [onnx.numpy_helper.from_array(raw, "raw")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_yolo_candidates_keep_the_top_person_scores_and_the_same_detections() -> None:
    rng = np.random.default_rng(0)
    a = 500
    raw = np.zeros((1, 4 + 3, a), np.float32)
    raw[0, :2] = rng.uniform(0, 320, (2, a))
    raw[0, 2:4] = rng.uniform(5, 80, (2, a))
    raw[0, 4:] = rng.uniform(0, 1, (3, a)) ** 8  # few confident anchors, as a real head has
    m = with_yolo_candidates(_constant_head(raw), person_class=1, k=100)
    cand = _session(m).run([CANDIDATES], {"x": np.zeros(1, np.float32)})[0]
    assert cand.shape == (1, 5, 100)
    order = np.argsort(-raw[0, 5], kind="stable")[:100]
    np.testing.assert_array_equal(cand[0, 4], raw[0, 5, order])
    np.testing.assert_array_equal(cand[0, :4], raw[0, :4][:, order])
    ctx = (0.5, (0.0, 40.0))
    want = _yolo_post({"output0": raw}, ctx, (640, 480), 1, 0.25, 0.5)
    got = _yolo_post({CANDIDATES: cand}, ctx, (640, 480), 0, 0.25, 0.5)
    assert (raw[0, 5] >= 0.25).sum() < 100  # the top-k holds every candidate above the threshold
    np.testing.assert_array_equal(got.boxes, want.boxes)
    np.testing.assert_array_equal(got.scores, want.scores)


def test_yolo_candidates_reject_a_missing_class() -> None:
    with pytest.raises(ModelError, match="person class 3"):
        with_yolo_candidates(_constant_head(np.zeros((1, 6, 10), np.float32)), person_class=3)
