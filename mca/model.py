"""The MCA network: stem -> stacked hourglasses with HRUs -> CRF attention heads.

Blocks (:mod:`mca.blocks`) -> stages (:class:`Stem`, :class:`Hourglass`,
:class:`Stack`) -> network (:class:`MCANet`), following ``hg-attention.lua``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
import torch.nn.functional as F

from mca.blocks import AttentionIter, HourglassResidual, Lin, MultiResolutionAttention, PartAttention, Residual
from mca.config import MCAConfig

__all__ = ["Stem", "Hourglass", "GatedHead", "Stack", "MCANet", "MCAOutput"]


class Stem(nn.Sequential):
    """Image -> features at 1/4 resolution.

    stride 1 (released MCA): conv7x7 s1 - BN - ReLU - R(64,64) - pool - R(64,64) - R(64,M)
    - pool - R(M,M) - R(M,M) - R(M,C).  stride 2 (Newell's, ~4 GMACs cheaper at 256 px):
    conv7x7 s2 - BN - ReLU - R(64,M) - pool - R(M,M) - R(M,M) - R(M,C).  M = 128 as released.
    """

    def __init__(self, channels: int, stride: Literal[1, 2] = 1, mid: int = 128) -> None:
        head: list[nn.Module] = [nn.Conv2d(3, 64, 7, stride=stride, padding=3), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
        if stride == 1:
            body = [Residual(64, 64), nn.MaxPool2d(2, 2), Residual(64, 64), Residual(64, mid), nn.MaxPool2d(2, 2),
                    Residual(mid, mid), Residual(mid, mid), Residual(mid, channels)]
        elif stride == 2:
            body = [Residual(64, mid), nn.MaxPool2d(2, 2), Residual(mid, mid), Residual(mid, mid),
                    Residual(mid, channels)]
        else:
            raise ValueError(f"stem stride must be 1 or 2, got {stride}")
        super().__init__(*head, *body)


class Hourglass(nn.Module):
    """One hourglass level (recursive), as ``hourglass(n, f, inp)`` in the Lua code.

    Upper branch at this resolution: R followed by (n-2) HRUs when n > 1, else a single R
    (so depth 4 gives [R, HRU, HRU] at 64, [R, HRU] at 32, [R] at 16 and 8).  Lower branch:
    maxpool - R - (next level, or R at the bottom) - R - nearest upsample x2.
    """

    def __init__(self, depth: int, channels: int, upsample: Literal["nearest", "deconv"] = "nearest") -> None:
        super().__init__()
        self.depth = depth
        n_hru = max(depth - 2, 0)
        self.up = nn.Sequential(Residual(channels, channels),
                                *[HourglassResidual(channels, channels, upsample) for _ in range(n_hru)])
        self.pool = nn.MaxPool2d(2, 2)
        self.low1 = Residual(channels, channels)
        self.low2: nn.Module = Hourglass(depth - 1, channels, upsample) if depth > 1 else Residual(channels, channels)
        self.low3 = Residual(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_levels(x)[0]

    def forward_levels(self, x: Tensor) -> list[Tensor]:
        """Outputs of this level and every deeper one, finest first (for multi-resolution attention)."""
        up = self.up(x)
        low = self.low1(self.pool(x))
        if isinstance(self.low2, Hourglass):
            deeper = self.low2.forward_levels(low)
            low = deeper[0]
        else:
            deeper = []
            low = self.low2(low)
        out = up + F.interpolate(self.low3(low), scale_factor=2.0, mode="nearest")
        return [out, *deeper]


class GatedHead(nn.Conv2d):
    """The 1x1 heatmap head (a plain ``Conv2d`` in the state dict); ``gate=q`` gives ``head(x * q)`` as ``q * (W x) + b``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, 1)

    def forward(self, x: Tensor, gate: Tensor | None = None) -> Tensor:  # type: ignore[override]
        if gate is None:
            return super().forward(x)
        return F.conv2d(x, self.weight) * gate + self.bias.view(1, -1, 1, 1)


