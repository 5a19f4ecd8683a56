"""Model files for the pipeline: bundled names, default paths, and one loader.

The pipeline only ever sees a :class:`Backend` (numpy in, numpy out, metadata).
``load_model`` gets one from ``engines.load`` (ONNX Runtime or TensorRT) and, where
the ``engines`` package cannot be imported (a stripped-down deployment, or while
it is being rebuilt), from a plain ONNX Runtime session with the same interface,
so the runtime never depends on more than numpy, OpenCV, ONNX Runtime and PyAV.

Models can be given as a path (ONNX or TensorRT engine) or by a bundled name
(``mca_tiny_synth``, ``yolo_synth``, ``ssdlite``); a missing bundled file is a
:class:`ModelError` that names the file and the command that makes it.
"""

from __future__ import annotations

import abc
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

try:  # the shared interface when the engines package is there ...
    import engines as _engines
    from engines.base import Backend, ModelError, TensorSpec
except ImportError:  # pragma: no cover - exercised by monkeypatching _engines in the tests
    _engines = None

    class ModelError(RuntimeError):  # type: ignore[no-redef]
        """A model file that cannot be used (missing, corrupt, wrong kind)."""

    @dataclass(frozen=True)
    class TensorSpec:  # type: ignore[no-redef]
        """Name, shape (None = dynamic) and dtype of one model input or output."""

        name: str
        shape: tuple[int | None, ...]
        dtype: np.dtype

    @dataclass
    class Backend(abc.ABC):  # type: ignore[no-redef]
        """The subset of ``engines.base.Backend`` the pipeline uses."""

        path: str
        inputs: list = field(default_factory=list)
        outputs: list = field(default_factory=list)
        metadata: dict[str, str] = field(default_factory=dict)
        precision: str = "fp32"
        device: str = "cpu"
        name: str = "backend"

        @abc.abstractmethod
        def run(self, *arrays: np.ndarray) -> list[np.ndarray]:
            """Run one batch."""

        def close(self) -> None:
            """Release resources."""

        @property
        def input(self) -> Any:
            return self.inputs[0]


__all__ = ["Backend", "ModelError", "TensorSpec", "BundledModel", "BUNDLED", "MODELS_DIR", "bundled_path",
           "resolve_model", "load_model", "DirectOrtBackend", "submit"]

MODELS_DIR = Path(__file__).resolve().parent / "models"


@dataclass(frozen=True)
class BundledModel:
    """A model shipped in ``realtime/models`` (package data) and how to rebuild it."""

    role: str  # "pose" or "detector"
    filename: str
    make: str  # the command that (re)creates the file
    about: str

    @property
    def path(self) -> Path:
        return MODELS_DIR / self.filename


BUNDLED: dict[str, BundledModel] = {
    "mca_tiny_synth": BundledModel(
        "pose", "pose_mca_tiny_synth.onnx", "scripts/train_demo_pose.sh",
        "mca_tiny (MPII-16 joints) trained on the synthetic people; has attention outputs"),
    "yolo_synth": BundledModel(
        "detector", "person_yolo_synth.onnx",
        "scripts/train_demo_detector.py (needs the 'yolo' extra)",
        "YOLOv8n person detector trained on the synthetic people (the demo's default)"),
    "ssdlite": BundledModel(
        "detector", "person_ssdlite.onnx", "tools/convert_ssdlite.py (needs the 'tools' extra)",
        "SSDLite-MobileNet pedestrian detector for real footage (the default outside the demo)"),
}
DEFAULTS = {("pose", True): "mca_tiny_synth", ("pose", False): "mca_tiny_synth",
            ("detector", True): "yolo_synth", ("detector", False): "ssdlite"}
_MODEL_SUFFIXES = (".onnx", ".engine", ".trt", ".plan")


def bundled_path(name: str) -> Path:
    """Where the bundled model ``name`` lives (whether or not the file is there)."""
    return BUNDLED[name].path


