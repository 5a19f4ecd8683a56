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
# Spatial tiles forced (the default plan is checked too): 2x2 and an uneven 3x2 split with halos, 1x3 strips.
TILED = [(2, 16, 16, 16, 3, 2, (2, 2)), (1, 8, 13, 11, 3, 2, (3, 2)), (1, 4, 9, 7, 3, 1, (1, 3))]


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
for n, c, h, w, L, it, tiles, dtype in cases:
    torch.manual_seed(n * 7 + c)
    m = AttentionIter(c, L, it).eval()
    torch.nn.init.normal_(m.crf_kernel.weight, std=0.3)
    x = torch.randn(n, c, h, w)
    with torch.no_grad():
        ry, rq = m(x)
        y, q = crf_attention_triton(x.to(getattr(torch, dtype)), m.u_conv.weight, m.u_conv.bias,
                                    m.crf_kernel.weight, m.crf_kernel.bias, it, tiles)
    assert y.dtype == getattr(torch, dtype) and y.shape == x.shape and q.shape == (n, 1, h, w)
    print(dtype, n, c, h, w, L, it, float((y.float() - ry).abs().max()), float((q.float() - rq).abs().max()))
'''


@pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                    reason="triton is not installed (pip install the 'triton' extra; ~1 GB)")
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float16", 1e-2)])
def test_triton_kernel_matches_pytorch_under_interpreter(dtype: str, tol: float) -> None:
    """Runs in a subprocess because TRITON_INTERPRET must be set before triton is imported."""
    cases = [(*c, None, dtype) for c in CASES] + [(*c, dtype) for c in TILED]
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", KERNEL_TEST, repr(cases)], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [ln.split() for ln in r.stdout.strip().splitlines()]
    assert len(rows) == len(cases)
    for row in rows:
        assert float(row[-2]) <= tol and float(row[-1]) <= tol, row


@pytest.mark.parametrize("driver,ptx", [(12020, 82), (12060, 85), (12090, 88), (13000, 90), (13020, 92),
                                        (11080, 78)])
def test_ptx_version_follows_the_driver(driver, ptx) -> None:
    from engines.plugins.crf_attention import ptx_version_for_driver

    assert ptx_version_for_driver(driver) == ptx


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


@pytest.mark.parametrize("c,h,w,L,it,tiles", [(64, 32, 32, 5, 3, 8), (256, 64, 64, 11, 3, 7), (2, 1, 1, 3, 1, 1),
                                              (16, 16, 16, 3, 2, None), (1, 8, 8, 11, 3, 1)])
def test_tile_plan_splits_a_batch_over_space(c, h, w, L, it, tiles) -> None:
    """Row 20: the grid is batch x tiles; a tile's halo map fits its own Y and costs at most 4x the tile."""
    from engines.plugins.crf_attention import MAX_MAP, MAX_RECOMPUTE, tile_plan

    p = tile_plan(c, h, w, L, it)
    assert p.tiles == tiles or (tiles is None and p.tiles > 1)
    assert p.tiles == 1 or p.block >= 128  # every thread of the 4+ warps has a lane
    assert p.extent <= MAX_MAP and p.extent <= p.block and p.extent <= c * (h // p.ty) * (w // p.tx)
    assert p.tiles == 1 or p.extent <= MAX_RECOMPUTE * p.th * p.tw


def test_tile_plan_refusals() -> None:
    from engines.plugins.crf_attention import tile_plan

    with pytest.raises(ValueError, match="exceed"):
        tile_plan(1, 128, 128, 3, 1)  # one channel: a halo map cannot live in the tile's own Y
    with pytest.raises(ValueError, match="do not fit"):
        tile_plan(1, 16, 16, 3, 2, (4, 4))
