"""``create_model(name, **overrides)``: the named configs turned into modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mca.config import get_config, list_models

if TYPE_CHECKING:
    from mca.model import MCANet

__all__ = ["create_model", "list_models"]


def create_model(name: str, **overrides: object) -> "MCANet":
    """Build a registered model; ``overrides`` replace config fields.

    >>> create_model("mca_tiny", num_stacks=1)  # doctest: +SKIP
    """
    from mca.model import MCANet  # torch imported only here

    return MCANet(get_config(name, **overrides))
