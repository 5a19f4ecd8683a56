"""The fused CRF attention kernel (Triton), tiled over space, and its compile step for TensorRT.

For feature maps X (N, C, H, W) one launch computes

    U  = conv3x3(X; UW, UB)                      (C -> 1)
    Q1 = sigmoid(U + conv_LxL(U;  KW, KB))
    Qt = sigmoid(U + conv_LxL(Q_{t-1}; KW, KB))  (t = 2 .. iterations, one shared kernel)
    Y  = X * Q                                   (Q broadcast over C)

instead of ``2 + 2 x iterations`` layers.  The grid is batch x spatial tiles
(:func:`tile_plan`), so a batch of small maps still fills the GPU.  A tile's
result depends on a halo of ``iterations x L//2`` pixels around it, which the
program recomputes itself (no communication between programs).  Between
iterations the map of the tile plus halo lives in the program's *own* part of the
Y output (its tile's pixels in every channel, overwritten with the result at the
end), so no other program ever touches it; a barrier separates reading
neighbours from writing.  A tile plus halo holds at most ``MAX_MAP`` pixels.

The TensorRT registration (``tensorrt.plugin``) is in :mod:`engines.plugins.qdp`.
Triton is imported lazily; the arithmetic is tested on the CPU with
``TRITON_INTERPRET=1`` against PyTorch and :func:`crf_attention_reference`.
"""

import functools
import logging
import re
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["MAX_MAP", "KERNEL_PARAMS", "TilePlan", "tile_plan", "crf_attention_reference", "crf_attention_triton",
           "CompiledKernel", "compile_kernel", "strip_hidden_params", "ptx_version_for_driver", "kernel_source_hash"]

MAX_MAP = 4096  # pixels of one tile plus its halo (64 x 64 when the whole map is one tile)
MAX_RECOMPUTE = 4.0  # a tile plus halo may cost at most this many times the tile itself
KERNEL_PARAMS = ("x_ptr", "uw_ptr", "ub_ptr", "kw_ptr", "kb_ptr", "y_ptr", "q_ptr")


def crf_attention_reference(x: np.ndarray, uw: np.ndarray, ub: np.ndarray, kw: np.ndarray, kb: np.ndarray,
                            iterations: int) -> Tuple[np.ndarray, np.ndarray]:
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


@dataclass(frozen=True)
class TilePlan:
    """How one map is split: ``ty x tx`` tiles of at most ``th x tw`` pixels, each with its halo."""

    ty: int
    tx: int
    th: int
    tw: int
    halo_y: int
    halo_x: int
    block: int  # lanes of one program (power of two >= the tile plus halo)
    num_warps: int

    @property
    def tiles(self) -> int:
        return self.ty * self.tx

    @property
    def extent(self) -> int:
        return (self.th + 2 * self.halo_y) * (self.tw + 2 * self.halo_x)


