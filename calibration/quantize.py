"""``python -m calibration.quantize``: FP32 ONNX + calibration set -> one Q/DQ INT8 ONNX.

ONNX Runtime's static quantization (after its pre-processing) writes explicit
QuantizeLinear/DequantizeLinear pairs with per-channel symmetric weights and
symmetric activations (zero point 0, which TensorRT requires), so the same file
runs INT8 in ONNX Runtime on a CPU and builds an INT8 TensorRT engine.  Layers can
be kept in float by name pattern (e.g. the CRF attention and heatmap heads), and
``--compare`` measures the result against FP32 on held-out synthetic people.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from calibration.dataset import CalibrationError, CalibrationSet, iter_batches

log = logging.getLogger(__name__)

__all__ = ["quantize_qdq", "quantize_detector", "file_sha256", "latency_ms", "matching_nodes", "compare_int8",
           "compare_precisions", "main"]

METHODS = ("minmax", "entropy", "percentile")
# What TensorRT needs of a Q/DQ file (engines.lint checks it): symmetric int8 (zero point 0) and float biases.
# ONNX Runtime's default QuantizeBias=True writes every Conv bias as an INT32 initializer + DequantizeLinear,
# which TensorRT's IDequantizeLayer cannot take (int8/fp8/int4/fp4 inputs only).
TRT_QDQ_OPTIONS = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}
# Name patterns of the graph's node groups (names come from the PyTorch module paths).
# The export fuses part attention into its stack's head (``/stacks.N/head/...``), so "attention" covers it too.
GROUPS = {"attention": ["/attention/", "/parts.", "/head/"], "heads": ["/head/", "/heads."], "stem": ["/stem/"]}


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """ONNX Runtime's quantizer warns on the root logger for every 1-D BatchNorm parameter ("Axis 1 is
    out-of-range"); harmless here, and hundreds of lines would bury the result."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def matching_nodes(onnx_path: str | Path, patterns: list[str]) -> list[str]:
    """Names of compute nodes whose name contains any of ``patterns``."""
    import onnx

    m = onnx.load(str(onnx_path))
    return [n.name for n in m.graph.node if n.name and any(p in n.name for p in patterns)]


