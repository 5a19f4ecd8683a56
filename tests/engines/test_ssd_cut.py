"""engines.ssd_cut on a miniature TF Object Detection API export, and the NumPy NMS that replaces the graph's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the cut rewrites ONNX graphs (the 'int8' extra)")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from engines.base import ModelError  # noqa: E402
from engines.ssd_cut import cut_ssd  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / "realtime" / "models"
NMS_SCOPE = "Postprocessor/BatchMultiClassNonMaxSuppression/map/while/MultiClassNonMaxSuppression/non_max_suppression"
W = np.array([[0.5, -0.2, 0.1], [0.3, 0.3, 0.3], [-0.4, 0.2, 0.6], [0.1, 0.9, -0.3], [1.0, 0.0, 0.0],
              [0.0, -1.0, 0.5]], np.float32)  # 6 output channels (4 box + 2 scores) of a 1x1 convolution


def tf_like_ssd() -> "onnx.ModelProto":
    """What tf2onnx writes for a TF1 SSD, in miniature: Cast, a resize Loop writing NCHW, x / 127.5 - 1, a
    convolution, box and score tensors reshaped through Shape arithmetic, and an NMS Loop reading them."""
    T = TensorProto
    # the pre-processing loop: one iteration, the image as (3, H, W) (the real one resizes, the same tensor names)
    body_pre = helper.make_graph(
        [helper.make_node("Gather", ["ToFloat:0", "zero"], ["img"], axis=0),
         helper.make_node("Transpose", ["img"], ["chw"], perm=[2, 0, 1]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "pre", [helper.make_tensor_value_info("i", T.INT64, []), helper.make_tensor_value_info("cond_in", T.BOOL, [])],
        [helper.make_tensor_value_info("cond_out", T.BOOL, []), helper.make_tensor_value_info("chw", T.FLOAT, None)],
        [numpy_helper.from_array(np.array(0, np.int64), "zero")])
    body_nms = helper.make_graph(
        [helper.make_node("Transpose", ["Postprocessor/convert_scores:0"], ["s"], perm=[0, 2, 1]),
         helper.make_node("NonMaxSuppression", ["Postprocessor/Reshape_2:0", "s", "max_out",
                                                f"{NMS_SCOPE}/iou_threshold:0", f"{NMS_SCOPE}/score_threshold:0"],
                          ["sel"], name="nms"),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "nms", [helper.make_tensor_value_info("i", T.INT64, []), helper.make_tensor_value_info("cond_in", T.BOOL, [])],
        [helper.make_tensor_value_info("cond_out", T.BOOL, []), helper.make_tensor_value_info("sel", T.INT64, None)],
        [numpy_helper.from_array(np.array([7], np.int64), "max_out")])
    nodes = [
        helper.make_node("Cast", ["image_tensor:0"], ["ToFloat:0"], to=T.FLOAT, name="ToFloat"),
        helper.make_node("Loop", ["trips", "cond"], ["Preprocessor/map/TensorArrayStack/TensorArrayGatherV3:0"],
                         body=body_pre, name="pre_loop"),
        helper.make_node("Mul", ["Preprocessor/map/TensorArrayStack/TensorArrayGatherV3:0", "scale"], ["m:0"]),
        helper.make_node("Sub", ["m:0", "one"], ["Preprocessor/sub:0"]),
        helper.make_node("Conv", ["Preprocessor/sub:0", "w"], ["conv:0"], strides=[150, 150]),  # (1, 6, 2, 2)
        helper.make_node("Transpose", ["conv:0"], ["nhwc:0"], perm=[0, 2, 3, 1]),
        helper.make_node("Shape", ["nhwc:0"], ["shape:0"]),
        helper.make_node("Gather", ["shape:0", "zero_i"], ["batch:0"], axis=0),
        helper.make_node("Concat", ["batch:0", "minus_one", "six"], ["rs:0"], axis=0),
        helper.make_node("Reshape", ["nhwc:0", "rs:0"], ["flat:0"]),  # (1, 4 anchors, 6)
        helper.make_node("Slice", ["flat:0", "s0", "s4", "ax2"], ["Postprocessor/Reshape_2:0"]),
        helper.make_node("Slice", ["flat:0", "s4", "s6", "ax2"], ["logits:0"]),
        helper.make_node("Sigmoid", ["logits:0"], ["Postprocessor/convert_scores:0"]),
        helper.make_node("Loop", ["trips", "cond"], ["detection_boxes:0"], body=body_nms, name="nms_loop"),
    ]
    c = numpy_helper.from_array
    inits = [c(np.array(1, np.int64), "trips"), c(np.array(True), "cond"), c(np.array(1 / 127.5, np.float32), "scale"),
             c(np.array(1.0, np.float32), "one"), c(W.reshape(6, 3, 1, 1), "w"), c(np.array([0], np.int64), "zero_i"),
             c(np.array([-1], np.int64), "minus_one"), c(np.array([6], np.int64), "six"),
             c(np.array([0], np.int64), "s0"), c(np.array([4], np.int64), "s4"), c(np.array([6], np.int64), "s6"),
             c(np.array([2], np.int64), "ax2"), c(np.array(0.6, np.float32), f"{NMS_SCOPE}/iou_threshold:0"),
             c(np.array(1e-8, np.float32), f"{NMS_SCOPE}/score_threshold:0")]
    g = helper.make_graph(nodes, "tf_ssd", [helper.make_tensor_value_info("image_tensor:0", T.UINT8,
                                                                          [None, None, None, 3])],
                          [helper.make_tensor_value_info("detection_boxes:0", T.INT64, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.metadata_props.add(key="mca.detector_family", value="ssd")
    return m


def test_cut_keeps_the_network_and_drops_the_loops() -> None:
    m = tf_like_ssd()
    meta = cut_ssd(m)
    assert meta["mca.detector_family"] == "ssd_decoded" and meta["mca.nms_iou"] == "0.6"
    assert meta["mca.max_per_class"] == "7"  # the NMS node's max_output_boxes_per_class constant
    assert not any(n.op_type in ("Loop", "Shape") for n in m.graph.node)  # loops cut, shape arithmetic folded
    assert [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim] == [1, 300, 300, 3]
    assert {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in m.graph.output} == {
        "boxes": [1, 4, 4], "scores": [1, 4, 2]}
    img = np.random.default_rng(0).integers(0, 256, (1, 300, 300, 3), dtype=np.uint8)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    boxes, scores = sess.run(["boxes", "scores"], {"image_tensor:0": img})
    # NumPy reference: x / 127.5 - 1 at the 1x1 convolution's stride-150 taps, anchors in row-major order
    x = img[0, ::150, ::150].reshape(4, 3).astype(np.float32) / 127.5 - 1
    ref = x @ W.T
    np.testing.assert_allclose(boxes[0], ref[:, :4], rtol=1e-5, atol=1e-5)  # channels were read as RGB, in order
    np.testing.assert_allclose(scores[0], 1 / (1 + np.exp(-ref[:, 4:])), rtol=1e-5, atol=1e-6)


def test_a_graph_that_is_not_a_tf_ssd_export_is_refused() -> None:
    m = tf_like_ssd()
    cut_ssd(m)
    with pytest.raises(ModelError, match="not a TF Object Detection API SSD export"):
        cut_ssd(m)  # already cut


@pytest.mark.skipif(not (MODELS / "person_ssdlite.onnx").exists(), reason="the bundled models are not in this checkout")
def test_the_bundled_ssdlite_is_the_cut_graph() -> None:
    m = onnx.load(str(MODELS / "person_ssdlite.onnx"))
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["mca.detector_family"] == "ssd_decoded" and float(meta["mca.nms_iou"]) == pytest.approx(0.6)
    assert not any(n.op_type == "Loop" for n in m.graph.node)
    assert [o.name for o in m.graph.output] == ["boxes", "scores"]
