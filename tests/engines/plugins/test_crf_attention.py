"""The fused CRF attention kernel: Triton (interpreted on the CPU) and NumPy reference vs PyTorch."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the reference module is PyTorch (the 'train' extra)")

from engines.plugins.crf_attention import crf_attention_reference  # noqa: E402
from mca.blocks import AttentionIter  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
CASES = [  # (batch, channels, height, width, L, iterations)
    (1, 4, 8, 8, 3, 3), (3, 5, 7, 9, 5, 3), (2, 3, 13, 5, 11, 2), (2, 16, 16, 16, 11, 3), (1, 2, 1, 1, 3, 1),
]


def _module(c: int, L: int, it: int, seed: int) -> AttentionIter:
    torch.manual_seed(seed)
    m = AttentionIter(c, L, it).eval()
    torch.nn.init.normal_(m.crf_kernel.weight, std=0.3)
    torch.nn.init.normal_(m.u_conv.bias)
    return m


def _params(m: AttentionIter):
    return m.u_conv.weight, m.u_conv.bias, m.crf_kernel.weight, m.crf_kernel.bias


@pytest.mark.parametrize("n,c,h,w,L,it", CASES)
def test_numpy_reference_matches_pytorch(n, c, h, w, L, it) -> None:
    m = _module(c, L, it, seed=n + c)
    x = torch.randn(n, c, h, w)
    with torch.no_grad():
        ry, rq = m(x)
        y, q = crf_attention_reference(x.numpy(), *(t.numpy() for t in _params(m)), it)
    np.testing.assert_allclose(y, ry.numpy(), atol=1e-5)
    np.testing.assert_allclose(q, rq.numpy(), atol=1e-6)


KERNEL_TEST = r'''
import sys, torch, numpy as np
from engines.plugins.crf_attention import crf_attention_triton
from mca.blocks import AttentionIter
cases = eval(sys.argv[1])
worst = {}
for n, c, h, w, L, it, dtype in cases:
    torch.manual_seed(n * 7 + c)
    m = AttentionIter(c, L, it).eval()
    torch.nn.init.normal_(m.crf_kernel.weight, std=0.3)
    x = torch.randn(n, c, h, w)
    with torch.no_grad():
        ry, rq = m(x)
        y, q = crf_attention_triton(x.to(getattr(torch, dtype)), m.u_conv.weight, m.u_conv.bias,
                                    m.crf_kernel.weight, m.crf_kernel.bias, it)
    assert y.dtype == getattr(torch, dtype) and y.shape == x.shape and q.shape == (n, 1, h, w)
    print(dtype, n, c, h, w, L, it, float((y.float() - ry).abs().max()), float((q.float() - rq).abs().max()))
'''


@pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                    reason="triton is not installed (pip install the 'triton' extra; ~1 GB)")
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float16", 1e-2)])
def test_triton_kernel_matches_pytorch_under_interpreter(dtype: str, tol: float) -> None:
    """Runs in a subprocess because TRITON_INTERPRET must be set before triton is imported."""
    cases = [(*c, dtype) for c in CASES]
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", KERNEL_TEST, repr(cases)], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [ln.split() for ln in r.stdout.strip().splitlines()]
    assert len(rows) == len(cases)
    for row in rows:
        assert float(row[-2]) <= tol and float(row[-1]) <= tol, row


HAVE_TRITON = importlib.util.find_spec("triton") is not None


@pytest.mark.parametrize("driver,ptx", [(12020, 82), (12060, 85), (12090, 88), (13000, 90), (13020, 92),
                                        (11080, 78)])
def test_ptx_version_follows_the_driver(driver, ptx) -> None:
    from engines.plugins.crf_attention import ptx_version_for_driver

    assert ptx_version_for_driver(driver) == ptx


@pytest.mark.skipif(not HAVE_TRITON, reason="triton is not installed (pip install the 'triton' extra; ~1 GB)")
@pytest.mark.parametrize("dtype,c,h,w,L,it,sm,driver", [
    ("fp32", 8, 7, 9, 3, 2, 80, 12020), ("fp16", 16, 16, 16, 5, 2, 90, 13000),
    ("fp16", 32, 64, 64, 3, 1, 87, 12060),  # Jetson Orin on JetPack 6 (CUDA 12.6), the largest map
    # the real mca_paper attention (L=11, 3 iterations, 64x64 maps): ~30 s to compile, so on request
    pytest.param("fp16", 256, 64, 64, 11, 3, 90, 12060, marks=pytest.mark.slow),
])
def test_aot_ptx_has_exactly_the_tensorrt_arguments(tmp_path, dtype, c, h, w, L, it, sm, driver) -> None:
    """What @trtp.aot_impl hands TensorRT, built for a GPU target without a GPU: 7 pointer params, PTX no newer
    than the driver, and ptxas accepts it."""
    import re

    from triton.backends.compiler import GPUTarget

    from engines.plugins.crf_attention import KERNEL_PARAMS, compile_kernel, ptx_version_for_driver

    want = ptx_version_for_driver(driver)
    k = compile_kernel(c, h, w, L, it, dtype, target=GPUTarget("cuda", sm, 32), ptx_version=want)
    assert re.search(r"^\.version (\d+)\.(\d+)", k.ptx, re.M).groups() == (str(want // 10), str(want % 10))
    entry = re.search(rf"\.entry\s+{k.name}\s*\((.*?)\)", k.ptx, re.S)
    assert entry is not None
    params = [p for p in entry.group(1).split(",") if p.strip()]
    assert len(params) == len(KERNEL_PARAMS) and all(".u64" in p for p in params)
    assert k.num_warps * 32 <= 1024 and k.shared_mem >= 0
    try:
        from triton.backends.nvidia.compiler import get_ptxas

        ptxas = get_ptxas(sm).path
    except (ImportError, AttributeError, RuntimeError):
        pytest.skip("triton's bundled ptxas is not reachable; the PTX text was checked, not assembled")
    src = tmp_path / "k.ptx"
    src.write_text(k.ptx)
    arch = re.search(r"^\.target (\w+)", k.ptx, re.M).group(1)  # sm_90a for Hopper
    assert arch.startswith(f"sm_{sm}")
    r = subprocess.run([ptxas, f"--gpu-name={arch}", str(src), "-o", str(tmp_path / "k.cubin")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


STUB_PTX = """.version 8.0
.target sm_90
.visible .entry k(
\t.param .u64 .ptr .global .align 1 k_param_0,
\t.param .u64 .ptr .global .align 1 k_param_1,
\t.param .u64 .ptr .global .align 1 k_param_2
)
{
\tld.param.u64 \t%rd1, [k_param_0];
\t%s
\tret;
}
"""


@pytest.mark.parametrize("body,keep,ok", [("", 1, True), ("", 3, True), ("ld.param.u64 %rd2, [k_param_2];", 1, False),
                                          ("", 4, False)])
def test_hidden_params_are_stripped_only_when_unused(body, keep, ok) -> None:
    from engines.plugins.crf_attention import strip_hidden_params

    ptx = STUB_PTX.replace("%s", body)
    if not ok:
        with pytest.raises(ValueError):
            strip_hidden_params(ptx, "k", keep)
        return
    out = strip_hidden_params(ptx, "k", keep)
    assert [f"k_param_{i}" in out for i in range(3)] == [i < keep for i in range(3)]
    assert "ld.param.u64 \t%rd1, [k_param_0];" in out and out.count("(") == ptx.count("(")
