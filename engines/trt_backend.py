"""Run a TensorRT engine: :class:`TrtBackend` (``run``), its asynchronous form (``run_async`` -> :class:`TrtPending`)
and ``run_device`` on device arrays (one engine's output feeds the next without a copy).

The backend owns its execution context, CUDA stream, and ``slots`` sets of pinned
host + device buffers sized for the profile's largest batch.  ``run_async``
copies a batch in, enqueues the engine and the copies out on the stream and
returns at once; ``result()`` waits for that batch only (a CUDA event) and copies
its outputs out of the pinned buffers.  A slot whose result was not collected
yet is collected before it is reused, so any order of calls is correct.  One
lock covers the context and the slots: TensorRT allows one thread per execution
context at a time, so threads sharing a backend are serialised here.

The engine is deserialized without registering any plugin: an AOT plugin's
kernel is embedded in the engine (TensorRT's QDP AOT mode needs no Python).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Backend, ModelError, TensorSpec
from engines.trt import (EngineBuilder, check_engine_compatible, default_precision, read_sidecar,
                         tensorrt_version)

log = logging.getLogger(__name__)

__all__ = ["TrtBackend", "TrtPending", "numpy_dtype", "dims_tuple"]


def dims_tuple(dims: Any) -> tuple[int, ...]:
    """A ``trt.Dims`` (a sequence with ``len`` and indexing) as a tuple of ints."""
    return tuple(int(dims[i]) for i in range(len(dims)))


def numpy_dtype(trt: Any, dtype: Any) -> np.dtype:
    """The numpy dtype of a TensorRT I/O type; a ``ModelError`` for types numpy has no buffer type for."""
    try:
        return np.dtype(trt.nptype(dtype))
    except (TypeError, KeyError, ValueError):
        raise ModelError(f"engine I/O type {getattr(dtype, 'name', dtype)} has no numpy type (BF16/FP8/INT4/FP4 "
                         "I/O is not supported here; keep the model's I/O float32/float16/int/uint8)") from None


class _Slot:
    """One set of pinned host and device buffers for every I/O tensor, and the event of its last run."""

    def __init__(self, cuda: Any, shapes: dict[str, tuple[int, ...]], dtypes: dict[str, np.dtype]) -> None:
        self.host = {n: cuda.HostBuffer(s, dtypes[n]) for n, s in shapes.items()}
        self.dev = {n: cuda.DeviceBuffer(self.host[n].nbytes) for n in shapes}
        self.event = cuda.Event()
        self.pending: TrtPending | None = None
        self.used = False  # the event was recorded at least once

    def close(self) -> None:
        for b in list(self.dev.values()) + list(self.host.values()):
            b.close()
        self.event.close()


class TrtPending:
    """A batch enqueued by :meth:`TrtBackend.run_async`; ``result()`` gives its outputs (numpy, copied)."""

    def __init__(self, backend: "TrtBackend", slot: _Slot, shapes: list[tuple[str, tuple[int, ...]]]) -> None:
        self._backend, self._slot, self._shapes = backend, slot, shapes
        self._value: list[np.ndarray] | None = None

    def _collect(self) -> None:  # called with the backend's lock held
        if self._value is not None:
            return
        self._slot.event.synchronize()
        self._value = [self._slot.host[name].array.reshape(-1)[:int(np.prod(shape))].reshape(shape).copy()
                       for name, shape in self._shapes]
        if self._slot.pending is self:
            self._slot.pending = None

    def result(self) -> list[np.ndarray]:
        with self._backend._lock:
            self._collect()
        if self._value is None:  # pragma: no cover - _collect always sets it
            raise ModelError("TensorRT result was not collected")
        return self._value


class TrtBackend(Backend):
    """A deserialized engine with its own context, stream and pinned/device buffers (``slots`` sets)."""

    def __init__(self, engine_path: str | os.PathLike, metadata: dict[str, str] | None = None,
                 precision: str | None = None, slots: int = 2) -> None:
        import tensorrt as trt

        from engines import cuda

        p = Path(engine_path)
        if not p.is_file():
            raise ModelError(f"engine file not found: {p}")
        side = read_sidecar(p)
        dev = cuda.device_info(0)
        check_engine_compatible(side.get("key", {}), dev["name"], dev["compute_capability"], tensorrt_version())
        self._lock = threading.RLock()
        self._slots: list[_Slot] = []
        self._next = 0
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(p.read_bytes())
        if self.engine is None:
            raise ModelError(f"{p} is not a TensorRT engine for this TensorRT {trt.__version__} and GPU "
                             "(engines are not portable: rebuild it here with python -m engines.build)")
        metadata = dict(metadata or side.get("metadata", {}))
        precision = precision or side.get("precision") or metadata.get("mca.precision") or "unknown"
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise ModelError(f"TensorRT could not create an execution context for {p} (out of GPU memory?)")
        self.stream = cuda.Stream()
        ins, outs, max_in = [], [], {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            dtype = numpy_dtype(trt, self.engine.get_tensor_dtype(name))
            dims = dims_tuple(self.engine.get_tensor_shape(name))
            shape = tuple(d if d >= 0 else None for d in dims)
            spec = TensorSpec(name, shape, dtype)
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                ins.append(spec)
                max_in[name] = dims_tuple(self.engine.get_tensor_profile_shape(name, 0)[2]) if None in shape else dims
            else:
                outs.append(spec)
        super().__init__(path=str(p), inputs=ins, outputs=outs, metadata=metadata, precision=precision,
                         device=f"cuda:{dev['name']}", name="tensorrt")
        self._max_batch = min(s[0] for s in max_in.values()) if max_in else 1
        # Output buffers: the output shapes at the profile's largest inputs (a -1 left means data-dependent).
        for name, shape in max_in.items():
            if not self.context.set_input_shape(name, shape):
                raise ModelError(f"{p}: TensorRT refused input {name} of shape {list(shape)}")
        max_shapes = dict(max_in)
        for s in outs:
            shape = dims_tuple(self.context.get_tensor_shape(s.name))
            if any(d < 0 for d in shape):
                raise ModelError(f"{p}: output {s.name} has a data-dependent shape {list(shape)}; this backend has "
                                 "no output allocator (run the model on ONNX Runtime)")
            max_shapes[s.name] = shape
        dtypes = {s.name: s.dtype for s in ins + outs}
        self._slots = [_Slot(cuda, max_shapes, dtypes) for _ in range(max(1, slots))]
        self._input_ready = cuda.Event()  # recorded on a producer's stream; this stream waits on it
        self.staged: list[tuple[str, int]] = []  # host-backed inputs run_device copied up (name, bytes)

    @classmethod
    def from_file(cls, path: str | os.PathLike, precision: str | None = None, max_batch: int = 16,
                  use_plugin: bool = False, calibration_file: str | os.PathLike | None = None,
                  **_: object) -> "TrtBackend":
        """An engine file (its sidecar gives metadata and precision), or an ONNX built (and cached) first.

        ``precision`` None: int8 for a Q/DQ ONNX, else fp16.
        """
        p = Path(path)
        if p.suffix.lower() == ".onnx":
            builder = EngineBuilder(precision or default_precision(p), 1, min(4, max_batch), max_batch,
                                    calibration_file=calibration_file, use_plugin=use_plugin)
            return cls(builder.build_cached(p))
        return cls(p)

    @property
    def max_batch(self) -> int:
        return self._max_batch

    def run_async(self, *arrays: np.ndarray) -> TrtPending:
        """Enqueue one batch (at most ``max_batch``) and return at once; ``.result()`` waits for it."""
        from engines import cuda

        self.check_inputs(arrays)
        n = int(arrays[0].shape[0]) if arrays and arrays[0].ndim else 1
        if n > self._max_batch:
            raise ValueError(f"batch {n} exceeds the engine's profile ({self._max_batch}); use run(), which splits")
        with self._lock:
            if not self._slots:
                raise ModelError(f"{self.path}: the backend is closed")
            slot = self._slots[self._next]
            self._next = (self._next + 1) % len(self._slots)
            if slot.pending is not None:  # still holds an uncollected batch: take its outputs first
                slot.pending._collect()
            for spec, a in zip(self.inputs, arrays):
                host = slot.host[spec.name]
                view = host.array[:n] if spec.shape and spec.shape[0] is None else host.array
                view[...] = a
                if not self.context.set_input_shape(spec.name, tuple(a.shape)):
                    raise ModelError(f"TensorRT refused input {spec.name} of shape {list(a.shape)}")
                self.context.set_tensor_address(spec.name, slot.dev[spec.name].ptr)
                cuda.memcpy_htod_async(slot.dev[spec.name], host, view.nbytes, self.stream)
            for spec in self.outputs:
                self.context.set_tensor_address(spec.name, slot.dev[spec.name].ptr)
            if not self.context.execute_async_v3(int(self.stream.handle)):
                raise ModelError("TensorRT execute_async_v3 failed (see the TensorRT log)")
            shapes = []
            for spec in self.outputs:
                shape = dims_tuple(self.context.get_tensor_shape(spec.name))
                nbytes = int(np.prod(shape)) * np.dtype(spec.dtype).itemsize
                cuda.memcpy_dtoh_async(slot.host[spec.name], slot.dev[spec.name], nbytes, self.stream)
                shapes.append((spec.name, shape))
            slot.event.record(self.stream)
            slot.used = True
            slot.pending = TrtPending(self, slot, shapes)
            return slot.pending

    def _check_device_inputs(self, arrays: tuple[Any, ...]) -> int:
        if len(arrays) != len(self.inputs):
            raise ModelError(f"{self.path}: expected {len(self.inputs)} input(s), got {len(arrays)}")
        for spec, a in zip(self.inputs, arrays):
            if np.dtype(a.dtype) != np.dtype(spec.dtype):
                raise ModelError(f"input {spec.name}: dtype {a.dtype} given, the engine takes {np.dtype(spec.dtype)}")
            if len(a.shape) != len(spec.shape) or any(d is not None and d != g for d, g in zip(spec.shape, a.shape)):
                want = ["?" if d is None else d for d in spec.shape]
                raise ModelError(f"input {spec.name}: shape {list(a.shape)} given, the engine takes {want}")
        n = max([int(a.shape[0]) for spec, a in zip(self.inputs, arrays) if spec.shape and spec.shape[0] is None],
                default=1)
        if n > self._max_batch:
            raise ValueError(f"batch {n} exceeds the engine's profile ({self._max_batch}); run it in parts")
        return n

    def _wait_for(self, stream: Any) -> None:
        """This engine's stream waits (on the device, not the host) for the work queued on ``stream``."""
        from engines import cuda

        if stream is None or int(cuda.stream_handle(stream) or 0) == int(self.stream.handle or 0):
            return  # (cuda-python's stream handles compare as ints: the same stream can come as two objects)
        self._input_ready.record(stream)
        self.stream.wait_event(self._input_ready)

    def run_device(self, *arrays: Any) -> list[Any]:
        """Run one batch on :class:`engines.device.DeviceArray` inputs; outputs are device arrays, no host sync.

        CUDA inputs are bound by address (no copy); where an input was written on another stream, this
        engine's stream first waits for it on an event (the host does not wait).  Host-backed inputs are
        copied up through this slot's pinned and device buffers (listed in ``staged``).  The outputs are
        views of the slot's output buffers on this engine's stream: valid until this backend has run
        ``slots`` more times, so a consumer reads (or downloads) them before that.
        """
        from engines import cuda
        from engines.device import Device, DeviceArray

        self._check_device_inputs(arrays)
        with self._lock:
            if not self._slots:
                raise ModelError(f"{self.path}: the backend is closed")
            slot = self._slots[self._next]
            self._next = (self._next + 1) % len(self._slots)
            if slot.pending is not None:
                slot.pending._collect()
            for spec, a in zip(self.inputs, arrays):
                if not self.context.set_input_shape(spec.name, tuple(a.shape)):
                    raise ModelError(f"TensorRT refused input {spec.name} of shape {list(a.shape)}")
                if a.is_host:  # staged: the slot's pinned buffer, then its device buffer
                    if slot.used:
                        slot.event.synchronize()  # the slot's last copy from the pinned buffer has finished
                        slot.used = False
                    host = slot.host[spec.name]
                    host.array.reshape(-1).view(np.uint8)[:a.nbytes] = a.numpy().reshape(-1).view(np.uint8)
                    cuda.memcpy_htod_async(slot.dev[spec.name], host, a.nbytes, self.stream)
                    self.staged.append((spec.name, a.nbytes))
                    ptr = slot.dev[spec.name].ptr
                else:
                    self._wait_for(a.stream)
                    ptr = a.ptr
                self.context.set_tensor_address(spec.name, ptr)
            for spec in self.outputs:
                self.context.set_tensor_address(spec.name, slot.dev[spec.name].ptr)
            if not self.context.execute_async_v3(int(self.stream.handle)):
                raise ModelError("TensorRT execute_async_v3 failed (see the TensorRT log)")
            outs = [DeviceArray(slot.dev[spec.name].ptr, dims_tuple(self.context.get_tensor_shape(spec.name)),
                                spec.dtype, Device("cuda", 0), stream=self.stream, owner=slot)
                    for spec in self.outputs]
            slot.event.record(self.stream)
            slot.used = True
            return outs

    def run(self, *arrays: np.ndarray) -> list[np.ndarray]:
        """Run a batch of any size: split into profile-sized parts, all enqueued before the first is collected."""
        self.check_inputs(arrays)
        n = int(arrays[0].shape[0]) if arrays and arrays[0].ndim else 1
        if n <= self._max_batch:
            return self.run_async(*arrays).result()
        step = self._max_batch
        pending = [self.run_async(*(a[i:i + step] for a in arrays)) for i in range(0, n, step)]
        parts = [p.result() for p in pending]
        return [np.concatenate([p[k] for p in parts]) for k in range(len(self.outputs))]

    def close(self) -> None:
        with self._lock:
            for slot in self._slots:
                if slot.pending is not None:
                    slot.pending._collect()
                slot.close()
            self._slots = []
            if getattr(self, "_input_ready", None) is not None:
                self._input_ready.close()
            if getattr(self, "stream", None) is not None:
                self.stream.close()