class Stack(nn.Module):
    """Hourglass -> lin -> lin -> holistic attention -> heatmap head (1x1 or part attention)."""

    def __init__(self, cfg: MCAConfig, width: int, part_attention: bool, merge: bool) -> None:
        super().__init__()
        c, k, L, it = cfg.channels, cfg.num_maps, cfg.attention_kernel, cfg.crf_iterations
        self.hourglass = Hourglass(cfg.hourglass_depth, c, cfg.hru_upsample)
        self.lin1 = Lin(c, width)
        self.lin2 = Lin(width, width)
        self.multi_res = cfg.multi_resolution_attention
        self.attention: nn.Module
        if self.multi_res:
            self.attention = MultiResolutionAttention(width, c, min(2, cfg.hourglass_depth - 1), L, it)
        else:
            self.attention = AttentionIter(width, L, it)
        self.attention2 = AttentionIter(width, L, it) if cfg.holistic_maps == 2 and not part_attention else None
        self.head: nn.Module = PartAttention(width, k, L, it) if part_attention else GatedHead(width, k)
        self.part_attention = part_attention
        # Set by the ONNX export (deploy graph): a 1x1 head on x * q computed as q * head(x) (see forward).
        self.fused_head = False
        if merge:
            self.merge_heatmaps: nn.Module | None = nn.Conv2d(k, c, 1)
            self.merge_features: nn.Module | None = Lin(c, c)
        else:
            self.merge_heatmaps = self.merge_features = None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
        """Returns (heatmaps, next stack input or None, holistic map, part maps or None)."""
        if self.multi_res:
            levels = self.hourglass.forward_levels(x)
            h, extra = levels[0], levels[1:1 + len(self.attention.extra)]
        else:
            h, extra = self.hourglass(x), []
        ll1 = self.lin1(h)
        ll2 = self.lin2(ll1)
        parts = None
        fusable = isinstance(self.head, GatedHead) and not (self.multi_res or self.attention2 is not None)
        if self.fused_head and fusable:
            # A 1x1 head is linear over channels: head(x * q) = q * (W x) + b for a one-channel map q,
            # so the product runs on the K heatmap channels instead of the C feature channels.
            # (Called through the modules so exported node names keep their module paths; the unused
            # x * q the attention module also returns is dropped by the exporter.)
            _, q = self.attention(ll2)
            out = self.head(ll2, gate=q)
        else:
            if self.multi_res:
                att, q = self.attention(ll2, extra)
            else:
                att, q = self.attention(ll2)
            if self.attention2 is not None:
                att2, q2 = self.attention2(ll2)
                att, q = att + att2, (q + q2) / 2
            if self.part_attention:
                out, parts = self.head(att)
            else:
                out = self.head(att)
        nxt = None
        if self.merge_heatmaps is not None and self.merge_features is not None:
            nxt = x + self.merge_heatmaps(out) + self.merge_features(ll1)
        return out, nxt, q, parts


@dataclass
class MCAOutput:
    """Every stack's heatmaps (intermediate supervision) and attention maps.

    ``heatmaps`` and ``parts`` hold the joints only; with ``cfg.background_map`` each stack's
    background map (and its part attention map) is in ``background`` (else it holds ``None``).
    """

    heatmaps: list[Tensor]
    holistic: list[Tensor]
    parts: list[Tensor | None]
    background: list[Tensor | None] = dataclasses.field(default_factory=list)


class MCANet(nn.Module):
    """Multi-Context Attention network (Chu et al., CVPR 2017).

    Input: RGB in [0, 1] shifted by -0.5, shape (N, 3, S, S).  ``forward`` returns the
    list of every stack's heatmaps (N, K, S/4, S/4); the last is the prediction.
    ``forward_all`` also returns the holistic and part attention maps.
    """

    def __init__(self, cfg: MCAConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem = Stem(cfg.channels, cfg.stem_stride, cfg.stem_channels)
        n = cfg.num_stacks
        self.stacks = nn.ModuleList(
            Stack(cfg, width=cfg.last_stack_channels if i == n - 1 else cfg.channels,
                  part_attention=i >= cfg.part_attention_from, merge=i < n - 1)
            for i in range(n)
        )
        # Set by training with cfg.background_map: ``forward`` then returns the background map too (last channel).
        self.return_background = False

    def forward_all(self, x: Tensor) -> MCAOutput:
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != 3):
            raise ValueError(f"expected input of shape (N, 3, H, W), got {tuple(x.shape)}")
        feats = self.stem(x)
        out = MCAOutput([], [], [])
        k = self.cfg.num_joints
        for stack in self.stacks:
            hm, nxt, q, parts = stack(feats)
            if nxt is not None:  # the last stack has no merge
                feats = nxt
            if self.cfg.background_map:  # the background map only feeds the next stack's merge (and the loss)
                out.background.append(hm[:, k:])
                hm = hm[:, :k]
                parts = parts[:, :k] if parts is not None else None
            else:
                out.background.append(None)
            out.heatmaps.append(hm)
            out.holistic.append(q)
            out.parts.append(parts)
        return out

    def forward(self, x: Tensor) -> list[Tensor]:
        out = self.forward_all(x)
        if self.return_background and self.cfg.background_map:
            return [torch.cat([h, b], 1) for h, b in zip(out.heatmaps, out.background)]  # type: ignore[list-item]
        return out.heatmaps
