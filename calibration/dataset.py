"""Calibration sets: the exact network inputs the models will see, in one compact file.

A calibration set is an ``.npz`` with ``crops`` (N, S, S, 3) uint8 BGR person crops
(what the pose model receives) and optionally ``detector_inputs`` (the detector's own
pre-processed inputs), plus a JSON manifest beside it (sources, counts, seed, rule).
ONNX Runtime's static quantization and TensorRT's legacy calibrator read the same
file, so both backends calibrate on identical data.  One generator,
:func:`iter_batches`, feeds calibration, evaluation and benchmarks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["CalibrationError", "CalibrationSet", "iter_batches"]


class CalibrationError(ValueError):
    """A calibration file that is missing, empty, corrupt or of the wrong shape."""


@dataclass
class CalibrationSet:
    crops: np.ndarray
    detector_inputs: np.ndarray | None = None
    manifest: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.crops.ndim != 4 or self.crops.shape[-1] != 3 or self.crops.dtype != np.uint8:
            raise CalibrationError(f"crops must be (N, S, S, 3) uint8, got {self.crops.shape} {self.crops.dtype}")
        if len(self.crops) == 0:
            raise CalibrationError("the calibration set holds no crops")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"crops": self.crops}
        if self.detector_inputs is not None:
            arrays["detector_inputs"] = self.detector_inputs
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)
        path.with_suffix(".json").write_text(json.dumps({**self.manifest, "count": int(len(self.crops)),
                                                          "crop_size": int(self.crops.shape[1])}, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "CalibrationSet":
        path = Path(path)
        if not path.is_file():
            raise CalibrationError(f"calibration file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as f:
                if "crops" not in f:
                    raise CalibrationError(f"{path} has no 'crops' array (make it with python -m calibration.build)")
                crops = f["crops"]
                det = f["detector_inputs"] if "detector_inputs" in f else None
        except CalibrationError:
            raise
        except Exception as e:  # noqa: BLE001 - zip/npz errors come in many types
            raise CalibrationError(f"{path} is not a readable calibration file ({type(e).__name__})") from None
        side = path.with_suffix(".json")
        manifest = json.loads(side.read_text()) if side.exists() else {}
        return cls(crops, det, manifest)


def iter_batches(array: np.ndarray, batch: int) -> Iterator[np.ndarray]:
    """Contiguous batches of a calibration array (the last one may be short)."""
    if batch < 1:
        raise ValueError("batch must be >= 1")
    for i in range(0, len(array), batch):
        yield np.ascontiguousarray(array[i:i + batch])
