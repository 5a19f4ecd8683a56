"""The project's device array: pointer, shape, dtype, device, stream, owner; DLPack in and out.

One engine's output feeds the next without a copy when both speak :class:`DeviceArray`.
A host-backed variant (``device = cpu``, memory owned by a numpy array) runs the same
chain logic on a CPU with ONNX Runtime, and :class:`TransferLog` counts what crosses the
host/device boundary, so "the frame is uploaded once and only boxes and keypoints come
back" is checked here and on a GPU alike.

Interchange: ``__dlpack__`` / ``__dlpack_device__`` (DLPack 1.0 versioned capsules, or the
legacy ``dltensor`` for older consumers, built with ctypes: numpy, PyTorch, CuPy, JAX take them) and ``__cuda_array_interface__`` for
CUDA memory; :meth:`DeviceArray.from_dlpack` / :meth:`DeviceArray.from_cuda_array_interface`
take arrays from others (e.g. NVDEC frames from PyNvVideoCodec) without copying.  Only
C-contiguous arrays are taken (a strided one is a clear error).

The CUDA side (:func:`upload` / :func:`download` to ``cuda``) uses :mod:`engines.cuda`; it has
not been run on a GPU from this module yet (no GPU on the project's machines).
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from engines.base import ModelError

log = logging.getLogger(__name__)

__all__ = ["Device", "CPU", "DeviceArray", "TransferLog", "Uploader", "upload", "download", "run_on_device"]

# DLPack device types and dtype codes (dlpack.h)
_DL_CPU, _DL_CUDA, _DL_CUDA_HOST = 1, 2, 3
_DL_INT, _DL_UINT, _DL_FLOAT, _DL_BOOL = 0, 1, 2, 6


@dataclass(frozen=True)
class Device:
    """Where memory lives: ``cpu`` (host) or ``cuda`` with a device index."""

    kind: str = "cpu"
    index: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {self.kind!r}")

    @classmethod
    def parse(cls, spec: "str | Device") -> "Device":
        if isinstance(spec, Device):
            return spec
        kind, _, idx = str(spec).partition(":")
        return cls(kind, int(idx or 0))

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"


CPU = Device("cpu")


# ----------------------------------------------------------------------------- DLPack structs
class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


_Deleter = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", _Deleter)]


class _DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class _DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [("version", _DLPackVersion), ("manager_ctx", ctypes.c_void_p), ("deleter", _Deleter),
                ("flags", ctypes.c_uint64), ("dl_tensor", _DLTensor)]


_NAME, _USED = b"dltensor", b"used_dltensor"
_NAME_V, _USED_V = b"dltensor_versioned", b"used_dltensor_versioned"
_api = ctypes.pythonapi
_CapsuleDestructor = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_capsule_new = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p, _CapsuleDestructor)(
    ("PyCapsule_New", _api))
_valid_raw = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p)(("PyCapsule_IsValid", _api))
_pointer_raw = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(("PyCapsule_GetPointer", _api))
_valid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(("PyCapsule_IsValid", _api))
_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(("PyCapsule_GetPointer", _api))
_set_name = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(("PyCapsule_SetName", _api))

# managed tensors handed out and not yet released by their consumer: address -> (struct, shape, owner)
_LIVE: dict[int, tuple[Any, Any, Any]] = {}


def _release(address: int | None) -> None:
    if address:
        _LIVE.pop(int(address), None)


@_Deleter
def _managed_deleter(address: int | None) -> None:  # called by the consumer when it is done
    _release(address)


@_CapsuleDestructor
def _capsule_destructor(capsule: int | None) -> None:  # the capsule died without being consumed
    for name in (_NAME, _NAME_V):
        if capsule and _valid_raw(capsule, name):
            _release(_pointer_raw(capsule, name))


def _dl_dtype(dtype: np.dtype) -> _DLDataType:
    code = {"f": _DL_FLOAT, "i": _DL_INT, "u": _DL_UINT, "b": _DL_BOOL}.get(dtype.kind)
    if code is None:
        raise ModelError(f"dtype {dtype} has no DLPack equivalent")
    return _DLDataType(code, dtype.itemsize * 8, 1)


def _np_dtype(t: _DLDataType) -> np.dtype:
    if t.lanes != 1:
        raise ModelError(f"DLPack vector dtypes (lanes={t.lanes}) are not supported")
    kind = {_DL_FLOAT: "f", _DL_INT: "i", _DL_UINT: "u", _DL_BOOL: "b"}.get(t.code)
    if kind is None:
        raise ModelError(f"DLPack dtype code {t.code} is not supported")
    return np.dtype(np.bool_) if kind == "b" else np.dtype(f"{kind}{t.bits // 8}")


def _c_strides(shape: Sequence[int], itemsize: int) -> tuple[int, ...]:
    out, acc = [], itemsize
    for d in reversed(shape):
        out.append(acc)
        acc *= max(1, int(d))
    return tuple(reversed(out))


class _Consumed:
    """Keeps an imported DLPack tensor alive; calls its producer's deleter when dropped."""

    def __init__(self, address: int, deleter: Any, source: Any) -> None:
        self.address, self.deleter, self.source = address, deleter, source

    def __del__(self) -> None:
        if self.deleter:
            self.deleter(self.address)
            self.deleter = None


