"""FP32 -> FP16 ONNX conversion (what TensorRT 11 needs for FP16 engines), checked with ONNX Runtime.

On the CPU, ONNX Runtime runs float16 nodes it has no float16 kernel for through
float32 kernels (it inserts casts), so these tests check the conversion itself
(types consistent, interface unchanged, weights rounded to float16, same results
within float16 accuracy); float16 arithmetic on a GPU is `engines.selftest`'s job.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from engines.base import ModelError  # noqa: E402
from engines.fp16 import convert_to_fp16, has_qdq, is_fp16  # noqa: E402
from engines.ort import OrtBackend  # noqa: E402
import onnxruntime as ort  # noqa: E402

FP16_TOL = 2e-2  # engines.export.FP16_TOLERANCE


def _toy(tmp_path, big: float = 1.0):
    """float32 in -> Conv -> Resize(x2, Constant scales) -> Sigmoid -> out, out also feeds a second output."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) * big).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Constant", [], ["s"], value=scales),
        helper.make_node("Resize", ["c", "", "s"], ["r"], mode="nearest"),
        helper.make_node("Sigmoid", ["r"], ["y"]),
        helper.make_node("Mul", ["y", "y"], ["y2"]),
    ]
    g = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 5, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, 10, 10]),
                           helper.make_tensor_value_info("y2", TensorProto.FLOAT, ["n", 4, 10, 10])],
                          [w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.metadata_props.add(key="mca.precision", value="fp32")
    p = tmp_path / "toy.onnx"
    onnx.save(m, str(p))
    return p


def test_generic_graph_keeps_its_interface_and_results(tmp_path) -> None:
    src = _toy(tmp_path)
    dst = convert_to_fp16(src, tmp_path / "toy16.onnx")
    m = onnx.load(str(dst))
    assert is_fp16(m) and not is_fp16(onnx.load(str(src)))
    # interface unchanged: float32 in and out, names kept
    assert [(i.name, i.type.tensor_type.elem_type) for i in m.graph.input] == [("x", TensorProto.FLOAT)]
    assert [(o.name, o.type.tensor_type.elem_type) for o in m.graph.output] == [("y", 1), ("y2", 1)]
    # weights are float16, Resize's scales stay float32 (ONNX requires it)
    inits = {t.name: t.data_type for t in m.graph.initializer}
    assert inits == {"w": TensorProto.FLOAT16, "b": TensorProto.FLOAT16}
    const = next(n for n in m.graph.node if n.op_type == "Constant")
    assert const.attribute[0].t.data_type == TensorProto.FLOAT
    assert {p.key: p.value for p in m.metadata_props}["mca.precision"] == "fp16"
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 5)).astype(np.float32)
    a, b = OrtBackend(src).run(x), OrtBackend(dst).run(x)
    assert [o.dtype for o in b] == [np.float32, np.float32]
    for p, q in zip(a, b):
        assert p.shape == q.shape and np.abs(p - q).max() <= 2e-3
    # the fp16 copy really rounded the weights: results differ from fp32, just not by much
    assert np.abs(a[0] - b[0]).max() > 0


def test_converting_twice_is_refused(tmp_path) -> None:
    with pytest.raises(ModelError, match="already computes in float16"):
        convert_to_fp16(convert_to_fp16(_toy(tmp_path)))


def test_weights_beyond_float16_range_are_refused(tmp_path) -> None:
    with pytest.raises(ModelError, match="beyond float16's range"):
        convert_to_fp16(_toy(tmp_path, big=1e6))


