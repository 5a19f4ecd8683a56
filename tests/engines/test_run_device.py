"""The GPU code paths (engines.cuda's events/ring/pool, engines.device's Uploader and DLPack waits,
``TrtBackend.run_device``) on a fake CUDA runtime and a fake TensorRT that record every call.

The fake keeps "device" memory apart from host memory and runs queued work at once, so these tests
check the order of calls (waits before the engine runs, no host synchronisation inside
``run_device``), the copies made (none between engines) and the values that come out.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the test graphs are built with the 'onnx' package")

from engines.base import ModelError  # noqa: E402
from tests.engines.fake_gpu import FakeError, install  # noqa: E402


def _affine_onnx(path, mul: float, add: float, shape=("n", 4), dtype="float32"):
    """y = x * mul + add, input ``x`` of ``shape`` (a str dim is dynamic)."""
    import onnx
    from onnx import TensorProto, helper

    et = {"float32": TensorProto.FLOAT}[dtype]
    g = helper.make_graph(
        [helper.make_node("Mul", ["x", "m"], ["t"]), helper.make_node("Add", ["t", "a"], ["y"])], "affine",
        [helper.make_tensor_value_info("x", et, list(shape))], [helper.make_tensor_value_info("y", et, list(shape))],
        [helper.make_tensor("m", et, [], [mul]), helper.make_tensor("a", et, [], [add])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


@pytest.fixture
def rt(monkeypatch):
    return install(monkeypatch)


def _backend(tmp_path, name="a", mul=2.0, add=1.0, shape=("n", 4)):
    from engines.trt_backend import TrtBackend

    return TrtBackend.from_file(_affine_onnx(tmp_path / f"{name}.onnx", mul, add, shape), precision="fp32")


def _since(rt, mark):
    return rt.calls[mark:]


# ----------------------------------------------------------------------------- engines.cuda
def test_events_streams_and_timing(rt) -> None:
    from engines import cuda

    s1, s2 = cuda.Stream(), cuda.Stream()
    sync_ev, t0, t1 = cuda.Event(), cuda.Event(timing=True), cuda.Event(timing=True)
    create = {c[1]: c[2] for c in rt.calls if c[0] == "event_create"}
    assert create[sync_ev.handle] == rt.cudaEventDisableTiming and create[t0.handle] == 0
    t0.record(s1)
    sync_ev.record(s1)
    s2.wait_event(sync_ev)
    t1.record(s1)
    assert ("wait_event", s2.handle, sync_ev.handle) in rt.calls
    assert cuda.elapsed_ms(t0, t1) > 0
    with pytest.raises(cuda.CudaError, match="timing=True"):
        cuda.elapsed_ms(sync_ev, t1)


def test_pinned_ring_is_double_buffered(rt) -> None:
    """Frame n+1 is written into the other pinned slot while n copies; slot reuse waits for its last copy."""
    from engines import cuda

    ring, stream = cuda.PinnedRing(2), cuda.Stream()
    dst = [cuda.DeviceBuffer(12) for _ in range(3)]
    frames = [np.full(12, k, np.uint8) for k in range(3)]
    mark = len(rt.calls)
    ring.stage(frames[0], dst[0], stream)
    ring.stage(frames[1], dst[1], stream)
    assert ring.waits == 0 and not [c for c in _since(rt, mark) if c[0] == "event_sync"]
    h2d = rt.copies("H2D")
    assert len(h2d) == 2 and all(c[6] for c in h2d), "uploads go from pinned memory"
    assert h2d[0][3] != h2d[1][3], "two frames in a row use the two slots"
    ring.stage(frames[2], dst[2], stream)  # slot 0 again: waits for frame 0's copy first
    assert ring.waits == 1
    tail = _since(rt, mark)
    sync_at = next(i for i, c in enumerate(tail) if c[0] == "event_sync")
    copy_at = max(i for i, c in enumerate(tail) if c[0] == "memcpy")
    assert sync_at < copy_at and rt.copies("H2D")[2][3] == h2d[0][3]
    got = [np.ctypeslib.as_array((np.ctypeslib.ctypes.c_ubyte * 12).from_address(d.ptr)).copy() for d in dst]
    assert all((g == f).all() for g, f in zip(got, frames))
    ring.close()


def test_device_pool_reuses_buffers(rt) -> None:
    from engines import cuda

    pool = cuda.DevicePool()
    a = pool.take(100)
    pool.give(a)
    b = pool.take(100)
    c = pool.take(100)
    assert b is a and c is not a and pool.allocations == 2
    pool.close()
    assert not rt.device


def test_uploader_reuses_pinned_and_device_memory(rt) -> None:
    from engines.device import TransferLog, Uploader, download

    up, log = Uploader("cuda:0"), TransferLog()
    img = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    for k in range(5):
        d = up.upload(img + k, log, "frame")
        assert d.device.kind == "cuda" and rt.is_device(d.ptr, d.nbytes) and d.stream is up.stream
        assert (download(d) == img + k).all()
        del d  # the frame's buffer goes back to the pool
    assert up.pool.allocations == 1
    assert sum(1 for c in rt.calls if c[0] == "malloc_host") <= 2 + 5, "pinned staging is a ring, not per frame"
    assert log.count("up", "frame") == 5
    up.close()


def test_dlpack_export_waits_on_an_event_not_the_host(rt) -> None:
    from engines import cuda
    from engines.device import Uploader

    up, consumer = Uploader("cuda:0"), cuda.Stream()
    d = up.upload(np.ones((2, 2), np.float32))
    mark = len(rt.calls)
    d.__dlpack__(stream=consumer.handle)
    tail = _since(rt, mark)
    assert [c[0] for c in tail if c[0] in ("event_record", "wait_event", "stream_sync", "event_sync")] == \
        ["event_record", "wait_event"]
    assert tail[[c[0] for c in tail].index("wait_event")][1] == consumer.handle
    mark = len(rt.calls)
    d.__dlpack__(stream=-1)  # the consumer asks for no synchronisation
    assert not [c for c in _since(rt, mark) if c[0] in ("wait_event", "stream_sync")]


# ----------------------------------------------------------------------------- TrtBackend.run_device
def test_run_device_binds_device_memory_waits_on_the_producer_and_does_not_sync(rt, tmp_path) -> None:
    from engines.device import Uploader, download

    be, up = _backend(tmp_path), Uploader("cuda:0")
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    d = up.upload(x)
    mark = len(rt.calls)
    (y,) = be.run_device(d)
    tail = _since(rt, mark)
    names = [c[0] for c in tail]
    assert "memcpy" not in names, "run_device copies nothing for device inputs"
    assert not {"stream_sync", "event_sync"} & set(names), "run_device never waits on the host"
    wait = names.index("wait_event")
    assert tail[wait][1] == be.stream.handle and wait < names.index("execute")
    rec = max(i for i, c in enumerate(tail[:wait]) if c[0] == "event_record")
    assert tail[rec][2] == up.stream.handle and tail[rec][1] == tail[wait][2]
    assert ("set_tensor_address", "x", d.ptr) in tail
    assert y.device.kind == "cuda" and y.stream is be.stream and y.shape == (3, 4)
    assert np.array_equal(download(y), x * 2 + 1)
    be.close()
    up.close()


def test_one_engine_feeds_the_next_without_a_copy(rt, tmp_path) -> None:
    from engines.device import Uploader, download

    a, b, up = _backend(tmp_path, "a", 2.0, 1.0), _backend(tmp_path, "b", 10.0, 0.0), Uploader("cuda:0")
    x = np.ones((2, 4), np.float32)
    d = up.upload(x)
    mark = len(rt.calls)
    (z,) = b.run_device(*a.run_device(d))
    tail = _since(rt, mark)
    execs = [i for i, c in enumerate(tail) if c[0] == "execute"]
    assert len(execs) == 2 and not [c for c in tail if c[0] == "memcpy"]
    waits = [c for c in tail[execs[0]:execs[1]] if c[0] == "wait_event"]
    assert waits and waits[0][1] == b.stream.handle, "b's stream waits for a's"
    assert np.array_equal(download(z), (x * 2 + 1) * 10)
    # same stream: no event needed
    mark = len(rt.calls)
    a.run_device(*a.run_device(d))
    assert len([c for c in _since(rt, mark) if c[0] == "wait_event"]) == 1  # only for the upload's stream


def test_run_device_stages_host_arrays_and_run_resets_addresses(rt, tmp_path) -> None:
    from engines.device import DeviceArray, Uploader, download

    be, up = _backend(tmp_path), Uploader("cuda:0")
    x = np.full((2, 4), 3.0, np.float32)
    mark = len(rt.calls)
    (y,) = be.run_device(DeviceArray.from_numpy(x))
    h2d = [c for c in _since(rt, mark) if c[0] == "memcpy"]
    assert len(h2d) == 1 and h2d[0][1] == "H2D" and h2d[0][6] and be.staged == [("x", x.nbytes)]
    assert np.array_equal(download(y), x * 2 + 1)
    be.run_device(up.upload(x))  # moves the input address to the upload's buffer
    ctx = be.engine.contexts[0]
    out = be.run(x + 1)[0]
    slot_ptrs = {s.dev["x"].ptr for s in be._slots}
    assert ctx.addresses["x"] in slot_ptrs, "run() binds its own buffers again"
    assert np.array_equal(out, (x + 1) * 2 + 1)


def test_run_device_checks_inputs(rt, tmp_path) -> None:
    from engines.device import DeviceArray

    be = _backend(tmp_path)
    with pytest.raises(ModelError, match="dtype"):
        be.run_device(DeviceArray.from_numpy(np.ones((2, 4), np.float64)))
    with pytest.raises(ModelError, match="shape"):
        be.run_device(DeviceArray.from_numpy(np.ones((2, 5), np.float32)))
    with pytest.raises(ModelError, match="input"):
        be.run_device()
    with pytest.raises(ValueError, match="profile"):
        be.run_device(DeviceArray.from_numpy(np.ones((17, 4), np.float32)))


def test_fake_refuses_host_memory_in_an_engine(rt, tmp_path) -> None:
    """The fake is strict: an engine bound to host memory fails (so the tests above mean something)."""
    be = _backend(tmp_path)
    x = np.ones((1, 4), np.float32)
    be.context.set_input_shape("x", (1, 4))
    be.context.set_tensor_address("x", x.ctypes.data)
    with pytest.raises(FakeError, match="not device memory"):
        be.context.execute_async_v3(be.stream.handle)


# ----------------------------------------------------------------------------- selftest's chain check
def test_selftest_chain_check_runs_the_graphs_through_run_device(rt, tmp_path, capsys) -> None:
    import argparse

    from engines import selftest

    ctx = selftest.Context(tmp_path, argparse.Namespace(onnx=None, config="mca_tiny"))
    detail = selftest.check_chain(ctx)
    out = capsys.readouterr().out
    assert "3 graphs exact" in detail and out.count("PASS  chain") == 3
    assert len([c for c in rt.calls if c[0] == "execute"]) == 6  # 3 graphs x (warm-up + timed), all run_device
    assert any(name == "chain graphs" for name, _ in selftest.CHECKS)


def test_selftest_chain_check_fails_when_a_graph_differs(rt, tmp_path, monkeypatch) -> None:
    import argparse

    from engines import chain_check, selftest

    monkeypatch.setattr(chain_check, "check_graphs", lambda *a, **k: [
        chain_check.CheckResult("crop", False, "max |graph - cv2.warpAffine| = 3 grey levels")])
    with pytest.raises(ModelError, match="3 grey levels"):
        selftest.check_chain(selftest.Context(tmp_path, argparse.Namespace(onnx=None)))