def resolve_model(spec: str | os.PathLike | None, role: str, demo: bool = False) -> Path:
    """A path for ``--pose``/``--detector``: a file, a bundled name, or the default for ``role``.

    Raises :class:`ModelError` with one actionable sentence when nothing usable is found.
    """
    if role not in ("pose", "detector"):
        raise ValueError(f"role must be 'pose' or 'detector', got {role!r}")
    name = DEFAULTS[(role, demo)] if spec is None else None
    if spec is not None:
        s = str(spec)
        p = Path(s).expanduser()
        if p.exists():
            return p
        key = s.removesuffix(".onnx")
        key = {b.filename.removesuffix(".onnx"): n for n, b in BUNDLED.items()}.get(key, key)
        if key in BUNDLED:
            name = key
        elif p.suffix.lower() in _MODEL_SUFFIXES or os.sep in s or "/" in s:
            raise ModelError(f"{role} model not found: {p}")
        else:
            try:
                from mca.config import list_models

                configs = list_models()
            except ImportError:  # pragma: no cover - mca is part of this distribution
                configs = []
            if s in configs:
                raise ModelError(f"{s} is a network config without bundled weights; export one with "
                                 f"'python -m engines.export {s} --checkpoint CKPT.pt -o {s}.onnx' and pass that file")
            names = ", ".join(n for n, b in BUNDLED.items() if b.role == role)
            raise ModelError(f"{role} model {s!r} is neither a file nor a bundled name ({names})")
    b = BUNDLED[name or DEFAULTS[(role, demo)]]
    if b.role != role:
        raise ModelError(f"{name} is a bundled {b.role} model, not a {role} model")
    if not b.path.exists():
        raise ModelError(f"bundled {role} model {name} is missing: {b.path} (make it with {b.make})")
    return b.path


class DirectOrtBackend(Backend):
    """A plain ONNX Runtime session behind the Backend interface (used when ``engines`` is absent)."""

    _TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
              "tensor(int8)": np.int8, "tensor(int32)": np.int32, "tensor(int64)": np.int64}

    def __init__(self, path: str | os.PathLike, device: str | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        p = Path(path)
        if not p.is_file():
            raise ModelError(f"model file not found: {p}")
        avail = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if (device is None or str(device).startswith("cuda")) and "CUDAExecutionProvider" in avail:
            providers.insert(0, "CUDAExecutionProvider")
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(p), so, providers=providers)
        except Exception as e:  # noqa: BLE001 - ORT raises several unrelated types for bad files
            raise ModelError(f"{p} is not a loadable ONNX model: {str(e).splitlines()[0][:200]}") from None

        def spec(a: Any) -> TensorSpec:
            shape = tuple(d if isinstance(d, int) else None for d in a.shape)
            return TensorSpec(a.name, shape, np.dtype(self._TYPES.get(a.type, np.float32)))

        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        super().__init__(path=str(p), inputs=[spec(i) for i in self.session.get_inputs()],
                         outputs=[spec(o) for o in self.session.get_outputs()], metadata=meta,
                         precision=meta.get("mca.precision", "fp32"),
                         device="cuda" if self.session.get_providers()[0].startswith("CUDA") else "cpu",
                         name="onnxruntime-direct")

    def run(self, *arrays: np.ndarray) -> list[np.ndarray]:
        feed = {s.name: a for s, a in zip(self.inputs, arrays)}
        return self.session.run([o.name for o in self.outputs], feed)


def load_model(path: str | os.PathLike, backend: str = "auto", precision: str | None = None,
               device: str | None = None, threads: int | None = None) -> Backend:
    """Load a model file on the best (or the named) backend; falls back to plain ONNX Runtime without ``engines``."""
    if _engines is not None:
        opts: dict[str, Any] = {"threads": threads} if threads and backend != "trt" else {}
        return _engines.load(path, backend=backend, precision=precision, device=device, **opts)
    if backend == "trt" or Path(path).suffix.lower() in _MODEL_SUFFIXES[1:]:
        raise ModelError("TensorRT needs the engines package (engines.trt); only ONNX Runtime is available here")
    log.info("engines package unavailable; running %s with a direct ONNX Runtime session", Path(path).name)
    return DirectOrtBackend(path, device=device, threads=threads)


class _Done:
    """An already-finished result with the same ``result()`` call as an asynchronous one."""

    def __init__(self, value: list[np.ndarray]) -> None:
        self._value = value

    def result(self) -> list[np.ndarray]:
        return self._value


def submit(backend: Backend, *arrays: np.ndarray) -> Any:
    """Start a batch; ``.result()`` gives the outputs.

    The hook for asynchronous backends: a backend with ``run_async`` (e.g. TensorRT
    enqueueing on its own CUDA stream) returns at once and the pipeline queues more
    work before it waits; every other backend runs here, synchronously.
    """
    run_async: Callable[..., Any] | None = getattr(backend, "run_async", None)
    if callable(run_async):
        return run_async(*arrays)
    return _Done(backend.run(*arrays))
