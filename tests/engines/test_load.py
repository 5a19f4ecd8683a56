"""engines.load: backend choice and clear errors for bad files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import engines
from engines.base import ModelError


@pytest.mark.parametrize("content,match", [
    (None, "not found"), (b"", "empty"), (b"this is not onnx at all" * 10, "not a loadable ONNX"),
])
def test_bad_files_are_clear_errors(tmp_path, content, match) -> None:
    p = tmp_path / "model.onnx"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(ModelError, match=match):
        engines.load(p, backend="ort")


def test_truncated_onnx_is_a_clear_error(tmp_path) -> None:
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    data = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    good, bad = tmp_path / "good.onnx", tmp_path / "bad.onnx"
    good.write_bytes(data)
    bad.write_bytes(data[: len(data) // 2])
    be = engines.load(good, backend="ort")
    np.testing.assert_array_equal(be.run(np.array([[-1, 2, -3, 4]], np.float32))[0], [[0, 2, 0, 4]])
    with pytest.raises(ModelError):
        engines.load(bad, backend="ort")
    with pytest.raises(ValueError, match="wants float32"):
        be.run(np.zeros((1, 4), np.float64))


@pytest.mark.parametrize("backend,match", [("tensorflow", "unknown backend"), ("ort", "TensorRT engine")])
def test_bad_backend_choices(tmp_path, backend, match) -> None:
    p = tmp_path / "x.engine"
    p.write_bytes(b"\0" * 64)
    with pytest.raises(ModelError, match=match):
        engines.load(p, backend=backend)


def test_engine_without_tensorrt_is_a_clear_error(tmp_path) -> None:
    pytest.importorskip("onnx")
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here; this checks the message on machines without it")
    p = tmp_path / "x.engine"
    p.write_bytes(b"\0" * 64)
    with pytest.raises(ModelError, match="TensorRT is not installed"):
        engines.load(p)


def test_importing_engines_pulls_neither_torch_nor_tensorrt() -> None:
    code = "import sys, engines, engines.ort; print('torch' in sys.modules, 'tensorrt' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]


def _relu_model(tmp_path, meta: dict[str, str] | None = None):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    for k, v in (meta or {}).items():
        m.metadata_props.add(key=k, value=v)
    p = tmp_path / "relu.onnx"
    onnx.save(m, str(p))
    return p


@pytest.mark.parametrize("shape,match", [((4,), r"wants shape \[\?x4\]"), ((2, 5), r"got \[2, 5\]"),
                                         ((1, 4, 1), "wants shape")])
def test_wrong_input_shape_is_a_clear_error(tmp_path, shape, match) -> None:
    be = engines.load(_relu_model(tmp_path), backend="ort")
    with pytest.raises(ValueError, match=match):
        be.run(np.zeros(shape, np.float32))


def test_io_binding_path_gives_the_same_results(tmp_path) -> None:
    from engines.ort import OrtBackend

    p = _relu_model(tmp_path)
    plain, bound = OrtBackend(p), OrtBackend(p, io_binding=True)
    assert not plain.io_binding and bound.io_binding  # CPU: off unless asked for
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(bound.run(x)[0], plain.run(x)[0])
    np.testing.assert_array_equal(bound.run(x[:1])[0], np.maximum(x[:1], 0))  # rebinding per call


@pytest.mark.parametrize("kw,match", [(dict(precision="int4"), "unknown precision"),
                                      (dict(optimization="max"), "unknown optimization"),
                                      (dict(providers=["TensorrtExecutionProvider", "CPUExecutionProvider"]),
                                       "not available")])
def test_bad_ort_options(tmp_path, kw, match) -> None:
    from engines.ort import OrtBackend

    if "TensorrtExecutionProvider" in kw.get("providers", []):
        import onnxruntime as ort

        if "TensorrtExecutionProvider" in ort.get_available_providers():
            pytest.skip("this onnxruntime has the TensorRT provider")
    with pytest.raises(ModelError, match=match):
        OrtBackend(_relu_model(tmp_path), **kw)


def test_int8_request_on_a_float_model_warns_and_runs(tmp_path, caplog) -> None:
    p = _relu_model(tmp_path, {"mca.precision": "fp32"})
    with caplog.at_level("WARNING", logger="engines.ort"):
        be = engines.load(p, backend="ort", precision="int8")
    assert be.precision == "fp32" and "not a Q/DQ INT8 model" in caplog.text
