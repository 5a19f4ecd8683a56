"""Inference backends behind one interface (:class:`engines.base.Backend`).

Importing ``engines`` imports neither torch nor tensorrt: the runtime (and a
Jetson) needs only numpy and ONNX Runtime, plus TensorRT where it is installed.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from engines.base import Backend, ModelError, TensorSpec

log = logging.getLogger(__name__)

__all__ = ["Backend", "ModelError", "TensorSpec", "load", "tensorrt_available"]

ENGINE_SUFFIXES = (".engine", ".trt", ".plan")


def tensorrt_available() -> bool:
    """TensorRT importable and a CUDA device reachable (checked without importing torch)."""
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        from engines import cuda

        return cuda.device_count() > 0
    except Exception:  # noqa: BLE001 - any failure here means "no usable GPU"
        return False


def load(path: str | os.PathLike, backend: str = "auto", precision: str | None = None,
         device: str | None = None, **opts: object) -> Backend:
    """Load a model or engine file on the best (or the named) backend.

    ``auto``: TensorRT where a GPU and TensorRT exist (an ONNX file is built into a
    cached engine of ``precision``), else ONNX Runtime (CUDA provider where
    onnxruntime-gpu has one, else CPU).  ``.engine``/``.plan`` files need TensorRT.
    ``precision`` (fp32/fp16/int8): on TensorRT, the engine to build (FP16 from an
    FP16 copy of an FP32 ONNX, INT8 from a Q/DQ ONNX); on ONNX Runtime, see
    :class:`engines.ort.OrtBackend`.
    """
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model file not found: {p}")
    if backend not in ("auto", "ort", "trt"):
        raise ModelError(f"unknown backend {backend!r}; valid: auto, ort, trt")
    is_engine = p.suffix.lower() in ENGINE_SUFFIXES
    if is_engine and backend == "ort":
        raise ModelError(f"{p} is a TensorRT engine; ONNX Runtime cannot run it (use --backend trt or an .onnx)")
    use_trt = backend == "trt" or is_engine or (backend == "auto" and tensorrt_available())
    if use_trt:
        if importlib.util.find_spec("tensorrt") is None:
            raise ModelError("TensorRT is not installed (pip install the 'trt' extra on a GPU machine or Jetson)")
        from engines.trt import TrtBackend

        return TrtBackend.from_file(p, precision=precision or "fp16", **opts)  # type: ignore[arg-type]
    from engines.ort import OrtBackend

    return OrtBackend(p, device=device, precision=precision, **opts)  # type: ignore[arg-type]
