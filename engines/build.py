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
        description="Build a TensorRT engine from an ONNX model for this GPU, cache it (keyed by ONNX hash, GPU, "
                    "compute capability, TensorRT version, precision and batch range), and print its layer "
                    "precisions and the build time. FP16 and INT8 come from the ONNX on TensorRT 11 (an FP16 "
                    "or Q/DQ model from calibration.quantize); on TensorRT 10 the builder flags are also set.")
    p.add_argument("onnx", type=Path, help="ONNX model (pose or detector)")
    p.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "int8"], help="engine precision")
    p.add_argument("--max-batch", type=int, default=16, help="largest batch (persons) of the profile")
    p.add_argument("--opt-batch", type=int, default=4, help="batch the profile is tuned for")
    p.add_argument("--plugin", action="store_true",
                   help="map CRFAttention nodes (an ONNX exported with --custom-op) onto the fused plugin "
                        "(TensorRT >= 10.7)")
    p.add_argument("--calibration", type=Path, help="calibration .npz for the legacy INT8 calibrator "
                                                    "(TensorRT 10 only; prefer a Q/DQ ONNX)")
    p.add_argument("-o", "--output", type=Path, help="also copy the engine here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not args.onnx.is_file():
        print(f"error: no such file: {args.onnx}", file=sys.stderr)
        return 2
    if importlib.util.find_spec("tensorrt") is None:
        print("error: TensorRT is not installed here (pip install the 'trt' extra on an NVIDIA GPU machine; "
              "JetPack ships it on Jetson)", file=sys.stderr)
        return 2
    from engines import cuda
    from engines.trt import EngineBuilder, TrtBackend, prepare_onnx_for_plugin, sidecar_path

    try:
        if cuda.device_count() < 1:
            raise ModelError("no CUDA device")
        src = args.onnx
        if args.plugin:
            src = prepare_onnx_for_plugin(args.onnx, args.onnx.with_suffix(".plugin.onnx"))
        b = EngineBuilder(args.precision, 1, min(args.opt_batch, args.max_batch), args.max_batch,
                          calibration_file=args.calibration, use_plugin=args.plugin)
        path = b.build_cached(src)
        be = TrtBackend(path, use_plugin=args.plugin)
    except (ModelError, cuda.CudaError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import tensorrt as trt

    inspector = be.engine.create_engine_inspector()
    info = inspector.get_engine_information(trt.LayerInformationFormat.ONELINE)
    print(info)
    print(f"engine: {path} ({be.precision}; build {b.build_seconds:.1f} s, 0 means a cache hit)")
    if args.output:
        shutil.copy(path, args.output)
        shutil.copy(sidecar_path(path), sidecar_path(args.output))  # metadata travels with the engine
        print(f"copied to {args.output} (+ {sidecar_path(args.output).name})")
    be.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
