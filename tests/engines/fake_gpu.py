"""A fake CUDA runtime and a fake TensorRT, so the GPU code paths run (and are checked) on a CPU.

:class:`FakeRuntime` stands in for ``cuda.bindings.runtime``: "device" memory is host memory
(ctypes buffers) kept apart from pinned and ordinary host memory, so a copy of the wrong
kind or an engine reading host memory is an error; every call is logged in ``calls``
in order, and asynchronous work runs at once (stream order is call order), so data flows
as it would on a GPU.  :func:`fake_tensorrt` is a ``tensorrt`` module whose engines are
ONNX files run by ONNX Runtime: the context reads its inputs from, and writes its outputs
to, the tensor addresses it was given, exactly like ``execute_async_v3``.

``install(monkeypatch)`` puts both in place (``engines.cuda.runtime`` and ``sys.modules["tensorrt"]``)
and makes ``EngineBuilder.build_cached`` write the ONNX itself as the "engine".
"""

from __future__ import annotations

import ctypes
import enum
import importlib.machinery
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np


class cudaError_t(enum.IntEnum):  # noqa: N801 - the cuda-python name
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorInvalidResourceHandle = 400


class cudaMemcpyKind(enum.IntEnum):  # noqa: N801
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


class FakeError(AssertionError):
    """The code under test used the fake runtime wrongly (a wrong copy kind, a freed handle, host memory
    where device memory must be)."""


class _Props:
    name = b"Fake GPU"
    major, minor = 9, 0
    totalGlobalMem = 80 * 2**30


