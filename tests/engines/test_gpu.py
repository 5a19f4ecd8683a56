"""CI check 5 (issue #13): the GPU path on a real GPU (``pytest -m gpu``; they are in the default run too and skip,
saying why, where there is no GPU with TensorRT).  Each is one check of ``engines.selftest`` (tolerances there:
``TOL`` against ONNX Runtime FP32, max abs error over the output's range: fp16 2e-2, int8 1e-1) on the pose model,
decomposed and with the CRF plugin, INT8 from a fresh Q/DQ file, both bundled detectors, batch 1/4/16/17, two
threads, run_async, engine cache hit and miss; and the whole selftest."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import pytest

from engines.selftest import gpu_unavailable

WHY = gpu_unavailable()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(WHY is not None, reason=f"no GPU path here: {WHY}")]
MODELS = Path(__file__).resolve().parents[2] / "realtime" / "models"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    from engines.selftest import Context

    return Context(tmp_path_factory.mktemp("gpu"), Namespace(config="mca_tiny", onnx=None, qdq=None, detector=None))


def _run(fn, ctx):  # noqa: ANN001, ANN202 - a selftest check; its Skip becomes a pytest skip
    from engines.selftest import Skip

    try:
        return fn(ctx)
    except Skip as s:
        pytest.skip(str(s))


def test_fp16_pose_engine_matches_onnxruntime(ctx) -> None:
    from engines.selftest import check_fp16

    assert "max |TRT - ORT|" in _run(check_fp16, ctx)


def test_fp16_plugin_engine_matches_onnxruntime(ctx) -> None:
    from engines.selftest import check_plugin

    assert "max |TRT - ORT|" in _run(check_plugin, ctx)


def test_int8_engine_from_a_fresh_qdq_file(ctx, small_pose, tmp_path) -> None:
    from calibration.build import build_calibration_set
    from calibration.quantize import quantize_qdq
    from engines.selftest import Context, check_int8

    cal = build_calibration_set(["synthetic:16"], small_pose, None, 32, 50, 4.0, seed=1)
    qdq = quantize_qdq(small_pose, cal, tmp_path / "int8.onnx")
    c = Context(tmp_path, Namespace(config="mca_tiny", onnx=small_pose, qdq=qdq, detector=None))
    assert "max |TRT - ORT|" in _run(check_int8, c)


@pytest.mark.parametrize("name,engine", [("person_yolo_synth.onnx", "tensorrt"), ("person_ssdlite.onnx", "ort")])
def test_bundled_detectors(ctx, tmp_path, name, engine) -> None:
    from engines.selftest import Context, check_detector

    det = MODELS / name
    if not det.exists():
        pytest.skip(f"{name} is not in this checkout")
    out = _run(check_detector, Context(tmp_path, Namespace(config="mca_tiny", onnx=None, qdq=None, detector=det)))
    assert ("max |TRT - ORT|" in out) == (engine == "tensorrt"), out


def test_two_threads_and_run_async(ctx) -> None:
    from engines.selftest import check_threads_and_async

    assert "equal" in _run(check_threads_and_async, ctx)


def test_engine_cache_hit_and_miss(ctx) -> None:
    from engines.selftest import check_cache

    assert "hit" in _run(check_cache, ctx)


def test_chain_graphs_exact_through_run_device(ctx) -> None:
    from engines.selftest import check_chain

    assert "3 graphs exact" in _run(check_chain, ctx)


def test_selftest_passes(capsys) -> None:
    from engines.selftest import main

    assert main(["--require-gpu"]) == 0, capsys.readouterr().out
