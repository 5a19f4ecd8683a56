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