def quantize_qdq(fp32_onnx: str | Path, calib: CalibrationSet, out: str | Path, method: str = "minmax",
                 exclude: list[str] | None = None, per_channel: bool = True, batch: int = 16,
                 exact: bool = False, single_channel_float: bool = True) -> Path:
    """Static Q/DQ INT8 quantization of a pose model (uint8 crops in) with the given calibration crops.

    ``exclude``: node name substrings to keep in float (``exact``: whole node names).
    ``single_channel_float``: keep the one-channel CRF iterations float (faster, see
    :func:`calibration.rewrite.single_channel_nodes`).
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from engines.export import set_metadata

    if method not in METHODS:
        raise CalibrationError(f"unknown calibration method {method!r}; valid: {', '.join(METHODS)}")
    cal_method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[method]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(iter_batches(calib.crops, batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            b = next(self.it, None)
            return None if b is None else {"crops": b}

    import onnx

    from calibration.rewrite import (batchnorm_to_depthwise, input_prologue_nodes, single_channel_nodes,
                                     stem_space_to_depth, tie_relu_input_scales)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_onnx), str(pre), skip_symbolic_shape=True)
        pm = onnx.load(str(pre))
        n_depthwise = batchnorm_to_depthwise(pm)  # the same function: checked in tests/calibration
        stem_s2d = stem_space_to_depth(pm)
        onnx.save(pm, str(pre))
        nodes = list(exclude or []) if exact else matching_nodes(pre, exclude or [])
        if exact:  # names from the FP32 graph: a BatchNorm kept float is now its depthwise convolution
            nodes += [f"{n}_depthwise" for n in nodes]
        float_by_default = input_prologue_nodes(pm) + (single_channel_nodes(pm) if single_channel_float else [])
        nodes += [n for n in float_by_default if n not in nodes]
        with _quiet_quantizer():
            quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=cal_method,
                            nodes_to_exclude=nodes,
                            extra_options={**TRT_QDQ_OPTIONS, "CalibMovingAverage": method == "minmax"})
    m = onnx.load(str(out))
    n_tied = tie_relu_input_scales(m)
    src_meta = {p.key: p.value for p in onnx.load(str(fp32_onnx)).metadata_props}
    set_metadata(m, {**src_meta, "mca.precision": "int8", "mca.fp32_sha256": file_sha256(fp32_onnx),
                     "mca.quantization": json.dumps(
        {"method": method, "per_channel": per_channel, "excluded_patterns": exclude or [],
         "excluded_nodes": len(nodes), "single_channel_float": single_channel_float,
         "calibration_crops": int(len(calib.crops)),
         "batchnorms_as_depthwise": n_depthwise, "stem_space_to_depth": stem_s2d,
         "relu_scales_tied": n_tied})})
    onnx.save(m, str(out))
    log.info("%s: %d BatchNorms as depthwise convolutions, %d ReLU input scales tied", out.name, n_depthwise, n_tied)
    return out


def yolo_decode_nodes(model: Any) -> list[str]:
    """The box/score decoding of an Ultralytics detect head (its last module minus the ``cv*`` conv branches).

    It concatenates box coordinates (0..input size) with class scores (0..1) into one
    tensor: one INT8 scale for both rounds every score to zero, so it stays in float.
    """
    import re

    mods = [int(m.group(1)) for n in model.graph.node if (m := re.match(r"/model\.(\d+)/", n.name))]
    if not mods:
        return []
    last = f"/model.{max(mods)}/"
    return [n.name for n in model.graph.node if n.name.startswith(last) and "/cv" not in n.name]


def quantize_detector(fp32_onnx: str | Path, calib: CalibrationSet, out: str | Path, method: str = "minmax",
                      per_channel: bool = True) -> Path:
    """The person detector to Q/DQ INT8 with the calibration set's detector inputs (same settings as the pose)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    import onnx

    from engines.export import set_metadata

    if calib.detector_inputs is None or not len(calib.detector_inputs):
        raise CalibrationError("the calibration set has no detector inputs (build it with --detector)")
    if method not in METHODS:
        raise CalibrationError(f"unknown calibration method {method!r}; valid: {', '.join(METHODS)}")
    src = onnx.load(str(fp32_onnx))
    name = src.graph.input[0].name
    scale = float(calib.manifest.get("detector_inputs_scale", 1.0))
    inputs = calib.detector_inputs
    feed = _detector_feed(src.graph.input[0], inputs, scale)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.i >= len(inputs):
                return None
            x = feed(inputs[self.i: self.i + 1])
            self.i += 1
            return {name: x}

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_onnx), str(pre), skip_symbolic_shape=True)
        cal_method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                      "percentile": CalibrationMethod.Percentile}[method]
        keep_float = yolo_decode_nodes(onnx.load(str(pre)))
        with _quiet_quantizer():
            quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=cal_method,
                            nodes_to_exclude=keep_float,
                            extra_options=dict(TRT_QDQ_OPTIONS))
    m = onnx.load(str(out))
    set_metadata(m, {**{q.key: q.value for q in src.metadata_props}, "mca.precision": "int8",
                     "mca.fp32_sha256": file_sha256(fp32_onnx),
                     "mca.quantization": json.dumps({"method": method, "per_channel": per_channel,
                                                     "calibration_frames": int(len(inputs)),
                                                     "float_decode_nodes": len(keep_float)})})
    onnx.save(m, str(out))
    return out


def file_sha256(path: str | Path) -> str:
    """The FP32 file's SHA-256, stored in the INT8 file (``mca.fp32_sha256``): a twin left behind by a retrained
    FP32 model is then recognised as stale (``realtime.models.int8_variant``)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _detector_feed(inp: Any, inputs: np.ndarray, scale: float) -> Any:
    """How a stored (uint8) detector input becomes what the model takes: YOLO float32 in [0, 1] (``scale`` 1/255),
    SSD (TF Object Detection API) uint8 as stored.  Checks the stored layout against the model's input shape."""
    elem = inp.type.tensor_type.elem_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    if len(dims) == 4 and all(d is not None for d in dims[1:]) and tuple(dims[1:]) != tuple(inputs.shape[1:]):
        raise CalibrationError(f"the calibration set's detector inputs are {tuple(inputs.shape[1:])} but the model "
                               f"takes {tuple(dims[1:])}: build the set with this detector (--detector)")
    if elem == 2:  # onnx.TensorProto.UINT8
        if scale != 1:
            raise CalibrationError(f"the detector takes uint8 but the set's inputs were stored for a float model "
                                   f"(scale {scale}): build the set with this detector")
        return lambda x: np.ascontiguousarray(x, np.uint8)
    if elem == 1:  # FLOAT
        return lambda x: x.astype(np.float32) * np.float32(scale)
    raise CalibrationError(f"detector input {inp.name!r} has element type {elem}; expected float32 or uint8")


