"""Graph rewrites around quantization that change no number but let INT8 kernels chain.

ONNX Runtime (CPU) and TensorRT both run a Q/DQ graph fastest when every tensor
stays integer from one convolution to the next.  Three things in the MCA graph
broke that chain (measured with ONNX Runtime's profiler on the bundled model):

- the pre-activation BatchNorm after every residual addition cannot be folded into
  a convolution, so each became a float island (dequantize, normalise, ReLU,
  quantize, two layout transposes): :func:`batchnorm_to_depthwise` turns it into
  the equal 1x1 depthwise convolution, which quantizes like any other;
- with symmetric activations the quantizer keeps every ReLU between two Q/DQ
  pairs of different scales: :func:`tie_relu_input_scales` gives the pair before
  a ReLU the scale of the pair after it, which is exact (the ReLU discards what
  the first pair represents below zero) and lets the backends fuse the ReLU;
- the uint8 -> float input normalisation quantized step by step loses a bit of
  the 8-bit input: :func:`input_prologue_nodes` names those nodes to keep float.

What helps only ONNX Runtime's CPU kernels (uint8 activations, ReLU fusion, nearest
upsampling as a broadcast copy) happens in memory at load time (:mod:`engines.int8`),
so the file stays the one TensorRT builds from.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engines.graph import constant, drop_unused, graph_maps, static_shape

__all__ = ["batchnorm_to_depthwise", "tie_relu_input_scales", "input_prologue_nodes", "single_channel_nodes"]


def batchnorm_to_depthwise(model: Any) -> int:
    """Replace every inference BatchNormalization by ``Conv(group=C, 1x1)`` with the folded scale and shift.

    Run after ONNX Runtime's pre-processing (which already folded each Conv->BN pair);
    what is left normalises a residual sum.  Returns the number of nodes replaced.
    """
    from onnx import helper, numpy_helper

    nodes, done = [], 0
    for n in model.graph.node:
        params = [constant(model, i) for i in n.input[1:5]] if n.op_type == "BatchNormalization" else []
        if (n.op_type != "BatchNormalization" or any(p is None for p in params)
                or any(o for o in n.output[1:])):  # training-mode outputs: leave it
            nodes.append(n)
            continue
        eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-5)
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)  # type: ignore[union-attr]
        scale = gamma / np.sqrt(var + eps)
        w = numpy_helper.from_array(scale.reshape(-1, 1, 1, 1).astype(np.float32), f"{n.name}_depthwise_w")
        b = numpy_helper.from_array((beta - mean * scale).astype(np.float32), f"{n.name}_depthwise_b")
        model.graph.initializer.extend([w, b])
        nodes.append(helper.make_node("Conv", [n.input[0], w.name, b.name], [n.output[0]],
                                      name=f"{n.name}_depthwise", group=len(scale), kernel_shape=[1, 1]))
        done += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    drop_unused(model)  # the BatchNorms' parameters and the exporter's Identity copies of shared ones
    return done


def tie_relu_input_scales(model: Any) -> int:
    """``X -> Q1 -> DQ1 -> Relu -> Q2``: give Q1/DQ1 the scale (and zero point) of Q2.

    Only where DQ1 feeds the ReLU alone.  Exact: ``relu(dq(q(x, s2)))`` equals
    ``dq(q(relu(x), s2))`` whatever Q1's scale was, because the ReLU zeroes every
    value the wider first scale covered below zero.  Returns the number of pairs tied.
    """
    producer, consumers = graph_maps(model)
    tied = 0
    for r in model.graph.node:
        if r.op_type != "Relu":
            continue
        dq1, outs = producer.get(r.input[0]), consumers.get(r.output[0], [])
        if dq1 is None or dq1.op_type != "DequantizeLinear" or len(consumers.get(dq1.output[0], [])) != 1:
            continue
        q1 = producer.get(dq1.input[0])
        if q1 is None or q1.op_type != "QuantizeLinear" or len(consumers.get(q1.output[0], [])) != 1:
            continue
        if len(outs) != 1 or outs[0].op_type != "QuantizeLinear" or len(outs[0].input) < 3 or len(q1.input) < 3:
            continue
        q2 = outs[0]
        if (q1.input[1], q1.input[2]) != (q2.input[1], q2.input[2]):
            q1.input[1] = dq1.input[1] = q2.input[1]
            q1.input[2] = dq1.input[2] = q2.input[2]
            tied += 1
    return tied


def input_prologue_nodes(model: Any) -> list[str]:
    """Names of the nodes that run before the first convolution (the uint8 -> float normalisation)."""
    names = []
    for n in model.graph.node:
        if n.op_type in ("Conv", "ConvTranspose"):
            break
        if n.name and n.op_type not in ("Identity", "Constant"):
            names.append(n.name)
    return names


def single_channel_nodes(model: Any) -> list[str]:
    """Nodes that read and write one-channel 4-D maps: the holistic CRF attention's iterations.

    ONNX Runtime's integer convolution with one input channel is about 4x slower than
    the float one (138 vs 32 us for a 5x5 kernel on 4x32x32 here: an im2col GEMM with a
    one-wide output), and the maps are tiny, so these stay float by default.
    """
    def channels(name: str) -> int | None:
        shape = static_shape(model, name)
        return shape[1] if shape is not None and len(shape) == 4 and shape[1] > 0 else None

    return [n.name for n in model.graph.node if n.name and n.op_type in ("Conv", "Add", "Sigmoid")
            and channels(n.output[0]) == 1 and all(channels(i) == 1 for i in n.input[:1])]


def stem_space_to_depth(model: Any) -> bool:
    """The first convolution, if it is a stride-2 one on few channels, as SpaceToDepth(2) + a stride-1 convolution.

    A 7x7 stride-2 convolution on 3 channels is a poor shape for integer GEMMs (K = 147
    gathered with stride 2); on the 2x2 space-to-depth input (12 channels at half size)
    it is a 4x4 stride-1 convolution with the same weights rearranged (zeros where a
    tap falls outside the 7x7 window): the same outputs, faster for the whole INT8
    mca_tiny on this CPU but not in FP32, so only the Q/DQ file gets it.
    Needs static, even input height and width.  Returns whether it was rewritten.
    """
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    conv = next((n for n in model.graph.node if n.op_type == "Conv"), None)
    if conv is None or conv.input[1] not in inits:
        return False
    a = {x.name: helper.get_attribute_value(x) for x in conv.attribute}
    w = numpy_helper.to_array(inits[conv.input[1]])
    shape = static_shape(model, conv.input[0])
    k, pads = w.shape[-1], list(a.get("pads", [0, 0, 0, 0]))
    if (list(a.get("strides", [1, 1])) != [2, 2] or a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1]))
            or w.shape[-2] != k or len(set(pads)) != 1 or w.shape[1] > 4 or shape is None or len(shape) != 4
            or min(shape[2:]) <= 0 or shape[2] % 2 or shape[3] % 2):
        return False
    p = pads[0]
    lo, hi = (0 - p) // 2, (k - 1 - p) // 2  # floor division: the space-to-depth row of each tap
    k2 = hi - lo + 1
    if shape[2] // 2 - lo + hi - k2 + 1 != (shape[2] + 2 * p - k) // 2 + 1:
        return False
    c = w.shape[1]
    w2 = np.zeros((w.shape[0], 4 * c, k2, k2), w.dtype)
    for ky in range(k):
        dy, by = divmod(ky - p, 2)
        for kx in range(k):
            dx, bx = divmod(kx - p, 2)
            for ch in range(c):  # ONNX SpaceToDepth: output channel (by * 2 + bx) * C + c
                w2[:, (by * 2 + bx) * c + ch, dy - lo, dx - lo] = w[:, ch, ky, kx]
    name = f"{conv.input[1]}_space_to_depth"
    model.graph.initializer.append(numpy_helper.from_array(w2, name))
    s2d = helper.make_node("SpaceToDepth", [conv.input[0]], [f"{conv.input[0]}_s2d"], blocksize=2,
                           name=f"{conv.name}_space_to_depth")
    new = helper.make_node("Conv", [s2d.output[0], name, *conv.input[2:]], list(conv.output), name=conv.name,
                           kernel_shape=[k2, k2], pads=[-lo, -lo, hi, hi], strides=[1, 1])
    nodes = [m for n in model.graph.node for m in ([s2d, new] if n is conv else [n])]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    drop_unused(model)  # the original 7x7 weights
    return True
