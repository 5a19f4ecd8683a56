"""``python -m engines.info FILE``: describe a model or engine file (inputs, outputs, metadata, ops)."""

from __future__ import annotations

import argparse
import collections
import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np

from engines.base import ModelError
from engines.cuda import CudaError

log = logging.getLogger(__name__)


def describe_onnx(path: Path) -> str:
    import onnx

    from engines.ort import OrtBackend

    be = OrtBackend(path)  # validates the file and reads its I/O
    m = onnx.load(str(path), load_external_data=False)
    ops = collections.Counter(f"{n.domain + '::' if n.domain else ''}{n.op_type}" for n in m.graph.node)
    params = sum(int(np.prod(t.dims)) for t in m.graph.initializer)
    opsets = ", ".join(f"{o.domain or 'ai.onnx'}:{o.version}" for o in m.opset_import)
    lines = [be.describe(), f"  opset  {opsets}",
             f"  params {params:,d}", "  ops    " + ", ".join(f"{k} x{v}" for k, v in ops.most_common())]
    if m.functions:
        lines.append("  functions " + ", ".join(f"{f.domain}::{f.name}" for f in m.functions))
    return "\n".join(lines)


def describe_engine(path: Path) -> str:
    from engines.trt import read_sidecar

    side = read_sidecar(path)
    if importlib.util.find_spec("tensorrt") is None:
        if not side:
            raise ModelError(f"{path} is a TensorRT engine; TensorRT is not installed here, so it cannot be read "
                             "(and it has no .json description beside it)")
        key = side.get("key", {})
        lines = [f"TensorRT engine {path} (TensorRT is not installed here: from its .json description only)",
                 f"  built for {key.get('gpu_name', '?')} (sm {key.get('compute_capability', '?')}), "
                 f"TensorRT {key.get('trt_version', '?')}, precision {side.get('precision', '?')}, "
                 f"batch {key.get('min_batch', '?')}..{key.get('max_batch', '?')}, "
                 f"plugin {'yes' if key.get('plugin') else 'no'}"]
        lines += [f"  meta   {k} = {v}" for k, v in sorted(side.get("metadata", {}).items())]
        return "\n".join(lines)
    from engines.trt import TrtBackend

    be = TrtBackend(path)
    try:
        return be.describe()
    finally:
        be.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.info",
                                description="Describe an ONNX model or TensorRT engine: inputs, outputs, metadata "
                                            "(config, joint set, sizes, precision), parameters and operator counts.")
    p.add_argument("file", type=Path, help=".onnx, .engine, .plan or .trt file")
    args = p.parse_args(argv)
    try:
        if not args.file.is_file():
            raise ModelError(f"no such file: {args.file}")
        if args.file.suffix.lower() in (".engine", ".plan", ".trt"):
            print(describe_engine(args.file))
        else:
            print(describe_onnx(args.file))
    except (ModelError, CudaError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
