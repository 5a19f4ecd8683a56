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
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["CudaError", "runtime", "check", "device_count", "device_info", "Stream", "Event", "DeviceBuffer",
           "HostBuffer", "memcpy_htod_async", "memcpy_dtoh_async"]


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


class Stream:
    """An owned CUDA stream."""

    def __init__(self) -> None:
        self.handle = check(runtime().cudaStreamCreate(), "cudaStreamCreate")

    def synchronize(self) -> None:
        check(runtime().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self) -> None:
        if self.handle is not None:
            check(runtime().cudaStreamDestroy(self.handle), "cudaStreamDestroy")
            self.handle = None

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Event:
    """An owned CUDA event: ``record`` on a stream, ``synchronize`` waits for the work before it."""

    def __init__(self) -> None:
        self.handle = check(runtime().cudaEventCreate(), "cudaEventCreate")

    def record(self, stream: Stream) -> None:
        check(runtime().cudaEventRecord(self.handle, stream.handle), "cudaEventRecord")

    def synchronize(self) -> None:
        check(runtime().cudaEventSynchronize(self.handle), "cudaEventSynchronize")

    def close(self) -> None:
        if self.handle is not None:
            check(runtime().cudaEventDestroy(self.handle), "cudaEventDestroy")
            self.handle = None


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
