"""``python -m engines.info FILE``: describe a model or engine file (inputs, outputs, metadata, ops)."""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from engines.base import ModelError


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
    if importlib.util.find_spec("tensorrt") is None:
        side = path.with_suffix(".json")
        extra = f"\n  cache key: {json.loads(side.read_text())}" if side.exists() else ""
        raise ModelError(f"{path} is a TensorRT engine; TensorRT is not installed here, so it cannot be read{extra}")
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
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
