"""The pose backends ``python -m realtime.bench`` compares: ONNX Runtime FP32 / INT8, PyTorch eager, TensorRT."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from realtime.bench.errors import BenchError

log = logging.getLogger(__name__)

__all__ = ["TorchPoseBackend", "pose_backends"]


class TorchPoseBackend:
    """PyTorch eager in the :class:`engines.base.Backend` shape, outputs as the exported ONNX (speed comparisons)."""

    def __init__(self, onnx_backend: Any, checkpoint: Path | None, threads: int) -> None:
        import torch

        from engines.export import _pose_wrapper
        from mca.checkpoint import load_checkpoint
        from mca.config import MCAConfig
        from mca.registry import create_model

        torch.set_num_threads(threads)
        if checkpoint is not None and checkpoint.exists():
            model, _ = load_checkpoint(checkpoint)
        else:  # random weights of the ONNX's own config: the same arithmetic, so the same speed
            cfg = json.loads(onnx_backend.metadata["mca.config_json"])
            model = create_model(cfg.pop("name"), **{k: v for k, v in cfg.items() if k in MCAConfig.__dataclass_fields__})
        self._net = _pose_wrapper(model.eval(), attention_outputs=len(onnx_backend.outputs) > 1, deploy=True)
        self._torch = torch
        self.path, self.metadata = onnx_backend.path, onnx_backend.metadata
        self.inputs, self.outputs, self.input = onnx_backend.inputs, onnx_backend.outputs, onnx_backend.input
        self.precision, self.device = "fp32", "cpu"

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        with self._torch.inference_mode():
            out = self._net(self._torch.from_numpy(np.ascontiguousarray(x)))
        out = out if isinstance(out, tuple) else (out,)
        return [o.numpy() for o in out]


def _int8_model(fp32: Path, cache: Path, images: int = 64) -> Path:
    """A Q/DQ INT8 copy of ``fp32`` from a synthetic calibration set (cached by the FP32 file's content and the
    quantizer's own source, so a re-exported model or a changed quantizer never reuses a stale copy)."""
    import hashlib

    import calibration.quantize
    import calibration.rewrite

    h = hashlib.sha256(fp32.read_bytes())
    for mod in (calibration.quantize, calibration.rewrite):
        h.update(Path(mod.__file__).read_bytes())
    key = h.hexdigest()[:12]
    out = cache / f"{fp32.stem}.{key}.int8.onnx"
    if out.exists():
        return out
    from calibration.build import build_calibration_set
    from calibration.dataset import CalibrationSet
    from calibration.quantize import quantize_qdq

    calib = cache / f"{fp32.stem}.{key}.calib.npz"
    if not calib.exists():
        build_calibration_set([f"synthetic:{images}"], fp32, None, images, 200, 4.0, 500).save(calib)
    quantize_qdq(fp32, CalibrationSet.load(calib), out)
    return out


def pose_backends(names: list[str], onnx: Path, checkpoint: Path | None, cache: Path, threads: int) -> dict[str, Any]:
    """The requested pose backends; ones this machine cannot run are skipped with a logged reason."""
    from realtime.models import int8_variant, load_model

    out: dict[str, Any] = {}
    for name in names:
        try:
            # "ort" is FP32 whatever the CPU (the INT8 rule would swap in a bundled twin); "ort-int8" runs the
            # model's own NAME.int8.onnx where it has one (what realtime.run runs), else a calibrated copy
            if name == "ort":
                out[name] = load_model(onnx, backend="ort", threads=threads, int8="off")
            elif name == "ort-int8":
                src = onnx if int8_variant(onnx) is not None else _int8_model(onnx, cache)
                out[name] = load_model(src, backend="ort", threads=threads, int8="on")
            elif name == "torch":
                out[name] = TorchPoseBackend(load_model(onnx, backend="ort", threads=threads, int8="off"), checkpoint,
                                             threads)
            elif name in ("trt-fp16", "trt-int8"):
                from engines import tensorrt_available

                if not tensorrt_available():
                    log.warning("%s skipped: TensorRT or a CUDA GPU is not available here", name)
                    continue
                src = onnx if name == "trt-fp16" else _int8_model(onnx, cache)
                out[name] = load_model(src, backend="trt", precision=name.split("-")[1])
            else:
                raise BenchError(f"unknown backend {name!r}; valid: ort, ort-int8, torch, trt-fp16, trt-int8")
        except ImportError as e:
            log.warning("%s skipped: %s is not installed", name, e.name)
    return out
