"""TensorRT layer: what can be checked without a GPU runs here; the GPU tests skip saying why."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest

from engines.base import ModelError
from engines.trt import EngineBuilder, EngineKey

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
BASE = EngineKey("ab" * 32, "NVIDIA H100", "9.0", "10.13.0", "fp16", 1, 4, 16)


@pytest.mark.parametrize("field,value", [
    ("onnx_sha256", "cd" * 32), ("gpu_name", "Orin"), ("compute_capability", "8.7"), ("trt_version", "11.4.0"),
    ("precision", "int8"), ("min_batch", 2), ("opt_batch", 8), ("max_batch", 32), ("plugin", True),
])
def test_engine_cache_key_changes_with_every_part(field, value) -> None:
    other = dataclasses.replace(BASE, **{field: value})
    assert other.digest() != BASE.digest() and other.filename() != BASE.filename()


def test_engine_cache_key_is_stable_and_readable() -> None:
    assert BASE.digest() == dataclasses.replace(BASE).digest()
    name = BASE.filename()
    assert name.startswith("NVIDIA-H100_sm90_trt10.13.0_fp16_b1-16_") and name.endswith(".engine")


@pytest.mark.parametrize("kw,match", [
    (dict(precision="int4"), "precision"), (dict(min_batch=4, opt_batch=2), "min_batch"),
])
def test_builder_rejects_bad_settings(kw, match) -> None:
    with pytest.raises(ModelError, match=match):
        EngineBuilder(**kw)


def test_plugin_onnx_preparation(tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("torch", reason="exporting needs PyTorch")
    import mca
    from engines.export import ExportOptions, export_pose
    from engines.trt import prepare_onnx_for_plugin

    model = mca.create_model("mca_tiny", num_stacks=1).eval()
    cus = export_pose(model, tmp_path / "c.onnx", ExportOptions(custom_op=True))
    dec = export_pose(model, tmp_path / "d.onnx")
    out = prepare_onnx_for_plugin(cus, tmp_path / "p.onnx")
    m = onnx.load(str(out))
    nodes = [n for n in m.graph.node if n.op_type == "CRFAttention"]
    assert nodes and not m.functions
    for n in nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["plugin_namespace"] == b"mca_pose" and attrs["aot"] == 1
        assert attrs["iterations"] == 3 and attrs["kernel_size"] == 5
    with pytest.raises(ModelError, match="no CRFAttention"):
        prepare_onnx_for_plugin(dec, tmp_path / "x.onnx")


@pytest.mark.skipif(not HAVE_TRT, reason="TensorRT is not installed (GPU machines and Jetson only)")
@pytest.mark.gpu_only
def test_trt_fp16_engine_matches_onnxruntime(tmp_path) -> None:
    """On a GPU: the same check as python -m engines.selftest, as a test."""
    from engines import cuda

    if cuda.device_count() < 1:
        pytest.skip("no CUDA device visible")
    from engines.selftest import main

    assert main(["--config", "mca_tiny"]) == 0


def test_cuda_helpers_fail_cleanly_without_a_driver() -> None:
    if importlib.util.find_spec("cuda") is None:
        from engines.cuda import CudaError, device_count

        with pytest.raises(CudaError, match="cuda-python is not installed"):
            device_count()
    else:
        pytest.skip("cuda-python is installed here; the missing-module message is checked where it is absent")


def test_selftest_without_gpu_says_what_is_missing(capsys) -> None:
    if HAVE_TRT:
        pytest.skip("TensorRT is installed: the GPU path is exercised by test_trt_fp16_engine_matches_onnxruntime")
    from engines.selftest import main

    assert main([]) == 1
    assert "missing" in capsys.readouterr().out


@pytest.mark.parametrize("argv,code,text", [
    (["nope.onnx"], 2, "no such file"),
])
def test_build_cli_errors(argv, code, text, capsys) -> None:
    from engines.build import main

    assert main(argv) == code
    assert text in capsys.readouterr().err


def test_build_cli_without_tensorrt(tmp_path, capsys) -> None:
    if HAVE_TRT:
        pytest.skip("TensorRT is installed here")
    from engines.build import main

    f = tmp_path / "m.onnx"
    f.write_bytes(b"x")
    assert main([str(f)]) == 2 and "TensorRT is not installed" in capsys.readouterr().err


def test_info_cli(tmp_path, capsys) -> None:
    pytest.importorskip("onnx")
    from engines.info import main
    from tests.realtime.conftest import constant_yolo_onnx

    p = constant_yolo_onnx(tmp_path / "d.onnx", [(1, 1, 1, 1, 1)])
    assert main([str(p)]) == 0
    out = capsys.readouterr().out
    assert "mca.detector_family = yolo" in out and "images: float32[1x3x64x64]" in out and "Add x1" in out
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(np.random.default_rng(0).bytes(100))
    assert main([str(bad)]) == 2
