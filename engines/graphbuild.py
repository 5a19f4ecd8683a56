"""A small ONNX graph builder for the pre/post-processing graphs (:mod:`engines.preprocess`, :mod:`engines.postprocess`).

Every tensor gets a unique name under one prefix (``pre/``, ``crop/``, ``post/``), so a
graph built here can be spliced in front of or behind another model without name clashes
and its nodes stay recognisable (e.g. to keep them out of an FP16 conversion).
Needs the ``onnx`` package (not a runtime dependency: only the graph chain uses it).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["GraphBuilder", "require_onnx", "onnx_dtype"]


def require_onnx() -> Any:
    """The ``onnx`` module, or a clear error naming the package."""
    from engines.base import ModelError

    try:
        import onnx
    except ImportError:
        raise ModelError("building the chain's graphs needs the 'onnx' package (pip install onnx)") from None
    return onnx


def onnx_dtype(dtype: Any) -> int:
    """The ONNX element type of a numpy dtype."""
    from onnx import helper

    return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


class GraphBuilder:
    """Nodes and constants under one name prefix; ``op`` returns the output name(s)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{self.prefix}{hint}_{self._n}"

    def const(self, value: Any, dtype: Any = np.float32, hint: str = "c") -> str:
        """A constant tensor (an initializer)."""
        from onnx import numpy_helper

        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, out: str | Sequence[str] | None = None,
           **attrs: Any) -> Any:
        """Add one node; ``out`` names its output(s) explicitly (graph outputs), else they are generated."""
        from onnx import helper

        if out is None:
            names = [self.name(op_type.lower()) for _ in range(outputs)]
        else:
            names = [out] if isinstance(out, str) else list(out)
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=self.name(op_type), **attrs))
        return names[0] if len(names) == 1 else names

    def model(self, inputs: list[Any], outputs: list[Any], opset: int = 17, ir_version: int | None = None,
              name: str = "graph", metadata: dict[str, str] | None = None) -> Any:
        """A checked ModelProto of what was built."""
        onnx = require_onnx()
        from onnx import helper

        g = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="mca-pose")
        if ir_version is not None:
            m.ir_version = ir_version
        for k, v in (metadata or {}).items():
            m.metadata_props.add(key=k, value=v)
        onnx.checker.check_model(m)
        return m
