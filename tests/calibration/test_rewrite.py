"""calibration.rewrite: graph changes around quantization that must not change a single output."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the rewrites edit ONNX graphs with the onnx package")
ort = pytest.importorskip("onnxruntime", reason="outputs are compared in ONNX Runtime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from calibration.rewrite import batchnorm_to_depthwise, input_prologue_nodes, tie_relu_input_scales  # noqa: E402


def _run(model, x: np.ndarray, optimize: bool = True) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})


@pytest.fixture(scope="module")
def module_graph(tmp_path_factory):
    """A small pose model exported as the plain module graph (BatchNorms and Resizes present), shapes inferred."""
    torch = pytest.importorskip("torch", reason="making the test model needs PyTorch")
    from engines.export import ExportOptions, export_pose
    from tests.conftest import small_pose_model

    model = small_pose_model()
    for m in model.modules():  # BN statistics away from identity, so a wrong fold shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(-1.0, 1.5)
    path = export_pose(model, tmp_path_factory.mktemp("rw") / "m.onnx", ExportOptions(deploy=False))
    return onnx.shape_inference.infer_shapes(onnx.load(str(path)))


CROPS = np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)


def _copy(m):
    c = onnx.ModelProto()
    c.CopyFrom(m)
    return c


def test_batchnorm_becomes_an_equal_depthwise_convolution(module_graph) -> None:
    m = _copy(module_graph)
    n_bn = sum(n.op_type == "BatchNormalization" for n in m.graph.node)
    n_conv = sum(n.op_type == "Conv" for n in m.graph.node)
    assert n_bn > 0
    assert batchnorm_to_depthwise(m) == n_bn
    assert not any(n.op_type == "BatchNormalization" for n in m.graph.node)
    assert sum(n.op_type == "Conv" for n in m.graph.node) == n_conv + n_bn
    onnx.checker.check_model(m)
    (a,), (b,) = _run(module_graph, CROPS), _run(m, CROPS)
    assert np.abs(a - b).max() <= 1e-5 * max(1.0, float(np.abs(a).max()))


def _relu_qdq(s1: float, s2: float):
    """X -> Q1(s1) -> DQ1 -> Relu -> Q2(s2) -> DQ2 -> Y, symmetric int8 as calibration.quantize writes it."""
    inits = [numpy_helper.from_array(np.array(s1, np.float32), "s1"), numpy_helper.from_array(np.array(s2, np.float32), "s2"),
             numpy_helper.from_array(np.array(0, np.int8), "z1"), numpy_helper.from_array(np.array(0, np.int8), "z2")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s1", "z1"], ["q1"]),
             helper.make_node("DequantizeLinear", ["q1", "s1", "z1"], ["d1"]),
             helper.make_node("Relu", ["d1"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "s2", "z2"], ["q2"]),
             helper.make_node("DequantizeLinear", ["q2", "s2", "z2"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])


@pytest.mark.parametrize("s1,s2", [(0.05, 0.02), (0.01, 0.03), (0.02, 0.02)])
def test_tied_relu_scales_give_exactly_relu_then_one_quantization(s1: float, s2: float) -> None:
    m = _relu_qdq(s1, s2)
    assert tie_relu_input_scales(m) == 1  # Q1/DQ1 now read Q2's scale and zero point
    assert tie_relu_input_scales(m) == 0, "a second pass finds nothing"
    x = np.linspace(-3, 3, 64, dtype=np.float32)
    (y,) = _run(m, x, optimize=False)  # the Q/DQ arithmetic as written, no fusion
    want = np.clip(np.round(np.maximum(x, 0) / s2), -128, 127) * np.float32(s2)
    np.testing.assert_array_equal(y, want.astype(np.float32))


def test_relu_with_a_second_reader_is_not_tied() -> None:
    m = _relu_qdq(0.05, 0.02)
    m.graph.node.append(helper.make_node("Identity", ["d1"], ["d1_copy"]))
    m.graph.output.append(helper.make_tensor_value_info("d1_copy", TensorProto.FLOAT, [64]))
    assert tie_relu_input_scales(m) == 0


def test_input_prologue_is_the_normalisation(module_graph) -> None:
    names = input_prologue_nodes(module_graph)
    ops = {n.name: n.op_type for n in module_graph.graph.node}
    assert names and {ops[n] for n in names} >= {"Cast", "Mul", "Sub"}
    assert "Conv" not in {ops[n] for n in names}


def test_single_channel_nodes_are_the_holistic_crf_iterations(module_graph) -> None:
    from calibration.rewrite import single_channel_nodes

    names = single_channel_nodes(module_graph)
    ops = {n.name: n.op_type for n in module_graph.graph.node}
    iters = 3  # mca_tiny's crf_iterations, one holistic attention module in the 1-stack test model
    assert sorted(ops[n] for n in names) == sorted(["Conv", "Add", "Sigmoid"] * iters)
    assert all("/attention/" in n for n in names)


def test_stem_as_space_to_depth_computes_the_same(module_graph) -> None:
    from calibration.rewrite import stem_space_to_depth

    m = _copy(module_graph)
    assert stem_space_to_depth(m)
    first = next(n for n in m.graph.node if n.op_type == "Conv")
    attrs = {a.name: helper.get_attribute_value(a) for a in first.attribute}
    assert attrs["strides"] == [1, 1] and attrs["kernel_shape"] == [4, 4]  # 7x7 stride 2 -> 4x4 on 12 channels
    assert any(n.op_type == "SpaceToDepth" for n in m.graph.node)
    onnx.checker.check_model(m)
    (a,), (b,) = _run(module_graph, CROPS), _run(m, CROPS)
    assert np.abs(a - b).max() <= 1e-5 * max(1.0, float(np.abs(a).max()))
    assert not stem_space_to_depth(m), "the new first convolution has stride 1: nothing to do"
