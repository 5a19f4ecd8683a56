"""CUDA streams, events and buffers on cuda-python, every call checked and turned into a named error.

Objects own their memory and streams and free them on ``close()`` (or as
context managers).  cuda-python (``cuda.bindings.runtime``, or ``cuda.cudart``
before 12.6) is what NVIDIA's TensorRT samples use since 10.14; it is the only
CUDA binding used here (install the cuda-python matching the CUDA major: the
``trt-cu12``/``trt-cu13`` extras; on a Jetson, the one for JetPack's CUDA).
Copies are checked against the buffers' sizes before they are enqueued.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["CudaError", "runtime", "check", "device_count", "device_info", "stream_handle", "Stream", "Event",
           "elapsed_ms", "DeviceBuffer", "HostBuffer", "PinnedRing", "DevicePool", "memcpy_htod_async",
           "memcpy_dtoh_async"]


class CudaError(RuntimeError):
    """A CUDA runtime call failed; the message names the call and the CUDA error."""


def runtime() -> Any:
    """The cuda-python runtime module (clear error when it is missing)."""
    try:
        from cuda.bindings import runtime as rt
    except ImportError:
        try:
            from cuda import cudart as rt  # cuda-python < 12.6 layout
        except ImportError:
            raise CudaError("cuda-python is not installed (pip install the 'trt-cu12' or 'trt-cu13' extra)") from None
    return rt


def check(result: Any, call: str = "CUDA call") -> Any:
    """Unpack a cuda-python ``(err, *values)`` tuple, raising :class:`CudaError` on failure."""
    rt = runtime()
    if isinstance(result, tuple):
        err, *values = result
    else:
        err, values = result, []
    if err != rt.cudaError_t.cudaSuccess:
        name = getattr(err, "name", str(err))
        try:
            _, text = rt.cudaGetErrorString(err)
            text = text.decode() if isinstance(text, bytes) else str(text)
        except Exception:  # noqa: BLE001 - the message is a nicety
            text = ""
        raise CudaError(f"{call} failed: {name} {text}".strip())
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def device_count() -> int:
    rt = runtime()
    return int(check(rt.cudaGetDeviceCount(), "cudaGetDeviceCount"))


def device_info(device: int = 0) -> dict[str, Any]:
    """Name, compute capability, memory and driver/runtime versions of a device."""
    rt = runtime()
    props = check(rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace").rstrip("\0") if isinstance(props.name, bytes) else str(props.name)
    return {"name": name, "compute_capability": f"{props.major}.{props.minor}",
            "memory_gb": round(props.totalGlobalMem / 2**30, 1),
            "driver": check(rt.cudaDriverGetVersion(), "cudaDriverGetVersion"),
            "runtime": check(rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")}


def stream_handle(stream: Any) -> Any:
    """The raw ``cudaStream_t`` of a :class:`Stream`, a raw handle or int (0 / None: the legacy default stream)."""
    if stream is None:
        return 0
    return getattr(stream, "handle", stream)


class Stream:
    """An owned CUDA stream."""

    def __init__(self) -> None:
        self.handle = check(runtime().cudaStreamCreate(), "cudaStreamCreate")

    def synchronize(self) -> None:
        check(runtime().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def wait_event(self, event: "Event") -> None:
        """Later work on this stream waits for the work before ``event``'s last ``record`` (no host wait)."""
        check(runtime().cudaStreamWaitEvent(self.handle, event.handle, 0), "cudaStreamWaitEvent")

    def close(self) -> None:
        if self.handle is not None:
            check(runtime().cudaStreamDestroy(self.handle), "cudaStreamDestroy")
            self.handle = None

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Event:
    """An owned CUDA event: ``record`` on a stream, ``synchronize`` waits (on the host) for the work before it;
    :meth:`Stream.wait_event` makes another stream wait for it on the device.

    ``timing=False`` (the default) creates it with ``cudaEventDisableTiming``, the cheap kind for
    synchronisation; the bench's per-stage times use ``timing=True`` and :func:`elapsed_ms`.
    """

    def __init__(self, timing: bool = False) -> None:
        rt = runtime()
        self.timing = bool(timing)
        if self.timing:
            self.handle = check(rt.cudaEventCreate(), "cudaEventCreate")
        else:
            self.handle = check(rt.cudaEventCreateWithFlags(rt.cudaEventDisableTiming), "cudaEventCreateWithFlags")

    def record(self, stream: Any) -> None:
        check(runtime().cudaEventRecord(self.handle, stream_handle(stream)), "cudaEventRecord")

    def synchronize(self) -> None:
        check(runtime().cudaEventSynchronize(self.handle), "cudaEventSynchronize")

    def close(self) -> None:
        if self.handle is not None:
            check(runtime().cudaEventDestroy(self.handle), "cudaEventDestroy")
            self.handle = None


def elapsed_ms(start: Event, end: Event) -> float:
    """GPU milliseconds between two recorded timing events (waits for ``end``)."""
    if not (start.timing and end.timing):
        raise CudaError("elapsed_ms needs events created with timing=True")
    end.synchronize()
    return float(check(runtime().cudaEventElapsedTime(start.handle, end.handle), "cudaEventElapsedTime"))


