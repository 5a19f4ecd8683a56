"""Model configurations and the named registry (torch-free).

Configs are plain frozen dataclasses so that export metadata, the realtime
pipeline and ``python -m mca.summary --list`` can read them without PyTorch.
``mca.create_model`` (in :mod:`mca.registry`) turns a config into a module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Literal

from mca.joints import get_joint_set

__all__ = ["MCAConfig", "register_config", "list_models", "get_config"]


@dataclass(frozen=True)
class MCAConfig:
    """Everything that decides the network graph.

    Defaults are the authors' released graph (``hg-attention.lua`` with
    ``-nStack 8 -LRNKer 11``); the registry's lighter variants override a few.
    """

    name: str = "custom"
    num_stacks: int = 8
    channels: int = 256
    last_stack_channels: int = 512
    joint_set: str = "mpii16"
    input_size: int = 256
    stem_stride: Literal[1, 2] = 1
    # Width of the stem's middle residuals (128 in the release; narrower for tiny models).
    stem_channels: int = 128
    hourglass_depth: int = 4
    attention_kernel: int = 11
    crf_iterations: int = 3
    # Stacks with index >= this (0-based) use part attention instead of a 1x1 head.
    part_attention_from: int = 4
    hru_upsample: Literal["nearest", "deconv"] = "nearest"
    # The Lua code's -trainBg variant: one more output map, the background (target: the maximum of the joint
    # maps), predicted by every head and fed back through the inter-stack merge like the joint maps.  Only the
    # joint maps come out of ``forward`` (the released test script keeps the first 16 too).
    background_map: bool = False
    # Paper ideas absent from the released code, off by default.
    multi_resolution_attention: bool = False
    holistic_maps: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        get_joint_set(self.joint_set)  # raises with the valid names
        checks = [
            (self.num_stacks >= 1, "num_stacks must be >= 1"),
            (self.channels >= 8 and self.channels % 2 == 0, "channels must be even and >= 8"),
            (self.last_stack_channels % 2 == 0, "last_stack_channels must be even"),
            (self.stem_stride in (1, 2), "stem_stride must be 1 or 2"),
            (self.stem_channels >= 8 and self.stem_channels % 2 == 0, "stem_channels must be even and >= 8"),
            (self.hourglass_depth >= 1, "hourglass_depth must be >= 1"),
            (self.attention_kernel >= 1 and self.attention_kernel % 2 == 1,
             "attention_kernel must be odd and >= 1"),
            (self.crf_iterations >= 1, "crf_iterations must be >= 1"),
            (0 <= self.part_attention_from <= self.num_stacks,
             "part_attention_from must be in [0, num_stacks]"),
            (self.hru_upsample in ("nearest", "deconv"), "hru_upsample must be nearest or deconv"),
            (self.holistic_maps in (1, 2), "holistic_maps must be 1 or 2"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"config {self.name!r}: {msg}")
        hm = self.heatmap_size
        if self.input_size % 4 or hm % (2 ** self.hourglass_depth):
            raise ValueError(
                f"config {self.name!r}: input {self.input_size} gives a {hm}x{hm} heatmap, "
                f"which a depth-{self.hourglass_depth} hourglass cannot halve evenly"
            )

    @property
    def num_joints(self) -> int:
        return get_joint_set(self.joint_set).num_joints

    @property
    def num_maps(self) -> int:
        """Maps every head predicts: the joints, plus the background map of the -trainBg variant."""
        return self.num_joints + int(self.background_map)

    @property
    def heatmap_size(self) -> int:
        """Heatmap side: the stem always reduces the input by 4."""
        return self.input_size // 4

    def replace(self, **overrides: object) -> "MCAConfig":
        valid = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(overrides) - valid)
        if bad:
            raise TypeError(f"unknown config field(s) {bad}; valid: {', '.join(sorted(valid))}")
        return dataclasses.replace(self, **overrides)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


_REGISTRY: dict[str, Callable[[], MCAConfig]] = {}


def register_config(fn: Callable[[], MCAConfig]) -> Callable[[], MCAConfig]:
    """Register a named config function (its name is the model name)."""
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"config {fn.__name__!r} registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names of every registered config, in registration order."""
    return list(_REGISTRY)


def get_config(name: str, **overrides: object) -> MCAConfig:
    """The named config, with field overrides; unknown names list the valid ones."""
    try:
        fn = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; valid: {', '.join(_REGISTRY)}") from None
    cfg = fn()
    return cfg.replace(**overrides) if overrides else cfg


@register_config
def mca_paper() -> MCAConfig:
    return MCAConfig(
        name="mca_paper",
        description="The authors' released graph: 8 stacks, 256 ch, stride-1 stem, L=11, 256x256.",
    )


@register_config
def mca_4s() -> MCAConfig:
    return MCAConfig(
        name="mca_4s", num_stacks=4, channels=256, last_stack_channels=256, stem_stride=2,
        part_attention_from=2,
        description="4 stacks at full width, stride-2 stem: desktop GPU real time.",
    )


@register_config
def mca_small() -> MCAConfig:
    return MCAConfig(
        name="mca_small", num_stacks=2, channels=128, last_stack_channels=128, stem_stride=2,
        input_size=192, attention_kernel=7, part_attention_from=1,
        description="2 stacks, 128 ch, 192x192: Jetson real time.",
    )


@register_config
def mca_tiny() -> MCAConfig:
    return MCAConfig(
        name="mca_tiny", num_stacks=2, channels=64, last_stack_channels=64, stem_stride=2,
        input_size=128, stem_channels=64, attention_kernel=5, part_attention_from=1,
        description="2 stacks, 64 ch, 128x128: CPU real time (the bundled demo model).",
    )


@register_config
def mca_tiny_coco() -> MCAConfig:
    return MCAConfig(
        name="mca_tiny_coco", num_stacks=2, channels=64, last_stack_channels=64, stem_stride=2,
        input_size=128, stem_channels=64, attention_kernel=5, part_attention_from=1, joint_set="coco17",
        description="mca_tiny with the 17 COCO keypoints.",
    )