class FakeRuntime:
    """``cuda.bindings.runtime`` with device memory in host RAM and a log of every call."""

    cudaError_t = cudaError_t
    cudaMemcpyKind = cudaMemcpyKind
    cudaEventDisableTiming = 2

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.device: dict[int, Any] = {}  # base address -> ctypes buffer
        self.pinned: dict[int, Any] = {}
        self.streams: set[int] = set()
        self.events: dict[int, int | None] = {}  # handle -> tick of its last record (None: never recorded)
        self._handles = 1000
        self._tick = 0

    # -- helpers ------------------------------------------------------------------------
    def _new_handle(self) -> int:
        self._handles += 1
        return self._handles

    @staticmethod
    def _in(table: dict[int, Any], addr: int, nbytes: int) -> bool:
        return any(b <= addr and addr + nbytes <= b + ctypes.sizeof(buf) for b, buf in table.items())

    def is_device(self, addr: int, nbytes: int = 1) -> bool:
        return self._in(self.device, int(addr), int(nbytes))

    def is_pinned(self, addr: int, nbytes: int = 1) -> bool:
        return self._in(self.pinned, int(addr), int(nbytes))

    def _stream(self, s: Any) -> int:
        s = int(s or 0)
        if s and s not in self.streams and s not in (1, 2):  # 1, 2: cudaStreamLegacy, cudaStreamPerThread
            raise FakeError(f"stream {s} is not a live stream")
        return s

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def copies(self, kind: str | None = None) -> list[tuple]:
        return [c for c in self.calls if c[0] == "memcpy" and (kind is None or c[1] == kind)]

    # -- device -------------------------------------------------------------------------
    def cudaGetDeviceCount(self) -> tuple:
        return cudaError_t.cudaSuccess, 1

    def cudaGetDeviceProperties(self, device: int) -> tuple:
        return cudaError_t.cudaSuccess, _Props()

    def cudaDriverGetVersion(self) -> tuple:
        return cudaError_t.cudaSuccess, 12080

    def cudaRuntimeGetVersion(self) -> tuple:
        return cudaError_t.cudaSuccess, 12080

    def cudaGetErrorString(self, err: Any) -> tuple:
        return cudaError_t.cudaSuccess, b"fake error"

    # -- streams and events ---------------------------------------------------------------
    def cudaStreamCreate(self) -> tuple:
        h = self._new_handle()
        self.streams.add(h)
        self.calls.append(("stream_create", h))
        return cudaError_t.cudaSuccess, h

    def cudaStreamDestroy(self, s: int) -> cudaError_t:
        self.streams.discard(int(s))
        return cudaError_t.cudaSuccess

    def cudaStreamSynchronize(self, s: int) -> cudaError_t:
        self.calls.append(("stream_sync", self._stream(s)))
        return cudaError_t.cudaSuccess

    def cudaStreamWaitEvent(self, s: int, e: int, flags: int = 0) -> cudaError_t:
        if int(e) not in self.events:
            raise FakeError(f"event {e} is not a live event")
        self.calls.append(("wait_event", self._stream(s), int(e)))
        return cudaError_t.cudaSuccess

    def cudaEventCreate(self) -> tuple:
        return self.cudaEventCreateWithFlags(0)

    def cudaEventCreateWithFlags(self, flags: int) -> tuple:
        h = self._new_handle()
        self.events[h] = None
        self.calls.append(("event_create", h, int(flags)))
        return cudaError_t.cudaSuccess, h

    def cudaEventRecord(self, e: int, s: int) -> cudaError_t:
        if int(e) not in self.events:
            raise FakeError(f"event {e} is not a live event")
        self._tick += 1
        self.events[int(e)] = self._tick
        self.calls.append(("event_record", int(e), self._stream(s)))
        return cudaError_t.cudaSuccess

    def cudaEventSynchronize(self, e: int) -> cudaError_t:
        if int(e) not in self.events:
            raise FakeError(f"event {e} is not a live event")
        self.calls.append(("event_sync", int(e)))
        return cudaError_t.cudaSuccess

    def cudaEventElapsedTime(self, a: int, b: int) -> tuple:
        ta, tb = self.events.get(int(a)), self.events.get(int(b))
        if ta is None or tb is None:
            return cudaError_t.cudaErrorInvalidResourceHandle, 0.0
        return cudaError_t.cudaSuccess, 0.25 * (tb - ta)

    def cudaEventDestroy(self, e: int) -> cudaError_t:
        self.events.pop(int(e), None)
        return cudaError_t.cudaSuccess

    # -- memory ---------------------------------------------------------------------------
    def cudaMalloc(self, nbytes: int) -> tuple:
        buf = (ctypes.c_ubyte * int(nbytes))()
        self.device[ctypes.addressof(buf)] = buf
        self.calls.append(("malloc", ctypes.addressof(buf), int(nbytes)))
        return cudaError_t.cudaSuccess, ctypes.addressof(buf)

    def cudaFree(self, ptr: int) -> cudaError_t:
        if int(ptr) not in self.device:
            raise FakeError(f"cudaFree of {ptr:#x}, which is not a device allocation")
        del self.device[int(ptr)]
        return cudaError_t.cudaSuccess

    def cudaMallocHost(self, nbytes: int) -> tuple:
        buf = (ctypes.c_ubyte * int(nbytes))()
        self.pinned[ctypes.addressof(buf)] = buf
        self.calls.append(("malloc_host", ctypes.addressof(buf), int(nbytes)))
        return cudaError_t.cudaSuccess, ctypes.addressof(buf)

    def cudaFreeHost(self, ptr: int) -> cudaError_t:
        if int(ptr) not in self.pinned:
            raise FakeError(f"cudaFreeHost of {ptr:#x}, which is not a pinned allocation")
        del self.pinned[int(ptr)]
        return cudaError_t.cudaSuccess

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: Any, s: int) -> cudaError_t:
        kind = cudaMemcpyKind(int(kind))
        want = {cudaMemcpyKind.cudaMemcpyHostToDevice: (True, False),
                cudaMemcpyKind.cudaMemcpyDeviceToHost: (False, True),
                cudaMemcpyKind.cudaMemcpyDeviceToDevice: (True, True)}.get(kind)
        if want is not None:
            if self.is_device(dst, nbytes) != want[0] or self.is_device(src, nbytes) != want[1]:
                raise FakeError(f"{kind.name} of {nbytes} bytes from {src:#x} to {dst:#x}: wrong memory kinds")
        tag = {cudaMemcpyKind.cudaMemcpyHostToDevice: "H2D", cudaMemcpyKind.cudaMemcpyDeviceToHost: "D2H",
               cudaMemcpyKind.cudaMemcpyDeviceToDevice: "D2D"}.get(kind, kind.name)
        self.calls.append(("memcpy", tag, int(dst), int(src), int(nbytes), self._stream(s),
                           self.is_pinned(src if tag == "H2D" else dst, nbytes)))
        ctypes.memmove(int(dst), int(src), int(nbytes))
        return cudaError_t.cudaSuccess


# ----------------------------------------------------------------------------- TensorRT
class _Mode(enum.Enum):
    INPUT = 0
    OUTPUT = 1


class _Logger:
    WARNING, INFO, ERROR = 2, 3, 1

    def __init__(self, level: int = 2) -> None:
        self.level = level


class FakeEngine:
    """An "engine" that is an ONNX file run by ONNX Runtime, with TensorRT's I/O-tensor API."""

    def __init__(self, rt: FakeRuntime, onnx_bytes: bytes, batch: tuple[int, int, int] = (1, 4, 16)) -> None:
        import onnxruntime as ort

        self.rt, self.batch = rt, batch
        self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        kinds = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
                 "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_}
        self.io: list[tuple[str, _Mode, np.dtype, tuple[int, ...]]] = []
        for mode, args in ((_Mode.INPUT, self.session.get_inputs()), (_Mode.OUTPUT, self.session.get_outputs())):
            for a in args:
                dims = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in a.shape)
                self.io.append((a.name, mode, np.dtype(kinds[a.type]), dims))
        self.by_name = {t[0]: t for t in self.io}
        self.contexts: list[FakeContext] = []

    @property
    def num_io_tensors(self) -> int:
        return len(self.io)

    def get_tensor_name(self, i: int) -> str:
        return self.io[i][0]

    def get_tensor_mode(self, name: str) -> _Mode:
        return self.by_name[name][1]

    def get_tensor_dtype(self, name: str) -> np.dtype:
        return self.by_name[name][2]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.by_name[name][3]

    def get_tensor_profile_shape(self, name: str, profile: int) -> tuple[tuple[int, ...], ...]:
        from engines.lint import profile_shapes

        return profile_shapes(name, self.by_name[name][3], self.batch)

    def create_execution_context(self) -> "FakeContext":
        ctx = FakeContext(self)
        self.contexts.append(ctx)
        return ctx


