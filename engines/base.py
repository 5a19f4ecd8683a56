"""The one interface every inference backend implements (torch-free).

The realtime pipeline, calibration and benchmarks talk to models only through
:class:`Backend`, so ONNX Runtime on a CPU and TensorRT on a Jetson are
interchangeable.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ModelError", "TensorSpec", "Backend"]


class ModelError(RuntimeError):
    """A model or engine file that cannot be used (missing, corrupt, wrong kind, mismatched)."""


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (None for a dynamic axis) and numpy dtype of one model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    def __str__(self) -> str:
        dims = "x".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {np.dtype(self.dtype).name}[{dims}]"


@dataclass
class Backend(abc.ABC):
    """A loaded model: run a batch (numpy in, numpy out) and describe itself.

    ``metadata`` holds what the exporter stored in the model (config name, joint
    set, input size, heatmap size, flip index, input layout/dtype ...), as strings.
    """

    path: str
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    precision: str = "fp32"
    device: str = "cpu"
    name: str = "backend"

    @abc.abstractmethod
    def run(self, *arrays: np.ndarray) -> list[np.ndarray]:
        """Run one batch; inputs in ``self.inputs`` order, outputs in ``self.outputs`` order."""

    def close(self) -> None:
        """Release device memory and streams (no-op for backends without any)."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def check_inputs(self, arrays: tuple[np.ndarray, ...]) -> None:
        """``ValueError`` unless ``arrays`` match ``self.inputs`` in count, dtype and every fixed dimension."""
        if len(arrays) != len(self.inputs):
            raise ValueError(f"{self.path} takes {len(self.inputs)} input(s), got {len(arrays)}")
        for spec, a in zip(self.inputs, arrays):
            if a.dtype != spec.dtype:
                raise ValueError(f"input {spec.name} wants {np.dtype(spec.dtype).name}, got {a.dtype.name}")
            if a.ndim != len(spec.shape) or any(d is not None and d != n for d, n in zip(spec.shape, a.shape)):
                want = "x".join("?" if d is None else str(d) for d in spec.shape)
                raise ValueError(f"input {spec.name} wants shape [{want}], got {list(a.shape)}")

    @property
    def input(self) -> TensorSpec:
        return self.inputs[0]

    def describe(self) -> str:
        lines = [f"{self.name} ({self.precision}, {self.device}): {self.path}"]
        lines += [f"  input  {s}" for s in self.inputs]
        lines += [f"  output {s}" for s in self.outputs]
        lines += [f"  meta   {k} = {v}" for k, v in sorted(self.metadata.items())]
        return "\n".join(lines)