def _handle(stream: Any) -> int | None:
    """A raw cudaStream_t from an :class:`engines.cuda.Stream`, an int, or None."""
    if stream is None:
        return None
    return int(getattr(stream, "handle", stream) or 0)


def _stream_waits(consumer: int | None, producer: Any) -> None:
    """The ``consumer`` stream waits on the device for the work queued so far on ``producer``."""
    from engines import cuda

    rt = cuda.runtime()
    event = cuda.check(rt.cudaEventCreateWithFlags(rt.cudaEventDisableTiming), "cudaEventCreateWithFlags")
    try:
        cuda.check(rt.cudaEventRecord(event, _handle(producer) or 0), "cudaEventRecord")
        cuda.check(rt.cudaStreamWaitEvent(consumer or 0, event, 0), "cudaStreamWaitEvent")
    finally:  # destroying a recorded event is allowed: the wait still happens
        cuda.check(rt.cudaEventDestroy(event), "cudaEventDestroy")


# ----------------------------------------------------------------------------- the array
class DeviceArray:
    """A C-contiguous tensor somewhere: ``ptr`` (address), ``shape``, ``dtype``, ``device``, ``stream``
    (the CUDA stream its contents are written on, None when ready), ``owner`` (keeps the memory alive)."""

    def __init__(self, ptr: int, shape: Sequence[int], dtype: Any, device: "Device | str" = CPU,
                 stream: Any = None, owner: Any = None) -> None:
        self.ptr, self.shape, self.dtype = int(ptr or 0), tuple(int(d) for d in shape), np.dtype(dtype)
        self.device, self.stream, self.owner = Device.parse(device), stream, owner

    def __repr__(self) -> str:
        return f"DeviceArray({self.dtype.name}{list(self.shape)} on {self.device}, ptr=0x{self.ptr:x})"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def is_host(self) -> bool:
        return self.device.kind == "cpu"

    # -- host-backed ------------------------------------------------------------------
    @classmethod
    def from_numpy(cls, a: np.ndarray) -> "DeviceArray":
        """A host-backed array sharing ``a``'s memory (a C-contiguous copy first when it is not)."""
        a = np.ascontiguousarray(a)
        return cls(a.ctypes.data, a.shape, a.dtype, CPU, None, a)

    def numpy(self) -> np.ndarray:
        """The host memory as an ndarray (a view, no copy); CUDA memory needs :func:`download`."""
        if not self.is_host:
            raise ModelError(f"{self!r} is device memory; download() it to read it on the host")
        if isinstance(self.owner, np.ndarray):
            base = self.owner.reshape(-1).view(np.uint8)
            off = self.ptr - base.ctypes.data
            if 0 <= off and off + self.nbytes <= base.nbytes:
                return base[off:off + self.nbytes].view(self.dtype).reshape(self.shape)
        if self.nbytes == 0:
            return np.empty(self.shape, self.dtype)
        buf = (ctypes.c_byte * self.nbytes).from_address(self.ptr)
        view = np.frombuffer(memoryview(buf).cast("B"), self.dtype, self.size).reshape(self.shape)
        setattr(buf, "_mca_owner", self)  # the ctypes buffer (the view's base) keeps this array's owner alive
        return view

    # -- views ------------------------------------------------------------------------
    def __getitem__(self, key: slice) -> "DeviceArray":
        """Rows ``start:stop`` of the leading axis (a view at an offset pointer; step 1 only)."""
        if not isinstance(key, slice) or key.step not in (None, 1) or not self.ndim:
            raise TypeError("a DeviceArray slices only its leading axis, with step 1")
        start, stop, _ = key.indices(self.shape[0])
        stop = max(start, stop)
        row = self.nbytes // self.shape[0] if self.shape[0] else 0
        return DeviceArray(self.ptr + start * row, (stop - start, *self.shape[1:]), self.dtype, self.device,
                           self.stream, self)

    def reshape(self, *shape: int) -> "DeviceArray":
        dims = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        dims = tuple(np.empty(self.size, np.bool_).reshape(dims).shape) if -1 in dims else tuple(dims)
        if int(np.prod(dims, dtype=np.int64)) != self.size:
            raise ValueError(f"cannot reshape {self.shape} into {dims}")
        return DeviceArray(self.ptr, dims, self.dtype, self.device, self.stream, self)

    # -- DLPack out ---------------------------------------------------------------------
    def __dlpack_device__(self) -> tuple[int, int]:
        return (_DL_CPU, 0) if self.is_host else (_DL_CUDA, self.device.index)

    def __dlpack__(self, stream: Any = None, max_version: Any = None, dl_device: Any = None,
                   copy: bool | None = None) -> Any:
        """A DLPack capsule over this memory (no copy): versioned (1.0, writable) when the consumer
        accepts it (``max_version`` >= (1, 0)), else the legacy ``dltensor``.  On CUDA, ``stream`` is the
        consumer's: when this array is still being written on another stream, the consumer's stream waits
        for it on an event (no host wait); ``-1`` asks for no synchronisation, None means the legacy
        default stream (the DLPack convention)."""
        if copy:
            raise BufferError("DeviceArray exports without copying only (copy=True is not supported)")
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            raise BufferError(f"cannot export {self.device} memory to DLPack device {tuple(dl_device)}")
        if not self.is_host and self.stream is not None and stream != -1:
            consumer = 1 if stream is None else _handle(stream)  # 1: cudaStreamLegacy
            if consumer != _handle(self.stream):
                _stream_waits(consumer, self.stream)
        shape = (ctypes.c_int64 * max(1, self.ndim))(*self.shape)
        versioned = max_version is not None and int(tuple(max_version)[0]) >= 1
        managed: Any = _DLManagedTensorVersioned() if versioned else _DLManagedTensor()
        if versioned:
            managed.version = _DLPackVersion(1, 0)
            managed.flags = 0  # writable, not a copy
        dev_type, dev_id = self.__dlpack_device__()
        managed.dl_tensor = _DLTensor(self.ptr, _DLDevice(dev_type, dev_id), self.ndim, _dl_dtype(self.dtype),
                                      ctypes.cast(shape, ctypes.POINTER(ctypes.c_int64)), None, 0)
        managed.manager_ctx = None
        managed.deleter = _managed_deleter
        address = ctypes.addressof(managed)
        _LIVE[address] = (managed, shape, self)
        return _capsule_new(address, _NAME_V if versioned else _NAME, _capsule_destructor)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        if self.is_host:
            raise AttributeError("host memory has no __cuda_array_interface__")
        h = _handle(self.stream)
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False), "version": 3,
                "strides": None, "stream": h if h else None}

    # -- DLPack / CUDA array interface in -------------------------------------------------
    @classmethod
    def from_dlpack(cls, obj: Any, stream: Any = None) -> "DeviceArray":
        """Take ``obj`` (anything with ``__dlpack__``: numpy, torch, cupy, an NVDEC frame) without a copy."""
        dev_type = obj.__dlpack_device__()[0] if hasattr(obj, "__dlpack_device__") else _DL_CPU
        kw: dict[str, Any] = {"stream": _handle(stream)} if stream is not None and dev_type == _DL_CUDA else {}
        try:
            capsule = obj.__dlpack__(max_version=(1, 0), **kw)
        except TypeError:  # a producer from before DLPack 1.0
            capsule = obj.__dlpack__(**kw)
        if _valid(capsule, _NAME):
            address = _pointer(capsule, _NAME)
            managed: Any = _DLManagedTensor.from_address(address)
            _set_name(capsule, _USED)
        elif _valid(capsule, _NAME_V):
            address = _pointer(capsule, _NAME_V)
            managed = _DLManagedTensorVersioned.from_address(address)
            _set_name(capsule, _USED_V)
        else:
            raise ModelError("__dlpack__ did not return a DLPack capsule")
        holder = _Consumed(address, managed.deleter if managed.deleter else None, obj)
        t = managed.dl_tensor
        dtype = _np_dtype(t.dtype)
        shape = tuple(int(t.shape[i]) for i in range(t.ndim))
        if t.strides and shape:
            strides = tuple(int(t.strides[i]) * dtype.itemsize for i in range(t.ndim))
            want = _c_strides(shape, dtype.itemsize)
            if any(s != w for s, w, d in zip(strides, want, shape) if d > 1):
                raise ModelError(f"only C-contiguous arrays are taken; this one has strides {strides}")
        kind = {_DL_CPU: "cpu", _DL_CUDA_HOST: "cpu", _DL_CUDA: "cuda"}.get(t.device.device_type)
        if kind is None:
            raise ModelError(f"DLPack device type {t.device.device_type} is not supported (cpu and cuda are)")
        return cls((t.data or 0) + t.byte_offset, shape, dtype, Device(kind, t.device.device_id), stream, holder)

    @classmethod
    def from_cuda_array_interface(cls, obj: Any) -> "DeviceArray":
        """Take CUDA memory described by ``obj.__cuda_array_interface__`` (v2/v3) without a copy."""
        cai = obj.__cuda_array_interface__
        shape, dtype = tuple(cai["shape"]), np.dtype(cai["typestr"])
        if cai.get("strides") is not None and shape:
            want = _c_strides(shape, dtype.itemsize)
            if any(s != w for s, w, d in zip(cai["strides"], want, shape) if d > 1):
                raise ModelError(f"only C-contiguous arrays are taken; this one has strides {cai['strides']}")
        return cls(int(cai["data"][0]), shape, dtype, Device("cuda", 0), cai.get("stream"), obj)


