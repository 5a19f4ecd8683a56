"""``python -m engines.build model.onnx --precision fp16|int8``: build and cache a TensorRT engine."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
import sys
from pathlib import Path

from engines.base import ModelError

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m engines.build",
        description="Lint an ONNX model for TensorRT (python -m engines.lint), build a TensorRT engine from it "
                    "for this GPU, cache it (keyed by ONNX hash, GPU, compute capability, TensorRT version, the "
                    "precision built, batch range, calibration file and plugin kernel), and print its layers with "
                    "their precisions and the build time. FP16 and INT8 come from the ONNX on TensorRT 11 (an FP16 "
                    "or Q/DQ model from calibration.quantize); on TensorRT 10 the builder flags are also set.")
    p.add_argument("onnx", type=Path, help="ONNX model (pose or detector)")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"],
                   help="engine precision (default: int8 for a Q/DQ ONNX, else fp16)")
    p.add_argument("--max-batch", type=int, default=16, help="largest batch (persons) of the profile")
    p.add_argument("--opt-batch", type=int, default=4, help="batch the profile is tuned for")
    p.add_argument("--plugin", action="store_true",
                   help="map CRFAttention nodes (an ONNX exported with --custom-op) onto the fused plugin "
                        "(TensorRT >= 10.9 and triton)")
    p.add_argument("--calibration", type=Path, help="calibration .npz for the legacy INT8 calibrator "
                                                    "(TensorRT 10 only; prefer a Q/DQ ONNX)")
    p.add_argument("-o", "--output", type=Path, help="also copy the engine here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not args.onnx.is_file():
        print(f"error: no such file: {args.onnx}", file=sys.stderr)
        return 2
    if not 1 <= args.opt_batch <= args.max_batch:
        print("error: need 1 <= --opt-batch <= --max-batch", file=sys.stderr)
        return 2
    if importlib.util.find_spec("tensorrt") is None:
        print("error: TensorRT is not installed here (pip install the 'trt-cu12' or 'trt-cu13' extra on an NVIDIA "
              "GPU machine; JetPack ships it on Jetson)", file=sys.stderr)
        return 2
    from engines.lint import lint_file

    try:
        findings = lint_file(args.onnx, (1, args.opt_batch, args.max_batch))
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    errors = [f for f in findings if f.severity == "error"]
    for f in findings:
        print(f"lint: {f}", file=sys.stderr)
    if errors:
        print(f"error: TensorRT cannot build {args.onnx} ({len(errors)} lint error(s) above; it runs on ONNX Runtime)",
              file=sys.stderr)
        return 2
    from engines import cuda
    from engines.trt import EngineBuilder, TrtBackend, default_precision, sidecar_path

    try:
        if cuda.device_count() < 1:
            raise ModelError("no CUDA device")
        # The plugin copy of a --custom-op ONNX is made inside the build (a temporary file), never beside the input.
        b = EngineBuilder(args.precision or default_precision(args.onnx), 1, args.opt_batch, args.max_batch,
                          calibration_file=args.calibration, use_plugin=args.plugin)
        path = b.build_cached(args.onnx)
        be = TrtBackend(path)
    except (ModelError, cuda.CudaError, ValueError, RuntimeError, TypeError) as e:  # pybind raises RuntimeError
        print(f"error: {type(e).__name__ + ': ' if not isinstance(e, ModelError) else ''}{e}", file=sys.stderr)
        return 2
    import tensorrt as trt

    inspector = be.engine.create_engine_inspector()  # layer precisions: the build sets DETAILED verbosity
    print(inspector.get_engine_information(trt.LayerInformationFormat.ONELINE))
    print(f"engine: {path} ({be.precision}; build {b.build_seconds:.1f} s, 0 means a cache hit)")
    if args.output:
        shutil.copy(path, args.output)
        shutil.copy(sidecar_path(path), sidecar_path(args.output))  # metadata travels with the engine
        print(f"copied to {args.output} (+ {sidecar_path(args.output).name})")
    be.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
