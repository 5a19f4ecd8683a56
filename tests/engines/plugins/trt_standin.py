"""A minimal stand-in for the *compiled* ``tensorrt`` module, so NVIDIA's pure-Python ``tensorrt.plugin``
package (from a PyPI ``tensorrt-cu12/cu13-bindings`` wheel) imports and runs on a machine without libnvinfer.

Only what ``tensorrt/plugin/*.py`` touches is here: enums, plain descriptor structs, a plugin registry, and a
symbolic dimension-expression builder (constants fold, anything else stays symbolic, as in TensorRT).  The
package's own code (``_validate.py``, ``_lib.py``, ``_plugin_class.py``, ``_tensor.py``) is what runs.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np


class _Member:
    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name

    def __repr__(self) -> str:
        return f"{self.kind}.{self.name}"


class _Enum:
    """Members are created on first access and compared by identity (like pybind11 enum values)."""

    def __init__(self, kind: str, *names: str) -> None:
        self._kind = kind
        for n in names:
            setattr(self, n, _Member(kind, n))

    def __getattr__(self, name: str) -> _Member:
        if name.startswith("__"):
            raise AttributeError(name)
        m = _Member(self._kind, name)
        setattr(self, name, m)
        return m


class IDimensionExpr:
    """A dimension: a known constant, or symbolic (``value`` None) - e.g. a dynamic batch."""

    def __init__(self, value: int | None = None, label: str = "") -> None:
        self.value, self.label = value, label

    def is_constant(self) -> bool:
        return self.value is not None

    def get_constant_value(self) -> int:
        if self.value is None:
            raise RuntimeError("not a constant")
        return self.value

    def __repr__(self) -> str:
        return f"Dim({self.value if self.value is not None else self.label or '?'})"


_OPS = {"SUM": lambda a, b: a + b, "PROD": lambda a, b: a * b, "MAX": max, "MIN": min, "SUB": lambda a, b: a - b,
        "EQUAL": lambda a, b: int(a == b), "LESS": lambda a, b: int(a < b), "FLOOR_DIV": lambda a, b: a // b,
        "CEIL_DIV": lambda a, b: -(-a // b)}


class IExprBuilder:
    def constant(self, value: int) -> IDimensionExpr:
        return IDimensionExpr(int(value))

    def operation(self, op: _Member, a: IDimensionExpr, b: IDimensionExpr) -> IDimensionExpr:
        if a.is_constant() and b.is_constant():
            return IDimensionExpr(_OPS[op.name](a.value, b.value))
        if op.name == "PROD" and b.value == 1:  # what TensorRT's simplifier does too; keeps tests readable
            return a
        if op.name == "SUM" and b.value == 0:
            return a
        return IDimensionExpr(None, f"({a!r} {op.name} {b!r})")


class Dims(list):
    MAX_DIMS = 8

    def __init__(self, shape: Any = 0) -> None:
        super().__init__([0] * shape if isinstance(shape, int) else list(shape))


class DimsExprs(list):
    def __init__(self, n: Any = 0) -> None:
        super().__init__([None] * n if isinstance(n, int) else list(n))


class PluginTensorDesc:
    def __init__(self) -> None:
        self.type: Any = None
        self.format: Any = None
        self.dims = Dims(0)
        self.scale = 1.0


class DynamicPluginTensorDesc:
    def __init__(self) -> None:
        self.desc = PluginTensorDesc()
        self.min = Dims(0)
        self.opt = Dims(0)
        self.max = Dims(0)


class PluginField:
    def __init__(self, name: str = "", data: Any = None, type: Any = None) -> None:  # noqa: A002 - TRT's name
        self.name = name
        self.data = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray)) else np.asarray(data)
        self.type = type


class PluginFieldCollection(list):
    pass


class _Registry:
    def __init__(self) -> None:
        self.creators: dict[tuple[str, str, str], Any] = {}

    def register_creator(self, creator: Any, namespace: str) -> bool:
        self.creators[(creator.name, creator.plugin_version, namespace)] = creator
        return True

    def get_creator(self, name: str, version: str, namespace: str = "") -> Any:
        return self.creators.get((name, version, namespace))


class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self, min_severity: int = 2) -> None:
        self.min_severity = min_severity

    def log(self, severity: int, msg: str) -> None:
        pass


def _base(name: str) -> type:
    return type(name, (), {"__init__": lambda self, *a, **k: None})


def make_module(bindings_dir: str | Path, version: str, aot: bool = True) -> types.ModuleType:
    """A ``tensorrt`` module whose ``__path__`` is the wheel's package dir, so ``tensorrt.plugin`` is NVIDIA's."""
    trt = types.ModuleType("tensorrt")
    trt.__path__ = [str(bindings_dir)]  # type: ignore[attr-defined]
    trt.__version__ = version  # type: ignore[attr-defined]
    trt.DataType = dt = _Enum("DataType", "FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "FP8", "BF16", "INT64",
                              "INT4", "FP4")
    for alias, member in (("float32", "FLOAT"), ("float16", "HALF"), ("int8", "INT8"), ("int32", "INT32"),
                          ("bool", "BOOL"), ("uint8", "UINT8"), ("bfloat16", "BF16"), ("int64", "INT64"),
                          ("fp8", "FP8"), ("int4", "INT4")):
        setattr(trt, alias, getattr(dt, member))
    np_types = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_,
                "UINT8": np.uint8, "INT64": np.int64}
    trt.nptype = lambda t: np_types[t.name]  # type: ignore[attr-defined]
    trt.TensorFormat = _Enum("TensorFormat", "LINEAR")
    trt.DimensionOperation = _Enum("DimensionOperation", *_OPS)
    trt.PluginFieldType = _Enum("PluginFieldType", "FLOAT16", "FLOAT32", "FLOAT64", "INT8", "INT16", "INT32",
                                "INT64", "CHAR", "DIMS", "UNKNOWN")
    trt.PluginArgType = _Enum("PluginArgType", "INT")
    trt.PluginArgDataType = _Enum("PluginArgDataType", "INT8", "INT16", "INT32")
    trt.TensorRTPhase = _Enum("TensorRTPhase", "BUILD", "RUNTIME")
    if aot:  # what tensorrt.plugin checks to enable aot_impl (the compiled module has it from 10.9)
        trt.QuickPluginCreationRequest = _Enum("QuickPluginCreationRequest", "UNKNOWN", "PREFER_JIT", "PREFER_AOT",
                                               "STRICT_JIT", "STRICT_AOT")
    for name in ("IPluginV3", "IPluginV3QuickCore", "IPluginV3QuickBuild", "IPluginV3QuickRuntime",
                 "IPluginV3QuickAOTBuild", "IPluginCreatorV3Quick", "ISymExpr", "ITensor"):
        setattr(trt, name, _base(name))
    registry = _Registry()
    trt.get_plugin_registry = lambda: registry  # type: ignore[attr-defined]
    for obj in (IDimensionExpr, IExprBuilder, Dims, DimsExprs, PluginTensorDesc, DynamicPluginTensorDesc,
                PluginField, PluginFieldCollection, Logger):
        setattr(trt, obj.__name__, obj)
    trt.ILogger = Logger  # type: ignore[attr-defined]
    return trt


def install(bindings_dir: str | Path, version: str, aot: bool = True) -> types.ModuleType:
    """Put the stand-in in ``sys.modules`` as ``tensorrt`` (nothing of the wheel's compiled part is loaded)."""
    for name in [m for m in sys.modules if m == "tensorrt" or m.startswith("tensorrt.")]:
        del sys.modules[name]
    trt = make_module(bindings_dir, version, aot)
    sys.modules["tensorrt"] = trt
    return trt
