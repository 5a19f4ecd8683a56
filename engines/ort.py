"""ONNX Runtime backend: any machine, CPU or CUDA (onnxruntime-gpu)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Backend, ModelError, TensorSpec

log = logging.getLogger(__name__)

__all__ = ["OrtBackend", "read_onnx_metadata"]

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8, "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
    "tensor(double)": np.float64,
}


_LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC",
           "none": "ORT_DISABLE_ALL"}


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
    full graph optimisation, sequential execution, CPU memory arena on.  On the
    CUDA provider, runs go through I/O binding (inputs copied once, outputs
    bound to device memory and fetched after the run) instead of ``session.run``.

    ``precision``: ``None``/``fp32`` run the file as it is; ``fp16`` converts an
    FP32 file in memory (:mod:`engines.fp16`, needs the ``onnx`` package) — worth
    it on CUDA, not on a CPU; ``int8`` needs a Q/DQ file (``calibration.quantize``)
    and otherwise runs it as it is, with a warning.

    A Q/DQ file on the CPU is rewritten in memory for ONNX Runtime's integer kernels
    (:func:`engines.int8.prepare_for_cpu`); ``weight_bits`` (7 or 8, default: what
    :func:`engines.cpu.int8_plan` says this CPU needs) picks 7-bit weights where the CPU's
    u8 x s8 dot products saturate (x86 without VNNI).  ``self.weight_bits`` says what ran.

    ``outputs`` (names): run only what those outputs need.  ONNX Runtime executes every
    node whatever is fetched, so the other outputs are cut from the graph in memory
    (:func:`engines.graph.prune_outputs`; without the ``onnx`` package they are only not
    fetched).  ``self.pruned_nodes`` says how many nodes that removed.
    """

    def __init__(self, path: str | os.PathLike, device: str | None = None, threads: int | None = None,
                 providers: list[str] | None = None, optimization: str = "all", precision: str | None = None,
                 io_binding: bool | None = None, uint8_activations: bool = True,
                 weight_bits: int | None = None, outputs: list[str] | tuple[str, ...] | None = None) -> None:
        import onnxruntime as ort

        p = _check_file(path)
        if precision not in (None, "fp32", "fp16", "int8"):
            raise ModelError(f"unknown precision {precision!r}; valid: fp32, fp16, int8")
        if optimization not in _LEVELS:
            raise ModelError(f"unknown optimization {optimization!r}; valid: {', '.join(_LEVELS)}")
        available = ort.get_available_providers()
        if providers is None:
            want_cuda = device is None or device.startswith("cuda")
            providers = (["CUDAExecutionProvider"] if want_cuda and "CUDAExecutionProvider" in available else [])
            providers.append("CPUExecutionProvider")
        provider_list: list[Any] = list(providers)
        if device and device.startswith("cuda:") and "CUDAExecutionProvider" in provider_list:
            try:
                device_id = int(device.split(":", 1)[1])
            except ValueError:
                raise ModelError(f"device {device!r}: want cuda or cuda:N") from None
            k = provider_list.index("CUDAExecutionProvider")
            provider_list[k] = ("CUDAExecutionProvider", {"device_id": device_id})
        missing = [pr for pr in providers if pr not in available]
        if missing:
            raise ModelError(f"ONNX Runtime providers {missing} are not available here (have: {available})")
        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[optimization])
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = threads or _physical_cores()
        so.inter_op_num_threads = 1
        so.enable_cpu_mem_arena = True
        so.log_severity_level = 3
        source: str | bytes = str(p)
        if precision == "fp16":
            source = self._fp16_bytes(p)
        try:
            self.session = ort.InferenceSession(source, so, providers=provider_list)
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"{p} is not a loadable ONNX model: {str(e).splitlines()[0][:300]}") from None
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if precision == "int8" and meta.get("mca.precision") != "int8":
            log.warning("%s is not a Q/DQ INT8 model (mca.precision=%s); running it as it is", p.name,
                        meta.get("mca.precision", "unknown"))
        half_qdq = meta.get("mca.precision") == "int8" and meta.get("mca.float_type") == "fp16"
        if half_qdq and optimization != "none":
            # Measured (ORT 1.32, CPU): its graph optimizations change a float16 Q/DQ file's heatmaps by up to 30 %
            # of their range, against 2 % unoptimized (what the file means); such a file is TensorRT 11's.
            log.warning("%s has float16 float layers (a TensorRT 11 Q/DQ file): ONNX Runtime runs it unoptimized "
                        "(slow); the CPU's INT8 file is the one written without --float16", p.name)
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            self.session = ort.InferenceSession(source, so, providers=provider_list)
        used = self.session.get_providers()
        dev = "cuda" if used and used[0] == "CUDAExecutionProvider" else "cpu"
        self.int8_rewritten = 0
        self.weight_bits: int | None = None  # 7 or 8 when the INT8 file runs on the CPU's integer kernels
        self.pruned_nodes = 0
        self._proto: Any = None  # the in-memory model when a rewrite made one
        self._fetch_only: list[str] | None = None
        if dev == "cpu" and meta.get("mca.precision") == "int8" and uint8_activations and precision != "fp16" \
                and not half_qdq:
            if weight_bits is None:
                from engines.cpu import int8_plan

                weight_bits = int8_plan().weight_bits
            self._use_uint8_activations(p, so, providers, weight_bits)
        have = [o.name for o in self.session.get_outputs()]
        if outputs is not None:
            wrong = [o for o in outputs if o not in have]
            if wrong or not outputs:
                raise ModelError(f"{p.name}: no output(s) {wrong or '(none asked)'}; it has {have}")
            if list(outputs) != have:
                self._keep_outputs(p, so, provider_list, source, list(outputs))
        super().__init__(
            path=str(p),
            inputs=[self._spec(i) for i in self.session.get_inputs()],
            outputs=[self._spec(o) for o in self.session.get_outputs()
                     if self._fetch_only is None or o.name in self._fetch_only],
            metadata=meta,
            precision=meta.get("mca.precision", "fp32"),
            device=dev,
            name="onnxruntime",
        )
        self._input_names = [s.name for s in self.inputs]
        self._output_names = [s.name for s in self.outputs]
        # I/O binding with numpy in and numpy out makes the same copies as session.run (outputs bound to the device
        # are copied back at once), so it is off unless asked for (the tests use it to check the path).
        self.io_binding = bool(io_binding)
        self._binding_device = "cpu"
        if dev == "cuda" and meta.get("mca.precision") == "int8":
            log.warning("%s: a Q/DQ model on ONNX Runtime's CUDA provider dequantizes to float (slower than FP32); "
                        "INT8 on a GPU is TensorRT's (--backend trt)", p.name)
        log.debug("ORT session %s on %s, %d threads, io_binding=%s", p.name, used, so.intra_op_num_threads,
                  self.io_binding)

    def _use_uint8_activations(self, p: Path, so: Any, providers: list[str], weight_bits: int) -> None:
        """The symmetric INT8 file with uint8 activations in memory: ONNX Runtime's CPU kernels fuse
        only those into integer convolutions (:mod:`engines.int8`); the scales are unchanged."""
        try:
            import onnx

            from engines.int8 import prepare_for_cpu
        except ImportError:
            log.warning("%s: INT8 on the CPU runs much faster with the 'onnx' package installed (pip install onnx); "
                        "running the file as it is", p.name)
            return
        import onnxruntime as ort

        m = onnx.load(str(p))
        n, other = prepare_for_cpu(m, weight_bits)
        if n or other:
            self.session = ort.InferenceSession(m.SerializeToString(), so, providers=providers)
            self._proto = m
            self.int8_rewritten = n
            self.weight_bits = weight_bits
            log.debug("%s: %d activation Q/DQ nodes run as uint8, %d-bit weights", p.name, n, weight_bits)

    def _keep_outputs(self, p: Path, so: Any, providers: list[Any], source: str | bytes, keep: list[str]) -> None:
        """A session with only the ``keep`` outputs and the nodes they need (or, without onnx, fetch only those)."""
        import onnxruntime as ort

        try:
            import onnx

            from engines.graph import prune_outputs
        except ImportError:
            log.debug("%s: no 'onnx' package: the unused outputs are computed but not fetched", p.name)
            self._fetch_only = keep
            return
        m = self._proto if self._proto is not None else (
            onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(str(p)))
        self.pruned_nodes = prune_outputs(m, keep)
        self.session = ort.InferenceSession(m.SerializeToString(), so, providers=providers)
        self._proto = m
        log.debug("%s: outputs %s only (%d nodes cut)", p.name, keep, self.pruned_nodes)

    @staticmethod
    def _fp16_bytes(p: Path) -> bytes:
        try:
            from engines.fp16 import convert_to_fp16, is_fp16
        except ImportError:
            raise ModelError("precision fp16 converts the ONNX and needs the 'onnx' package "
                             "(pip install onnx), or give an FP16 ONNX (engines.export --precision fp16)") from None
        import onnx

        try:
            m = onnx.load(str(p))
        except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends
            raise ModelError(f"{p} is not a loadable ONNX model ({type(e).__name__})") from None
        if is_fp16(m):
            return m.SerializeToString()
        return convert_to_fp16(m).SerializeToString()

    @staticmethod
    def _spec(arg: object) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else None for d in arg.shape)  # type: ignore[attr-defined]
        return TensorSpec(arg.name, shape, np.dtype(_ORT_TYPES.get(arg.type, np.float32)))  # type: ignore[attr-defined]

    def run(self, *arrays: np.ndarray) -> list[np.ndarray]:
        self.check_inputs(arrays)
        if not self.io_binding:
            return self.session.run(self._output_names, dict(zip(self._input_names, arrays)))
        binding = self.session.io_binding()
        for name, a in zip(self._input_names, arrays):
            binding.bind_cpu_input(name, np.ascontiguousarray(a))
        for name in self._output_names:
            binding.bind_output(name, self._binding_device)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()
