"""Building blocks of the Multi-Context Attention network.

Each block mirrors one Lua layer of the authors' release (``layers/Residual.lua``,
``layers/ResidualPool.lua``, ``layers/AttentionPartsCRF.lua``); sub-module
creation order follows the Lua graph, except that ``PartAttention`` registers all its
attention blocks before its heads where Lua builds attention-then-head per part
(``mca.convert_t7.released_order`` walks it the Lua way).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
import torch.nn.functional as F

__all__ = ["Residual", "HourglassResidual", "Lin", "AttentionIter", "PartAttention"]


def _bn_relu_conv(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, k, padding=k // 2)]


class Residual(nn.Module):
    """Pre-activation bottleneck R(in, out) with identity or 1x1 skip."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // 2
        self.conv_block = nn.Sequential(
            *_bn_relu_conv(cin, mid, 1), *_bn_relu_conv(mid, mid, 3), *_bn_relu_conv(mid, cout, 1)
        )
        self.skip: nn.Module = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_block(x) + self.skip(x)


class HourglassResidual(Residual):
    """Hourglass Residual Unit: R's two branches plus a pooled branch.

    The pooled branch sees a 2x larger receptive field at half resolution
    (BN-ReLU-maxpool-conv3x3-BN-ReLU-conv3x3-upsample x2).  The released code
    upsamples by nearest neighbour; the paper's figure shows a 2x2 deconvolution
    (``upsample="deconv"``).
    """

    def __init__(self, cin: int, cout: int, upsample: Literal["nearest", "deconv"] = "nearest") -> None:
        super().__init__(cin, cout)
        up: nn.Module
        if upsample == "nearest":
            up = nn.Upsample(scale_factor=2, mode="nearest")
        elif upsample == "deconv":
            up = nn.ConvTranspose2d(cout, cout, 2, stride=2)
        else:
            raise ValueError(f"upsample must be 'nearest' or 'deconv', got {upsample!r}")
        self.pool_branch = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1), up,
        )

    def forward(self, x: Tensor) -> Tensor:
        # The pool branch starts with its own BN-ReLU, so inplace ReLUs never touch x.
        return self.conv_block(x) + self.skip(x) + self.pool_branch(x)


class Lin(nn.Sequential):
    """conv1x1 - BN - ReLU (``lin`` in the Lua code)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class AttentionIter(nn.Module):
    """CRF attention: mean-field iterations of a shared LxL kernel over a 1-channel map.

    U = conv3x3(C->1)(x); Q1 = sigmoid(U + k*U); Q(t+1) = sigmoid(U + k*Q(t)).
    The kernel ``k`` is a single parameter reused by every iteration (the Lua
    code clones it with shared weight and bias).  Returns ``(x * Q, Q)`` so the
    attention map is available without a second forward pass.
    """

    def __init__(self, channels: int, kernel_size: int = 11, iterations: int = 3) -> None:
        super().__init__()
        if iterations < 1:
            raise ValueError("iterations must be >= 1")
        self.iterations = iterations
        self.u_conv = nn.Conv2d(channels, 1, 3, padding=1)
        self.crf_kernel = nn.Conv2d(1, 1, kernel_size, padding=kernel_size // 2)

    def attention_map(self, x: Tensor) -> Tensor:
        u = self.u_conv(x)
        q = u
        for _ in range(self.iterations):
            q = torch.sigmoid(u + self.crf_kernel(q))
        return q

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        q = self.attention_map(x)
        return x * q, q


class PartAttention(nn.Module):
    """K independent attention modules, each followed by its own 1x1 conv -> K heatmaps.

    ``fused`` (set by the ONNX export, off for training) computes the same function as
    three K-channel layers instead of K one-channel ones, see :meth:`forward_fused`.
    """

    def __init__(self, channels: int, num_parts: int, kernel_size: int = 11, iterations: int = 3) -> None:
        super().__init__()
        self.parts = nn.ModuleList(AttentionIter(channels, kernel_size, iterations) for _ in range(num_parts))
        self.heads = nn.ModuleList(nn.Conv2d(channels, 1, 1) for _ in range(num_parts))
        self.fused = False

    def forward_fused(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The K parts at once, equal to :meth:`forward` up to float rounding.

        Part k's map is ``q_k`` (one channel) and its heatmap ``head_k(x * q_k)``; a 1x1
        head is linear over channels, so ``head_k(x * q_k) = q_k * (w_k . x) + b_k``.
        So: one C->K 3x3 conv for every ``U``, one depthwise K->K LxL conv per CRF
        iteration, one C->K 1x1 conv for the heads, and a K-channel product, instead of
        K one-channel convolutions (each padded to a full SIMD block by ONNX Runtime,
        and a tiny im2col GEMM in INT8) and K C-channel products.
        """
        uw = torch.cat([a.u_conv.weight for a in self.parts])
        ub = torch.cat([a.u_conv.bias for a in self.parts])
        kw = torch.cat([a.crf_kernel.weight for a in self.parts])
        kb = torch.cat([a.crf_kernel.bias for a in self.parts])
        hw = torch.cat([h.weight for h in self.heads])
        hb = torch.cat([h.bias for h in self.heads])
        k, pad = len(self.parts), self.parts[0].crf_kernel.kernel_size[0] // 2
        u = F.conv2d(x, uw, ub, padding=1)
        q = u
        for _ in range(self.parts[0].iterations):
            q = torch.sigmoid(u + F.conv2d(q, kw, kb, padding=pad, groups=k))
        return F.conv2d(x, hw) * q + hb.view(1, k, 1, 1), q

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.fused:
            return self.forward_fused(x)
        outs, maps = [], []
        for att, head in zip(self.parts, self.heads):
            feat, q = att(x)
            outs.append(head(feat))
            maps.append(q)
        return torch.cat(outs, 1), torch.cat(maps, 1)


class MultiResolutionAttention(nn.Module):
    """Paper option (not in the released graph): attention from several hourglass levels.

    Each level's features give a CRF attention map; the maps are brought to the
    finest resolution (bilinear) and averaged, then gate the stack's features.
    """

    def __init__(self, channels: int, hg_channels: int, levels: int, kernel_size: int, iterations: int) -> None:
        super().__init__()
        self.main = AttentionIter(channels, kernel_size, iterations)
        self.extra = nn.ModuleList(AttentionIter(hg_channels, kernel_size, iterations) for _ in range(levels))

    def forward(self, x: Tensor, level_feats: list[Tensor]) -> tuple[Tensor, Tensor]:
        q = self.main.attention_map(x)
        for att, f in zip(self.extra, level_feats):
            q = q + F.interpolate(att.attention_map(f), size=x.shape[-2:], mode="bilinear", align_corners=False)
        q = q / (1 + len(self.extra))
        return x * q, q
