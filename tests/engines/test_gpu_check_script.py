"""scripts/gpu_check.py on a CPU: its ONNX evaluator equals ONNX Runtime on the chain's graphs (so on a GPU it
runs those graphs, not a re-implementation), the CUDA checks pass on the fake runtime, and the whole script
prints one line per check and skips what this machine lacks."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the chain's graphs are built with the 'onnx' package")

from tests.engines.fake_gpu import install  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gc():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _ort(model, feeds):
    import onnxruntime as ort

    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, feeds)[0]


def test_evaluator_runs_the_crop_graph_like_onnxruntime(gc) -> None:
    from engines.preprocess import crop_graph, crop_maps

    img, mats = gc._crop_case(90, 160, 5, 32)
    rows, cols = crop_maps(mats, (32, 32))
    feeds = {"frame": img, "map_rows": rows, "map_cols": cols}
    g = crop_graph((90, 160), (32, 32))
    got = next(iter(gc.evaluate(g, feeds).values()))
    assert got.dtype == np.uint8 and np.array_equal(got, _ort(g, feeds))


@pytest.mark.parametrize("fmt", ["yolo", "ssd"])
def test_evaluator_runs_the_letterbox_graphs_like_onnxruntime(gc, fmt) -> None:
    from engines.preprocess import InputFormat, frame_prologue

    f = InputFormat(64) if fmt == "yolo" else InputFormat(64, layout="NHWC", dtype="uint8", letterbox=False)
    pro, _ = frame_prologue(f, (45, 80))
    img = np.random.default_rng(0).integers(0, 256, (45, 80, 3), dtype=np.uint8)
    got = next(iter(gc.evaluate(pro, {"frame": img}).values()))
    want = _ort(pro, {"frame": img})
    assert got.dtype == want.dtype and np.array_equal(got, want)


def test_graph_check_compares_with_opencv(gc, monkeypatch) -> None:
    """The GPU graph check itself, with numpy standing in for CuPy: equal to cv2 (and fails when it is not)."""
    monkeypatch.setitem(sys.modules, "cupy", type(sys)("cupy"))
    sys.modules["cupy"].asarray, sys.modules["cupy"].asnumpy = np.asarray, np.asarray
    for name in ("add", "subtract", "multiply", "divide", "floor_divide", "floor", "clip", "trunc", "transpose",
                 "reshape", "expand_dims", "squeeze", "split", "take", "pad"):
        setattr(sys.modules["cupy"], name, getattr(np, name))
    assert "== cv2.warpAffine" in gc.check_graphs_on_gpu()
    real_take = np.take
    monkeypatch.setattr(sys.modules["cupy"], "take", lambda a, i, axis=0: real_take(a, np.clip(i + 1, 0, None)
                                                                                     if a.ndim == 1 else i, axis=axis))
    with pytest.raises(AssertionError, match="differs from cv2.warpAffine"):
        gc.check_graphs_on_gpu()


def test_cuda_checks_pass_on_the_fake_runtime(gc, monkeypatch) -> None:
    install(monkeypatch)
    assert "Fake GPU" in gc.check_cuda()
    assert "exact" in gc.check_streams()
    assert "1 device allocation" in gc.check_uploader()


def test_script_here_prints_a_line_per_check_and_skips_with_reasons(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "OUT": str(tmp_path), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, str(SCRIPT), "--only", "cuda", "streams", "gpu video"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stdout.splitlines() if ln[:4] in ("PASS", "FAIL", "SKIP")]
    assert len(lines) == 3 and r.returncode == 0, r.stdout + r.stderr
    if importlib.util.find_spec("cuda") is None:
        assert lines[0].startswith("SKIP cuda: CUDA unavailable: cuda-python is not installed")
    assert lines[2].startswith("PASS gpu video: ")
    assert (tmp_path / "gpu_check.log").read_text().count("\n") >= 3
