"""``python -m engines.lint FILE``: will TensorRT build this ONNX, and can :class:`engines.trt.TrtBackend` run it?

Checked without TensorRT (numpy + onnx), before every build (``engines.build``, ``engines.load``'s ``auto``):

- Q/DQ: quantized types int8/fp8 only (no INT32 bias ``DequantizeLinear`` as ONNX Runtime's ``QuantizeBias``
  writes; no uint8), zero point 0, per-channel scales only on constant inputs (``IDequantizeLayer`` rules).
- UINT8 only as a network input that is cast to float at once (TensorRT's rule for UINT8).
- Optimisation profile: a shape TensorRT accepts for every input (a dynamic batch dim 0, every other dim fixed;
  a static dim is min = opt = max).
- Outputs whose shape depends on the data (e.g. NMS inside a TF detector graph): TensorRT needs an output
  allocator for those, which this backend does not have, so such a model runs on ONNX Runtime.

Exit code 0: no errors (warnings may be printed); 1: errors; 2: not a readable ONNX file.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from engines.base import ModelError

log = logging.getLogger(__name__)

__all__ = ["Finding", "lint_model", "lint_file", "profile_shapes", "trt_blocker", "main"]

_FLOAT, _UINT8, _INT8, _INT32, _FLOAT16 = 1, 2, 3, 6, 10
_FP8 = {17, 18, 19, 20}  # FLOAT8E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ
_TYPE_NAMES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
               10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16", 21: "uint4", 22: "int4"}


@dataclass(frozen=True)
class Finding:
    """One problem: ``rule`` (qdq-type, qdq-zero-point, qdq-axis, uint8, profile, data-dependent), where, why."""

    rule: str
    where: str
    message: str
    severity: str = "error"  # "error": TensorRT (or this backend) cannot take it; "warning": works, but note it

    def __str__(self) -> str:
        return f"{self.severity}: [{self.rule}] {self.where}: {self.message}"


def profile_shapes(name: str, dims: Sequence[Any], batch: tuple[int, int, int]) -> tuple[tuple[int, ...], ...]:
    """(min, opt, max) TensorRT accepts for one input with ``dims`` (int, or None/-1/str for dynamic).

    Dim 0 dynamic: the batch range; any static dim: min = opt = max = that dim; another dynamic dim has no size
    TensorRT could pick, so it is a :class:`ModelError` (the model runs on ONNX Runtime instead).
    """
    def dynamic(d: Any) -> bool:
        return d is None or isinstance(d, str) or int(d) < 0

    lo, opt, hi = [], [], []
    for k, d in enumerate(dims):
        if not dynamic(d):
            lo.append(int(d))
            opt.append(int(d))
            hi.append(int(d))
        elif k == 0:
            lo.append(batch[0])
            opt.append(batch[1])
            hi.append(batch[2])
        else:
            raise ModelError(f"input {name} has a dynamic dimension {k} ({d if isinstance(d, str) else '?'}); "
                             "TensorRT needs every dimension but the batch fixed")
    return tuple(lo), tuple(opt), tuple(hi)


def _dims(vi: Any) -> list[Any]:
    out: list[Any] = []
    for d in vi.type.tensor_type.shape.dim:
        out.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
    return out


def _tensor_types(model: Any) -> dict[str, int]:
    """Element type of every tensor the graph names (shape inference where it can, declared types first)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - custom domains or odd graphs: fall back to what is declared
        inferred = model
    g = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(g.value_info) + list(g.output) + list(g.input)}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


def _constant(model: Any, name: str) -> Optional[np.ndarray]:
    from engines.graph import constant

    return constant(model, name)


def _is_constant_input(model: Any, name: str, producers: dict[str, Any]) -> bool:
    if any(t.name == name for t in model.graph.initializer):
        return True
    p = producers.get(name)
    return p is not None and p.op_type in ("Constant", "Identity") and (
        p.op_type == "Constant" or _is_constant_input(model, p.input[0], producers))


