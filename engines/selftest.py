"""``python -m engines.selftest``: verify the GPU path in one command; one PASS / FAIL / SKIP line per check.

With an NVIDIA GPU, TensorRT and cuda-python: builds FP16 engines of a small pose model with and without the
CRF attention plugin (and INT8 from a Q/DQ ONNX given with ``--qdq``), compares each against ONNX Runtime at
batch 1, 4, 16 and above the profile, runs one engine from two threads and asynchronously, checks the engine
cache (hit and miss), builds a detector, and runs the chain check of issue 14 (the crop, letterbox and heatmap
decode graphs on FP32 engines through device arrays and ``run_device``, exact against OpenCV/NumPy).  What this machine cannot do (no GPU, no TensorRT, TensorRT below
10.9 for the plugin, no triton, no torch to export) is a SKIP with the reason.  Exit 0 when nothing that ran
failed (``--require-gpu``: and the GPU checks ran), 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engines.base import ModelError

log = logging.getLogger(__name__)

__all__ = ["TOL", "Skip", "gpu_unavailable", "main"]

# Tolerances against ONNX Runtime FP32 (max abs error on heatmaps / detector outputs, relative to their range).
TOL = {"fp32": 1e-3, "fp16": 2e-2, "int8": 1e-1}
BATCHES = (1, 4, 16, 17)  # 17: above the profile's 16, split in two runs


class Skip(Exception):
    """A check this machine cannot do; the message says why."""


def gpu_unavailable() -> str | None:
    """Why the GPU checks cannot run here, or None."""
    missing = [m for m in ("tensorrt", "onnx") if importlib.util.find_spec(m) is None]
    if importlib.util.find_spec("cuda") is None:
        missing.append("cuda-python")
    if missing:
        return f"missing {', '.join(missing)} (needs an NVIDIA GPU with the 'trt-cu12'/'trt-cu13' extra)"
    from engines import cuda

    try:
        if cuda.device_count() < 1:
            return "no CUDA device visible"
    except cuda.CudaError as e:
        return f"CUDA unavailable: {e}"
    return None


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    span = float(ref.max() - ref.min()) or 1.0
    return float(np.abs(a.astype(np.float32) - ref.astype(np.float32)).max()) / span


class Context:
    """What the checks share: a temporary folder, exported models and their ONNX Runtime references."""

    def __init__(self, tmp: Path, args: argparse.Namespace) -> None:
        self.tmp, self.args = tmp, args
        self._models: dict[bool, Path] = {}

    def pose(self, custom_op: bool = False) -> Path:
        if self.args.onnx and not custom_op:
            return Path(self.args.onnx)
        if custom_op not in self._models:
            if importlib.util.find_spec("torch") is None:
                raise Skip("torch is not installed (the 'train' extra) to export the test model; pass --onnx FILE")
            import torch

            import mca
            from engines.export import ExportOptions, export_pose

            torch.manual_seed(0)
            model = mca.create_model(self.args.config).eval()
            self._models[custom_op] = export_pose(model, self.tmp / f"pose_{int(custom_op)}.onnx",
                                                  ExportOptions(custom_op=custom_op))
        return self._models[custom_op]

    def crops(self, path: Path, n: int) -> np.ndarray:
        from engines.ort import OrtBackend

        spec = OrtBackend(path).input
        shape = [n] + [int(d or 1) for d in spec.shape[1:]]
        rng = np.random.default_rng(0)
        if np.dtype(spec.dtype) == np.uint8:
            return rng.integers(0, 256, shape, dtype=np.uint8)
        return rng.random(shape, dtype=np.float32)

    def engine(self, onnx: Path, precision: str, plugin: bool = False) -> Any:
        from engines.trt import EngineBuilder, TrtBackend

        b = EngineBuilder(precision, 1, 4, 16, use_plugin=plugin)
        return TrtBackend(b.build_cached(onnx, self.tmp / "engines"))


def usable_batches(shape: tuple[object, ...] | list[object]) -> tuple[int, ...]:
    """The batches a model can be compared at: :data:`BATCHES` for a dynamic batch dimension, else its
    fixed batch (the exported YOLO detector takes exactly one image)."""
    first = shape[0] if len(shape) else None
    return (first,) if isinstance(first, int) and first > 0 else BATCHES


def _compare(ctx: Context, onnx: Path, precision: str, plugin: bool = False) -> str:
    from engines.ort import OrtBackend

    ref_be = OrtBackend(onnx)
    batches = usable_batches(ref_be.input.shape)
    be = ctx.engine(onnx, precision, plugin)
    worst = []
    try:
        for n in batches:
            x = ctx.crops(onnx, n)
            got, ref = be.run(x), ref_be.run(x)
            err = max(rel_err(g, r) for g, r in zip(got, ref))
            if err > TOL[precision]:
                raise AssertionError(f"batch {n}: max |TRT - ORT| / range = {err:.2e} > {TOL[precision]:g}")
            worst.append(err)
    finally:
        be.close()
    return f"max |TRT - ORT| / range {max(worst):.2e} (tol {TOL[precision]:g}) at batch {', '.join(map(str, batches))}"


def check_fp16(ctx: Context) -> str:
    return _compare(ctx, ctx.pose(), "fp16")


def check_plugin(ctx: Context) -> str:
    import tensorrt as trt

    from engines.plugins.qdp import plugin_support

    why = plugin_support(str(trt.__version__))
    if why:
        raise Skip(why)
    return _compare(ctx, ctx.pose(custom_op=True), "fp16", plugin=True)


def check_int8(ctx: Context) -> str:
    if not ctx.args.qdq:
        raise Skip("no --qdq file given (make one with python -m calibration.quantize)")
    return _compare(ctx, Path(ctx.args.qdq), "int8")


def check_detector(ctx: Context) -> str:
    if not ctx.args.detector:
        raise Skip("no --detector file given")
    import engines

    det = Path(ctx.args.detector)
    be = engines.load(det, backend="auto")
    if be.name != "tensorrt":
        return f"{det.name}: runs on ONNX Runtime ({be.device}), as engines.lint decides"
    be.close()
    return _compare(ctx, det, "fp16")


def check_threads_and_async(ctx: Context) -> str:
    onnx = ctx.pose()
    be = ctx.engine(onnx, "fp16")
    try:
        xs = [ctx.crops(onnx, 4) + np.uint8(k) for k in range(2)]
        want = [be.run(x)[0] for x in xs]
        got: dict[int, list[np.ndarray]] = {0: [], 1: []}

        def work(k: int) -> None:
            for _ in range(20):
                got[k].append(be.run(xs[k])[0])

        threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if not all(np.array_equal(g, want[k]) for k in range(2) for g in got[k]):
            raise AssertionError("two threads on one engine gave different results than one thread")
        pend = [be.run_async(x) for x in xs + xs]  # more than the slots: the oldest is collected on reuse
        outs = [p.result()[0] for p in reversed(pend)][::-1]
        if not all(np.array_equal(o, want[k % 2]) for k, o in enumerate(outs)):
            raise AssertionError("run_async results differ from run")
    finally:
        be.close()
    return "2 threads x 20 runs and 4 run_async batches equal to sequential runs"


def check_cache(ctx: Context) -> str:
    from engines.trt import EngineBuilder

    onnx = ctx.pose()
    root = ctx.tmp / "cache-check"
    a = EngineBuilder("fp16", 1, 2, 8)
    first = a.build_cached(onnx, root)
    b = EngineBuilder("fp16", 1, 2, 8)
    again = b.build_cached(onnx, root)
    c = EngineBuilder("fp16", 1, 2, 4)
    other = c.build_cached(onnx, root)
    if a.cache_hit or not b.cache_hit or again != first or c.cache_hit or other == first:
        raise AssertionError(f"cache hits {a.cache_hit}, {b.cache_hit}, {c.cache_hit}")
    return f"miss, hit ({first.name}), miss for another batch range"


def check_chain(ctx: Context) -> str:
    """Issue 14's chain check: the crop, letterbox and decode graphs on FP32 TensorRT engines, fed through
    device arrays (upload, ``run_device``, download) as the chain runs them, exact against OpenCV/NumPy."""
    from engines.chain_check import check_graphs

    res = check_graphs("trt", cache_dir=ctx.tmp / "chain", on_device=True)
    for r in res:
        print(f"    {r.line()}")
    bad = [r for r in res if not r.ok]
    if bad:
        raise ModelError("; ".join(f"{r.name}: {r.detail}" for r in bad))
    return f"{len(res)} graphs exact on TensorRT through run_device ({', '.join(r.name for r in res)})"


CHECKS: list[tuple[str, Callable[[Context], str]]] = [
    ("fp16 decomposed", check_fp16), ("fp16 plugin", check_plugin), ("int8 q/dq", check_int8),
    ("detector", check_detector), ("threads + run_async", check_threads_and_async), ("engine cache", check_cache),
    ("chain graphs", check_chain)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.selftest", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="mca_tiny", help="registered config to export and test (default mca_tiny)")
    p.add_argument("--onnx", type=Path, help="a pose ONNX to test instead of exporting one (no torch needed)")
    p.add_argument("--qdq", type=Path, help="a Q/DQ ONNX of the same model to also test INT8")
    p.add_argument("--detector", type=Path, help="a detector ONNX to also test (TensorRT, or ONNX Runtime fallback)")
    p.add_argument("--only", nargs="*", help="run only the checks whose names contain one of these words")
    p.add_argument("--require-gpu", action="store_true", help="exit 1 when the GPU checks cannot run here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    why = gpu_unavailable()
    if why is None:
        import tensorrt as trt

        from engines import cuda

        dev = cuda.device_info(0)
        print(f"GPU {dev['name']} (sm {dev['compute_capability']}, {dev['memory_gb']} GB), driver {dev['driver']}, "
              f"CUDA runtime {dev['runtime']}, TensorRT {trt.__version__}")
    failed = ran = 0
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(Path(tmp), args)
        for name, fn in CHECKS:
            if args.only and not any(w in name for w in args.only):
                continue
            try:
                if why is not None:
                    raise Skip(why)
                detail = fn(ctx)
                ran += 1
                print(f"PASS {name}: {detail}")
            except Skip as s:
                print(f"SKIP {name}: {s}")
            except Exception as e:  # noqa: BLE001 - each check reports and the run goes on
                ran += 1
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}")
    if failed:
        print(f"selftest: {failed} of {ran} check(s) failed")
        return 1
    if not ran:
        print(f"selftest: nothing could be checked here ({why or 'every check skipped'})")
        return 1 if args.require_gpu else 0
    print(f"selftest: all {ran} check(s) that could run passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
