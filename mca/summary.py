"""``python -m mca.summary NAME``: parameters and multiply-accumulates of a config.

MACs are counted by hooks on every convolution (and deconvolution) during one
forward pass at the config's input size: output elements x (in/groups) x kernel
area; bias additions, BN, ReLU, pooling and the attention's elementwise ops are
not MACs and are not counted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass

from mca.config import get_config, list_models

log = logging.getLogger(__name__)

__all__ = ["ModelStats", "model_stats", "main"]


@dataclass(frozen=True)
class ModelStats:
    name: str
    params: int
    macs: int
    input_size: int
    heatmap_size: int
    num_stacks: int
    channels: int

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def mparams(self) -> float:
        return self.params / 1e6


def count_macs(model: "object", input_size: int, batch: int = 1) -> int:
    """MACs of all Conv2d / ConvTranspose2d layers in one forward pass."""
    import torch
    from torch import nn

    total = 0

    def hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            total += out.numel() * k
        elif isinstance(mod, nn.ConvTranspose2d):
            x = inp[0]
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.out_channels // mod.groups)
            total += x.numel() * k

    handles = [m.register_forward_hook(hook) for m in model.modules()  # type: ignore[attr-defined]
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            model.eval()  # type: ignore[attr-defined]
            model(torch.zeros(batch, 3, input_size, input_size))  # type: ignore[operator]
    finally:
        for h in handles:
            h.remove()
    return total // batch


def model_stats(name: str, **overrides: object) -> ModelStats:
    """Parameters and MACs of a registered config (builds it on the CPU)."""
    from mca.registry import create_model

    cfg = get_config(name, **overrides)
    model = create_model(name, **overrides)
    params = sum(p.numel() for p in model.parameters())
    return ModelStats(cfg.name, params, count_macs(model, cfg.input_size), cfg.input_size,
                      cfg.heatmap_size, cfg.num_stacks, cfg.channels)


def format_table(rows: list[ModelStats]) -> str:
    lines = ["| config | stacks | channels | input | heatmap | params (M) | GMACs |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r.name}` | {r.num_stacks} | {r.channels} | {r.input_size} | {r.heatmap_size} "
                     f"| {r.mparams:.2f} | {r.gmacs:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m mca.summary",
        description="Print parameters and multiply-accumulates (MACs, convolutions only) of "
                    "registered MCA configs at their input size.")
    p.add_argument("names", nargs="*", help=f"config names (default: all). Known: {', '.join(list_models())}")
    p.add_argument("--markdown", action="store_true", help="print a markdown table (as in the README)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = args.names or list_models()
    try:
        rows = [model_stats(n) for n in names]
    except KeyError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2
    if args.markdown:
        print(format_table(rows))
    else:
        for r in rows:
            print(f"{r.name:16s} params {r.params:>12,d} ({r.mparams:6.2f} M)  "
                  f"MACs {r.macs:>16,d} ({r.gmacs:6.2f} G)  input {r.input_size}x{r.input_size} "
                  f"-> heatmaps {r.heatmap_size}x{r.heatmap_size}, {r.num_stacks} stacks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