# ----------------------------------------------------------------------------- transfers
@dataclass
class TransferLog:
    """What crossed the host/device boundary: (name, bytes) per upload and per download."""

    uploads: list[tuple[str, int]] = field(default_factory=list)
    downloads: list[tuple[str, int]] = field(default_factory=list)

    def bytes(self, direction: str = "down", name: str | None = None) -> int:
        rows = self.uploads if direction == "up" else self.downloads
        return sum(n for k, n in rows if name is None or k == name)

    def count(self, direction: str = "down", name: str | None = None) -> int:
        rows = self.uploads if direction == "up" else self.downloads
        return sum(1 for k, _ in rows if name is None or k == name)

    def clear(self) -> None:
        self.uploads.clear()
        self.downloads.clear()


class _CudaMemory:
    """Owns CUDA buffers behind device arrays; frees them (after the stream's pending work) when the last
    array viewing them is gone."""

    def __init__(self, stream: Any, *buffers: Any) -> None:
        self.stream, self.buffers = stream, buffers

    def __del__(self) -> None:
        try:
            if self.stream is not None and hasattr(self.stream, "synchronize"):
                self.stream.synchronize()
            for b in self.buffers:
                b.close()
        except Exception as e:  # noqa: BLE001 - never raise from a finalizer; say it
            log.warning("freeing CUDA buffers failed: %s", e)


