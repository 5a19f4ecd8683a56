"""Training on several data sources at once: a weighted, deterministic mix (imports torch lazily).

Synthetic people, rendered mesh people and teacher-labelled real crops all yield the same item keys
(``crop``, ``target``, ``weight``, ...) through :func:`mca.data.augment.make_sample`; a mix draws each
item's source from fixed weights, seeded by the item index, so a run is reproducible and can resume.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["MixedDataset", "collate"]


class MixedDataset:
    """Item ``i``: source ``k`` drawn with probability ``weights[k]`` (seeded by ``i``), that source's item
    ``i % len(source)``.  Sources must share item keys and crop/heatmap sizes."""

    def __init__(self, sources: Sequence[Any], weights: Sequence[float], length: int, seed: int = 0,
                 names: Sequence[str] | None = None) -> None:
        if not sources or len(sources) != len(weights):
            raise ValueError("need one weight per source and at least one source")
        w = np.asarray(weights, np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"source weights must be >= 0 with a positive sum, got {list(weights)}")
        self.sources, self.p = list(sources), w / w.sum()
        self.length, self.seed = int(length), int(seed)
        self.names = list(names) if names is not None else [f"source{k}" for k in range(len(sources))]

    def __len__(self) -> int:
        return self.length

    def source_of(self, i: int) -> int:
        """Which source item ``i`` comes from."""
        return int(np.random.default_rng([self.seed, int(i), 41]).choice(len(self.sources), p=self.p))

    def __getitem__(self, i: int) -> dict[str, Any]:
        k = self.source_of(i)
        src = self.sources[k]
        return src[int(i) % len(src)]


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the keys every training step uses (sources may carry different extra keys)."""
    import torch

    return {k: torch.stack([it[k] for it in items]) for k in ("crop", "target", "weight")}
