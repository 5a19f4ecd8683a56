"""Checkpoints: plain dicts of tensors and Python types, loaded with ``weights_only=True``.

A checkpoint names its config (and any overrides) so it rebuilds its own model;
a wrong or corrupt file is a :class:`CheckpointError` with one clear line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from mca.model import MCANet

log = logging.getLogger(__name__)

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "FORMAT"]

FORMAT = "mca-pose-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, corrupt, not ours, mismatched)."""


def save_checkpoint(path: str | os.PathLike, model: "MCANet", *, epoch: int = 0, step: int = 0,
                    metrics: dict[str, float] | None = None, optimizer: "torch.optim.Optimizer | None" = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write atomically (temp file + rename), so an interrupted save never leaves a broken file."""
    import torch

    cfg = model.cfg
    data: dict[str, Any] = {
        "format": FORMAT, "config": cfg.to_dict(), "config_name": cfg.name, "joint_set": cfg.joint_set,
        "input_size": cfg.input_size, "heatmap_size": cfg.heatmap_size, "epoch": int(epoch), "step": int(step),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if optimizer is not None:
        data["optimizer"] = optimizer.state_dict()
    if extra:
        data["extra"] = extra
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint dict, safely unpickled (tensors and plain types only)."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for corrupt/unsafe files
        raise CheckpointError(f"{p} is not a readable checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:160]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not an mca-pose checkpoint (no '{FORMAT}' marker); "
                              "for the authors' Torch7 model use python -m mca.convert_t7")
    return data


def load_checkpoint(path: str | os.PathLike, device: str = "cpu",
                    overrides: dict[str, Any] | None = None) -> tuple["MCANet", dict[str, Any]]:
    """Rebuild the checkpoint's model and load its weights; returns (model in eval mode, info).

    ``overrides`` replace config fields before the weights are loaded: fine-tuning at another
    ``input_size`` (a fully convolutional net has the same weights at any size) is allowed; a
    field that changes a weight's shape (``channels``, say) is a :class:`CheckpointError`.
    """
    from mca.config import MCAConfig
    from mca.model import MCANet

    data = read_checkpoint(path)
    try:
        cfg = MCAConfig(**data["config"])
        if overrides:
            cfg = cfg.replace(**overrides)
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: its config does not build a model ({e})") from None
    model = MCANet(cfg)
    try:
        model.load_state_dict(data["state_dict"], strict=True)
    except RuntimeError as e:
        if overrides:
            raise CheckpointError(f"{path}: {', '.join(sorted(overrides))} changes the weights' shapes; "
                                  "only fields such as input_size can be changed on a trained model") from None
        raise CheckpointError(f"{path}: weights do not match config {cfg.name}: {str(e).splitlines()[0][:200]}") from None
    info = {k: v for k, v in data.items() if k not in ("state_dict", "optimizer")}
    return model.to(device).eval(), info
