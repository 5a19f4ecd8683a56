"""Realistic synthetic people with the Anny parametric body model (training tools only; needs torch and the
optional ``anny`` package: ``pip install -e '.[synth]'``).  Never imported by ``realtime/`` or ``engines/``.

* :class:`AnnyCropRenderer` / :class:`AnnySceneRenderer` -- seeded person crops and full scenes (z-buffer
  rendering on the CPU in NumPy, shaded, dressed, over procedural backgrounds), labelled in MPII-16 and COCO-17
  with visibility from depth and body parts.
* :class:`AnnyPoseDataset` (on the fly) and :class:`AnnyCachedPoseDataset` (a generated cache): the item dict of
  :class:`mca.data.datasets.SyntheticPoseDataset`.
* ``python -m mca.data.anny {setup,cache,scenes,bench,fit,grid}``.

Attributes are imported lazily, so ``import mca.data.anny`` costs nothing until one is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["AnnyCropRenderer", "AnnySceneRenderer", "AnnyPoseDataset", "AnnyCachedPoseDataset", "anny_available",
           "write_cache"]

_WHERE = {"AnnyCropRenderer": "generate", "AnnySceneRenderer": "generate", "AnnyPoseDataset": "dataset",
          "AnnyCachedPoseDataset": "dataset", "anny_available": "body", "write_cache": "cache"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"mca.data.anny.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'mca.data.anny' has no attribute {name!r}")
