"""TensorRT layer: what can be checked without a GPU runs here; the GPU tests skip saying why."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from engines.base import ModelError
from engines.trt import EngineBuilder, EngineKey

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
BASE = EngineKey("ab" * 32, "NVIDIA H100", "9.0", "10.13.0", "fp16", 1, 4, 16)


@pytest.mark.parametrize("field,value", [
    ("onnx_sha256", "cd" * 32), ("gpu_name", "Orin"), ("compute_capability", "8.7"), ("trt_version", "11.4.0"),
    ("precision", "int8"), ("min_batch", 2), ("opt_batch", 8), ("max_batch", 32), ("plugin", True),
    ("calibration_sha256", "ef" * 32), ("plugin_kernel", "0123abcd"), ("rewrite", "fp16v2"), ("workspace", 1 << 30),
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


def test_cuda_helpers_fail_cleanly_without_a_driver() -> None:
    if importlib.util.find_spec("cuda") is None:
        from engines.cuda import CudaError, device_count

        with pytest.raises(CudaError, match="cuda-python is not installed"):
            device_count()
    else:
        pytest.skip("cuda-python is installed here; the missing-module message is checked where it is absent")


def test_selftest_without_gpu_skips_with_the_reason(capsys) -> None:
    """Row 25: what the machine cannot do is a SKIP line with the reason; nothing failed, so exit 0."""
    from engines.selftest import CHECKS, gpu_unavailable, main

    if gpu_unavailable() is None:
        pytest.skip("a GPU with TensorRT is here: tests/engines/test_gpu.py runs the selftest")
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.count("SKIP ") == len(CHECKS) and "FAIL" not in out and "missing" in out
    assert main(["--require-gpu"]) == 1


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


TRT10 = frozenset({"FP16", "INT8"})  # builder flags TensorRT 10 still has
TRT11: frozenset[str] = frozenset()  # TensorRT 11: strongly typed, no precision flags


@pytest.mark.parametrize("precision,fp16,qdq,flags,calib_api,calib_file,want", [
    # FP16: an FP32 ONNX is converted on both versions; the flag only where it exists
    ("fp16", False, False, TRT10, True, False, ("fp16", True, ("FP16",), False)),
    ("fp16", False, False, TRT11, False, False, ("fp16", True, (), False)),
    ("fp16", True, False, TRT11, False, False, ("fp16", False, (), False)),
    ("fp32", False, False, TRT10, True, False, ("fp32", False, (), False)),
    # INT8 from Q/DQ everywhere; the flags only on 10
    ("int8", False, True, TRT10, True, False, ("int8", False, ("INT8", "FP16"), False)),
    # ... on strongly typed 11 the Q/DQ file's float layers are converted to FP16 (else they run in FP32)
    ("int8", False, True, TRT11, False, False, ("int8", True, (), False)),
    ("int8", True, True, TRT11, False, False, ("int8", False, (), False)),
    # INT8 from a plain ONNX: the legacy calibrator where it exists and a file is given
    ("int8", False, False, TRT10, True, True, ("int8", False, ("INT8", "FP16"), True)),
    # ... otherwise an FP16 engine, said in the note
    ("int8", False, False, TRT11, False, True, ("fp16", True, (), False)),
    ("int8", False, False, TRT10, True, False, ("fp16", True, ("FP16",), False)),
])
def test_precision_plan(precision, fp16, qdq, flags, calib_api, calib_file, want) -> None:
    from engines.trt import plan_precision

    plan = plan_precision(precision, fp16, qdq, flags, calib_api, calib_file)
    assert (plan.precision, plan.convert_fp16, plan.flags, plan.calibrator) == want
    assert ("building fp16 instead" in plan.note) == (precision == "int8" and want[0] == "fp16")


@pytest.mark.parametrize("precision,fp16,qdq,match", [
    ("fp16", False, True, "Q/DQ"), ("fp32", False, True, "Q/DQ"), ("fp32", True, False, "float16"),
    ("int4", False, False, "precision must be"),
])
def test_precision_plan_refusals(precision, fp16, qdq, match) -> None:
    from engines.trt import plan_precision

    with pytest.raises(ModelError, match=match):
        plan_precision(precision, fp16, qdq, TRT10, True, False)


@pytest.mark.parametrize("field,value", [("gpu_name", "Orin"), ("compute_capability", "8.7"),
                                         ("trt_version", "10.3.0")])
def test_engine_from_another_machine_is_refused_by_name(field, value) -> None:
    from engines.trt import check_engine_compatible

    here = {"gpu_name": BASE.gpu_name, "compute_capability": BASE.compute_capability,
            "trt_version": BASE.trt_version}
    recorded = {**dataclasses.asdict(BASE), field: value}
    with pytest.raises(ModelError, match=f"{field} '{value}'"):
        check_engine_compatible(recorded, **here)
    check_engine_compatible(dataclasses.asdict(BASE), **here)  # same machine: fine
    check_engine_compatible({}, **here)  # no sidecar: TensorRT itself decides


def test_sidecar_round_trip_and_damage(tmp_path) -> None:
    from engines.trt import read_sidecar, write_sidecar

    eng = tmp_path / "m.engine"
    eng.write_bytes(b"\0" * 16)
    assert read_sidecar(eng) == {}
    meta = {"mca.kind": "pose", "mca.input_size": "128"}
    write_sidecar(eng, BASE, "fp16", meta, 12.3)
    side = read_sidecar(eng)
    assert side["metadata"] == meta and side["precision"] == "fp16"
    assert EngineKey(**side["key"]) == BASE
    eng.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelError, match="damaged"):
        read_sidecar(eng)


def test_info_reads_an_engine_description_without_tensorrt(tmp_path, capsys) -> None:
    if HAVE_TRT:
        pytest.skip("TensorRT is installed here: info deserializes the engine itself")
    from engines.info import main
    from engines.trt import write_sidecar

    eng = tmp_path / "m.engine"
    eng.write_bytes(b"\0" * 16)
    assert main([str(eng)]) == 2 and "no .json description" in capsys.readouterr().err
    write_sidecar(eng, BASE, "int8", {"mca.config": "mca_tiny"})
    assert main([str(eng)]) == 0
    out = capsys.readouterr().out
    assert "NVIDIA H100 (sm 9.0), TensorRT 10.13.0, precision int8, batch 1..16" in out
    assert "mca.config = mca_tiny" in out


def test_timing_cache_is_one_per_gpu_and_tensorrt(tmp_path) -> None:
    from engines.trt import timing_cache_path

    a = timing_cache_path("NVIDIA H100", "9.0", "10.13.0", tmp_path)
    assert a.name == "timing_NVIDIA-H100_sm90_trt10.13.0.cache"
    assert len({a, timing_cache_path("Orin", "8.7", "10.13.0", tmp_path),
                timing_cache_path("NVIDIA H100", "9.0", "11.4.0", tmp_path)}) == 3


def test_default_precision_follows_the_file(small_pose, tmp_path) -> None:
    """Row 27: a Q/DQ ONNX builds int8 when no precision is given (fp16 would be refused)."""
    from calibration.build import build_calibration_set
    from calibration.quantize import quantize_qdq
    from engines.trt import default_precision

    assert default_precision(small_pose) == "fp16"
    cal = build_calibration_set(["synthetic:4"], small_pose, None, 8, 50, 4.0, seed=1)
    assert default_precision(quantize_qdq(small_pose, cal, tmp_path / "q.onnx")) == "int8"


MODELS = Path(__file__).resolve().parents[2] / "realtime" / "models"


def _dynamic_image_model(path: Path) -> Path:
    """A model TensorRT cannot take: a [1, ?, ?, 3] uint8 input (what tf2onnx writes for a TF detector)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image_tensor:0", TensorProto.UINT8, [1, None, None, 3])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, None, None, 3])
    g = helper.make_graph([helper.make_node("Cast", ["image_tensor:0"], ["out"], to=TensorProto.FLOAT)], "g", [x], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


@pytest.mark.skipif(not (MODELS / "pose_mca_tiny_synth.onnx").exists(), reason="bundled models not in this checkout")
def test_auto_sends_what_tensorrt_cannot_take_to_onnxruntime(monkeypatch, caplog, tmp_path) -> None:
    """Row 8/9: with a GPU and TensorRT, a model TensorRT cannot take (dynamic H/W, as the uncut TF SSDLite had) or
    a failing build runs on ONNX Runtime, with one logged line saying why."""
    import logging

    import engines

    pytest.importorskip("onnx", reason="the test writes a small ONNX")
    dynamic = _dynamic_image_model(tmp_path / "tf_detector.onnx")

    monkeypatch.setattr(engines, "tensorrt_available", lambda: True)
    monkeypatch.delenv(engines.BACKEND_ENV, raising=False)
    calls = []

    def fake_trt(p, precision, opts):  # noqa: ANN001, ANN202 - stands in for a TensorRT build that fails
        calls.append(p.name)
        raise ModelError("TensorRT could not parse it")

    monkeypatch.setattr(engines, "_load_trt", fake_trt)
    with caplog.at_level(logging.WARNING, logger="engines"):
        ssd = engines.load(dynamic, backend="auto", threads=1)
        pose = engines.load(MODELS / "pose_mca_tiny_synth.onnx", backend="auto", threads=1)
    assert ssd.name == pose.name == "onnxruntime"
    assert calls == ["pose_mca_tiny_synth.onnx"]  # lint kept the dynamic model away from TensorRT altogether
    lines = [r.getMessage() for r in caplog.records if "TensorRT cannot take it" in r.getMessage()]
    assert len(lines) == 2 and "dynamic dimension 1" in lines[0] and "could not parse" in lines[1]


def test_auto_falls_back_on_cuda_and_runtime_errors_and_yields_to_the_env(monkeypatch, caplog) -> None:
    """Row 8: a CUDA failure (CudaError is a RuntimeError) during the build is not a crash under ``auto``;
    row 24: ``$MCA_POSE_BACKEND=ort`` keeps ``auto`` off TensorRT (the CPU tests set it)."""
    import logging

    import engines

    monkeypatch.setattr(engines, "tensorrt_available", lambda: True)
    calls = []

    def fake_trt(p, precision, opts):  # noqa: ANN001, ANN202 - a build that dies in CUDA
        calls.append(p.name)
        raise RuntimeError("cudaErrorMemoryAllocation")

    monkeypatch.setattr(engines, "_load_trt", fake_trt)
    monkeypatch.delenv(engines.BACKEND_ENV, raising=False)
    with caplog.at_level(logging.WARNING, logger="engines"):
        pose = engines.load(MODELS / "pose_mca_tiny_synth.onnx", backend="auto", threads=1)
    assert pose.name == "onnxruntime" and calls == ["pose_mca_tiny_synth.onnx"]
    assert any("RuntimeError: cudaErrorMemoryAllocation" in r.getMessage() for r in caplog.records)
    monkeypatch.setenv(engines.BACKEND_ENV, "ort")
    assert engines.load(MODELS / "pose_mca_tiny_synth.onnx", backend="auto", threads=1).name == "onnxruntime"
    assert calls == ["pose_mca_tiny_synth.onnx"]  # TensorRT not tried again
    monkeypatch.setenv(engines.BACKEND_ENV, "cuda")
    with pytest.raises(ModelError, match=r"from \$MCA_POSE_BACKEND"):
        engines.load(MODELS / "pose_mca_tiny_synth.onnx", backend="auto")


def test_selftest_compares_a_fixed_batch_model_at_its_batch_only() -> None:
    """Row 23: the exported YOLO detector takes exactly one image; comparing it at batch 4 would fail."""
    from engines.ort import OrtBackend
    from engines.selftest import BATCHES, usable_batches

    assert usable_batches(OrtBackend(MODELS / "person_yolo_synth.onnx").input.shape) == (1,)
    assert usable_batches(OrtBackend(MODELS / "pose_mca_tiny_synth.onnx").input.shape) == BATCHES


def test_plugin_cache_key_covers_the_launch_code(monkeypatch, tmp_path) -> None:
    """The ahead-of-time engine bakes in qdp.py's grid and block: editing it must change the key."""
    from pathlib import Path

    from engines.plugins import crf_attention

    before = crf_attention.kernel_source_hash()
    fake = tmp_path / "crf_attention.py"
    fake.write_bytes(Path(crf_attention.__file__).read_bytes())
    (tmp_path / "qdp.py").write_bytes(Path(crf_attention.__file__).with_name("qdp.py").read_bytes() + b"# edit\n")
    monkeypatch.setattr(crf_attention, "__file__", str(fake))
    assert crf_attention.kernel_source_hash() != before


def test_engine_io_types_without_a_numpy_type_are_refused_by_name() -> None:
    """Row 16: an unknown TensorRT I/O type (BF16, FP8) is a clear ModelError, never silently float32."""
    from types import SimpleNamespace

    from engines.trt_backend import numpy_dtype

    table = {"FLOAT": np.float32, "HALF": np.float16, "UINT8": np.uint8}

    def nptype(dt):  # noqa: ANN001, ANN202 - TensorRT's trt.nptype raises TypeError for the others
        if dt.name not in table:
            raise TypeError(f"Could not resolve TensorRT datatype to an equivalent numpy datatype. {dt}")
        return table[dt.name]

    trt = SimpleNamespace(nptype=nptype)
    assert numpy_dtype(trt, SimpleNamespace(name="HALF")) == np.float16
    assert numpy_dtype(trt, SimpleNamespace(name="UINT8")) == np.uint8
    with pytest.raises(ModelError, match="BF16 has no numpy type"):
        numpy_dtype(trt, SimpleNamespace(name="BF16"))
