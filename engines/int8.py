"""Run the shared symmetric INT8 Q/DQ file fast on x86 CPUs, with bit-identical numbers.

``calibration.quantize`` writes one Q/DQ ONNX for every backend: int8 activations
with zero point 0 (symmetric, as TensorRT requires) and int8 per-channel weights.
ONNX Runtime's CPU provider (1.32, measured here) fuses ``DequantizeLinear -> Conv ->
QuantizeLinear`` into ``QLinearConv`` only for *uint8* activations (the u8 x s8
dot-product instructions, VNNI), so on this CPU the int8-activation file ran its
convolutions in float between Q/DQ pairs: slower than FP32.

An int8 activation ``q`` with scale ``s`` and zero point 0 is exactly the uint8
value ``q + 128`` with the same scale and zero point 128: ``clamp(round(x/s), -128,
127) + 128 == clamp(round(x/s) + 128, 0, 255)``, and both dequantize to ``s * q``.
So rewriting the activation zero points (never the weights') from int8 0 to uint8
128 changes no number and lets ONNX Runtime fuse every convolution.  This happens in
memory when :class:`engines.ort.OrtBackend` loads an INT8 model on the CPU; the
file on disk (and TensorRT's view of it) stays the symmetric int8 one.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["activations_to_uint8", "int8_activation_nodes"]

_INT8, _UINT8 = 3, 2  # onnx.TensorProto.INT8, UINT8


def int8_activation_nodes(model: Any) -> list[Any]:
    """Q/DQ nodes on activations (not on initializers) whose zero point is an int8 zero."""
    inits = {t.name: t for t in model.graph.initializer}
    const_of = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    out = []
    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(n.input) < 3:
            continue
        if n.input[0] in inits or n.input[0] in const_of:  # a weight or bias: keep int8 (u8 x s8 is the fast path)
            continue
        zp = inits.get(n.input[2])
        if zp is None or zp.data_type != _INT8:
            continue
        from onnx import numpy_helper

        if np.any(numpy_helper.to_array(zp) != 0):
            continue  # an asymmetric int8 zero point: not this file's convention, leave it
        out.append(n)
    return out


def activations_to_uint8(model: Any) -> int:
    """Rewrite ``model`` (an ``onnx.ModelProto``) in place; returns the number of Q/DQ nodes changed."""
    from onnx import numpy_helper

    nodes = int8_activation_nodes(model)
    inits = {t.name: t for t in model.graph.initializer}
    made: dict[tuple[int, ...], str] = {}
    for n in nodes:
        zp = numpy_helper.to_array(inits[n.input[2]])
        key = zp.shape
        if key not in made:
            name = f"mca_u8_zero_point_{len(made)}"
            model.graph.initializer.append(numpy_helper.from_array(np.full(zp.shape, 128, np.uint8), name))
            made[key] = name
        n.input[2] = made[key]
    used = {i for n in model.graph.node for i in n.input}
    dead = [t for t in model.graph.initializer if t.name not in used]
    for t in dead:  # the int8 zero points no node reads any more
        model.graph.initializer.remove(t)
    # value_info entries typed int8 for rewritten tensors would contradict the new type: drop them
    changed = {n.output[0] for n in nodes if n.op_type == "QuantizeLinear"}
    keep = [v for v in model.graph.value_info if v.name not in changed]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)
    log.debug("%d activation Q/DQ nodes moved to uint8 (zero point 128)", len(nodes))
    return len(nodes)