def test_qdq_models_get_float16_scales_at_opset_19(tmp_path) -> None:
    """TensorRT 11 runs a Q/DQ file's unquantized layers in its float type: the scales go float16 (opset 19),
    the quantized tensors and zero points stay int8, the interface stays float32."""
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    zp = numpy_helper.from_array(np.array(0, np.int8), "zp")
    g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"]),
                           helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y0"]),
                           helper.make_node("Sigmoid", ["y0"], ["y"])], "qdq",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [scale, zp])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(m, {"mca.precision": "int8"})
    assert has_qdq(m) and not is_fp16(m)
    h = convert_to_fp16(m)
    assert next(o.version for o in h.opset_import if o.domain == "") == 19
    inits = {t.name: t.data_type for t in h.graph.initializer}
    assert inits == {"scale": TensorProto.FLOAT16, "zp": TensorProto.INT8}
    assert h.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert h.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    meta = {p.key: p.value for p in h.metadata_props}
    assert meta == {"mca.precision": "int8", "mca.float_type": "fp16"} and is_fp16(h)
    x = np.array([[-1.0, 0.04, 0.5, 3.0]], np.float32)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    a = ort.InferenceSession(m.SerializeToString(), so).run(None, {"x": x})[0]
    b = ort.InferenceSession(h.SerializeToString(), so).run(None, {"x": x})[0]
    assert b.dtype == np.float32 and np.abs(a - b).max() < 1e-3  # FP16 of values in 0..1


def test_qdq_model_with_functions_is_refused_clearly(tmp_path) -> None:
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "scale"], ["q"]),
                           helper.make_node("DequantizeLinear", ["q", "scale"], ["y"])], "qdq",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [scale])
    f = helper.make_function("custom", "F", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
                             [helper.make_opsetid("", 17)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)],
                          functions=[f])
    with pytest.raises(ModelError, match="without --custom-op"):
        convert_to_fp16(m)


needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="pose exports need PyTorch (the 'train' extra)")


@needs_torch
@pytest.mark.parametrize("name,custom_op,attention", [
    ("mca_tiny", False, False), ("mca_tiny_coco", True, True), ("mca_paper", False, False),
])
def test_pose_export_fp16_matches_fp32(exported, tmp_path, name, custom_op, attention) -> None:
    model, src = exported(name, custom_op=custom_op, attention=attention)
    dst = convert_to_fp16(src, tmp_path / "m16.onnx")
    fp32, fp16 = OrtBackend(src), OrtBackend(dst)
    assert [(s.name, s.dtype) for s in fp16.inputs] == [("crops", np.dtype(np.uint8))]
    assert [(s.name, s.dtype, s.shape) for s in fp16.outputs] == [(s.name, s.dtype, s.shape) for s in fp32.outputs]
    assert fp16.precision == "fp16" and fp32.precision == "fp32"
    m = onnx.load(str(dst))
    cast = next(n for n in m.graph.node if n.op_type == "Cast" and n.input[0] == "crops")
    assert cast.attribute[0].i == TensorProto.FLOAT16  # the normalisation itself runs in float16
    if custom_op:
        assert any(n.op_type == "CRFAttention" for n in m.graph.node) and len(m.functions) == 1
    s = model.cfg.input_size
    crops = np.random.default_rng(3).integers(0, 256, (2, s, s, 3), dtype=np.uint8)
    for a, b in zip(fp32.run(crops), fp16.run(crops)):
        assert np.abs(a - b).max() <= FP16_TOL


@needs_torch
def test_ort_backend_converts_on_request(exported) -> None:
    _, src = exported("mca_tiny")
    be = OrtBackend(src, precision="fp16")
    assert be.precision == "fp16"
    crops = np.random.default_rng(4).integers(0, 256, (1, 128, 128, 3), dtype=np.uint8)
    assert np.abs(be.run(crops)[0] - OrtBackend(src).run(crops)[0]).max() <= FP16_TOL


@needs_torch
def test_export_cli_fp16(tmp_path, capsys) -> None:
    from engines.export import main

    out = tmp_path / "t16.onnx"
    assert main(["mca_tiny", "--random-init", "--precision", "fp16", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fp16): ok" in text and is_fp16(onnx.load(str(out)))


def test_conversion_needs_no_torch(tmp_path) -> None:
    """engines.load(x.onnx, precision="fp16") must work on a Jetson without PyTorch."""
    import subprocess
    import sys

    src = _toy(tmp_path)
    code = ("import sys; sys.modules['torch'] = None\n"
            "from engines.fp16 import convert_to_fp16, is_fp16\n"
            f"print(is_fp16(convert_to_fp16({str(src)!r})))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"
