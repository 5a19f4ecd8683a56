"""PyTorch datasets of Anny people with the same item dict as :class:`mca.data.datasets.SyntheticPoseDataset`.

* :class:`AnnyPoseDataset` renders each crop on the fly (deterministic per ``(seed, i)``; the renderer is built
  lazily in each worker process).
* :class:`AnnyCachedPoseDataset` reads a cache written by ``python -m mca.data.anny cache`` (pictures + both
  joint sets), and augments with a new draw every ``epoch``.

Both go through :func:`mca.data.augment.make_sample`, the project's one augmentation path.  ``label_occluded``
also trains on joints hidden behind something but inside the picture (their position is known exactly here);
by default only visible joints carry weight, as in the other synthetic set.  Training only (imports torch).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from mca.data.augment import AugmentConfig, make_sample
from mca.joints import get_joint_set

__all__ = ["AnnyPoseDataset", "AnnyCachedPoseDataset", "load_cache_labels", "cached_train_val"]


def _item(s, joints: np.ndarray, visible: np.ndarray) -> dict[str, torch.Tensor]:  # noqa: ANN001 - Sample
    return {"crop": torch.from_numpy(s.crop), "target": torch.from_numpy(s.target),
            "weight": torch.from_numpy(s.weight), "joints_hm": torch.from_numpy(s.joints_hm),
            "frame_to_input": torch.from_numpy(s.frame_to_input.astype(np.float32)),
            "gt_joints": torch.from_numpy(np.asarray(joints, np.float32)),
            "gt_visible": torch.from_numpy(np.asarray(visible, bool))}


class AnnyPoseDataset(Dataset):
    """Anny person crops rendered on the fly; item ``i`` is deterministic (given ``seed`` and ``train``)."""

    def __init__(self, joint_set: str, input_size: int, heatmap_size: int, length: int, seed: int = 0,
                 train: bool = True, canvas: int = 256, augment: AugmentConfig = AugmentConfig(),
                 label_occluded: bool = False, **renderer_kwargs: object) -> None:
        self.js = get_joint_set(joint_set)
        self.input_size, self.heatmap_size, self.length = input_size, heatmap_size, length
        self.seed, self.train, self.augment, self.canvas = seed, train, augment, canvas
        self.label_occluded, self.renderer_kwargs = label_occluded, renderer_kwargs
        self._renderer = None

    @property
    def renderer(self):  # noqa: ANN201 - AnnyCropRenderer
        if self._renderer is None:  # per process: the body model is not shared across workers
            from mca.data.anny.generate import AnnyCropRenderer

            self._renderer = AnnyCropRenderer(self.canvas, self.js.name, self.seed, **self.renderer_kwargs)
        return self._renderer

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_renderer": None}

    def __len__(self) -> int:
        return self.length

    def sample(self, i: int):  # noqa: ANN201 - (Sample, AnnyPerson)
        scene = self.renderer.render(i)
        k = 0
        while not scene.people:  # the person was entirely hidden: take another, deterministically
            k += 1
            scene = self.renderer.render(i + k * 1_000_003)
        p = scene.people[0]
        lab = p.labels[self.js.name]
        use = lab["in_image"] if self.label_occluded else lab["visible"]
        rng = np.random.default_rng([self.seed, i, 13]) if self.train else None
        return make_sample(scene.image, lab["joints"], use, p.box, self.input_size, self.heatmap_size,
                           self.js.flip_index, rng, self.augment), p

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, p = self.sample(i)
        return _item(s, p.joints, p.visible)


def load_cache_labels(root: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """A pose cache's manifest and its labels, concatenated over the finished chunks (in index order)."""
    root = Path(root)
    mpath = root / "manifest.json"
    if not mpath.is_file():
        raise FileNotFoundError(f"{root} is not an Anny cache (no manifest.json); write one with "
                                f"python -m mca.data.anny cache --out {root} --num N")
    manifest = json.loads(mpath.read_text())
    parts: dict[str, list[np.ndarray]] = {}
    for c in sorted(manifest.get("chunks_done", [])):
        with np.load(root / "meta" / f"chunk_{c:05d}.npz", allow_pickle=False) as z:
            for k in z.files:
                parts.setdefault(k, []).append(z[k])
    labels = {k: np.concatenate(v) for k, v in parts.items()}
    return manifest, labels


