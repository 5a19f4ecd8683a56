"""ONNX Runtime backend: any machine, CPU or CUDA (onnxruntime-gpu)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from engines.base import Backend, ModelError, TensorSpec

log = logging.getLogger(__name__)

__all__ = ["OrtBackend", "read_onnx_metadata"]

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8, "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
    "tensor(double)": np.float64,
}


def _physical_cores() -> int:
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
        if n:
            return int(n)
    except ImportError:
        pass
    return max(1, (os.cpu_count() or 2))


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    with p.open("rb") as f:
        head = f.read(16)
    if not head:
        raise ModelError(f"model file is empty: {p}")
    return p


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, read without building a session."""
    import onnxruntime as ort

    p = _check_file(path)
    try:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT raises several unrelated types for bad files
        raise ModelError(f"{p} is not a loadable ONNX model: {str(e).splitlines()[0][:200]}") from None
    return dict(sess.get_modelmeta().custom_metadata_map)


class OrtBackend(Backend):
    """An ONNX model in an ONNX Runtime session tuned for latency.

    Threads = physical cores (hyper-threads only add contention in conv stacks),
    full graph optimisation, sequential execution, CPU memory arena on.
    """

    def __init__(self, path: str | os.PathLike, device: str | None = None, threads: int | None = None,
                 providers: list[str] | None = None, optimization: str = "all") -> None:
        import onnxruntime as ort

        p = _check_file(path)
        available = ort.get_available_providers()
        if providers is None:
            want_cuda = device is None or device.startswith("cuda")
            providers = (["CUDAExecutionProvider"] if want_cuda and "CUDAExecutionProvider" in available else [])
            providers.append("CPUExecutionProvider")
        missing = [pr for pr in providers if pr not in available]
        if missing:
            raise ModelError(f"ONNX Runtime providers {missing} are not available here (have: {available})")
        so = ort.SessionOptions()
        levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
        so.graph_optimization_level = levels[optimization]
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = threads or _physical_cores()
        so.inter_op_num_threads = 1
        so.enable_cpu_mem_arena = True
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(p), so, providers=providers)
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"{p} is not a loadable ONNX model: {str(e).splitlines()[0][:300]}") from None
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        used = self.session.get_providers()
        dev = "cuda" if used and used[0] == "CUDAExecutionProvider" else "cpu"
        super().__init__(
            path=str(p),
            inputs=[self._spec(i) for i in self.session.get_inputs()],
            outputs=[self._spec(o) for o in self.session.get_outputs()],
            metadata=meta,
            precision=meta.get("mca.precision", "fp32"),
            device=dev,
            name="onnxruntime",
        )
        self._input_names = [s.name for s in self.inputs]
        self._output_names = [s.name for s in self.outputs]
        log.debug("ORT session %s on %s, %d threads", p.name, used, so.intra_op_num_threads)

    @staticmethod
    def _spec(arg: object) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else None for d in arg.shape)  # type: ignore[attr-defined]
        return TensorSpec(arg.name, shape, np.dtype(_ORT_TYPES.get(arg.type, np.float32)))  # type: ignore[attr-defined]

    def run(self, *arrays: np.ndarray) -> list[np.ndarray]:
        if len(arrays) != len(self._input_names):
            raise ValueError(f"{self.path} takes {len(self._input_names)} input(s), got {len(arrays)}")
        feed = {}
        for spec, a in zip(self.inputs, arrays):
            if a.dtype != spec.dtype:
                raise ValueError(f"input {spec.name} wants {spec.dtype.name}, got {a.dtype.name}")
            feed[spec.name] = a
        return self.session.run(self._output_names, feed)