class FakeContext:
    """``IExecutionContext``: input shapes and tensor addresses set, outputs written at their addresses."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine, self.rt = engine, engine.rt
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self._out_shapes: dict[tuple, dict[str, tuple[int, ...]]] = {}
        self.runs = 0

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        lo, _, hi = self.engine.get_tensor_profile_shape(name, 0)
        shape = tuple(int(d) for d in shape)
        if len(shape) != len(lo) or any(not (a <= d <= b) for a, d, b in zip(lo, shape, hi)):
            return False
        self.shapes[name] = shape
        self.rt.calls.append(("set_input_shape", name, shape))
        return True

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = int(ptr)
        self.rt.calls.append(("set_tensor_address", name, int(ptr)))
        return True

    def _inputs(self) -> list[tuple[str, np.dtype]]:
        return [(n, dt) for n, m, dt, _ in self.engine.io if m is _Mode.INPUT]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if self.engine.get_tensor_mode(name) is _Mode.INPUT:
            return self.shapes.get(name, self.engine.get_tensor_shape(name))
        key = tuple(self.shapes.get(n, ()) for n, _ in self._inputs())
        if key not in self._out_shapes:  # the shapes TensorRT would infer: run once on zeros
            feeds = {n: np.zeros(self.shapes[n], dt) for n, dt in self._inputs()}
            outs = self.engine.session.run(None, feeds)
            names = [o.name for o in self.engine.session.get_outputs()]
            self._out_shapes[key] = {n: tuple(o.shape) for n, o in zip(names, outs)}
        return self._out_shapes[key][name]

    def execute_async_v3(self, stream: int) -> bool:
        self.rt.calls.append(("execute", id(self.engine), int(stream)))
        feeds = {}
        for n, dt in self._inputs():
            shape, ptr = self.shapes[n], self.addresses[n]
            nbytes = int(np.prod(shape)) * dt.itemsize
            if not self.rt.is_device(ptr, nbytes):
                raise FakeError(f"engine input {n} at {ptr:#x} is not device memory")
            buf = (ctypes.c_ubyte * max(1, nbytes)).from_address(ptr)
            feeds[n] = np.frombuffer(buf, dt, int(np.prod(shape))).reshape(shape).copy()
        outs = self.engine.session.run(None, feeds)
        for o, a in zip(self.engine.session.get_outputs(), outs):
            a = np.ascontiguousarray(a)
            ptr = self.addresses[o.name]
            if not self.rt.is_device(ptr, a.nbytes):
                raise FakeError(f"engine output {o.name} at {ptr:#x} is not device memory of {a.nbytes} bytes")
            ctypes.memmove(ptr, a.ctypes.data, a.nbytes)
        self.runs += 1
        return True


def fake_tensorrt(rt: FakeRuntime) -> types.ModuleType:
    """A ``tensorrt`` module whose engine files are ONNX files (see :func:`install`)."""
    m = types.ModuleType("tensorrt")
    m.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    m.__version__ = "10.13.0"
    m.Logger = _Logger
    m.TensorIOMode = _Mode
    m.nptype = lambda dt: np.dtype(dt).type
    m.BuilderFlag = types.SimpleNamespace()  # TensorRT 11: no precision flags (precision comes from the ONNX)

    class Runtime:
        def __init__(self, logger: Any) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, blob: bytes) -> FakeEngine:
            return FakeEngine(rt, bytes(blob))

    m.Runtime = Runtime
    return m


def install(monkeypatch: Any) -> FakeRuntime:
    """The fake runtime and TensorRT in place for one test; returns the runtime (its ``calls`` log)."""
    from engines import cuda, trt

    rt = FakeRuntime()
    monkeypatch.setattr(cuda, "runtime", lambda: rt)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(rt))
    monkeypatch.setattr(trt, "tensorrt_version", lambda: "10.13.0")
    import engines.trt_backend as tb

    monkeypatch.setattr(tb, "tensorrt_version", lambda: "10.13.0")

    def build_cached(self: Any, onnx_path: Any, cache_dir: Any = None) -> Path:  # the ONNX is the "engine"
        from engines.ort import read_onnx_metadata

        src = Path(onnx_path)
        out = src.with_name(f"{src.stem}.{self.precision}.engine")
        out.write_bytes(src.read_bytes())
        meta = read_onnx_metadata(src)
        trt.write_sidecar(out, self.key(src), self.precision, meta)
        return out

    monkeypatch.setattr(trt.EngineBuilder, "build_cached", build_cached)
    return rt
