"""The graph chain on TensorRT (GPU machines, after issue 14 phase 2): same poses as the ONNX Runtime chain,
the frame uploaded once and never copied back, the graphs exact on FP32 engines, frames/s printed.

Marked ``gpu`` (the project's marker for TensorRT tests: ``python -m pytest -m gpu``); skipped with
the reason where TensorRT, a GPU or ``TrtBackend.run_device`` is missing.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the chain builds its graphs with the 'onnx' package")

from realtime.bench.chain import trt_chain_status  # noqa: E402

WHY = trt_chain_status()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(WHY is not None, reason=f"TensorRT chain: {WHY}")]

# Stated tolerances against the ONNX Runtime chain on the same frames.
FP32_KEYPOINT_PX = 0.5  # FP32 engines: the graphs are exact, the networks agree to ~1e-4
FP16_MEDIAN_PX, FP16_WITHIN_4PX = 1.0, 0.95  # FP16 engines: argmax flips on flat heatmaps are allowed, rarely


def _frames(n: int = 6):
    from realtime.sources import DemoSource

    return [f.image for f, _ in zip(DemoSource(num_frames=n, people=4, seed=5).frames(), range(n))]


def _chains(precision: str, tmp_path):
    from realtime.chain import ChainConfig, GraphChain
    from realtime.models import bundled_path

    det, pose = str(bundled_path("yolo_synth")), str(bundled_path("mca_tiny_synth"))
    ref = GraphChain(det, pose, ChainConfig(threads=4, cache_dir=tmp_path / "ort"))
    gpu = GraphChain(det, pose, ChainConfig(backend="trt", device="cuda:0", precision=precision,
                                            cache_dir=tmp_path / "trt"))
    return ref, gpu


def _errors(ref, gpu, frames) -> np.ndarray:
    errs = []
    for img in frames:
        a, b = ref.process(img), gpu.process(img)
        assert len(a) == len(b), "the TensorRT chain found a different number of people"
        if len(a):
            assert np.abs(a.boxes - b.boxes).max() <= 1.0
            errs.append(np.linalg.norm(a.keypoints - b.keypoints, axis=2).ravel())
    return np.concatenate(errs)


def test_chain_graphs_are_exact_on_tensorrt(tmp_path) -> None:
    from engines.chain_check import check_graphs

    res = check_graphs("trt", cache_dir=tmp_path, on_device=True)  # through run_device, as the chain runs them
    assert all(r.ok for r in res), [r.line() for r in res]


def test_trt_chain_fp32_equals_the_ort_chain(tmp_path) -> None:
    ref, gpu = _chains("fp32", tmp_path)
    err = _errors(ref, gpu, _frames())
    assert err.max() <= FP32_KEYPOINT_PX, f"worst keypoint {err.max():.2f} px"


def test_trt_chain_fp16_agrees_with_the_ort_chain(tmp_path) -> None:
    ref, gpu = _chains("fp16", tmp_path)
    err = _errors(ref, gpu, _frames())
    assert np.median(err) <= FP16_MEDIAN_PX and (err <= 4.0).mean() >= FP16_WITHIN_4PX, \
        f"median {np.median(err):.2f} px, within 4 px {(err <= 4.0).mean():.3f}"


class _CountingRuntime:
    """The real cuda-python runtime with every cudaMemcpyAsync counted (bytes, kind)."""

    def __init__(self, rt) -> None:
        self._rt, self.copies = rt, []

    def __getattr__(self, name):
        return getattr(self._rt, name)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):  # noqa: N802 - the CUDA name
        self.copies.append((int(nbytes), kind))
        return self._rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream)


def test_trt_chain_uploads_the_frame_once_and_keeps_it_on_the_device(tmp_path, monkeypatch) -> None:
    from engines import cuda

    _, gpu = _chains("fp16", tmp_path)
    counting = _CountingRuntime(cuda.runtime())
    monkeypatch.setattr(cuda, "runtime", lambda: counting)
    h2d, d2h = counting.cudaMemcpyKind.cudaMemcpyHostToDevice, counting.cudaMemcpyKind.cudaMemcpyDeviceToHost
    for img in _frames(3):
        gpu.transfers.clear()
        counting.copies.clear()
        gpu.process(img)
        assert gpu.transfers.count("up", "frame") == 1
        assert gpu.transfers.bytes("down") < img.nbytes / 50  # no host copy of the frame after upload
        assert {n for n, _ in gpu.transfers.downloads} <= {"candidates", "peaks", "peak_scores"}
        # the real copies, counted at the CUDA runtime: one frame-sized upload, nothing of its size back
        assert sum(1 for n, k in counting.copies if k == h2d and n == img.nbytes) == 1
        assert sum(n for n, k in counting.copies if k == d2h) < img.nbytes / 50
        print(f"\ncopies per frame: {len(counting.copies)} "
              f"({sum(n for n, k in counting.copies if k == h2d)} bytes up, "
              f"{sum(n for n, k in counting.copies if k == d2h)} bytes down)")
    frame = gpu.upload(img)
    assert str(frame.device).startswith("cuda")


def test_trt_chain_frames_per_second(tmp_path, capsys) -> None:
    _, gpu = _chains("fp16", tmp_path)
    frames = _frames(20)
    gpu.process(frames[0])
    t0 = time.perf_counter()
    for img in frames:
        gpu.process(img)
    fps = len(frames) / (time.perf_counter() - t0)
    with capsys.disabled():
        print(f"\nTensorRT chain (FP16, mca_tiny_synth, 720p, 4 people): {fps:.1f} frames/s end to end")
    assert fps > 0
