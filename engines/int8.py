"""Run the shared symmetric INT8 Q/DQ file fast on x86 CPUs, with the same scales and (almost) the same numbers.

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

ReLUs are the second step (:func:`relu_outputs_to_zero_point_0`): ONNX Runtime drops a
``Relu -> QuantizeLinear`` ReLU only when the zero point is the type's minimum (uint8
0), so a ReLU output's pair goes to uint8 zero point 0 with the same scale, and the
pair before the ReLU (tied to the same scale by ``calibration.quantize``) is dropped;
each convolution then runs with its ReLU in one integer kernel.  The one difference
from the file: a ReLU output above 127 steps (beyond the calibrated range) saturates at
255 steps instead of 127, i.e. closer to float.

Third (:func:`upsample_as_expand`): nearest 2x upsampling as a broadcast copy, which
ONNX Runtime runs 40x faster on uint8 than its Resize.  TensorRT's Resize is fast, so
this too stays out of the file.

Fourth, only on CPUs whose u8 x s8 kernels saturate (:func:`weights_to_7bit`): x86 without
VNNI multiplies with ``VPMADDUBSW``, which adds two u8 x s8 products into a *saturating*
int16 (255 x 127 x 2 = 64770 > 32767; ONNX Runtime documents it), so a convolution's sum
is clipped wherever two large inputs meet two large weights of one sign.  Weights
requantized to 7 bits (|q| <= 63, scale x max|q| / 63) keep every pair sum in range, so
the integer kernels compute exactly what the Q/DQ arithmetic says.
:func:`prepare_for_cpu` applies what the CPU needs (``weight_bits``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from engines.graph import used_names

log = logging.getLogger(__name__)

__all__ = ["activations_to_uint8", "int8_activation_nodes", "relu_outputs_to_zero_point_0", "upsample_as_expand",
           "weights_to_7bit", "prepare_for_cpu"]

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
    used = used_names(model.graph)
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


# Ops that copy or select values: a non-negative input stays non-negative, so zero point 0 can pass through.
_PASS_THROUGH = ("MaxPool", "Resize", "Reshape", "Transpose", "Flatten")


def relu_outputs_to_zero_point_0(model: Any) -> int:
    """After :func:`activations_to_uint8`: ReLU outputs (and what pooling/upsampling passes on) to uint8 zero point 0.

    Also removes the ``Q -> DQ`` pair in front of a ReLU when it has the scale of the pair
    after it (exact, see :func:`calibration.rewrite.tie_relu_input_scales`).  Returns the
    number of ReLU outputs changed.
    """
    from onnx import numpy_helper

    from engines.graph import graph_maps

    zero = "mca_u8_zero_point_relu"
    inits = {t.name: t for t in model.graph.initializer}

    def is_u8(name: str) -> bool:
        return name in inits and inits[name].data_type == _UINT8

    def to_zero(q: Any, readers: list[Any]) -> None:
        q.input[2] = zero
        for r in readers:
            r.input[2] = zero

    producer, consumers = graph_maps(model)
    changed, drop = 0, set[int]()
    for r in model.graph.node:
        if r.op_type != "Relu":
            continue
        outs = consumers.get(r.output[0], [])
        if len(outs) != 1 or outs[0].op_type != "QuantizeLinear" or len(outs[0].input) < 3:
            continue
        q2 = outs[0]
        readers = consumers.get(q2.output[0], [])
        if not is_u8(q2.input[2]) or not all(x.op_type == "DequantizeLinear" for x in readers):
            continue
        dq1 = producer.get(r.input[0])
        q1 = producer.get(dq1.input[0]) if dq1 is not None and dq1.op_type == "DequantizeLinear" else None
        if (dq1 is not None and q1 is not None and q1.op_type == "QuantizeLinear" and q1.input[1:3] == q2.input[1:3]
                and len(consumers.get(q1.output[0], [])) == 1 and len(consumers.get(dq1.output[0], [])) == 1):
            r.input[0] = q1.input[0]
            drop.update((id(q1), id(dq1)))
        to_zero(q2, readers)
        changed += 1
    grew = True
    while grew:
        grew = False
        producer, consumers = graph_maps(model)
        for n in model.graph.node:
            if n.op_type not in _PASS_THROUGH:
                continue
            dq, outs = producer.get(n.input[0]), consumers.get(n.output[0], [])
            if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 3 or dq.input[2] != zero:
                continue
            if len(outs) != 1 or outs[0].op_type != "QuantizeLinear" or outs[0].input[2] == zero:
                continue
            readers = consumers.get(outs[0].output[0], [])
            if outs[0].input[1] == dq.input[1] and all(x.op_type == "DequantizeLinear" for x in readers):
                to_zero(outs[0], readers)
                grew = True
    if changed and zero not in inits:
        model.graph.initializer.append(numpy_helper.from_array(np.array(0, np.uint8), zero))
    if drop:
        keep = [n for n in model.graph.node if id(n) not in drop]
        del model.graph.node[:]
        model.graph.node.extend(keep)
    log.debug("%d ReLU outputs at uint8 zero point 0, %d Q/DQ pairs before them dropped", changed, len(drop) // 2)
    return changed


def upsample_as_expand(model: Any) -> int:
    """``DQ -> Resize(nearest, x2) -> Q`` with one scale -> the same copy as Transpose/Reshape/Expand/Reshape/Transpose.

    ONNX Runtime's uint8 Resize runs channels-last at about one byte per ns (288 us for a
    4x32x32x64 output on this CPU); a broadcast copy in NHWC order takes 6 us, and the two
    transposes cancel against the ones ONNX Runtime puts around its NHWC integer kernels.
    Every new op gets the Resize's own Q/DQ pair, so each runs on uint8 and no value
    changes.  Needs the input's static C, H, W (shape inference fills them in for
    fixed-size inputs; the batch stays dynamic).  Returns the number of Resizes replaced.
    """
    from onnx import helper, numpy_helper, shape_inference

    from engines.graph import constant, drop_unused, graph_maps, static_shape

    producer, consumers = graph_maps(model)
    try:
        shaped = shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - a model shape inference cannot follow: leave it as it is
        return 0

    replace: dict[int, list[Any]] = {}
    for n in model.graph.node:
        if n.op_type != "Resize" or len(n.input) < 3 or not n.input[2]:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        scales, dq, outs = constant(model, n.input[2]), producer.get(n.input[0]), consumers.get(n.output[0], [])
        if (scales is None or list(scales) != [1, 1, 2, 2] or attrs.get("mode") != b"nearest"
                or attrs.get("coordinate_transformation_mode") != b"asymmetric"
                or attrs.get("nearest_mode", b"round_prefer_floor") != b"floor"
                or dq is None or dq.op_type != "DequantizeLinear" or len(outs) != 1
                or outs[0].op_type != "QuantizeLinear" or list(outs[0].input[1:3]) != list(dq.input[1:3])):
            continue
        shape = static_shape(shaped, n.input[0])
        if shape is None or len(shape) != 4 or min(shape[1:]) <= 0:
            continue
        _, c, h, w = shape
        p, qdq = f"{n.name or 'Resize'}_expand{len(replace)}", list(dq.input[1:3])  # unique even for unnamed nodes
        for name, value in ((f"{p}_s6", [0, h, 1, w, 1, c]), (f"{p}_e6", [1, 1, 2, 1, 2, 1]),
                            (f"{p}_s4", [0, 2 * h, 2 * w, c])):
            model.graph.initializer.append(numpy_helper.from_array(np.array(value, np.int64), name))
        steps = [("Transpose", [], {"perm": [0, 2, 3, 1]}), ("Reshape", [f"{p}_s6"], {}),
                 ("Expand", [f"{p}_e6"], {}), ("Reshape", [f"{p}_s4"], {}), ("Transpose", [], {"perm": [0, 3, 1, 2]})]
        new, x = [], n.input[0]
        for i, (op, extra, kw) in enumerate(steps):
            y = n.output[0] if i == len(steps) - 1 else f"{p}_{i}"
            new.append(helper.make_node(op, [x, *extra], [y], name=f"{p}/{op}_{i}", **kw))  # type: ignore[arg-type]
            if i < len(steps) - 1:  # the Resize's own quantization between the steps: each runs on uint8
                new += [helper.make_node("QuantizeLinear", [y, *qdq], [f"{y}_q"], name=f"{p}/q{i}"),
                        helper.make_node("DequantizeLinear", [f"{y}_q", *qdq], [f"{y}_dq"], name=f"{p}/dq{i}")]
                x = f"{y}_dq"
        replace[id(n)] = new
    if replace:
        nodes = [m for n in model.graph.node for m in replace.get(id(n), [n])]
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        drop_unused(model)  # the Resizes' scales
    return len(replace)


SEVEN_BIT_MAX = 63  # |q| <= 63: a pair of u8 x s8 products is at most 2 x 255 x 64 = 32640 < 32768


def weights_to_7bit(model: Any) -> int:
    """Requantize the int8 weights of (non-depthwise) convolutions and matmuls to 7 bits, in place.

    Each weight ``DequantizeLinear`` (int8 initializer, zero point 0, per channel or per
    tensor) gets ``q7 = round(q8 * s8 / s7)`` with ``s7 = s8 * max|q8| / 63`` per output
    channel: the same float range, half the steps.  Depthwise convolutions run through
    ONNX Runtime's depthwise kernel, which accumulates in int32 (measured exact), so they
    keep 8 bits.  Returns the number of weight tensors changed.
    """
    from onnx import helper, numpy_helper

    from engines.graph import graph_maps

    inits = {t.name: t for t in model.graph.initializer}
    _, consumers = graph_maps(model)
    changed = 0
    for n in model.graph.node:
        if n.op_type != "DequantizeLinear" or n.input[0] not in inits or len(n.input) < 2:
            continue
        w = inits[n.input[0]]
        if w.data_type != _INT8 or n.input[1] not in inits:
            continue
        readers = consumers.get(n.output[0], [])
        if not readers or not all(r.op_type in ("Conv", "MatMul", "Gemm") and list(r.input).index(n.output[0]) == 1
                                  for r in readers):
            continue
        q = numpy_helper.to_array(w).astype(np.int32)
        if len(n.input) > 2 and n.input[2] in inits and np.any(numpy_helper.to_array(inits[n.input[2]]) != 0):
            continue  # asymmetric weights: not this file's convention
        depthwise = False
        for r in readers:
            group = next((helper.get_attribute_value(a) for a in r.attribute if a.name == "group"), 1)
            depthwise |= r.op_type == "Conv" and group > 1 and q.shape[1] == 1
        if depthwise or q.size == 0 or np.abs(q).max() <= SEVEN_BIT_MAX:
            continue
        scale = numpy_helper.to_array(inits[n.input[1]]).astype(np.float64)
        axis = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "axis"), 1)
        if scale.ndim == 0:
            one = float(np.abs(q).max()) / SEVEN_BIT_MAX  # > 1: 7-bit tensors were skipped above
            q7 = np.clip(np.round(q / one), -SEVEN_BIT_MAX, SEVEN_BIT_MAX)
            new_scale = np.asarray(scale * one, np.float32)
        else:
            ax = axis % q.ndim
            other = tuple(d for d in range(q.ndim) if d != ax)
            peak = np.abs(q).max(axis=other).astype(np.float64)
            ratio = np.maximum(peak, 1.0) / SEVEN_BIT_MAX
            ratio = np.where(peak > SEVEN_BIT_MAX, ratio, 1.0)  # channels already in 7 bits keep their scale
            shape = [1] * q.ndim
            shape[ax] = -1
            q7 = np.clip(np.round(q / ratio.reshape(shape)), -SEVEN_BIT_MAX, SEVEN_BIT_MAX)
            new_scale = (scale * ratio).astype(np.float32)
        base = f"{n.input[0]}_7bit"
        model.graph.initializer.extend([numpy_helper.from_array(q7.astype(np.int8), base),
                                        numpy_helper.from_array(new_scale, f"{base}_scale")])
        n.input[0], n.input[1] = base, f"{base}_scale"
        changed += 1
    if changed:
        used = used_names(model.graph)
        for t in [t for t in model.graph.initializer if t.name not in used]:
            model.graph.initializer.remove(t)
    log.debug("%d weight tensors requantized to 7 bits", changed)
    return changed


def prepare_for_cpu(model: Any, weight_bits: int = 8) -> tuple[int, int]:
    """All of this module's in-memory rewrites, in order; ``weight_bits=7`` also :func:`weights_to_7bit`
    (what :func:`engines.cpu.int8_plan` asks for on CPUs whose u8 x s8 kernels saturate).

    Returns (activation Q/DQ nodes moved to uint8, other rewrites: ReLUs, upsamples and
    7-bit weight tensors); (0, 0) means the model is left as it was.
    """
    if weight_bits not in (7, 8):
        raise ValueError(f"weight_bits must be 7 or 8, got {weight_bits}")
    n = activations_to_uint8(model)
    relus = relu_outputs_to_zero_point_0(model)
    ups = upsample_as_expand(model)
    w7 = weights_to_7bit(model) if weight_bits == 7 else 0
    log.debug("uint8 activations: %d Q/DQ nodes, %d ReLUs fused, %d upsamples as copies, %d 7-bit weights",
              n, relus, ups, w7)
    return n, relus + ups + w7