def _lint_qdq(model: Any, types: dict[str, int], producers: dict[str, Any]) -> list[Finding]:
    found: list[Finding] = []
    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        where = f"{n.op_type} {n.name or n.output[0]}"
        zp = _constant(model, n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if n.op_type == "DequantizeLinear":
            qtype = types.get(n.input[0])
        else:
            out_attr = next((a.i for a in n.attribute if a.name == "output_dtype"), 0)
            qtype = out_attr or (types.get(n.input[2]) if len(n.input) > 2 and n.input[2] else _UINT8)
        if qtype is not None and qtype != _INT8 and qtype not in _FP8:
            what = _TYPE_NAMES.get(qtype, str(qtype))
            hint = (" (a quantized bias: quantize with ONNX Runtime's QuantizeBias=False)" if qtype == _INT32 else
                    " (use symmetric int8: QuantType.QInt8 with ActivationSymmetric)" if qtype == _UINT8 else "")
            found.append(Finding("qdq-type", where, f"quantized type {what}; TensorRT takes int8 or fp8 only{hint}"))
        if zp is not None and np.any(zp != 0):
            found.append(Finding("qdq-zero-point", where, "zero point is not 0 (TensorRT quantization is symmetric)"))
        scale = _constant(model, n.input[1])
        if scale is None:
            found.append(Finding("qdq-scale", where, "scale is not a constant"))
        elif scale.size > 1 and not _is_constant_input(model, n.input[0], producers):
            found.append(Finding("qdq-axis", where, f"per-channel scale ({scale.size} values) on a computed tensor; "
                                 "TensorRT allows per-channel only on constant weights"))
    return found


def _lint_uint8(model: Any, types: dict[str, int], consumers: dict[str, list[Any]]) -> list[Finding]:
    found: list[Finding] = []
    inputs = {i.name for i in model.graph.input}
    for name, t in types.items():
        if t != _UINT8:
            continue
        if name not in inputs:
            if any(o.name == name for o in model.graph.output):
                continue  # a UINT8 network output is allowed
            if any(i.name == name for i in model.graph.initializer):
                continue  # a constant (e.g. an unused zero point) is no tensor TensorRT computes
            found.append(Finding("uint8", name, "UINT8 tensor inside the network; TensorRT allows UINT8 only as a "
                                 "network input or output"))
            continue
        bad = [c for c in consumers.get(name, []) if c.op_type != "Cast" or not any(
            a.name == "to" and a.i in (_FLOAT, _FLOAT16) for a in c.attribute)]
        if bad:
            found.append(Finding("uint8", name, f"UINT8 input is read by {bad[0].op_type} {bad[0].name}; TensorRT "
                                 "needs it cast to float/half at once"))
    return found


def _lint_shapes(model: Any, batch: tuple[int, int, int]) -> list[Finding]:
    import onnx

    found: list[Finding] = []
    init = {t.name for t in model.graph.initializer}
    symbols: set[str] = set()
    for i in model.graph.input:
        if i.name in init:
            continue
        dims = _dims(i)
        symbols.update(d for d in dims if isinstance(d, str))
        try:
            profile_shapes(i.name, dims, batch)
        except ModelError as e:
            found.append(Finding("profile", i.name, str(e)))
        if dims and not (dims[0] is None or isinstance(dims[0], str)):
            found.append(Finding("profile", i.name, f"static batch {dims[0]} (min = opt = max): the engine takes "
                                 f"exactly {dims[0]} image(s) a run", "warning"))
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        outputs = inferred.graph.output
    except Exception:  # noqa: BLE001
        outputs = model.graph.output
    for o in outputs:
        for k, d in enumerate(_dims(o)):
            if isinstance(d, int) and d > 0 or (isinstance(d, str) and d in symbols):
                continue
            found.append(Finding("data-dependent", o.name, f"dimension {k} ({d or '?'}) does not follow from the "
                                 "input shapes (data-dependent, e.g. NMS); TensorRT needs an output allocator for it"))
            break
    return found


def lint_model(model: Any, batch: tuple[int, int, int] = (1, 4, 16)) -> list[Finding]:
    """Every finding for an in-memory ONNX ``ModelProto``."""
    from engines.graph import graph_maps

    producers, consumers = graph_maps(model)
    types = _tensor_types(model)
    return _lint_qdq(model, types, producers) + _lint_uint8(model, types, consumers) + _lint_shapes(model, batch)


def lint_file(path: str | os.PathLike, batch: tuple[int, int, int] = (1, 4, 16)) -> list[Finding]:
    import onnx

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"no such file: {p}")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise ModelError(f"{p} is not an ONNX file ({type(e).__name__})") from None
    return lint_model(model, batch)


def trt_blocker(path: str | os.PathLike, batch: tuple[int, int, int] = (1, 4, 16)) -> Optional[str]:
    """The first reason TensorRT cannot take ``path`` (one line), or None."""
    errors = [f for f in lint_file(path, batch) if f.severity == "error"]
    return None if not errors else f"{errors[0].where}: {errors[0].message}" + (
        f" (+{len(errors) - 1} more; python -m engines.lint {path})" if len(errors) > 1 else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.lint", description=__doc__.split("\n\n")[0],
                                epilog="Rules: Q/DQ types, zero points and per-channel axes; UINT8 inputs; profile "
                                       "shapes; data-dependent outputs. Exit 0 = no errors, 1 = errors, 2 = bad file.")
    p.add_argument("onnx", nargs="+", type=Path, help="ONNX file(s) to check")
    p.add_argument("--max-batch", type=int, default=16, help="largest batch of the profile")
    p.add_argument("--opt-batch", type=int, default=4, help="batch the profile is tuned for")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if not 1 <= args.opt_batch <= args.max_batch:
        print("error: need 1 <= --opt-batch <= --max-batch", file=sys.stderr)
        return 2
    worst = 0
    for f in args.onnx:
        try:
            findings = lint_file(f, (1, args.opt_batch, args.max_batch))
        except ModelError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        errors = sum(x.severity == "error" for x in findings)
        for x in findings:
            print(f"{f}: {x}")
        print(f"{f}: {'ok' if not errors else f'{errors} error(s)'} for TensorRT"
              f"{f', {len(findings) - errors} warning(s)' if len(findings) > errors else ''}")
        worst = max(worst, 1 if errors else 0)
    return worst


if __name__ == "__main__":
    raise SystemExit(main())
