"""CI check 3 (issue #13): ``engines.lint`` on every bundled model, on a fresh Q/DQ file, and on one small graph per
rule.  The rules are TensorRT's (IDequantizeLayer types, zero points, per-channel axes; UINT8 inputs; profile
shapes; data-dependent outputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the lint reads ONNX graphs (the 'dev' extra)")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from engines.base import ModelError  # noqa: E402
from engines.lint import lint_file, lint_model, main, profile_shapes, trt_blocker  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / "realtime" / "models"
BUNDLED = sorted(MODELS.glob("*.onnx"))


def _errors(findings):  # noqa: ANN001, ANN202
    return sorted({(f.rule, f.where) for f in findings if f.severity == "error"})


@pytest.mark.skipif(not BUNDLED, reason="the bundled models are not in this checkout")
@pytest.mark.parametrize("path", BUNDLED, ids=[p.name for p in BUNDLED])
def test_every_bundled_model(path) -> None:
    findings = lint_file(path)
    rules = {f.rule for f in findings if f.severity == "error"}
    # SSDLite without the TF graph's resize and NMS loops (engines.ssd_cut): [1, 300, 300, 3] in, static boxes and
    # scores out, so TensorRT takes it (the uncut graph's [?, ?, ?, 3] input and NMS outputs it could not)
    assert not rules, [str(f) for f in findings]
    assert trt_blocker(path) is None
    static = ("person_yolo_synth.onnx", "person_yolo_synth.int8.onnx", "person_ssdlite.onnx", "person_ssdlite.int8.onnx")
    if path.name in static:  # static batch 1: min = opt = max, said as a warning
        assert [f.rule for f in findings] == ["profile"] and findings[0].severity == "warning"


def test_a_fresh_qdq_file_is_clean(small_pose, tmp_path) -> None:
    """The INT8 file calibration.quantize writes is what TensorRT builds from: no INT32 bias DQ, symmetric int8."""
    from calibration.build import build_calibration_set
    from calibration.quantize import quantize_qdq

    cal = build_calibration_set(["synthetic:8"], small_pose, None, 16, 50, 4.0, seed=1)
    out = quantize_qdq(small_pose, cal, tmp_path / "int8.onnx")
    m = onnx.load(str(out))
    assert sum(n.op_type == "DequantizeLinear" for n in m.graph.node) > 10
    assert lint_model(m) == []
    assert main([str(out)]) == 0


def _graph(nodes, inputs, outputs, inits=()):  # noqa: ANN001, ANN202
    g = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in inits])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


X = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 8, 8])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 8, 8])


def test_int32_bias_dequantize_is_an_error() -> None:
    m = _graph([helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["b"]),
                helper.make_node("Add", ["x", "b"], ["y"])], [X], [Y],
               [("b_q", np.arange(4, dtype=np.int32).reshape(1, 4, 1, 1)), ("b_s", np.float32(0.1)),
                ("b_z", np.int32(0))])
    (f,) = lint_model(m)
    assert (f.rule, f.severity) == ("qdq-type", "error") and "int32" in f.message and "QuantizeBias" in f.message


def test_uint8_and_nonzero_zero_points_are_errors() -> None:
    m = _graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["y"])], [X], [Y],
               [("s", np.float32(0.1)), ("z", np.uint8(128))])
    rules = [f.rule for f in lint_model(m)]
    assert rules.count("qdq-type") == 2 and rules.count("qdq-zero-point") == 2
    assert "uint8" in rules  # the uint8 tensor between them is inside the network


def test_per_channel_only_on_constants() -> None:
    w = np.ones((4, 4, 1, 1), np.int8)
    ok = _graph([helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], axis=0),
                 helper.make_node("Conv", ["x", "wf"], ["y"])], [X], [Y],
                [("w", w), ("ws", np.full(4, 0.1, np.float32)), ("wz", np.zeros(4, np.int8))])
    assert lint_model(ok) == []
    bad = _graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], axis=1),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["y"], axis=1)], [X], [Y],
                 [("s", np.full(4, 0.1, np.float32)), ("z", np.zeros(4, np.int8))])
    assert [f.rule for f in lint_model(bad)] == ["qdq-axis", "qdq-axis"]  # Q and DQ both on a computed tensor


def test_uint8_input_must_be_cast_at_once() -> None:
    u8 = helper.make_tensor_value_info("img", TensorProto.UINT8, ["batch", 8, 8, 3])
    out = helper.make_tensor_value_info("o", TensorProto.FLOAT, ["batch", 8, 8, 3])
    good = _graph([helper.make_node("Cast", ["img"], ["o"], to=TensorProto.FLOAT)], [u8], [out])
    assert lint_model(good) == []
    o8 = helper.make_tensor_value_info("o", TensorProto.UINT8, ["batch", 8, 8, 3])
    bad = _graph([helper.make_node("Identity", ["img"], ["o"])], [u8], [o8])
    (f,) = lint_model(bad)
    assert f.rule == "uint8" and "cast to float" in f.message


def test_profile_shapes_follow_tensorrts_rules() -> None:
    assert profile_shapes("crops", ["batch", 128, 128, 3], (1, 4, 16)) == (
        (1, 128, 128, 3), (4, 128, 128, 3), (16, 128, 128, 3))
    assert profile_shapes("images", [1, 3, 320, 320], (1, 4, 16)) == ((1, 3, 320, 320),) * 3  # static: fixed
    with pytest.raises(ModelError, match="dynamic dimension 2"):
        profile_shapes("image", [-1, 300, None, 3], (1, 4, 16))


def test_data_dependent_output_is_flagged() -> None:
    boxes = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 10, 4])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 10])
    sel = helper.make_tensor_value_info("sel", TensorProto.INT64, None)
    m = _graph([helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["sel"])], [boxes, scores], [sel])
    assert [f.rule for f in lint_model(m) if f.severity == "error"] == ["data-dependent"]


def test_cli_exit_codes(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    assert main([str(bad)]) == 2 and "not an ONNX file" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.onnx")]) == 2
    m = _graph([helper.make_node("DequantizeLinear", ["q", "s"], ["y"])], [], [Y],
               [("q", np.zeros((1, 4, 8, 8), np.int32)), ("s", np.float32(1))])
    onnx.save(m, str(tmp_path / "m.onnx"))
    assert main([str(tmp_path / "m.onnx")]) == 1
    assert "1 error(s) for TensorRT" in capsys.readouterr().out
