"""The fused CRF attention kernel (Triton) and its TensorRT plugin registration.

One Triton program per image computes, for feature maps X (N, C, H, W):

    U  = conv3x3(X; UW, UB)                      (C -> 1)
    Q1 = sigmoid(U + conv_LxL(U;  KW, KB))
    Qt = sigmoid(U + conv_LxL(Q_{t-1}; KW, KB))  (t = 2 .. iterations, one shared kernel)
    Y  = X * Q                                   (Q broadcast over C)

so the U map, the mean-field iterations and the gating are one launch instead
of ``2 + 2 x iterations`` layers.  The map lives in the Q output buffer between
iterations (a barrier separates reading neighbours from writing), which limits
a program to maps of at most ``MAX_MAP`` pixels (64 x 64 covers every registered
config).

TensorRT: :func:`register_plugin` registers ``mca_pose::CRFAttention`` with the
Quick Deployable Plugin API (``tensorrt.plugin``, TensorRT >= 10.7, stable from
10.9) with an ahead-of-time implementation: the PTX is compiled at build time
and embedded in the engine, so running the engine needs no Python.  Older
TensorRT (JetPack 6 ships 10.3) cannot load it; :mod:`engines.trt` then builds
the decomposed graph instead.

Triton and TensorRT are imported lazily; the kernel's arithmetic is tested on
the CPU with ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["PLUGIN_ID", "MAX_MAP", "crf_attention_reference", "crf_attention_triton", "compile_kernel",
           "strip_hidden_params", "register_plugin", "min_tensorrt_version"]

PLUGIN_NAMESPACE = "mca_pose"
PLUGIN_NAME = "CRFAttention"
PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"
MAX_MAP = 4096  # pixels per map (64 x 64)
MIN_TRT = (10, 7)


def min_tensorrt_version() -> tuple[int, int]:
    """The oldest TensorRT whose ``tensorrt.plugin`` has ``aot_impl``."""
    return MIN_TRT


def crf_attention_reference(x: np.ndarray, uw: np.ndarray, ub: np.ndarray, kw: np.ndarray, kb: np.ndarray,
                            iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """NumPy reference (float64) of the fused op, for plugin tests on any machine."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    L = kw.shape[-1]
    p = L // 2

    def conv(img: np.ndarray, k: np.ndarray, pad: int) -> np.ndarray:  # img (N, Ci, H, W), k (Ci, kh, kw)
        padded = np.pad(img, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        out = np.zeros((img.shape[0], h, w))
        for dy in range(k.shape[-2]):
            for dx in range(k.shape[-1]):
                out += np.einsum("nchw,c->nhw", padded[:, :, dy:dy + h, dx:dx + w], k[:, dy, dx])
        return out

    u = conv(x, np.asarray(uw, np.float64).reshape(c, 3, 3), 1) + float(np.ravel(ub)[0])
    q = u
    kk = np.asarray(kw, np.float64).reshape(1, L, L)
    for _ in range(iterations):
        q = 1 / (1 + np.exp(-(u + conv(q[:, None], kk, p) + float(np.ravel(kb)[0]))))
    return x * q[:, None], q[:, None]


def _kernel() -> Any:
    """Build the Triton kernel (imports triton on first use)."""
    import triton
    import triton.language as tl

    @triton.jit
    def crf_attention_kernel(x_ptr, uw_ptr, ub_ptr, kw_ptr, kb_ptr, y_ptr, q_ptr,
                             C: tl.constexpr, H: tl.constexpr, W: tl.constexpr, L: tl.constexpr,
                             ITERS: tl.constexpr, BLOCK: tl.constexpr):
        n = tl.program_id(0)
        offs = tl.arange(0, BLOCK)
        inside = offs < H * W
        row = offs // W
        col = offs % W
        x_base = x_ptr + n * C * H * W
        q_base = q_ptr + n * H * W
        # U = conv3x3(X) + b, accumulated in fp32 whatever the input precision.
        u = tl.zeros([BLOCK], dtype=tl.float32) + tl.load(ub_ptr).to(tl.float32)
        for c in range(C):
            for dy in tl.static_range(3):
                for dx in tl.static_range(3):
                    r = row + dy - 1
                    s = col + dx - 1
                    m = inside & (r >= 0) & (r < H) & (s >= 0) & (s < W)
                    v = tl.load(x_base + c * H * W + r * W + s, mask=m, other=0.0).to(tl.float32)
                    u += v * tl.load(uw_ptr + c * 9 + dy * 3 + dx).to(tl.float32)
        kb = tl.load(kb_ptr).to(tl.float32)
        # The map lives in the Q buffer between iterations; barriers separate reads from writes.
        tl.store(q_base + offs, u.to(q_ptr.dtype.element_ty), mask=inside)
        tl.debug_barrier()
        q = u
        for _t in tl.static_range(ITERS):
            acc = tl.zeros([BLOCK], dtype=tl.float32) + kb
            for i in tl.static_range(L):
                for j in tl.static_range(L):
                    r = row + i - L // 2
                    s = col + j - L // 2
                    m = inside & (r >= 0) & (r < H) & (s >= 0) & (s < W)
                    v = tl.load(q_base + r * W + s, mask=m, other=0.0).to(tl.float32)
                    acc += v * tl.load(kw_ptr + i * L + j).to(tl.float32)
            q = tl.sigmoid(u + acc)
            tl.debug_barrier()
            tl.store(q_base + offs, q.to(q_ptr.dtype.element_ty), mask=inside)
            tl.debug_barrier()
        for c in range(C):
            v = tl.load(x_base + c * H * W + offs, mask=inside, other=0.0).to(tl.float32)
            tl.store(y_ptr + n * C * H * W + c * H * W + offs, (v * q).to(y_ptr.dtype.element_ty), mask=inside)

    return crf_attention_kernel


_KERNEL: Any = None


def kernel() -> Any:
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _kernel()
    return _KERNEL


def _block(h: int, w: int) -> int:
    if h * w > MAX_MAP:
        raise ValueError(f"CRF attention maps of {h}x{w} exceed the fused kernel's {MAX_MAP} pixels")
    b = 16
    while b < h * w:
        b *= 2
    return b


def crf_attention_triton(x: Any, uw: Any, ub: Any, kw: Any, kb: Any, iterations: int) -> tuple[Any, Any]:
    """Run the kernel on torch tensors (CUDA, or CPU under ``TRITON_INTERPRET=1``)."""
    import torch

    n, c, h, w = x.shape
    L = kw.shape[-1]
    x = x.contiguous()
    y = torch.empty_like(x)
    q = torch.empty((n, 1, h, w), dtype=x.dtype, device=x.device)
    kernel()[(n,)](x, uw.contiguous().to(x.dtype), ub.to(x.dtype), kw.contiguous().to(x.dtype), kb.to(x.dtype),
                   y, q, C=c, H=h, W=w, L=L, ITERS=iterations, BLOCK=_block(h, w))
    return y, q


KERNEL_PARAMS = ("x_ptr", "uw_ptr", "ub_ptr", "kw_ptr", "kb_ptr", "y_ptr", "q_ptr")


@dataclass(frozen=True)
class CompiledKernel:
    """What TensorRT's AOT plugin needs: entry name, PTX, threads per block and shared memory."""

    name: str
    ptx: str
    num_warps: int
    shared_mem: int


def strip_hidden_params(ptx: str, entry: str, keep: int) -> str:
    """Drop the trailing kernel parameters Triton >= 3.3 appends (global/profile scratch pointers).

    TensorRT launches an AOT kernel with exactly its inputs, extra scalars and
    outputs; a PTX entry that declares more parameters would make the driver read
    past TensorRT's argument array.  The hidden ones are removed only where the
    kernel never references them (scratch size 0); otherwise this raises.
    """
    import re

    head = re.search(rf"\.entry\s+{re.escape(entry)}\s*\((.*?)\)", ptx, re.S)
    if head is None:
        raise ValueError(f"no .entry {entry} in the PTX")
    params = [q.strip() for q in head.group(1).split(",") if q.strip()]
    if len(params) < keep:
        raise ValueError(f"PTX entry {entry} has {len(params)} parameters, expected at least {keep}")
    for extra in params[keep:]:
        pname = extra.split()[-1]
        if len(re.findall(rf"\b{re.escape(pname)}\b", ptx)) != 1:  # declared and also used in the body
            raise ValueError(f"Triton kernel uses its hidden parameter {pname}; it cannot run as a TensorRT AOT "
                             "plugin")
    body = ",\n".join("\t" + q for q in params[:keep])
    return ptx[:head.start(1)] + "\n" + body + "\n" + ptx[head.end(1):]


def ptx_version_for_driver(driver_version: int) -> int:
    """The newest PTX ISA (e.g. 85 for 8.5) a CUDA driver (``cudaDriverGetVersion``, e.g. 12060) can JIT.

    The engine embeds PTX that the driver compiles at load time, so it must not be
    newer than the driver: Triton would otherwise pick its bundled ptxas's version
    (PTX 9.x from CUDA 13), which a CUDA 12 driver (JetPack 6: 12.6) rejects.
    """
    major, minor = driver_version // 1000, (driver_version % 1000) // 10
    if major >= 13:
        return 90 + (major - 13) * 10 + minor
    if major == 12:
        return 80 + minor - (1 if minor >= 6 else 0)  # 12.6 shipped PTX 8.5
    if major == 11:
        return 70 + minor
    raise ValueError(f"CUDA driver {major}.{minor} is too old for Triton kernels (needs >= 11.0)")


def compile_kernel(c: int, h: int, w: int, kernel_size: int, iterations: int, dtype: str = "fp32",
                   target: Any = None, ptx_version: int | None = None) -> CompiledKernel:
    """Compile the fused kernel for fixed sizes to PTX for TensorRT.

    ``target``: a triton ``GPUTarget`` (default: this machine's GPU); ``ptx_version``:
    the PTX ISA to emit (default: Triton's, which may be newer than the driver).
    """
    import triton

    if dtype not in ("fp32", "fp16"):
        raise ValueError(f"CRFAttention runs in fp32 or fp16, not {dtype}")
    sig: dict[str, str] = {name: f"*{dtype}" for name in KERNEL_PARAMS}
    consts = {"C": c, "H": h, "W": w, "L": kernel_size, "ITERS": iterations, "BLOCK": _block(h, w)}
    sig.update({k: "constexpr" for k in consts})
    src = triton.compiler.ASTSource(fn=kernel(), signature=sig, constexprs=consts)
    # FMA contraction on, said explicitly (Triton 3.10 changes the default); ptx_version only when given.
    options: dict[str, Any] = {"enable_fp_fusion": True}
    if ptx_version:
        options["ptx_version"] = ptx_version
    kw: dict[str, Any] = {"options": options}
    if target is not None:
        kw["target"] = target
    compiled = triton.compile(src, **kw)
    md = compiled.metadata
    if getattr(md, "global_scratch_size", 0) or getattr(md, "profile_scratch_size", 0):
        raise ValueError("the compiled kernel needs scratch memory, which a TensorRT AOT plugin cannot provide")
    if getattr(md, "num_ctas", 1) != 1 or getattr(md, "launch_cooperative_grid", False) or \
            getattr(md, "launch_pdl", False):
        raise ValueError("the compiled kernel needs a special launch (clusters, cooperative grid or PDL)")
    ptx = strip_hidden_params(compiled.asm["ptx"], md.name, len(KERNEL_PARAMS))
    return CompiledKernel(md.name, ptx, int(md.num_warps), int(md.shared))


def register_plugin() -> bool:
    """Register ``mca_pose::CRFAttention`` with TensorRT's QDP registry; False where TensorRT is too old."""
    import tensorrt as trt

    version = tuple(int(v) for v in trt.__version__.split(".")[:2])
    if version < MIN_TRT:
        log.info("TensorRT %s < %d.%d: no AOT Python plugins; the decomposed attention graph is used",
                 trt.__version__, *MIN_TRT)
        return False
    import tensorrt.plugin as trtp

    try:
        @trtp.register(PLUGIN_ID)
        def _desc(x: trtp.TensorDesc, uw: trtp.TensorDesc, ub: trtp.TensorDesc, kw: trtp.TensorDesc,
                  kb: trtp.TensorDesc, iterations: int, kernel_size: int) -> tuple[trtp.TensorDesc, trtp.TensorDesc]:
            y = x.like()
            q = x.like()
            q.shape_expr[1] = 1
            return y, q
    except ValueError:  # already registered in this process
        return True

    @trtp.aot_impl(PLUGIN_ID)
    def _aot(x: trtp.TensorDesc, uw: trtp.TensorDesc, ub: trtp.TensorDesc, kw: trtp.TensorDesc,
             kb: trtp.TensorDesc, iterations: int, kernel_size: int, outputs: tuple[trtp.TensorDesc, ...],
             tactic: int) -> tuple[Any, Any, Any, Any]:
        dims = [x.shape_expr[i] for i in (1, 2, 3)]
        if not all(d.is_constant for d in dims):
            raise ValueError("CRFAttention needs static C, H, W (only the batch may be dynamic)")
        c, h, w = (int(d.constant_value) for d in dims)  # compiled into the kernel as constexprs
        from engines import cuda

        ptx = ptx_version_for_driver(int(cuda.device_info(0)["driver"]))
        k = compile_kernel(c, h, w, kernel_size, iterations, "fp16" if x.dtype == trt.float16 else "fp32",
                           ptx_version=ptx)
        params = trtp.KernelLaunchParams()
        params.grid_x = x.shape_expr[0]  # one program per image
        params.block_x = k.num_warps * 32
        params.shared_mem = k.shared_mem
        # Kernel arguments: inputs, (no) extra scalars, outputs - the kernel's parameter order.
        return k.name.encode(), k.ptx.encode(), params, trtp.SymIntExprs(0)

    return True
