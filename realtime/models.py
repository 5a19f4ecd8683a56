"""Model files for the pipeline: bundled names, default paths, and one loader.

The pipeline only ever sees a :class:`Backend` (numpy in, numpy out, metadata).
``load_model`` gets one from ``engines.load`` (ONNX Runtime or TensorRT); ``engines``
imports neither torch nor TensorRT, so the runtime needs only numpy, OpenCV, ONNX
Runtime and PyAV.

Models can be given as a path (ONNX or TensorRT engine) or by a bundled name
(``mca_tiny_synth``, ``mca_tiny_real``, ``yolo_synth``, ``yolo_real``, ``ssdlite``); a missing bundled file is a
:class:`ModelError` that names the file and the command that makes it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import engines as _engines
from engines.base import Backend, ModelError, TensorSpec

log = logging.getLogger(__name__)

__all__ = ["Backend", "ModelError", "TensorSpec", "BundledModel", "BUNDLED", "MODELS_DIR", "bundled_path",
           "resolve_model", "load_model", "int8_variant", "precision_note", "submit"]

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
        "mca_tiny (MPII-16 joints) trained on the synthetic people, then on synthetic people with front/back cues "
        "(left/right learnt); has attention outputs"),
    "mca_tiny_real": BundledModel(
        "pose", "pose_mca_tiny_real.onnx",
        "scripts/train_real_pose.sh (teachers, tools/pseudo_label.py, scripts/train_pose.py, engines.export)",
        "mca_tiny trained on synthetic people with front/back cues (left/right learnt), then on synthetic + "
        "MoveNet-thunder pseudo-labelled real crops, then also on realistic mesh people (anny); has attention outputs"),
    "yolo_synth": BundledModel(
        "detector", "person_yolo_synth.onnx",
        "scripts/train_demo_detector.py (needs the 'yolo' extra)",
        "YOLOv8n person detector trained on the synthetic people (the demo's default)"),
    "yolo_real": BundledModel(
        "detector", "person_yolo_real.onnx",
        "scripts/train_real_detector.py (needs the 'yolo' extra, the MoveNet peers and vtest.avi)",
        "YOLOv8n person detector trained on synthetic scenes plus pseudo-boxed vtest.avi training frames "
        "(opt-in: --detector yolo_real)"),
    "ssdlite": BundledModel(
        "detector", "person_ssdlite.onnx", "tools/convert_ssdlite.py (needs the 'tools' extra)",
        "SSDLite-MobileNet pedestrian detector for real footage (the default outside the demo)"),
}
DEFAULTS = {("pose", True): "mca_tiny_synth", ("pose", False): "mca_tiny_real",
            ("detector", True): "yolo_synth", ("detector", False): "ssdlite"}
_MODEL_SUFFIXES = (".onnx", ".engine", ".trt", ".plan")

# Models whose INT8 twin was measured *not* to pay on a kernel family that otherwise runs INT8 by default
# (file name -> kernel -> why): ``--int8 auto`` keeps them in FP32 there; ``--int8 on`` / ``MCA_INT8=on`` still
# runs the twin.  From ``python -m realtime.bench.detector_int8`` (docs/benchmarks_detector_int8.md): with the TF
# graph's loops cut (engines.ssd_cut), SSDLite's twin runs x1.20 faster than FP32 on a 2-core AMD EPYC with VNNI
# (it was x0.83 on the Xeon before the cut; x0.85 there after it, 14.1 vs 12.0 ms, 2026-12-05) but keeps only 91 % of
# FP32's people, so speed does not pay for it.
INT8_NOT_FASTER: dict[str, dict[str, str]] = {
    "person_ssdlite.onnx": {"vnni": "its INT8 twin keeps only 91 % of FP32's people and is not reliably faster on VNNI (x1.20 on an AMD EPYC, x0.85 on an Intel Xeon)"},
}


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


def int8_variant(path: str | os.PathLike) -> Path | None:
    """The INT8 (Q/DQ) file made from the FP32 ``path``: ``NAME.int8.onnx`` beside it, if there is one and it was
    made from this very file (its ``mca.fp32_sha256``; a twin of an older, retrained model is skipped with a warning).
    """
    p = Path(path)
    if p.suffix.lower() != ".onnx" or p.name.endswith(".int8.onnx"):
        return None
    q = p.with_name(p.name[:-len(".onnx")] + ".int8.onnx")
    if not q.is_file():
        return None
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is what makes INT8 fast on the CPU anyway
        return q
    want = {m.key: m.value for m in onnx.load(str(q), load_external_data=False).metadata_props}.get("mca.fp32_sha256")
    if want is None:
        log.warning("%s has no mca.fp32_sha256 (made by an older calibration.quantize); running FP32", q.name)
        return None
    import hashlib

    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != want:
        log.warning("%s was made from another %s (retrained since?); running FP32 (remake it with "
                    "python -m calibration.quantize)", q.name, p.name)
        return None
    return q


def _on_cpu_ort(backend: str, device: str | None) -> bool:
    if backend == "trt" or device == "cuda":
        return False
    if backend == "auto" and _engines.tensorrt_available():
        return False  # TensorRT builds its own INT8 engine from the Q/DQ file
    try:
        import onnxruntime as ort

        return device == "cpu" or "CUDAExecutionProvider" not in ort.get_available_providers()
    except ImportError:  # pragma: no cover - ONNX Runtime is a runtime dependency
        return False


def load_model(path: str | os.PathLike, backend: str = "auto", precision: str | None = None,
               device: str | None = None, threads: int | None = None, int8: str | None = None,
               outputs: list[str] | None = None) -> Backend:
    """Load a model file on the best (or the named) backend (``engines.load``).

    On ONNX Runtime's CPU provider, INT8 is decided per CPU (:func:`engines.cpu.int8_plan`;
    ``int8`` = ``auto``/``on``/``off`` overrides it, as ``MCA_INT8`` does): where the plan
    says INT8 and an FP32 file has its ``NAME.int8.onnx`` beside it, that file runs, with
    the weight width the CPU needs.  ``precision_note(backend)`` then says what ran and why.
    A file given as INT8 runs as INT8 whatever the plan (the user chose it).

    ``outputs``: on ONNX Runtime, run only the graph those outputs need (the pipeline asks
    for ``heatmaps`` alone unless attention maps are drawn); TensorRT engines keep theirs.
    """
    opts: dict[str, Any] = {"threads": threads} if threads and backend != "trt" else {}
    if outputs is not None and backend != "trt":
        opts["outputs"] = list(outputs)
    p = Path(path)
    plan = None
    swapped = False
    if precision is None and p.suffix.lower() == ".onnx" and _on_cpu_ort(backend, device):
        from engines.cpu import int8_plan

        try:
            plan = int8_plan(mode=int8)
        except ValueError as e:
            raise ModelError(str(e)) from None
        opts["weight_bits"] = plan.weight_bits
        exception = None if plan.forced else INT8_NOT_FASTER.get(p.name, {}).get(plan.kernel)
        if exception is None and plan.int8 and not plan.forced and not _have_onnx():
            # without the onnx package ONNX Runtime runs the Q/DQ file as written (float convolutions between
            # Q/DQ pairs): measured x0.57 the speed of FP32, so the rule keeps FP32
            exception = "INT8 needs the 'onnx' package for ONNX Runtime's integer kernels (pip install onnx)"
        q = int8_variant(p) if plan.int8 and exception is None else None
        if q is not None:
            p, swapped = q, True
    try:
        m = _engines.load(p, backend=backend, precision=precision, device=device, **opts)
    except ModelError as e:
        if "outputs" not in opts or "no output(s)" not in str(e):
            raise
        # not the model the caller expects (e.g. a detector given as --pose): load it whole, so that the
        # caller's own check says what it is
        opts.pop("outputs")
        m = _engines.load(p, backend=backend, precision=precision, device=device, **opts)
    if plan is not None:
        bits = getattr(m, "weight_bits", None)
        why = plan.reason if swapped else f"an INT8 file was given ({plan.cpu})"
        if bits:
            note = f"INT8 ({bits}-bit weights): {why}"
        elif swapped or m.precision == "int8":
            note = f"INT8 Q/DQ as written, slower than FP32 without the 'onnx' package (pip install onnx): {why}"
        elif exception is not None:
            note = f"FP32: {exception} (--int8 on to run it)"
        elif plan.int8:
            note = f"FP32: no usable {p.stem}.int8.onnx beside {p.name} (scripts/make_int8_models.sh or " \
                   "python -m calibration.quantize makes one)"
        else:
            note = plan.describe()
        m.precision_note = note  # type: ignore[attr-defined]
    return m


def _have_onnx() -> bool:
    """Whether the ``onnx`` package is importable (ONNX Runtime's fused INT8 CPU kernels need its graph edit)."""
    import importlib.util

    return importlib.util.find_spec("onnx") is not None


def precision_note(backend: Backend) -> str:
    """What :func:`load_model` chose for ``backend`` and why (empty when it made no choice, e.g. TensorRT)."""
    return str(getattr(backend, "precision_note", ""))


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