class _Lease:
    """A pooled device buffer behind device arrays; back to its pool when the last array viewing it is gone."""

    def __init__(self, pool: Any, buf: Any) -> None:
        self.pool, self.buf = pool, buf

    def __del__(self) -> None:
        self.pool.give(self.buf)


class Uploader:
    """Host arrays up to one CUDA device on one stream: a pinned ring (double-buffered, see
    :class:`engines.cuda.PinnedRing`) and a device pool, so a frame costs no allocation once warm.

    The device buffer goes back to the pool when the last :class:`DeviceArray` over it is dropped;
    drop it only when no queued work reads it any more (the chain drops a frame after its last
    download, which synchronised every stream that read it).
    """

    def __init__(self, device: "Device | str" = "cuda:0", stream: Any = None, slots: int = 2) -> None:
        from engines import cuda

        self.device = Device.parse(device)
        if self.device.kind != "cuda":
            raise ModelError("an Uploader uploads to a CUDA device")
        self._own_stream = stream is None
        self.stream = cuda.Stream() if stream is None else stream
        self.ring, self.pool = cuda.PinnedRing(slots), cuda.DevicePool()

    def upload(self, a: np.ndarray, log_: TransferLog | None = None, name: str = "") -> DeviceArray:
        a = np.ascontiguousarray(a)
        if log_ is not None:
            log_.uploads.append((name, a.nbytes))
        buf = self.pool.take(a.nbytes)
        self.ring.stage(a, buf, self.stream)
        return DeviceArray(buf.ptr, a.shape, a.dtype, self.device, self.stream, _Lease(self.pool, buf))

    def device_copy(self, src: DeviceArray, stream: Any, keep: Any = None) -> DeviceArray:
        """A copy of device memory ``src`` into a pooled buffer, on ``stream`` (after the work queued there);
        ``keep`` stays alive with the copy (e.g. the source, until the copy has run)."""
        from engines import cuda

        if src.is_host:
            raise ModelError("device_copy copies device memory; upload() host arrays")
        buf = self.pool.take(src.nbytes)
        rt = cuda.runtime()
        cuda.check(rt.cudaMemcpyAsync(buf.ptr, src.ptr, src.nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice,
                                      cuda.stream_handle(stream)), "cudaMemcpyAsync(D2D)")
        return DeviceArray(buf.ptr, src.shape, src.dtype, self.device, stream, (_Lease(self.pool, buf), keep))

    def close(self) -> None:
        self.ring.close()
        if self._own_stream:
            self.stream.synchronize()
            self.stream.close()
        self.pool.close()


