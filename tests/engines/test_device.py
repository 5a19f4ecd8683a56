"""DeviceArray: host-backed views, DLPack out (numpy, torch consume it without a copy) and in, the
CUDA array interface, transfer logging, and running backends on device arrays."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import engines.device as D
from engines.base import ModelError
from engines.device import Device, DeviceArray, TransferLog, download, run_on_device, upload


def test_host_array_shares_memory_and_slices_rows() -> None:
    a = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    d = DeviceArray.from_numpy(a)
    assert (d.ptr, d.shape, d.dtype, d.nbytes, str(d.device)) == (a.ctypes.data, (4, 3, 2), np.float32, 96, "cpu")
    v = d.numpy()
    v[0, 0, 0] = -1
    assert a[0, 0, 0] == -1
    rows = d[1:3]
    assert rows.ptr == a.ctypes.data + 24 and rows.shape == (2, 3, 2)
    np.testing.assert_array_equal(rows.numpy(), a[1:3])
    assert d[5:9].shape == (0, 3, 2)
    np.testing.assert_array_equal(d.reshape(4, -1).numpy(), a.reshape(4, 6))
    with pytest.raises(TypeError):
        d[::2]
    with pytest.raises(ValueError):
        d.reshape(5, 5)


def test_dlpack_out_is_consumed_without_a_copy_and_released() -> None:
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    d = DeviceArray.from_numpy(a)
    assert d.__dlpack_device__() == (1, 0)
    before = len(D._LIVE)
    b = np.from_dlpack(d)
    assert b.ctypes.data == a.ctypes.data and b.flags.writeable
    b[2, 3] = 99
    assert a[2, 3] == 99
    assert len(D._LIVE) == before + 1
    del b
    gc.collect()
    assert len(D._LIVE) == before  # the consumer called our deleter
    cap = d.__dlpack__()  # never consumed: the capsule's destructor releases it
    assert len(D._LIVE) == before + 1
    del cap
    gc.collect()
    assert len(D._LIVE) == before


def test_dlpack_out_to_torch_and_in_from_torch() -> None:
    torch = pytest.importorskip("torch")
    a = np.linspace(0, 1, 10, dtype=np.float32)
    t = torch.from_dlpack(DeviceArray.from_numpy(a))
    assert t.data_ptr() == a.ctypes.data and t.dtype == torch.float32
    src = torch.arange(6, dtype=torch.int64).reshape(2, 3)
    d = DeviceArray.from_dlpack(src)
    assert d.ptr == src.data_ptr() and d.shape == (2, 3) and d.dtype == np.int64
    view = d.numpy()
    del d, src
    gc.collect()
    np.testing.assert_array_equal(view, [[0, 1, 2], [3, 4, 5]])  # the view keeps the tensor alive
    with pytest.raises(ModelError, match="C-contiguous"):
        DeviceArray.from_dlpack(torch.arange(12.0).reshape(3, 4).t())


def test_dlpack_in_from_numpy_and_from_a_pre_1_0_producer() -> None:
    a = np.ones((2, 2), np.float16)

    class Old:  # a producer whose __dlpack__ knows no max_version
        def __dlpack__(self, stream=None):
            return a.__dlpack__()

        def __dlpack_device__(self):
            return a.__dlpack_device__()

    for src in (a, Old()):
        d = DeviceArray.from_dlpack(src)
        assert d.ptr == a.ctypes.data and d.dtype == np.float16 and d.is_host


def test_cuda_array_interface_out_and_in_without_touching_memory() -> None:
    d = DeviceArray(0xABC000, (2, 3), np.uint8, "cuda:1", stream=7)
    assert d.__dlpack_device__() == (2, 1) and not d.is_host
    cai = d.__cuda_array_interface__
    assert cai == {"shape": (2, 3), "typestr": "|u1", "data": (0xABC000, False), "version": 3, "strides": None,
                   "stream": 7}
    assert not hasattr(DeviceArray.from_numpy(np.zeros(1)), "__cuda_array_interface__")
    with pytest.raises(ModelError, match="download"):
        d.numpy()

    class Frame:  # what an NVDEC frame offers
        __cuda_array_interface__ = {"shape": (4, 6, 3), "typestr": "|u1", "data": (0x1000, False), "version": 3,
                                    "strides": None, "stream": None}

    f = DeviceArray.from_cuda_array_interface(Frame())
    assert (f.ptr, f.shape, str(f.device)) == (0x1000, (4, 6, 3), "cuda:0")
    Frame.__cuda_array_interface__ = dict(Frame.__cuda_array_interface__, strides=(3, 12, 1))
    with pytest.raises(ModelError, match="C-contiguous"):
        DeviceArray.from_cuda_array_interface(Frame())


def test_upload_download_log_and_run_on_device() -> None:
    from engines.base import Backend

    class Double(Backend):
        def run(self, *arrays):
            return [a * 2 for a in arrays]

    log = TransferLog()
    x = np.arange(6, dtype=np.float32)
    d = upload(x, "cpu", log_=log, name="frame")
    assert d.ptr == x.ctypes.data  # the host stand-in uploads without copying
    out = run_on_device(Double("m"), d)
    back = download(out[0], log, "y")
    np.testing.assert_array_equal(back, x * 2)
    assert (log.count("up", "frame"), log.bytes("up"), log.count("down"), log.bytes("down", "y")) == (1, 24, 1, 24)
    with pytest.raises(ModelError, match="host arrays"):
        run_on_device(Double("m"), DeviceArray(0x1000, (2,), np.float32, "cuda"))
    with pytest.raises(ModelError, match="stream"):
        upload(x, "cuda:0")  # a CUDA upload is queued on a stream, never implicitly on the default one

    class Native(Backend):  # a backend that takes device memory itself (TensorRT in phase 2)
        def run(self, *arrays):
            raise AssertionError("run_device must be preferred")

        def run_device(self, *arrays):
            return list(arrays)

    assert run_on_device(Native("t"), d)[0] is d
    assert Device.parse("cuda:2") == Device("cuda", 2)
    with pytest.raises(ValueError):
        Device("tpu")