def latency_ms(onnx_paths: list[str | Path], batch: int, threads: int | None = None,
               rounds: int = 8) -> list[float]:
    """Median ms per run of each model on the same random input of ``batch``, measured in alternating blocks.

    A shared machine drifts by 10-20 % within minutes; timing the models in turns (a
    few warm-up runs, then a block of timed runs, ``rounds`` times) exposes them to
    the same drift, so their ratio is what one model costs against the other.
    """
    import time

    from engines.ort import OrtBackend

    backends = [OrtBackend(p, threads=threads) for p in onnx_paths]
    spec = backends[0].input
    shape = [batch if i == 0 else int(d) for i, d in enumerate(spec.shape)]
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 255, shape, dtype=np.uint8) if np.dtype(spec.dtype) == np.uint8
         else rng.random(shape, dtype=np.float32))
    blocks: list[list[float]] = [[] for _ in backends]
    for _ in range(rounds):
        for b, out in zip(backends, blocks):
            for _ in range(2):
                b.run(x)
            times = []
            for _ in range(max(5, 40 // batch)):
                t0 = time.perf_counter()
                b.run(x)
                times.append(1000 * (time.perf_counter() - t0))
            out.append(float(np.median(times)))
    return [float(np.median(t)) for t in blocks]


def compare_int8(fp32_onnx: str | Path, int8_onnx: str | Path, num: int = 500) -> dict[str, float]:
    """PCK@0.2 of both on held-out synthetic people, and their keypoint disagreement in heatmap pixels."""
    from engines.ort import OrtBackend
    from mca import heatmaps as H
    from mca.evaluate import _heldout, evaluate_synthetic

    a, b = OrtBackend(fp32_onnx), OrtBackend(int8_onnx)
    meta = a.metadata
    js, s, h = meta["mca.joint_set"], int(meta["mca.input_size"]), int(meta["mca.heatmap_size"])
    fi = tuple(json.loads(meta["mca.flip_index"]))
    ra = evaluate_synthetic(lambda x: a.run(x)[0], js, s, h, fi, num)
    rb = evaluate_synthetic(lambda x: b.run(x)[0], js, s, h, fi, num)
    crops = _heldout(js, s, h, min(num, 256), 2000)[0]
    ca, _ = H.decode_heatmaps(np.concatenate([a.run(c)[0] for c in iter_batches(crops, 32)]))
    cb, _ = H.decode_heatmaps(np.concatenate([b.run(c)[0] for c in iter_batches(crops, 32)]))
    return {"fp32 pck@0.2": ra["pck@0.2"], "int8 pck@0.2": rb["pck@0.2"],
            "pck drop (points)": 100 * (ra["pck@0.2"] - rb["pck@0.2"]),
            "mean |int8 - fp32| keypoint (heatmap px)": float(np.linalg.norm(ca - cb, axis=-1).mean())}


def compare_precisions(fp32_onnx: str | Path, others: dict[str, str | Path], num: int = 500) -> dict[str, float]:
    """PCK@0.2 on held-out synthetic people of the FP32 file, its FP16 conversion and each of ``others``
    (all on ONNX Runtime, this CPU): what each precision costs in accuracy, measured on the same people."""
    from engines.ort import OrtBackend
    from mca.evaluate import evaluate_synthetic

    backends = {"fp32": OrtBackend(fp32_onnx), "fp16": OrtBackend(fp32_onnx, precision="fp16"),
                **{k: OrtBackend(v) for k, v in others.items()}}
    meta = backends["fp32"].metadata
    js, s, h = meta["mca.joint_set"], int(meta["mca.input_size"]), int(meta["mca.heatmap_size"])
    fi = tuple(json.loads(meta["mca.flip_index"]))
    return {f"{k} pck@0.2": evaluate_synthetic(lambda x, b=b: b.run(x)[0], js, s, h, fi, num)["pck@0.2"]
            for k, b in backends.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m calibration.quantize", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("onnx", type=Path, help="FP32 pose ONNX from engines.export")
    p.add_argument("calibration", type=Path, help="calibration .npz from calibration.build")
    p.add_argument("-o", "--output", type=Path, required=True, help="Q/DQ INT8 ONNX to write")
    p.add_argument("--method", default="minmax", choices=METHODS, help="activation range calibration")
    p.add_argument("--keep-float", nargs="*", default=[], metavar="GROUP_OR_PATTERN",
                   help=f"node groups ({', '.join(GROUPS)}) or name substrings to keep in float")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor instead of per-channel weights")
    p.add_argument("--all-int8", action="store_true",
                   help="also quantize the one-channel CRF iterations (kept float by default: ONNX Runtime's integer "
                        "kernels are slower than float ones on one-channel maps)")
    p.add_argument("--float16", action="store_true",
                   help="write the layers left in float as FP16 (opset 19, float16 Q/DQ scales; I/O types kept): for "
                        "TensorRT 11, which is strongly typed and would run them in FP32 (engines.build converts a "
                        "plain Q/DQ file itself); the CPU keeps the file written without it")
    p.add_argument("--compare", action="store_true",
                   help="measure INT8 against FP32: accuracy on held-out synthetic data (pose: PCK@0.2 and keypoint "
                        "disagreement; detector: AP50) and ONNX Runtime latency on this machine")
    p.add_argument("--num", type=int, default=500, help="held-out people (pose) or frames (detector) for --compare")
    p.add_argument("--detector", action="store_true",
                   help="the model is the person detector: quantize it with the set's detector inputs")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16], help="pose batch sizes timed by --compare")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads for the timing (default: all "
                   "physical cores)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        if not args.onnx.is_file():
            raise CalibrationError(f"no such model: {args.onnx}")
        calib = CalibrationSet.load(args.calibration)
        if args.detector:
            out = quantize_detector(args.onnx, calib, args.output, args.method, not args.per_tensor)
        else:
            patterns = [q for g in args.keep_float for q in GROUPS.get(g, [g])]
            out = quantize_qdq(args.onnx, calib, args.output, args.method, patterns, not args.per_tensor,
                               single_channel_float=not args.all_int8)
        if args.float16:
            from engines.base import ModelError
            from engines.fp16 import convert_to_fp16

            int8_fp32 = out.with_name(out.stem + ".fp32-floats.onnx")
            out.replace(int8_fp32)
            try:
                convert_to_fp16(int8_fp32, out)
            except ModelError as e:
                raise CalibrationError(str(e)) from None
    except CalibrationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}" + (f" (and its FP32-float twin for the CPU, {int8_fp32.name})" if args.float16 else ""))
    if args.compare and args.float16 and not args.detector:
        for k, v in compare_precisions(args.onnx, {"int8": int8_fp32, "int8 (fp16 floats)": out}, args.num).items():
            print(f"{k}: {v:.4f}")
        print("(latency not timed: the FP16-float file is TensorRT 11's; ONNX Runtime runs it unoptimized)")
        return 0
    if args.compare:
        if args.detector:
            from realtime.bench.evaluate_detector import evaluate_detector

            a = evaluate_detector(args.onnx, num=args.num)["AP50"]
            b = evaluate_detector(out, num=args.num)["AP50"]
            print(f"fp32 AP50: {a:.4f}\nint8 AP50: {b:.4f}\nAP50 drop (points): {100 * (a - b):.2f}")
            batches = [1]
        else:
            for k, v in compare_int8(args.onnx, out, args.num).items():
                print(f"{k}: {v:.4f}")
            batches = args.batches
        for bs in batches:
            f32, i8 = latency_ms([args.onnx, out], bs, args.threads)
            print(f"batch {bs}: fp32 {f32:.1f} ms, int8 {i8:.1f} ms, speed-up x{f32 / i8:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
