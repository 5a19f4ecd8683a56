"""ONNX Runtime CPU: single layers in INT8 (Q/DQ, as ``calibration.quantize`` writes them) against FP32.

The numbers behind the INT8 design choices in the README: which layer shapes the integer
kernels speed up on this CPU, and which they slow down.  Each case is a chain of 20
identical layers after one channels-last integer convolution (so every layer runs inside
ONNX Runtime's NHWC integer region, as in the pose model); the time of a 1-layer chain is
subtracted, and the median of several runs is reported per layer::

    python scripts/int8_microbench.py            # prints a markdown table with the machine description
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N = 4  # batch (people)


def _chain(kind: str, layers: int, c: int, k: int, h: int, group: int = 1) -> "tuple[object, dict]":
    """``layers`` identical layers on a (N, c, h, h) tensor: FP32 (Conv, Relu) or INT8 (Q/DQ around each Conv)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits: list = []
    nodes: list = []

    def add(a: np.ndarray, name: str) -> str:
        inits.append(numpy_helper.from_array(a, name))
        return name

    s, z = add(np.array(0.02, np.float32), "s"), add(np.array(128, np.uint8), "z")
    sc = add(np.array([1, 1, 2, 2], np.float32), "sc")
    x = "x"
    if kind != "float":
        nodes.append(helper.make_node("QuantizeLinear", ["x", s, z], ["xq"]))
        x = "xq"
    for i in range(layers):
        w = rng.normal(0, 0.05, (c, c // group, k, k)).astype(np.float32)
        if kind == "float":
            nodes += [helper.make_node("Conv", [x, add(w, f"w{i}")], [f"c{i}"], pads=[k // 2] * 4, group=group),
                      helper.make_node("Relu", [f"c{i}"], [f"y{i}"])]
        else:
            nodes.append(helper.make_node("DequantizeLinear", [x, s, z], [f"d{i}"]))
            wq = add(np.clip(np.round(w / 1e-3), -127, 127).astype(np.int8), f"w{i}")
            wsc, wzp = add(np.full(c, 1e-3, np.float32), f"ws{i}"), add(np.zeros(c, np.int8), f"wz{i}")
            nodes += [helper.make_node("DequantizeLinear", [wq, wsc, wzp], [f"wd{i}"], axis=0),
                      helper.make_node("Conv", [f"d{i}", f"wd{i}"], [f"c{i}"], pads=[k // 2] * 4, group=group)]
            if kind == "resize":  # an integer conv, then nearest x2 as the hourglass upsamples (channels-last region)
                nodes += [helper.make_node("QuantizeLinear", [f"c{i}", s, z], [f"cq{i}"]),
                          helper.make_node("DequantizeLinear", [f"cq{i}", s, z], [f"cd{i}"]),
                          helper.make_node("Resize", [f"cd{i}", "", sc], [f"r{i}"], mode="nearest", name=f"up{i}",
                                           coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
            nodes.append(helper.make_node("QuantizeLinear", [f"r{i}" if kind == "resize" else f"c{i}", s, z], [f"y{i}"]))
        x = f"y{i}"
    if kind != "float":
        nodes.append(helper.make_node("DequantizeLinear", [x, s, z], ["out"]))
        x = "out"
    else:
        nodes.append(helper.make_node("Identity", [x], ["out"]))
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [N, c, h, h])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), {
        "x": rng.normal(0, 1, (N, c, h, h)).astype(np.float32)}


def per_layer_us(kind: str, c: int, k: int, h: int, group: int = 1, cpu_step: bool = True) -> float:
    """Microseconds per layer: (time of a long chain - time of a one-layer chain) / the extra layers."""
    import onnxruntime as ort

    from engines.int8 import prepare_for_cpu

    def run(layers: int) -> float:
        model, feed = _chain(kind, layers, c, k, h, group)
        if cpu_step and kind != "float":
            prepare_for_cpu(model)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        for _ in range(3):
            sess.run(None, feed)
        times = []
        for _ in range(15):
            t0 = time.perf_counter()
            sess.run(None, feed)
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    long = 20 if kind != "resize" else 2  # a resize chain doubles the size each layer: time the second one
    return 1e6 * (run(long) - run(1)) / (long - 1)


def main() -> int:
    from engines.bench import machine_description

    cases = [("3x3 conv 32->32 at 32x32", dict(c=32, k=3, h=32)),
             ("1x1 conv 64->64 at 32x32", dict(c=64, k=1, h=32)),
             ("3x3 conv 64->64 at 8x8", dict(c=64, k=3, h=8)),
             ("1x1 depthwise 64 at 32x32 (a BatchNorm)", dict(c=64, k=1, h=32, group=64)),
             ("5x5 conv 1->1 at 32x32 (a CRF iteration)", dict(c=1, k=5, h=32))]
    lines = ["| layer (batch 4, 1 thread) | FP32 us | INT8 us | INT8 speed-up |", "|---|---|---|---|"]
    for name, kw in cases:
        f, q = per_layer_us("float", **kw), per_layer_us("int8", **kw)
        lines.append(f"| {name} | {f:.1f} | {q:.1f} | x{f / q:.2f} |")
        print(lines[-1], flush=True)
    r0 = per_layer_us("resize", 64, 1, 16, cpu_step=False)
    r1 = per_layer_us("resize", 64, 1, 16, cpu_step=True)
    lines.append(f"| INT8 1x1 conv 64->64 at 32x32 + nearest x2 upsample to 64x64: with Resize / as a copy "
                 f"(engines.int8) | | {r0:.1f} / {r1:.1f} | x{r0 / r1:.1f} |")
    m = machine_description()
    print("\n".join(["", "Command: `python scripts/int8_microbench.py`", "",
                     "Machine: " + "; ".join(f"{k} {v}" for k, v in m.items()), "", *lines]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