class AnnyCachedPoseDataset(Dataset):
    """Crops from a pose cache (``python -m mca.data.anny cache``); set ``epoch`` for new augmentation."""

    def __init__(self, root: str | Path, joint_set: str, input_size: int, heatmap_size: int, seed: int = 0,
                 train: bool = True, augment: AugmentConfig = AugmentConfig(), label_occluded: bool = False,
                 indices: np.ndarray | None = None, cache: tuple[dict, dict] | None = None) -> None:
        self.root = Path(root)
        self.js = get_joint_set(joint_set)
        # ``cache``: (manifest, labels) already read, so ``indices`` refer to the same rows while chunks still land
        manifest, labels = cache if cache is not None else load_cache_labels(self.root)
        if manifest.get("kind") != "anny-pose":
            raise ValueError(f"{root}: not a pose cache (kind {manifest.get('kind')!r})")
        self.manifest = manifest
        key = self.js.name
        self.index = labels["index"]
        valid = labels["valid"]
        self.joints, self.visible = labels[f"{key}_joints"], labels[f"{key}_visible"]
        self.in_image, self.box = labels[f"{key}_in_image"], labels["box"]
        order = np.nonzero(valid)[0]
        self.rows = order if indices is None else order[np.asarray(indices)]
        self.input_size, self.heatmap_size = input_size, heatmap_size
        self.seed, self.train, self.augment, self.label_occluded = seed, train, augment, label_occluded
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.rows)

    def image(self, r: int) -> np.ndarray:
        path = self.root / "images" / f"{int(self.index[r]):07d}.jpg"
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"missing or unreadable cache image {path}")
        return img

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r = int(self.rows[i])
        use = self.in_image[r] if self.label_occluded else self.visible[r]
        rng = np.random.default_rng([self.seed, int(self.index[r]), self.epoch, 17]) if self.train else None
        s = make_sample(self.image(r), self.joints[r], use, self.box[r], self.input_size, self.heatmap_size,
                        self.js.flip_index, rng, self.augment)
        return _item(s, self.joints[r], self.visible[r])


def cached_train_val(root: str | Path, joint_set: str, input_size: int, heatmap_size: int, val_size: int = 512,
                     seed: int = 0, augment: AugmentConfig = AugmentConfig()
                     ) -> tuple[AnnyCachedPoseDataset, AnnyCachedPoseDataset]:
    """Training and validation sets of one pose cache (``python -m mca.train --data anny``).

    Validation holds every k-th item of the cache (k from the manifest's full size and ``val_size``), so
    the split is the same while the cache is still growing and a validation crop is never trained on."""
    manifest, labels = cache = load_cache_labels(root)
    if manifest.get("kind") != "anny-pose":
        raise ValueError(f"{root}: not a pose cache (kind {manifest.get('kind')!r})")
    index = labels.get("index", np.zeros(0, np.int64))[np.asarray(labels.get("valid", np.zeros(0, bool)), bool)]
    every = max(2, int(round(int(manifest["num"]) / max(1, val_size))))
    is_val = index % every == every - 1
    if is_val.all() or not is_val.any():
        raise ValueError(f"{root}: too few finished items ({len(index)}) for a training/validation split")
    train = AnnyCachedPoseDataset(root, joint_set, input_size, heatmap_size, seed, True, augment,
                                  indices=np.nonzero(~is_val)[0], cache=cache)
    val = AnnyCachedPoseDataset(root, joint_set, input_size, heatmap_size, seed, False, augment,
                                indices=np.nonzero(is_val)[0], cache=cache)
    return train, val
