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
BACKEND_ENV = "MCA_POSE_BACKEND"  # overrides backend="auto" (tests pin ONNX Runtime with it)


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

    ``auto``: TensorRT where a GPU and TensorRT exist and TensorRT can take the file
    (:mod:`engines.lint`: static shapes but the batch, supported Q/DQ, no data-dependent
    outputs), built into a cached engine; otherwise ONNX Runtime (CUDA provider where
    onnxruntime-gpu has one, else CPU), with one logged line saying why.
    ``auto`` yields to ``$MCA_POSE_BACKEND`` when it is set (``ort`` or ``trt``).
    ``.engine``/``.plan`` files need TensorRT.  ``precision`` (fp32/fp16/int8): on
    TensorRT the engine to build (default: int8 for a Q/DQ ONNX, else fp16); on ONNX
    Runtime, see :class:`engines.ort.OrtBackend`.
    """
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model file not found: {p}")
    if backend == "auto" and os.environ.get(BACKEND_ENV):
        backend = os.environ[BACKEND_ENV]  # a machine-wide choice, e.g. a CI job that must stay on ONNX Runtime
    if backend not in ("auto", "ort", "trt"):
        raise ModelError(f"unknown backend {backend!r}" + (f" (from ${BACKEND_ENV})" if os.environ.get(BACKEND_ENV)
                                                           else "") + "; valid: auto, ort, trt")
    is_engine = p.suffix.lower() in ENGINE_SUFFIXES
    if is_engine and backend == "ort":
        raise ModelError(f"{p} is a TensorRT engine; ONNX Runtime cannot run it (use --backend trt or an .onnx)")
    use_trt = backend == "trt" or is_engine
    if backend == "auto" and not is_engine and tensorrt_available():
        why = _trt_blocker(p)
        if why is None:
            try:
                return _load_trt(p, precision, opts)
            except (ModelError, RuntimeError, OSError) as e:  # CudaError is a RuntimeError; TensorRT raises those too
                why = f"{type(e).__name__}: {e}" if not isinstance(e, ModelError) else str(e)
        log.warning("%s: TensorRT cannot take it (%s); running it on ONNX Runtime", p.name, why)
    if use_trt:
        return _load_trt(p, precision, opts)
    from engines.ort import OrtBackend

    return OrtBackend(p, device=device, precision=precision, **opts)  # type: ignore[arg-type]


def _trt_blocker(p: Path) -> str | None:
    try:
        from engines.lint import trt_blocker
    except ImportError:  # pragma: no cover - onnx missing: TensorRT's own parser decides
        return None
    try:
        return trt_blocker(p)
    except ModelError as e:
        return str(e)


def _load_trt(p: Path, precision: str | None, opts: dict[str, object]) -> Backend:
    if importlib.util.find_spec("tensorrt") is None:
        raise ModelError("TensorRT is not installed (pip install the 'trt-cu12' or 'trt-cu13' extra on a GPU "
                         "machine; JetPack ships it on Jetson)")
    from engines.trt import TrtBackend

    trt_opts = {k: v for k, v in opts.items() if k in ("max_batch", "use_plugin", "calibration_file")}
    return TrtBackend.from_file(p, precision=precision, **trt_opts)  # type: ignore[arg-type]
