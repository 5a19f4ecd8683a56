"""The one augmentation path (as released): scale, rotation, flip with joint swap, colour.

Every data set (synthetic, MPII, COCO, LSP) goes through :func:`make_sample`, which
uses the shared geometry of :mod:`mca.heatmaps`, so training crops are exactly the
crops the realtime pipeline makes.  NumPy/OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mca import heatmaps as H

__all__ = ["AugmentConfig", "Sample", "make_sample"]


@dataclass(frozen=True)
class AugmentConfig:
    """Released settings: scale clamp(1+0.25N, .75, 1.25); rotation clamp(30N, -60, 60) w.p. 0.4; flip 0.5;
    colour channels x U(0.8, 1.2)."""

    scale_sigma: float = 0.25
    scale_range: tuple[float, float] = (0.75, 1.25)
    rot_sigma: float = 30.0
    rot_limit: float = 60.0
    rot_prob: float = 0.4
    flip_prob: float = 0.5
    color_range: tuple[float, float] = (0.8, 1.2)
    padding: float = H.DEFAULT_PADDING
    sigma: float = H.DEFAULT_SIGMA


@dataclass
class Sample:
    crop: np.ndarray  # (S, S, 3) uint8 BGR, as the runtime feeds the exported model
    target: np.ndarray  # (K, h, w) float32
    weight: np.ndarray  # (K,) float32, 1 for labelled visible joints
    joints_hm: np.ndarray  # (K, 2) joints in heatmap pixels
    frame_to_input: np.ndarray  # 2x3


def make_sample(image: np.ndarray, joints: np.ndarray, visible: np.ndarray, box_xyxy: np.ndarray,
                input_size: int, heatmap_size: int, flip_index: tuple[int, ...],
                rng: np.random.Generator | None = None, cfg: AugmentConfig = AugmentConfig()) -> Sample:
    """Crop one person (augmented when ``rng`` is given) and make its heatmap target."""
    center, size = H.box_to_center_size(box_xyxy, 1.0, cfg.padding)
    rot, flip = 0.0, False
    joints = np.asarray(joints, np.float64)
    visible = np.asarray(visible, bool)
    if rng is not None:
        size = size * float(np.clip(1 + cfg.scale_sigma * rng.standard_normal(), *cfg.scale_range))
        if rng.random() < cfg.rot_prob:
            rot = float(np.clip(cfg.rot_sigma * rng.standard_normal(), -cfg.rot_limit, cfg.rot_limit))
        flip = bool(rng.random() < cfg.flip_prob)
    m = H.crop_matrix(center, size, (input_size, input_size), rot, flip)
    crop = cv2.warpAffine(image, m, (input_size, input_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    if crop.ndim == 2:
        crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
    pts = H.apply_affine(m, joints)
    if flip:
        idx = np.asarray(flip_index)
        pts, visible = pts[idx], visible[idx]
    hm_pts = H.apply_affine(H.scale_matrix((input_size, input_size), (heatmap_size, heatmap_size)), pts)
    inside = (hm_pts >= -0.5).all(1) & (hm_pts <= heatmap_size - 0.5).all(1)
    weight = (visible & inside).astype(np.float32)
    target = H.encode_heatmaps(hm_pts, weight > 0, heatmap_size, sigma=cfg.sigma)
    if rng is not None:
        gains = rng.uniform(*cfg.color_range, size=3)
        crop = np.clip(crop.astype(np.float32) * gains, 0, 255).astype(np.uint8)
    return Sample(crop, target, weight, hm_pts.astype(np.float32), m)
