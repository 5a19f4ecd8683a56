"""CI check 2 (issue #13): the fused kernel compiled ahead of time for every GPU family we target, assembled by the
installed CUDA ``ptxas``: launch block == PTX ``.reqntid``, parameters == what aot_impl launches with, and registers
and shared memory within each target's limits.  No GPU is needed (Triton compiles for an explicit ``GPUTarget``)."""

from __future__ import annotations

import glob
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                                reason="triton is not installed (pip install the 'triton' extra; ~1 GB)")

# Per-block limits shared by sm_75 .. sm_90: 64 K 32-bit registers, 255 per thread, 48 KB static shared memory,
# 1024 threads, 16 named barriers.
REGS_PER_BLOCK, REGS_PER_THREAD, SMEM_STATIC, THREADS, BARRIERS = 65536, 255, 48 * 1024, 1024, 16
ARCHS = [75, 86, 87, 89, 90]  # Turing, Ampere (RTX 30), Orin, Ada (RTX 40), Hopper (H100/H200)
TINY = (64, 32, 32, 5, 3)  # mca_tiny's attention: channels, H, W, L, iterations
SMALL = (128, 48, 48, 7, 3)  # mca_small's


def installed_ptxas() -> str | None:
    """The CUDA toolkit's ptxas (PATH, then /usr/local/cuda*/bin), not Triton's bundled copy."""
    found = shutil.which("ptxas")
    if found:
        return found
    for cand in sorted(glob.glob("/usr/local/cuda*/bin/ptxas"), reverse=True):
        return cand
    return None


def assemble(ptx: str, tmp: Path) -> dict[str, int]:
    ptxas = installed_ptxas()
    if ptxas is None:
        pytest.skip("no CUDA toolkit ptxas on PATH or in /usr/local/cuda*/bin (PTX text checked only)")
    arch = re.search(r"^\.target (\w+)", ptx, re.M).group(1)
    src = tmp / "k.ptx"
    src.write_text(ptx)
    r = subprocess.run([ptxas, "-v", f"--gpu-name={arch}", str(src), "-o", str(tmp / "k.cubin")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    info = r.stdout + r.stderr
    used = re.search(r"Used (\d+) registers", info)
    smem = re.search(r"(\d+) bytes smem", info)
    bars = re.search(r"used (\d+) barriers", info)
    spill = re.search(r"(\d+) bytes spill stores", info)
    return {"registers": int(used.group(1)), "smem": int(smem.group(1)) if smem else 0,
            "barriers": int(bars.group(1)) if bars else 0, "spill": int(spill.group(1)) if spill else 0}


CASES = ([("fp16", TINY, a, None) for a in ARCHS] + [("fp32", TINY, a, None) for a in (75, 87)]
         + [("fp16", SMALL, 87, None), ("fp16", (16, 16, 16, 3, 2), 86, (2, 2))])


@pytest.mark.parametrize("dtype,shape,arch,tiles", CASES)
def test_aot_kernel_assembles_within_the_target_limits(tmp_path, dtype, shape, arch, tiles) -> None:
    from engines.plugins.crf_attention import KERNEL_PARAMS, compile_kernel, ptx_version_for_driver

    ptx_isa = ptx_version_for_driver(12060)  # JetPack 6's CUDA 12.6 driver: the oldest we target
    k = compile_kernel(*shape, dtype, arch, ptx_isa, tiles)
    assert re.search(r"^\.version 8\.5$", k.ptx, re.M)
    target = re.search(r"^\.target (\w+)", k.ptx, re.M).group(1)
    assert target.startswith(f"sm_{arch}")
    reqntid = re.search(r"\.reqntid\s+(\d+)", k.ptx)
    assert reqntid and int(reqntid.group(1)) == k.block_x <= THREADS  # the block aot_impl launches
    entry = re.search(rf"\.entry\s+{k.name}\s*\((.*?)\)", k.ptx, re.S)
    params = [p for p in entry.group(1).split(",") if p.strip()]
    assert len(params) == len(KERNEL_PARAMS) == 5 + 2 and all(".u64" in p for p in params)  # inputs + outputs
    info = assemble(k.ptx, tmp_path)
    assert info["registers"] <= REGS_PER_THREAD and info["registers"] * k.block_x <= REGS_PER_BLOCK, info
    assert info["smem"] + k.shared_mem <= SMEM_STATIC, info
    assert info["barriers"] <= BARRIERS
    if tiles:
        assert k.plan.tiles == tiles[0] * tiles[1]


@pytest.mark.slow
def test_mca_paper_attention_assembles(tmp_path) -> None:
    """The released mca_paper attention (256 channels, 64x64, L=11, 3 iterations): about 2 minutes to compile."""
    from engines.plugins.crf_attention import compile_kernel

    k = compile_kernel(256, 64, 64, 11, 3, "fp16", 90, 85)
    info = assemble(k.ptx, tmp_path)
    assert info["registers"] * k.block_x <= REGS_PER_BLOCK and int(re.search(r"\.reqntid\s+(\d+)", k.ptx)
                                                                     .group(1)) == k.block_x
