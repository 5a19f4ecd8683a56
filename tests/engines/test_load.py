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
    onnx = pytest.importorskip("onnx")
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
