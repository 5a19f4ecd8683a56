"""``python -m engines.selftest``: verify the GPU path in one command.

On a machine with an NVIDIA GPU and TensorRT: exports a small config (decomposed and
custom-op), builds FP16 engines with and without the CRF attention plugin (and INT8
from a Q/DQ ONNX given with ``--qdq``), compares each against ONNX Runtime on the
same crops, times them, and prints one pass/fail line per check with the GPU,
driver, CUDA and TensorRT versions.  Elsewhere it says what is missing and exits 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Tolerances against ONNX Runtime FP32 on heatmaps of a random-weight model (max abs error).
TOL = {"fp32": 1e-3, "fp16": 2e-2, "int8": 1e-1}


def _missing() -> list[str]:
    missing = [m for m in ("tensorrt", "torch", "onnx") if importlib.util.find_spec(m) is None]
    if importlib.util.find_spec("cuda") is None:
        missing.append("cuda-python")
    return missing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.selftest", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="mca_tiny", help="registered config to test (default mca_tiny)")
    p.add_argument("--qdq", type=Path, help="a Q/DQ ONNX of the same config to also test INT8")
    p.add_argument("--batch", type=int, default=4, help="batch of crops per check")
    args = p.parse_args(argv)
    missing = _missing()
    if missing:
        print(f"selftest: cannot run here: missing {', '.join(missing)} (needs an NVIDIA GPU with TensorRT, "
              "cuda-python, and the 'train' extra for exporting)")
        return 1
    from engines import cuda

    try:
        if cuda.device_count() < 1:
            print("selftest: no CUDA device visible")
            return 1
        dev = cuda.device_info(0)
    except cuda.CudaError as e:
        print(f"selftest: CUDA unavailable: {e}")
        return 1
    import tensorrt as trt
    import torch

    import mca
    from engines.export import ExportOptions, export_pose
    from engines.ort import OrtBackend
    from engines.trt import EngineBuilder, TrtBackend, prepare_onnx_for_plugin

    print(f"GPU {dev['name']} (sm {dev['compute_capability']}, {dev['memory_gb']} GB), driver {dev['driver']}, "
          f"CUDA runtime {dev['runtime']}, TensorRT {trt.__version__}")
    torch.manual_seed(0)
    model = mca.create_model(args.config).eval()
    s = model.cfg.input_size
    crops = np.random.default_rng(0).integers(0, 256, (args.batch, s, s, 3), dtype=np.uint8)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        dec = export_pose(model, Path(tmp) / "dec.onnx")
        cus = export_pose(model, Path(tmp) / "cus.onnx", ExportOptions(custom_op=True))
        ref = OrtBackend(dec).run(crops)[0]
        checks = [("fp16 decomposed", dec, "fp16", False), ("fp16 plugin", cus, "fp16", True)]
        if args.qdq:
            checks.append(("int8 q/dq", args.qdq, "int8", False))
        for name, onnx_path, prec, plugin in checks:
            try:
                src = prepare_onnx_for_plugin(onnx_path, Path(tmp) / "plugin.onnx") if plugin else onnx_path
                b = EngineBuilder(prec, 1, args.batch, max(16, args.batch), use_plugin=plugin)
                eng = b.build_cached(src, Path(tmp) / "engines")
                be = TrtBackend(eng, use_plugin=plugin)
                out = be.run(crops)[0]
                t0 = time.perf_counter()
                for _ in range(20):
                    be.run(crops)
                ms = (time.perf_counter() - t0) / 20 * 1000
                err = float(np.abs(out.astype(np.float32) - ref).max())
                ok = err <= TOL[prec]
                failures += not ok
                print(f"{'PASS' if ok else 'FAIL'} {name}: max |TRT - ORT| = {err:.2e} (tol {TOL[prec]:g}), "
                      f"{ms:.2f} ms per batch of {args.batch}")
                be.close()
            except Exception as e:  # noqa: BLE001 - each check reports and the run goes on
                failures += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}")
    print(f"selftest: {'all checks passed' if not failures else f'{failures} check(s) failed'}")
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
