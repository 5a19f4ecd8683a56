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


def _saturating_conv(path, channels: int = 64):
    """One Q/DQ convolution as calibration.quantize writes it (int8 symmetric), whose exact output is 100 steps.

    Every input at +127 steps (uint8 255 after the CPU rewrite) meets every weight at +127: on x86 without VNNI
    each pair of u8 x s8 products (64770) overflows the int16 that VPMADDUBSW adds them in.
    """
    from onnx import TensorProto, helper, numpy_helper

    c = channels
    init = [numpy_helper.from_array(np.array(1 / 127, np.float32), "xs"), numpy_helper.from_array(np.array(0, np.int8), "xz"),
            numpy_helper.from_array(np.full((1, c, 1, 1), 127, np.int8), "w"),
            numpy_helper.from_array(np.array([1 / 127], np.float32), "ws"), numpy_helper.from_array(np.array([0], np.int8), "wz"),
            numpy_helper.from_array(np.array(c / 100, np.float32), "ys"), numpy_helper.from_array(np.array(0, np.int8), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["c"], name="conv"),
             helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", c, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    helper.set_model_props(m, {"mca.precision": "int8"})
    onnx.save(m, str(path))
    return path


def test_the_planned_weights_give_exact_integer_sums_on_this_cpu(tmp_path) -> None:
    """The default (engines.cpu.int8_plan) must never clip: 100 steps out, exactly, on whatever CPU runs this."""
    from engines.ort import OrtBackend

    x = np.ones((1, 64, 4, 4), np.float32)
    b = OrtBackend(_saturating_conv(tmp_path / "conv.onnx"))
    assert b.int8_rewritten > 0 and b.weight_bits in (7, 8)
    np.testing.assert_allclose(b.run(x)[0], 64.0, rtol=0.02)


def test_eight_bit_weights_saturate_exactly_where_the_plan_says_seven(tmp_path) -> None:
    """The feature detection against the kernels themselves: 8-bit sums clip on AVX2 without VNNI, not with VNNI / dot."""
    from engines.cpu import cpu_features
    from engines.ort import OrtBackend

    x = np.ones((1, 64, 4, 4), np.float32)
    p = _saturating_conv(tmp_path / "conv.onnx")
    seven, eight = OrtBackend(p, weight_bits=7), OrtBackend(p, weight_bits=8)
    assert (seven.weight_bits, eight.weight_bits) == (7, 8)
    np.testing.assert_allclose(seven.run(x)[0], 64.0, rtol=0.02)
    exact8 = bool(np.allclose(eight.run(x)[0], 64.0, rtol=0.02))
    kernel = cpu_features().kernel
    if kernel in ("vnni", "arm-dot"):
        assert exact8, f"{kernel}: 8-bit weights should be exact"
    elif kernel == "avx2":
        assert not exact8, "AVX2 without VNNI: 8-bit pair sums should saturate (if not, 8 bits would be safe here)"
    else:
        pytest.skip(f"integer kernel family {kernel!r}: no expectation for 8-bit weights")


def test_weights_to_7bit_keeps_the_float_range_and_skips_depthwise(qdq_pose) -> None:
    from onnx import helper, numpy_helper

    from engines.graph import graph_maps
    from engines.int8 import weights_to_7bit

    def weights(m):
        inits = {t.name: t for t in m.graph.initializer}
        _, consumers = graph_maps(m)
        out = {}
        for n in m.graph.node:
            if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].data_type == 3:
                readers = consumers.get(n.output[0], [])
                if not readers or readers[0].op_type != "Conv":
                    continue
                group = next((helper.get_attribute_value(a) for a in readers[0].attribute if a.name == "group"), 1)
                q = numpy_helper.to_array(inits[n.input[0]]).astype(np.float64)
                s = numpy_helper.to_array(inits[n.input[1]]).astype(np.float64)
                s = s.reshape([-1] + [1] * (q.ndim - 1)) if s.ndim else s
                out[n.output[0]] = (q, q * s, s, group > 1 and q.shape[1] == 1)
        return out

    m = onnx.load(str(qdq_pose[1]))
    before = weights(m)
    assert weights_to_7bit(m) > 0
    after = weights(m)
    assert after.keys() == before.keys()
    for k, (q7, w7, s7, dw) in after.items():
        q8, w8, s8, _ = before[k]
        if dw:
            np.testing.assert_array_equal(q7, q8)  # depthwise kernels accumulate in int32: 8 bits kept
            continue
        assert np.abs(q7).max() <= 63
        assert np.all(np.abs(w7 - w8) <= 0.5 * s7 + 1e-12), "7-bit weights within half a 7-bit step of the 8-bit ones"
        np.testing.assert_allclose(np.abs(w7).max(axis=tuple(range(1, w7.ndim))),
                                   np.abs(w8).max(axis=tuple(range(1, w8.ndim))), rtol=1e-6)
    onnx.checker.check_model(m)
    assert weights_to_7bit(m) == 0, "a second pass finds nothing left to change"


@pytest.mark.parametrize("bits", [7, 8])
def test_both_weight_paths_against_their_arithmetic_and_the_float_reference(qdq_pose, bits: int) -> None:
    """The fused integer run of each weight width against the same graph run op by op in float (what its Q/DQ
    nodes say), and against FP32; 8 bits is held to the tight bound only where the plan would pick it."""
    import onnxruntime as ort

    from engines.cpu import int8_plan
    from engines.int8 import prepare_for_cpu
    from engines.ort import OrtBackend

    fp32, int8 = qdq_pose
    x = np.random.default_rng(0).integers(0, 255, (3, 128, 128, 3), dtype=np.uint8)
    ref = OrtBackend(fp32).run(x)[0]
    fused = OrtBackend(int8, weight_bits=bits)
    assert fused.weight_bits == bits
    got = fused.run(x)[0]
    m = onnx.load(str(int8))
    prepare_for_cpu(m, bits)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    arith = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"crops": x})[0]
    peak = np.abs(ref).max()
    assert np.abs(arith - ref).max() <= 0.06 * peak and np.abs(arith - ref).mean() <= 0.01 * peak
    if bits == 7 or int8_plan(env={}).weight_bits == 8:
        assert np.abs(got - arith).max() <= 0.035 * peak and np.abs(got - arith).mean() <= 0.004 * peak
    assert np.abs(got - ref).max() <= 0.08 * peak and np.abs(got - ref).mean() <= 0.01 * peak


def test_initializers_read_only_inside_a_subgraph_survive_the_cpu_step() -> None:
    """An If/Loop body reads outer initializers by name (SSD's NMS does): dropping "unused" ones must see those reads."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from engines.int8 import prepare_for_cpu

    then = helper.make_graph([helper.make_node("Add", ["d", "outer"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Identity", ["d"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z"),
             numpy_helper.from_array(np.array(True), "cond"), numpy_helper.from_array(np.full((1, 4), 5, np.float32), "outer")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    assert prepare_for_cpu(m)[0] == 2
    assert "outer" in {t.name for t in m.graph.initializer}
    x = np.array([[0.1, 0.2, -0.3, 1.0]], np.float32)
    y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, x + 5, atol=0.011)
