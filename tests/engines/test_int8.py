"""engines.int8: the symmetric INT8 file's activations as uint8 (zero point 128) for ONNX Runtime's CPU kernels."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the rewrite edits ONNX graphs with the onnx package")


@pytest.fixture(scope="module")
def qdq_pose(small_pose, tmp_path_factory):
    from calibration.build import build_calibration_set
    from calibration.quantize import quantize_qdq

    cal = build_calibration_set(["synthetic:8"], small_pose, None, 16, 50, 4.0, seed=1)
    return small_pose, quantize_qdq(small_pose, cal, tmp_path_factory.mktemp("int8") / "pose.int8.onnx")


def _zero_point_types(m) -> dict[str, set[int]]:
    inits = {t.name: t for t in m.graph.initializer}
    out: dict[str, set[int]] = {"weights": set(), "activations": set()}
    for n in m.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2:
            kind = "weights" if n.input[0] in inits else "activations"
            out[kind].add(inits[n.input[2]].data_type)
    return out


def test_rewrite_moves_only_activations_to_uint8(qdq_pose) -> None:
    from onnx import TensorProto, numpy_helper

    from engines.int8 import activations_to_uint8

    m = onnx.load(str(qdq_pose[1]))
    assert _zero_point_types(m)["activations"] == {TensorProto.INT8}
    n = activations_to_uint8(m)
    assert n > 0
    types = _zero_point_types(m)
    assert types["activations"] == {TensorProto.UINT8}
    assert types["weights"] <= {TensorProto.INT8, TensorProto.INT32} and TensorProto.INT8 in types["weights"]
    inits = {t.name: t for t in m.graph.initializer}
    for node in m.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits:
            assert np.all(numpy_helper.to_array(inits[node.input[2]]) == 128)
    onnx.checker.check_model(m)
    assert activations_to_uint8(m) == 0, "a second pass finds nothing left to change"


def test_cpu_backend_fuses_integer_convolutions_and_keeps_the_numbers(qdq_pose, tmp_path) -> None:
    import onnxruntime as ort

    from engines.ort import OrtBackend

    fp32, int8 = qdq_pose
    fast = OrtBackend(int8)
    plain = OrtBackend(int8, uint8_activations=False)
    assert fast.int8_rewritten > 0 and plain.int8_rewritten == 0
    x = np.random.default_rng(0).integers(0, 255, (3, 128, 128, 3), dtype=np.uint8)
    ref = OrtBackend(fp32).run(x)[0]
    a, b = fast.run(x)[0], plain.run(x)[0]
    # same scales and zero points; the fused integer kernels round differently (the file keeps float Conv biases,
    # which TensorRT needs, and ONNX Runtime's integer kernels quantize them itself), so what is asserted is that the
    # fast path is no less accurate against FP32 than the plain Q/DQ path
    step = np.abs(ref).max() / 127
    assert not np.array_equal(a, b)
    assert np.abs(a - ref).max() <= np.abs(b - ref).max() + 8 * step
    assert np.abs(a - ref).mean() <= np.abs(b - ref).mean() + step
    # and ONNX Runtime now runs integer convolutions (QLinearConv) instead of float ones between Q/DQ pairs
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    from engines.int8 import activations_to_uint8

    m = onnx.load(str(int8))
    activations_to_uint8(m)
    ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert ops.count("QLinearConv") > 0.9 * sum(op in ("Conv", "QLinearConv") for op in ops)


def test_relus_fuse_into_integer_kernels_and_the_graph_stays_integer(qdq_pose, tmp_path) -> None:
    """ReLU outputs at uint8 zero point 0, upsampling as a copy: ONNX Runtime runs the chain without float islands."""
    import json

    import onnxruntime as ort
    from onnx import numpy_helper

    from engines.int8 import prepare_for_cpu

    m = onnx.load(str(qdq_pose[1]))
    meta = json.loads({p.key: p.value for p in m.metadata_props}["mca.quantization"])
    assert meta["relu_scales_tied"] > 0 and meta["batchnorms_as_depthwise"] > 0
    assert any(n.op_type == "Resize" for n in m.graph.node), "the file keeps Resize (TensorRT's is fast)"
    assert prepare_for_cpu(m)[0] > 0
    inits = {t.name: t for t in m.graph.initializer}
    producer = {o: node for node in m.graph.node for o in node.output}
    for node in m.graph.node:  # zero point 0 only where the values cannot be negative
        if node.op_type == "QuantizeLinear" and node.input[2] in inits and not numpy_helper.to_array(
                inits[node.input[2]]).any() and node.input[0] not in inits:
            assert producer[node.input[0]].op_type in ("Relu", "MaxPool", "Resize", "Reshape", "Transpose", "Flatten")
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    opt = onnx.load(str(tmp_path / "opt.onnx")).graph.node
    ops = [node.op_type for node in opt]
    assert "Relu" not in ops and "BatchNormalization" not in ops and "Resize" not in ops
    # the only float convolutions left are the one-channel CRF iterations calibration.quantize keeps float
    assert all("crf_kernel" in node.name for node in opt if node.op_type == "Conv")
    assert ops.count("QLinearConv") > 10 * max(1, ops.count("Conv"))


def _resize_qdq(scale: float, shape: list) -> "onnx.ModelProto":
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(scale, np.float32), "s"), numpy_helper.from_array(np.array(128, np.uint8), "z"),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
             helper.make_node("Resize", ["d", "", "sc"], ["r"], mode="nearest", coordinate_transformation_mode="asymmetric",
                              nearest_mode="floor", name="up"),
             helper.make_node("QuantizeLinear", ["r", "s", "z"], ["rq"]),
             helper.make_node("DequantizeLinear", ["rq", "s", "z"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])


@pytest.mark.parametrize("batch", [1, 3])
def test_upsample_becomes_an_exact_uint8_copy(batch: int) -> None:
    import onnxruntime as ort

    from engines.int8 import upsample_as_expand

    x = np.random.default_rng(batch).normal(0, 1, (batch, 5, 4, 6)).astype(np.float32)
    ref = _resize_qdq(0.02, ["n", 5, 4, 6])
    m = _resize_qdq(0.02, ["n", 5, 4, 6])
    assert upsample_as_expand(m) == 1 and "Resize" not in [n.op_type for n in m.graph.node]
    run = lambda model: ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(  # noqa: E731
        None, {"x": x})[0]
    a, b = run(ref), run(m)
    assert b.shape == (batch, 5, 8, 12)
    np.testing.assert_array_equal(a, b)


def test_upsample_without_static_sizes_or_with_other_scales_is_left_alone() -> None:
    from engines.int8 import upsample_as_expand

    assert upsample_as_expand(_resize_qdq(0.02, ["n", "c", "h", "w"])) == 0
    m = _resize_qdq(0.02, [1, 5, 4, 6])
    next(t for t in m.graph.initializer if t.name == "sc").CopyFrom(
        onnx.numpy_helper.from_array(np.array([1, 1, 3, 3], np.float32), "sc"))
    assert upsample_as_expand(m) == 0
