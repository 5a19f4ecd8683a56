"""The chain with ``backend="trt"`` on the fake CUDA runtime and fake TensorRT (tests/engines/fake_gpu.py).

The fake engines run the chain's own graphs with ONNX Runtime on "device" memory kept apart from host
memory, so this checks on a CPU what the GPU run must show: the same poses as the ONNX Runtime chain,
the frame copied up exactly once per frame (and never down), every engine reading device memory
only, each engine on its own stream waiting for the previous one on an event, and the host waiting
only for the small downloads.  (The real TensorRT run is tests/realtime/test_chain_gpu.py.)
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the chain builds its graphs with the 'onnx' package")

from realtime.chain import ChainConfig, GraphChain  # noqa: E402
from realtime.models import bundled_path  # noqa: E402
from realtime.sources import DemoSource  # noqa: E402
from tests.engines.fake_gpu import install  # noqa: E402


def _paths():
    paths = [bundled_path("yolo_synth"), bundled_path("mca_tiny_synth")]
    if not all(p.exists() for p in paths):
        pytest.skip(f"bundled models missing: {[str(p) for p in paths]}")
    return [str(p) for p in paths]


@pytest.fixture(scope="module")
def frames():
    return [f.image for f, _ in zip(DemoSource(num_frames=3, people=4, seed=3).frames(), range(3))]


@pytest.fixture(scope="module")
def reference(frames, tmp_path_factory):
    det, pose = _paths()
    ref = GraphChain(det, pose, ChainConfig(threads=1, cache_dir=tmp_path_factory.mktemp("ort")))
    out = [ref.process(img) for img in frames]
    ref.close()
    return out


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_trt_chain_on_the_fake_gpu(monkeypatch, tmp_path, frames, reference, precision) -> None:
    rt = install(monkeypatch)
    det, pose = _paths()
    chain = GraphChain(det, pose, ChainConfig(backend="trt", device="cuda:0", precision=precision,
                                              cache_dir=tmp_path))
    people = 0
    for img, want in zip(frames, reference):
        chain.transfers.clear()
        mark = len(rt.calls)
        got = chain.process(img)
        calls = rt.calls[mark:]
        # the same poses as the ONNX Runtime chain (the fake runs the same graphs; the real GPU test has tolerances)
        np.testing.assert_array_equal(got.boxes, want.boxes)
        np.testing.assert_allclose(got.keypoints, want.keypoints, atol=1e-4)
        people += len(want)
        # the frame: one H2D copy of its size, from pinned memory; nothing of its size comes back
        h2d = [c for c in calls if c[0] == "memcpy" and c[1] == "H2D"]
        d2h = [c for c in calls if c[0] == "memcpy" and c[1] == "D2H"]
        assert sum(1 for c in h2d if c[4] == img.nbytes) == 1 and all(c[6] for c in h2d)
        assert sum(c[4] for c in d2h) < img.nbytes / 50 and not [c for c in calls if c[0] == "memcpy" and
                                                                  c[1] == "D2D"]
        assert chain.transfers.count("up", "frame") == 1 and chain.transfers.bytes("down") < img.nbytes / 50
        assert {n for n, _ in chain.transfers.downloads} <= {"candidates", "peaks", "peak_scores"}
        # engines: each on its own stream; before each runs, its stream waited for its inputs' stream
        execs = [i for i, c in enumerate(calls) if c[0] == "execute"]
        assert len(execs) == (4 if precision != "fp32" else 3)  # [letterbox,] detector, crop, pose
        streams = [calls[i][2] for i in execs]
        assert len(set(streams)) == len(streams), "one CUDA stream per stage"
        for i, s in zip(execs, streams):
            waits = [c for c in calls[:i] if c[0] == "wait_event" and c[1] == s]
            assert waits, f"the engine on stream {s} did not wait for its inputs"
        # the host waits only in the downloads (a stream sync right after a D2H copy) and before refilling a
        # pinned slot (for the copy from it two uploads ago); never for an engine
        ring_events = {e.handle for up in (chain._frame_up, chain._maps_up) for e in up.ring._events}
        for i, c in enumerate(calls):
            if c[0] == "event_sync":
                assert c[1] in ring_events, c
            elif c[0] == "stream_sync":
                assert calls[i - 1][0] == "memcpy" and calls[i - 1][1] == "D2H", c
    assert people > 0
    assert not any(be.staged for be in (chain.pose_backend, *chain._sizes[frames[0].shape[:2]][:2])), \
        "no engine input came from host memory"
    if precision != "fp32":  # the letterbox engine is FP32, the detector the asked precision
        assert chain._prologues[frames[0].shape[:2]].precision == "fp32"
        assert chain._sizes[frames[0].shape[:2]][0].precision == precision
    assert chain._sizes[frames[0].shape[:2]][1].precision == "fp32"  # the crop engine: always FP32
    assert chain._frame_up.pool.allocations == 1, "frames reuse one pooled device buffer"
    chain.close()


def test_nvdec_frames_enter_the_chain_without_an_upload(monkeypatch, tmp_path, frames) -> None:
    """NVDEC's device copy of a frame (RGB) becomes the chain's frame on the device: no frame upload at all,
    and the same poses as the ONNX Runtime chain on the decoded images."""
    import sys

    from realtime.gpu_video import NvdecSource
    from realtime.sinks import Mp4Writer
    from tests.realtime.test_gpu_video import _fake_nvc

    clip = tmp_path / "demo.mp4"
    with Mp4Writer(clip, 25) as w:
        for img in frames[:2]:
            w.write(img)
    det, pose = _paths()
    ref = GraphChain(det, pose, ChainConfig(threads=1, cache_dir=tmp_path / "ort"))
    rt = install(monkeypatch)
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", _fake_nvc(rt))
    chain = GraphChain(det, pose, ChainConfig(backend="trt", device="cuda:0", precision="fp32",
                                              cache_dir=tmp_path / "trt"))
    people = 0
    for frame in NvdecSource(clip).frames():
        want = ref.process(frame.image)
        chain.transfers.clear()
        mark = len(rt.calls)
        d = chain.detector.detect_frame(frame)
        got = chain.pose.estimate_frame(frame.image, d)
        np.testing.assert_array_equal(got.boxes, want.boxes)
        np.testing.assert_allclose(got.keypoints, want.keypoints, atol=1e-4)
        people += len(want)
        calls = rt.calls[mark:]
        assert chain.transfers.count("up", "frame") == 0
        assert not [c for c in calls if c[0] == "memcpy" and c[1] == "H2D" and c[4] >= frame.image.nbytes]
        assert [c[4] for c in calls if c[0] == "memcpy" and c[1] == "D2D"] == [frame.image.nbytes]  # into the pool
    assert people > 0
    chain.close()
    ref.close()


def test_pipelined_order_detects_ahead_without_waiting(monkeypatch, tmp_path, frames, reference) -> None:
    """As the pipeline's threads run it: frame n+1 is uploaded and detected before frame n's crop and pose.
    Both frames then live in their own pooled buffers and the two pinned slots (no host wait for the ring),
    and each frame's poses are its own."""
    rt = install(monkeypatch)
    det, pose = _paths()
    chain = GraphChain(det, pose, ChainConfig(backend="trt", device="cuda:0", precision="fp32", cache_dir=tmp_path))
    a, b = frames[0], frames[1]
    mark = len(rt.calls)
    da = chain.detector.detect(a)
    db = chain.detector.detect(b)  # frame n+1 up and detected while frame n waits for its pose
    h2d = [c for c in rt.calls[mark:] if c[0] == "memcpy" and c[1] == "H2D" and c[4] == a.nbytes]
    assert len(h2d) == 2 and h2d[0][3] != h2d[1][3], "two pinned slots for two frames in flight"
    assert h2d[0][2] != h2d[1][2], "two device buffers for two frames in flight"
    assert chain._frame_up.ring.waits == 0
    pa = chain.pose.estimate_frame(a, da)
    pb = chain.pose.estimate_frame(b, db)
    for got, want in ((pa, reference[0]), (pb, reference[1])):
        np.testing.assert_allclose(got.keypoints, want.keypoints, atol=1e-4)
    assert chain.transfers.count("up", "frame") == 2  # neither frame uploaded twice
    chain.close()