def upload(a: np.ndarray, device: "Device | str" = CPU, stream: Any = None, log_: TransferLog | None = None,
           name: str = "", uploader: Uploader | None = None) -> DeviceArray:
    """``a`` on ``device``.  On the host stand-in this shares ``a``'s memory (no copy) and is still logged
    as an upload, so the chain's transfers are counted the same way on a CPU and on a GPU.  On CUDA, an
    ``uploader`` (its ring, pool and stream) is used when given, else one-off buffers on ``stream``."""
    a = np.ascontiguousarray(a)
    dev = Device.parse(device)
    if dev.kind == "cuda" and uploader is not None:
        return uploader.upload(a, log_, name)
    if log_ is not None:
        log_.uploads.append((name, a.nbytes))
    if dev.kind == "cpu":
        return DeviceArray.from_numpy(a)
    from engines import cuda

    if stream is None:
        raise ModelError("an upload to CUDA needs the stream it is queued on")
    buf = cuda.DeviceBuffer(a.nbytes)
    host = cuda.HostBuffer(a.shape, a.dtype)  # one-off pinned staging (an Uploader reuses a ring)
    host.array[...] = a
    cuda.memcpy_htod_async(buf, host, a.nbytes, stream)
    return DeviceArray(buf.ptr, a.shape, a.dtype, dev, stream, _CudaMemory(stream, buf, host))


def download(d: DeviceArray, log_: TransferLog | None = None, name: str = "") -> np.ndarray:
    """A host copy of ``d`` (the caller owns it: device buffers are reused for the next frame)."""
    if log_ is not None:
        log_.downloads.append((name, d.nbytes))
    if d.is_host:
        return d.numpy().copy()
    from engines import cuda

    host = cuda.HostBuffer(d.shape, d.dtype)
    try:
        rt = cuda.runtime()
        stream = _handle(d.stream) or 0
        cuda.check(rt.cudaMemcpyAsync(host.ptr, d.ptr, d.nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream),
                   "cudaMemcpyAsync(D2H)")
        cuda.check(rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        return host.array.copy()
    finally:
        host.close()


def run_on_device(backend: Any, *arrays: DeviceArray) -> list[DeviceArray]:
    """Run ``backend`` on device arrays, outputs as device arrays.

    A backend with ``run_device`` (TensorRT, phase 2) takes and returns device memory directly; any
    other backend (ONNX Runtime) runs on host-backed arrays without copying them.
    """
    run_device = getattr(backend, "run_device", None)
    if callable(run_device):
        return list(run_device(*arrays))
    if not all(a.is_host for a in arrays):
        where = sorted({str(a.device) for a in arrays})
        raise ModelError(f"{getattr(backend, 'name', 'backend')} runs on host arrays, these are on {where}; "
                         "a TensorRT backend with run_device() takes device memory")
    return [DeviceArray.from_numpy(o) for o in backend.run(*(a.numpy() for a in arrays))]
