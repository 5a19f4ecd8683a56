"""PyTorch datasets over the shared augmentation path (training only; imports torch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from mca.data.augment import AugmentConfig, make_sample
from mca.joints import get_joint_set

__all__ = ["SyntheticPoseDataset", "to_network_input"]


def to_network_input(crops: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC BGR -> float NCHW RGB in [-0.5, 0.5] (the released normalisation, as in the exported graph)."""
    return crops.float().flip(-1).permute(0, 3, 1, 2) * (1.0 / 255.0) - 0.5


@dataclass
class _Spec:
    input_size: int
    heatmap_size: int


class SyntheticPoseDataset(Dataset):
    """Person crops from seeded synthetic scenes; item ``i`` is deterministic (given ``train``).

    Each item renders a small scene (1-3 people, some overlapping) and crops the
    person ``i`` picks, so crops contain other people and clutter as real ones do.
    """

    def __init__(self, joint_set: str, input_size: int, heatmap_size: int, length: int, seed: int = 0,
                 train: bool = True, scene_size: int = 384, augment: AugmentConfig = AugmentConfig(),
                 side_share: float = 0.0) -> None:
        from mca.data.synthetic import SceneRenderer

        self.js = get_joint_set(joint_set)
        self.spec = _Spec(input_size, heatmap_size)
        self.length, self.seed, self.train, self.augment = length, seed, train, augment
        self.renderer = SceneRenderer(joint_set, (scene_size, scene_size), seed=seed, min_people=1, max_people=3,
                                      min_height=0.35 * scene_size, max_height=1.1 * scene_size, side_share=side_share)

    def __len__(self) -> int:
        return self.length

    def sample(self, i: int):  # noqa: ANN201 - returns mca.data.augment.Sample
        scene = self.renderer.render(i)
        k = 0
        while not scene.people:  # every person of this scene fell outside the frame: take another, deterministically
            k += 1
            scene = self.renderer.render(i + k * 1_000_003)
        rng = np.random.default_rng([self.seed, i, 13])
        people = [p for p in scene.people if p.visible.sum() >= 4] or scene.people
        person = people[int(rng.integers(len(people)))]
        return make_sample(scene.image, person.joints, person.visible, person.box, self.spec.input_size,
                           self.spec.heatmap_size, self.js.flip_index, rng if self.train else None, self.augment), person

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, person = self.sample(i)
        return {"crop": torch.from_numpy(s.crop), "target": torch.from_numpy(s.target),
                "weight": torch.from_numpy(s.weight), "joints_hm": torch.from_numpy(s.joints_hm),
                "frame_to_input": torch.from_numpy(s.frame_to_input.astype(np.float32)),
                "gt_joints": torch.from_numpy(person.joints), "gt_visible": torch.from_numpy(person.visible)}
