"""``python -m engines.bench``: PyTorch eager vs ONNX Runtime latency per config and batch size.

Reports milliseconds per batch (median of timed runs after warm-up) and the
GFLOP/s achieved (2 x MACs / time) against this machine's matmul peak, measured
in the same run with a float32 GEMM, so the numbers say how close each backend
gets to the hardware.  Results go to a markdown file with the machine description.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["machine_description", "matmul_peak_gflops", "time_call", "main"]


def machine_description() -> dict[str, str]:
    """CPU model, cores and library versions, for every results file."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from engines.cpu import cpu_features

    desc = {"cpu": cpu, "logical cores": str(os.cpu_count()), "integer kernels": cpu_features().name,
            "python": platform.python_version(), "numpy": np.__version__}
    for mod in ("onnxruntime", "torch", "cv2", "av"):
        try:
            desc[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return desc


def time_call(fn: Callable[[], object], warmup: int = 2, runs: int = 10, min_seconds: float = 0.5) -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    t_end = time.perf_counter() + min_seconds
    while len(times) < runs or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    return statistics.median(times)


def matmul_peak_gflops(n: int = 2048) -> float:
    """float32 GEMM throughput, the roofline's compute ceiling here: the faster of torch.mm and ONNX Runtime's
    MatMul (MLAS), with torch's thread count (on some CPUs MLAS beats torch's BLAS by 1.5x, and a ceiling
    below what a model reaches says nothing)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    best = time_call(lambda: torch.mm(a, b), warmup=2, runs=5)
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper

        spec = [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in "ab"]
        g = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm", spec,
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
        so = ort.SessionOptions()
        so.intra_op_num_threads = torch.get_num_threads()
        sess = ort.InferenceSession(helper.make_model(g).SerializeToString(), so, providers=["CPUExecutionProvider"])
        feed = {"a": a.numpy(), "b": b.numpy()}
        best = min(best, time_call(lambda: sess.run(None, feed), warmup=2, runs=5))
    except ImportError:  # no onnx/onnxruntime: torch's GEMM is the only ceiling measured
        log.info("onnxruntime or onnx absent: the GEMM peak is torch.mm's alone")
    return 2 * n**3 / best / 1e9


def main(argv: list[str] | None = None) -> int:
    from mca.config import list_models

    p = argparse.ArgumentParser(prog="python -m engines.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["mca_tiny", "mca_small"],
                   help=f"configs to time (known: {', '.join(list_models())})")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4], help="batch sizes (persons)")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks/engines.md"), help="markdown results file")
    p.add_argument("--big-batches", type=int, nargs="+", default=[1],
                   help="batch sizes for configs over 10 GMACs per crop (mca_paper, mca_4s: ~1 s per crop here)")
    p.add_argument("--threads", type=int, default=0, help="threads for both backends (0: physical cores)")
    args = p.parse_args(argv)
    unknown = [c for c in args.configs if c not in list_models()]
    if unknown or min(args.batches + args.big_batches) < 1 or args.threads < 0:
        what = f"unknown config(s) {', '.join(unknown)}; known: {', '.join(list_models())}" if unknown else \
            "batch sizes must be >= 1 and --threads >= 0"
        print(f"error: {what}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        import torch
    except ImportError:
        print("error: the benchmark compares against PyTorch: pip install torch==2.13.0", file=sys.stderr)
        return 2

    import mca
    from engines.export import ExportOptions, export_pose
    from engines.ort import OrtBackend, _physical_cores
    from mca.summary import model_stats

    threads = args.threads or _physical_cores()
    torch.set_num_threads(threads)
    peak = matmul_peak_gflops()
    log.info("matmul peak: %.1f GFLOP/s (%d threads)", peak, threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            torch.manual_seed(0)
            model = mca.create_model(name).eval()
            stats = model_stats(name)
            onnx_path = export_pose(model, Path(tmp) / f"{name}.onnx")
            ort = OrtBackend(onnx_path, device="cpu", threads=threads)
            plain = OrtBackend(export_pose(model, Path(tmp) / f"{name}.module.onnx", ExportOptions(deploy=False)),
                               device="cpu", threads=threads)
            s = model.cfg.input_size
            for b in args.batches if stats.gmacs <= 10 else args.big_batches:
                crops = np.random.default_rng(0).integers(0, 256, (b, s, s, 3), dtype=np.uint8)
                x = torch.from_numpy(crops).float().flip(-1).permute(0, 3, 1, 2) / 255 - 0.5
                with torch.inference_mode():
                    t_pt = time_call(lambda: model(x))
                t_ort = time_call(lambda: ort.run(crops))
                t_plain = time_call(lambda: plain.run(crops))
                gflop = 2 * stats.macs * b / 1e9
                rows.append((name, b, stats.gmacs, t_pt * 1e3, t_plain * 1e3, t_ort * 1e3, gflop / t_pt, gflop / t_ort))
                log.info("%s b%d: torch %.1f ms, ORT module graph %.1f ms, ORT deploy graph %.1f ms", name, b,
                         t_pt * 1e3, t_plain * 1e3, t_ort * 1e3)
    m = machine_description()
    lines = ["# Engine latency: PyTorch eager vs ONNX Runtime (CPU, FP32)", "",
             f"Command: `python -m engines.bench --configs {' '.join(args.configs)} --batches "
             f"{' '.join(map(str, args.batches))}"
             + (f" --big-batches {' '.join(map(str, args.big_batches))}" if args.big_batches != [1] else "") + "`",
             "",
             "Machine: " + "; ".join(f"{k} {v}" for k, v in m.items()) + f"; threads {threads}", "",
             f"Measured float32 matmul peak (the faster of torch.mm and ONNX Runtime MatMul, 2048^2): "
             f"**{peak:.1f} GFLOP/s**.", "",
             "| config | batch | GMACs/crop | PyTorch ms | ORT ms, module graph | ORT ms, deploy graph "
             "| PyTorch GFLOP/s (% peak) | ORT deploy GFLOP/s (% peak) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, b, gm, tp, tm, to, gp, go in rows:
        lines.append(f"| `{name}` | {b} | {gm:.2f} | {tp:.1f} | {tm:.1f} | {to:.1f} | {gp:.1f} ({100 * gp / peak:.0f} %) "
                     f"| {go:.1f} ({100 * go / peak:.0f} %) |")
    lines += ["", "Median of >= 10 timed runs after 2 warm-ups; ORT input is uint8 NHWC crops (normalisation in the "
              "graph), PyTorch input the normalised float tensor. Module graph: the modules exported as they are; "
              "deploy graph: what `engines.export` writes (fused part attention, flip folded into the stem). "
              "Timings are from one run on a shared machine."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