class DeviceBuffer:
    """Owned device memory."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = int(nbytes)
        self.ptr = int(check(runtime().cudaMalloc(max(1, self.nbytes)), "cudaMalloc"))

    def close(self) -> None:
        if self.ptr:
            check(runtime().cudaFree(self.ptr), "cudaFree")
            self.ptr = 0


class HostBuffer:
    """Owned page-locked host memory with a NumPy view (fast async copies)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(shape)) * self.dtype.itemsize
        self.ptr = int(check(runtime().cudaMallocHost(max(1, self.nbytes)), "cudaMallocHost"))
        raw = (ctypes.c_byte * max(1, self.nbytes)).from_address(self.ptr)
        self.array = np.frombuffer(memoryview(raw).cast("B"), dtype=self.dtype,
                                   count=int(np.prod(shape))).reshape(shape)

    def close(self) -> None:
        if self.ptr:
            self.array = np.empty(0, self.dtype)
            check(runtime().cudaFreeHost(self.ptr), "cudaFreeHost")
            self.ptr = 0


def _check_size(nbytes: int, *bufs: "DeviceBuffer | HostBuffer") -> None:
    if nbytes < 0 or any(nbytes > b.nbytes for b in bufs):
        raise CudaError(f"copy of {nbytes} bytes does not fit the buffers ({[b.nbytes for b in bufs]} bytes)")


def memcpy_htod_async(dst: DeviceBuffer, src: HostBuffer, nbytes: int, stream: Stream) -> None:
    _check_size(nbytes, dst, src)
    rt = runtime()
    check(rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream.handle),
          "cudaMemcpyAsync(H2D)")


def memcpy_dtoh_async(dst: HostBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
    _check_size(nbytes, dst, src)
    rt = runtime()
    check(rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream.handle),
          "cudaMemcpyAsync(D2H)")


class PinnedRing:
    """``slots`` pinned host buffers used in turn for uploads (double-buffered by default).

    :meth:`stage` writes an array into the next slot and enqueues its copy to the device on ``stream``;
    before a slot is overwritten, the host waits for the copy that last read it (its event), so the
    host fills slot n+1 while slot n is still being copied.  Buffers grow when a larger array comes.
    """

    def __init__(self, slots: int = 2) -> None:
        if slots < 1:
            raise ValueError("a pinned ring needs at least one slot")
        self._bufs: list[HostBuffer | None] = [None] * slots
        self._events = [Event() for _ in range(slots)]
        self._used = [False] * slots
        self._next = 0
        self.waits = 0  # how often a slot's previous copy had to be waited for (recorded for the tests/bench)

    def stage(self, a: np.ndarray, dst: DeviceBuffer, stream: Any) -> None:
        """Copy ``a`` (C-contiguous) to ``dst`` on ``stream`` through the next pinned slot."""
        a = np.ascontiguousarray(a)
        k = self._next
        self._next = (k + 1) % len(self._bufs)
        if self._used[k]:
            self._events[k].synchronize()
            self.waits += 1
        buf = self._bufs[k]
        if buf is None or buf.nbytes < a.nbytes:
            if buf is not None:
                buf.close()
            buf = self._bufs[k] = HostBuffer((a.nbytes,), np.dtype(np.uint8))
        buf.array[:a.nbytes] = a.reshape(-1).view(np.uint8)
        _check_size(a.nbytes, dst, buf)
        rt = runtime()
        check(rt.cudaMemcpyAsync(dst.ptr, buf.ptr, a.nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                                 stream_handle(stream)), "cudaMemcpyAsync(H2D)")
        self._events[k].record(stream)
        self._used[k] = True

    def close(self) -> None:
        for used, e in zip(self._used, self._events):
            if used and e.handle is not None:
                e.synchronize()
        for b in self._bufs:
            if b is not None:
                b.close()
        for e in self._events:
            e.close()
        self._bufs = [None] * len(self._bufs)


class DevicePool:
    """Device buffers reused by size (one per frame in flight, instead of a ``cudaMalloc`` per frame).

    :meth:`take` returns a free buffer of at least ``nbytes`` (or allocates one); :meth:`give` puts it
    back.  The caller gives a buffer back only when no queued work reads it any more (the chain does so
    after the frame's last download, which synchronised the streams that read it).
    """

    def __init__(self) -> None:
        self._free: dict[int, list[DeviceBuffer]] = {}
        self._all: list[DeviceBuffer] = []
        self._lock = threading.RLock()  # taken by the detector thread, given back by the pose one (and by GC)
        self.allocations = 0

    def take(self, nbytes: int) -> DeviceBuffer:
        with self._lock:
            free = self._free.get(int(nbytes))
            if free:
                return free.pop()
            self.allocations += 1
            buf = DeviceBuffer(nbytes)
            self._all.append(buf)
            return buf

    def give(self, buf: DeviceBuffer) -> None:
        with self._lock:
            if buf.ptr and any(b is buf for b in self._all):
                self._free.setdefault(buf.nbytes, []).append(buf)

    def close(self) -> None:
        with self._lock:
            for b in self._all:
                b.close()
            self._all, self._free = [], {}