def _plan(c: int, h: int, w: int, halo: int, ty: int, tx: int, forced: bool = False) -> Optional[TilePlan]:
    th, tw = -(-h // ty), -(-w // tx)
    hy, hx = (halo if ty > 1 else 0), (halo if tx > 1 else 0)
    ext = (th + 2 * hy) * (tw + 2 * hx)
    smallest_tile = (h // ty) * (w // tx)
    if smallest_tile < 1 or ext > MAX_MAP or ext > c * smallest_tile:  # the halo map must fit the tile's Y
        return None
    block = max(16, 1 << (ext - 1).bit_length())
    if not forced and ty * tx > 1 and (ext > MAX_RECOMPUTE * th * tw or block < 128):  # cost; >= 1 lane a thread
        return None
    return TilePlan(ty, tx, th, tw, hy, hx, block, max(4, min(16, block // 128)))  # <= 8 lanes a thread


def tile_plan(c: int, h: int, w: int, kernel_size: int, iterations: int,
              tiles: Optional[Tuple[int, int]] = None) -> TilePlan:
    """The most tiles (up to 8 x 8) whose halo recomputation stays within ``MAX_RECOMPUTE``.

    ``tiles`` forces a split (tests; only the correctness limits apply); an impossible split raises ``ValueError``.
    """
    halo = iterations * (kernel_size // 2)
    if tiles is not None:
        plan = _plan(c, h, w, halo, *tiles, forced=True)
        if plan is None:
            raise ValueError(f"{tiles[0]}x{tiles[1]} tiles do not fit a {c}x{h}x{w} map with halo {halo}")
        return plan
    best: Optional[TilePlan] = None
    for ty in range(1, min(h, 8) + 1):
        for tx in range(1, min(w, 8) + 1):
            p = _plan(c, h, w, halo, ty, tx)
            if p is not None and (best is None or (p.tiles, -p.block) > (best.tiles, -best.block)):
                best = p
    if best is None:
        raise ValueError(f"CRF attention maps of {h}x{w} exceed the fused kernel's {MAX_MAP} pixels per tile")
    return best


def _kernel() -> Any:
    """Build the Triton kernel (imports triton on first use)."""
    import triton
    import triton.language as tl

    @triton.jit
    def crf_attention_kernel(x_ptr, uw_ptr, ub_ptr, kw_ptr, kb_ptr, y_ptr, q_ptr,
                             C: tl.constexpr, H: tl.constexpr, W: tl.constexpr, L: tl.constexpr,
                             ITERS: tl.constexpr, TY: tl.constexpr, TX: tl.constexpr, TH: tl.constexpr,
                             TW: tl.constexpr, HY: tl.constexpr, HX: tl.constexpr, BLOCK: tl.constexpr):
        n = tl.program_id(0)
        t = tl.program_id(1)
        # This program's tile (balanced split) and its halo, as a flat block of EH x EW lanes.
        r0 = (t // TX) * H // TY
        r1 = (t // TX + 1) * H // TY
        c0 = (t % TX) * W // TX
        c1 = (t % TX + 1) * W // TX
        tw = c1 - c0
        tp = (r1 - r0) * tw
        EH: tl.constexpr = TH + 2 * HY
        EW: tl.constexpr = TW + 2 * HX
        P: tl.constexpr = L // 2
        offs = tl.arange(0, BLOCK)
        er = offs // EW
        ec = offs % EW
        row = r0 - HY + er
        col = c0 - HX + ec
        inside = (offs < EH * EW) & (row >= 0) & (row < H) & (col >= 0) & (col < W)
        own = inside & (row >= r0) & (row < r1) & (col >= c0) & (col < c1)
        x_base = x_ptr + n * C * H * W
        y_base = y_ptr + n * C * H * W
        # U = conv3x3(X) + b over tile and halo, accumulated in fp32 whatever the input precision.
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
        # Scratch: lane k of the halo map lives at channel k // tp, pixel k % tp of this tile's own Y.
        k_ch = offs // tp
        k_px = offs % tp
        scratch = y_base + k_ch * H * W + (r0 + k_px // tw) * W + (c0 + k_px % tw)
        tl.store(scratch, u.to(y_ptr.dtype.element_ty), mask=inside)
        tl.debug_barrier()
        q = u
        for it in tl.static_range(ITERS):
            acc = tl.zeros([BLOCK], dtype=tl.float32) + kb
            for i in tl.static_range(L):
                for j in tl.static_range(L):
                    nr = er + i - P
                    nc = ec + j - P
                    m = (inside & (row + i - P >= 0) & (row + i - P < H) & (col + j - P >= 0) & (col + j - P < W)
                         & (nr >= 0) & (nr < EH) & (nc >= 0) & (nc < EW))
                    k = nr * EW + nc
                    v = tl.load(y_base + (k // tp) * H * W + (r0 + (k % tp) // tw) * W + (c0 + (k % tp) % tw),
                                mask=m, other=0.0).to(tl.float32)
                    acc += v * tl.load(kw_ptr + i * L + j).to(tl.float32)
            q = tl.sigmoid(u + acc)
            tl.debug_barrier()
            if it + 1 < ITERS:
                tl.store(scratch, q.to(y_ptr.dtype.element_ty), mask=inside)
                tl.debug_barrier()
        tl.store(q_ptr + n * H * W + row * W + col, q.to(q_ptr.dtype.element_ty), mask=own)
        for c in range(C):
            v = tl.load(x_base + c * H * W + row * W + col, mask=own, other=0.0).to(tl.float32)
            tl.store(y_base + c * H * W + row * W + col, (v * q).to(y_ptr.dtype.element_ty), mask=own)

    return crf_attention_kernel


@functools.lru_cache(maxsize=1)
def kernel() -> Any:
    return _kernel()


def kernel_source_hash() -> str:
    """A digest of this file (the kernel's source), the plugin's launch code (``qdp.py``: the grid and block an
    ahead-of-time engine bakes in) and the Triton version: part of an engine's cache key."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update((Path(__file__).with_name("qdp.py")).read_bytes())
    try:
        import triton

        h.update(str(triton.__version__).encode())
    except ImportError:
        h.update(b"no-triton")
    return h.hexdigest()[:16]


def _constexprs(c: int, h: int, w: int, kernel_size: int, iterations: int, plan: TilePlan) -> dict[str, int]:
    return {"C": c, "H": h, "W": w, "L": kernel_size, "ITERS": iterations, "TY": plan.ty, "TX": plan.tx,
            "TH": plan.th, "TW": plan.tw, "HY": plan.halo_y, "HX": plan.halo_x, "BLOCK": plan.block}


def crf_attention_triton(x: Any, uw: Any, ub: Any, kw: Any, kb: Any, iterations: int,
                         tiles: Optional[Tuple[int, int]] = None) -> Tuple[Any, Any]:
    """Run the kernel on torch tensors (CUDA, or CPU under ``TRITON_INTERPRET=1``)."""
    import torch

    n, c, h, w = x.shape
    L = kw.shape[-1]
    plan = tile_plan(c, h, w, L, iterations, tiles)
    x = x.contiguous()
    y = torch.empty_like(x)
    q = torch.empty((n, 1, h, w), dtype=x.dtype, device=x.device)
    kernel()[(n, plan.tiles)](x, uw.contiguous().to(x.dtype), ub.to(x.dtype), kw.contiguous().to(x.dtype),
                              kb.to(x.dtype), y, q, num_warps=plan.num_warps,
                              **_constexprs(c, h, w, L, iterations, plan))
    return y, q


@dataclass(frozen=True)
class CompiledKernel:
    """What TensorRT's AOT plugin needs: entry name, PTX, launch shape and shared memory."""

    name: str
    ptx: str
    num_warps: int
    shared_mem: int
    plan: TilePlan

    @property
    def block_x(self) -> int:
        return self.num_warps * 32


def strip_hidden_params(ptx: str, entry: str, keep: int) -> str:
    """Drop the trailing kernel parameters Triton >= 3.3 appends (global/profile scratch pointers).

    TensorRT launches an AOT kernel with exactly its inputs, extra scalars and
    outputs; a PTX entry that declares more parameters would make the driver read
    past TensorRT's argument array.  The hidden ones are removed only where the
    kernel never references them (scratch size 0); otherwise this raises.
    """
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


@functools.lru_cache(maxsize=64)
def compile_kernel(c: int, h: int, w: int, kernel_size: int, iterations: int, dtype: str, arch: int,
                   ptx_version: Optional[int] = None, tiles: Optional[Tuple[int, int]] = None) -> CompiledKernel:
    """Compile the fused kernel for fixed sizes to PTX for TensorRT, for GPU architecture ``arch`` (e.g. 87).

    The target is always explicit (``GPUTarget("cuda", arch, 32)``): Triton's default asks
    the active driver, which fails on a CPU-only torch and is not the build GPU anyway.
    ``ptx_version``: the PTX ISA to emit (default: Triton's, which may be newer than the driver).
    Cached: TensorRT asks once per layer, format and tactic, and every layer of a size is the same kernel.
    """
    import triton
    from triton.backends.compiler import GPUTarget

    if dtype not in ("fp32", "fp16"):
        raise ValueError(f"CRFAttention runs in fp32 or fp16, not {dtype}")
    plan = tile_plan(c, h, w, kernel_size, iterations, tiles)
    sig: dict[str, str] = {name: f"*{dtype}" for name in KERNEL_PARAMS}
    consts = _constexprs(c, h, w, kernel_size, iterations, plan)
    sig.update({k: "constexpr" for k in consts})
    src = triton.compiler.ASTSource(fn=kernel(), signature=sig, constexprs=consts)
    # FMA contraction on, said explicitly (Triton 3.10 changes the default); ptx_version only when given.
    options: dict[str, Any] = {"enable_fp_fusion": True, "num_warps": plan.num_warps}
    if ptx_version:
        options["ptx_version"] = ptx_version
    compiled = triton.compile(src, target=GPUTarget("cuda", int(arch), 32), options=options)
    md = compiled.metadata
    if getattr(md, "global_scratch_size", 0) or getattr(md, "profile_scratch_size", 0):
        raise ValueError("the compiled kernel needs scratch memory, which a TensorRT AOT plugin cannot provide")
    if getattr(md, "num_ctas", 1) != 1 or getattr(md, "launch_cooperative_grid", False) or \
            getattr(md, "launch_pdl", False):
        raise ValueError("the compiled kernel needs a special launch (clusters, cooperative grid or PDL)")
    ptx = strip_hidden_params(compiled.asm["ptx"], md.name, len(KERNEL_PARAMS))
    if int(md.num_warps) != plan.num_warps:
        raise ValueError(f"Triton compiled {md.num_warps} warps, the launch plan says {plan.num_warps}")
    return CompiledKernel(md.name, ptx, int(md.num_warps), int(md.shared), plan)


def arch_of(compute_capability: str) -> int:
    """``"8.7"`` -> 87."""
    major, minor = (int(v) for v in compute_capability.split(".")[:2])
    return major * 10 + minor


def grid_tiles(c: int, h: int, w: int, kernel_size: int, iterations: int) -> int:
    """Programs per image of the default plan (the launch's ``grid_y``)."""
    return tile_plan(c, h, w, kernel_size, iterations).tiles

