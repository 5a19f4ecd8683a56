"""FP32 ONNX -> FP16 ONNX with the I/O types kept (torch-free; numpy + onnx only).

TensorRT 11 networks are strongly typed: it has no FP16 builder flag, so an FP16
engine must be built from an FP16 ONNX.  This converts the float tensors of a
graph (initializers, ``Constant`` nodes, float ``Cast`` targets) to float16 and
keeps the model's interface unchanged: the uint8 ``crops`` input stays uint8
(its ``Cast`` now targets float16) and every float32 output gets a ``Cast`` back
to float32, so callers (and the realtime pipeline) see the same contract.

Inputs that ONNX defines as float32 whatever the data type (``Resize`` roi and
scales, ``Upsample`` scales) stay float32.

A Q/DQ (INT8) file is converted too, for TensorRT 11: strongly typed, it runs every
layer left unquantized (attention, heads, the float CRF iterations, Sigmoid/Mul
islands) in the file's float type, so an FP32 Q/DQ file would run those in FP32.
Its quantized tensors stay int8; the Q/DQ scales become float16, which needs
opset 19 (where ``DequantizeLinear`` outputs the scale's type), so the file's opset
is raised to 19 first.  Done on the ONNX rather than in
PyTorch so that a Jetson without torch (``engines.load(x.onnx, precision="fp16")``)
and any ONNX from elsewhere (a YOLO detector) can be converted too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import ModelError

log = logging.getLogger(__name__)

__all__ = ["convert_to_fp16", "is_fp16", "has_qdq", "FLOAT_ONLY_INPUTS"]

# (op_type, input index) whose tensor ONNX requires to be float32 regardless of the data type.
FLOAT_ONLY_INPUTS = {("Resize", 1), ("Resize", 2), ("Upsample", 1)}
_FLOAT, _FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT, FLOAT16
QDQ_FP16_OPSET = 19  # the first opset whose QuantizeLinear/DequantizeLinear take float16 scales
_FP16_TINY = 6.103515625e-05  # the smallest normal float16: smaller scales lose relative precision


def _load(model: Any) -> Any:
    import onnx

    if isinstance(model, (str, os.PathLike)):
        try:
            return onnx.load(str(model))
        except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends
            raise ModelError(f"{model} is not an ONNX file ({type(e).__name__})") from None
    return model


def is_fp16(model: Any) -> bool:
    """True where the graph computes in float16 (an FP16 ONNX, e.g. from :func:`convert_to_fp16`)."""
    m = _load(model)
    return any(t.data_type == _FLOAT16 for t in m.graph.initializer) or any(
        n.op_type == "Cast" and any(a.name == "to" and a.i == _FLOAT16 for a in n.attribute) for n in m.graph.node)


def has_qdq(model: Any) -> bool:
    """True for a Q/DQ (explicitly quantized INT8) ONNX."""
    m = _load(model)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in m.graph.node)


def _fp16_array(a: np.ndarray, name: str) -> np.ndarray:
    big = np.abs(a[np.isfinite(a)]).max(initial=0.0)
    if big > 65504:
        raise ModelError(f"tensor {name} has values up to {big:.3g}, beyond float16's range (65504)")
    return a.astype(np.float16)


def _raise_opset(m: Any, opset: int) -> Any:
    """``m`` with its default-domain opset raised to at least ``opset`` (ONNX's version converter)."""
    from onnx import version_converter

    have = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 0)
    if have >= opset:
        return m
    if len(m.functions):
        raise ModelError(f"a Q/DQ model with ONNX functions cannot be raised from opset {have} to {opset} "
                         "for float16 scales; quantize the decomposed export (without --custom-op)")
    try:
        return version_converter.convert_version(m, opset)
    except Exception as e:  # noqa: BLE001 - the converter raises RuntimeError/ValidationError and friends
        raise ModelError(f"could not raise the model from opset {have} to {opset} for float16 Q/DQ scales: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def convert_to_fp16(src: Any, dst: str | os.PathLike | None = None, keep_io_types: bool = True) -> Any:
    """Convert an FP32 ONNX (path or ModelProto) to FP16; write ``dst`` if given (returns its Path), else the proto.

    The interface is unchanged when ``keep_io_types`` (the default): float32
    inputs/outputs get a ``Cast`` at the border, integer inputs are untouched.
    ``mca.precision`` in the metadata becomes ``fp16`` (a Q/DQ file stays ``int8`` and gets
    ``mca.float_type = fp16``).
    """
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(_load(src))
    if is_fp16(m):
        raise ModelError("the model already computes in float16")
    qdq = has_qdq(m)
    if qdq:
        m = _raise_opset(m, QDQ_FP16_OPSET)
    g = m.graph

    # Tensors that must stay float32: consumed in a float-only position.
    keep32 = {name for n in g.node for i, name in enumerate(n.input) if name and (n.op_type, i) in FLOAT_ONLY_INPUTS}

    def convert_tensor(t: Any) -> None:
        if t.data_type == _FLOAT and t.name not in keep32:
            t.CopyFrom(numpy_helper.from_array(_fp16_array(numpy_helper.to_array(t), t.name), t.name))

    n_init = 0
    scales = {name for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") for name in n.input[1:2]}
    tiny = 0
    for t in g.initializer:
        if t.data_type == _FLOAT and t.name not in keep32:
            if t.name in scales:
                a = numpy_helper.to_array(t)
                tiny += int(np.count_nonzero((a != 0) & (np.abs(a) < _FP16_TINY)))
            convert_tensor(t)
            n_init += 1
    if tiny:
        log.warning("FP16: %d Q/DQ scales are below float16's normal range (%.3g): their precision drops",
                    tiny, _FP16_TINY)
    for node in g.node:
        for a in node.attribute:
            if node.op_type in ("Constant", "ConstantOfShape") and a.name == "value" and a.t.data_type == _FLOAT:
                if not any(o in keep32 for o in node.output):
                    a.t.CopyFrom(numpy_helper.from_array(_fp16_array(numpy_helper.to_array(a.t), a.t.name),
                                                         a.t.name))
            elif node.op_type == "Constant" and a.name in ("value_float", "value_floats"):
                raise ModelError(f"Constant {node.name} uses {a.name}; re-export with a tensor value")
            elif node.op_type in ("Cast", "CastLike", "RandomNormal", "RandomUniform", "EyeLike") and \
                    a.name in ("to", "dtype") and a.i == _FLOAT and not any(o in keep32 for o in node.output):
                a.i = _FLOAT16

    computed32 = keep32 - {t.name for t in g.initializer} - {
        o for n in g.node if n.op_type == "Constant" for o in n.output}
    new_nodes: list[Any] = []
    # float32 graph inputs: cast to float16 once at the border.
    in_map: dict[str, str] = {}
    for inp in g.input:
        if inp.type.tensor_type.elem_type == _FLOAT and inp.name not in {t.name for t in g.initializer}:
            if keep_io_types:
                in_map[inp.name] = f"{inp.name}__fp16"
                new_nodes.append(helper.make_node("Cast", [inp.name], [in_map[inp.name]], to=_FLOAT16,
                                                  name=f"{inp.name}__to_fp16"))
            else:
                inp.type.tensor_type.elem_type = _FLOAT16
    # float32 outputs: the producer writes a float16 tensor, a Cast restores the float32 name.
    out_map: dict[str, str] = {}
    for out in g.output:
        if out.type.tensor_type.elem_type == _FLOAT:
            if keep_io_types:
                out_map[out.name] = f"{out.name}__fp16"
            else:
                out.type.tensor_type.elem_type = _FLOAT16
    for node in g.node:
        for i, name in enumerate(node.input):
            if name in in_map:
                node.input[i] = in_map[name]
            elif name in out_map:  # an output also consumed inside the graph
                node.input[i] = out_map[name]
            if name in computed32 and (node.op_type, i) in FLOAT_ONLY_INPUTS:
                cast_name = f"{name}__fp32"
                if not any(n.output[0] == cast_name for n in new_nodes):
                    new_nodes.append(helper.make_node("Cast", [in_map.get(name, name)], [cast_name], to=_FLOAT,
                                                      name=f"{name}__to_fp32"))
                node.input[i] = cast_name
        for i, name in enumerate(node.output):
            if name in out_map:
                node.output[i] = out_map[name]
    casts_out = [helper.make_node("Cast", [v], [k], to=_FLOAT, name=f"{k}__to_fp32") for k, v in out_map.items()]
    nodes = list(g.node)
    del g.node[:]
    # Border casts first and last keep the node list topologically sorted; the fp32 casts of computed
    # tensors go right after their producer.
    producers = {o: k for k, n in enumerate(nodes) for o in n.output}
    head = [n for n in new_nodes if n.input[0] not in producers]
    after: dict[int, list[Any]] = {}
    for n in new_nodes:
        if n.input[0] in producers:
            after.setdefault(producers[n.input[0]], []).append(n)
    g.node.extend(head)
    for k, n in enumerate(nodes):
        g.node.append(n)
        g.node.extend(after.get(k, []))
    g.node.extend(casts_out)
    for vi in g.value_info:
        if vi.type.tensor_type.elem_type == _FLOAT and vi.name not in keep32:
            vi.type.tensor_type.elem_type = _FLOAT16
    for p in m.metadata_props:
        if p.key == "mca.precision" and not qdq:
            p.value = "fp16"
    if qdq:
        helper.set_model_props(m, {**{p.key: p.value for p in m.metadata_props}, "mca.float_type": "fp16"})
    try:
        onnx.checker.check_model(m)
    except onnx.checker.ValidationError as e:
        raise ModelError(f"FP16 conversion produced an invalid model: {str(e).splitlines()[0]}") from None
    log.info("FP16: %d initializers converted, %d kept float32, %d border casts", n_init, len(keep32),
             len(new_nodes) + len(casts_out))
    if dst is None:
        return m
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(dst))
    return dst
