"""What the tracker tells people apart by, besides boxes and keypoints: motion and clothes.

- :class:`BoxKalman`: a constant-velocity Kalman filter on a person's box, which
  carries a track through frames where the person is not found.
- :func:`person_colours` / :func:`colour_similarity`: colour histograms of a
  person's upper and lower body read along their skeleton, to tell apart people who
  cross and to re-find one after an occlusion.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from realtime.types import Poses

log = logging.getLogger(__name__)

__all__ = ["BoxKalman", "cxcywh", "person_colours", "colour_similarity"]


def person_colours(image: np.ndarray, poses: Poses, min_score: float = 0.2, steps: int = 8,
                   hue_bins: int = 12) -> np.ndarray:
    """(N, 2, 2 * hue_bins + 4) colour histograms of each person's upper and lower body.

    Pixels are read on the rays from the pose's centre to each confident joint (the
    body and limbs, little background, whatever the joint set); the upper part is the
    joints above the centre.  Bins: hue x (medium, high) saturation for coloured pixels,
    four brightness bins for grey ones.  Each part is normalised; a part or a person
    without joints is all zeros.  Why: position and pose cannot tell apart two people
    who cross or re-find one after an occlusion; their clothes can.
    """
    n, nb = len(poses), 2 * hue_bins + 4
    out = np.zeros((n, 2, nb), np.float32)
    if not n:
        return out
    h, w = image.shape[:2]
    t = np.linspace(0.15, 1.0, steps)
    for i in range(n):
        ok = poses.scores[i] >= min_score
        if ok.sum() < 3:
            continue
        kp = poses.keypoints[i][ok].astype(np.float64)
        c = kp.mean(0)
        pts = (c + t[None, :, None] * (kp[:, None] - c)).reshape(-1, 2)
        upper = np.repeat(kp[:, 1] < c[1], steps)
        x = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
        y = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
        hsv = cv2.cvtColor(np.ascontiguousarray(image[y, x][None]), cv2.COLOR_BGR2HSV)[0].astype(np.int64)
        hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
        coloured = (sat >= 50) & (val >= 40)
        bins = np.where(coloured, (hue * hue_bins // 180) * 2 + (sat >= 150), 2 * hue_bins + np.minimum(val // 64, 3))
        for part, m in ((0, upper), (1, ~upper)):
            if m.any():
                hist = np.bincount(bins[m], minlength=nb).astype(np.float32)
                out[i, part] = hist / hist.sum()
    return out


def colour_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Na, Nb) in [0, 1]: the Bhattacharyya coefficient of :func:`person_colours`, averaged over the
    body parts both have (0.5, "no evidence", when they share none)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    bc = np.sqrt(a[:, None] * b[None]).sum(-1)  # (Na, Nb, parts)
    both = (a.sum(-1)[:, None] > 0) & (b.sum(-1)[None] > 0)
    cnt = both.sum(-1)
    return np.where(cnt > 0, (bc * both).sum(-1) / np.maximum(cnt, 1), 0.5)


class BoxKalman:
    """Constant-velocity Kalman filter on a box's centre and size (cx, cy, w, h and their rates).

    Noise scales with the box height (as in SORT/DeepSORT: a far, small person moves fewer
    pixels).  ``predict(lost)`` once a frame, ``update(box)`` when the person is seen.  A
    lost person is carried along their last motion, their size held: one noisy box before
    an occlusion otherwise shrinks or grows the prediction by pixels a frame.
    """

    def __init__(self, box: np.ndarray, pos_noise: float = 1 / 20, vel_noise: float = 1 / 160) -> None:
        self.pos_noise, self.vel_noise = pos_noise, vel_noise
        z = cxcywh(box)
        self.x = np.concatenate([z, np.zeros(4)])
        h = z[3]
        self.P = np.diag(np.square(np.r_[[2 * pos_noise * h] * 4, [10 * vel_noise * h] * 4]))

    def predict(self, lost: bool = False) -> None:
        """Advance one frame (``lost``: the person was not seen last frame; keep the size)."""
        if lost:
            self.x[6:] = 0.0
        h = max(self.x[3], 1.0)
        self.x[:4] += self.x[4:]
        self.x[2:4] = np.maximum(self.x[2:4], 1.0)
        self.P = _F @ self.P @ _F.T + np.diag(np.square(np.r_[[self.pos_noise * h] * 4, [self.vel_noise * h] * 4]))

    def update(self, box: np.ndarray) -> None:
        """Correct with an observed box (xyxy)."""
        z = cxcywh(box)
        s = self.P[:4, :4] + np.diag(np.square([self.pos_noise * max(self.x[3], 1.0)] * 4))
        k = np.linalg.solve(s, self.P[:4]).T  # P H^T S^-1 (S symmetric)
        self.x = self.x + k @ (z - self.x[:4])
        self.x[2:4] = np.maximum(self.x[2:4], 1.0)
        self.P = self.P - k @ self.P[:4]

    @property
    def box(self) -> np.ndarray:
        """The current estimate as xyxy."""
        cx, cy, w, h = self.x[:4]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


_F = np.eye(8)
_F[:4, 4:] = np.eye(4)


def cxcywh(box: np.ndarray) -> np.ndarray:
    """(cx, cy, w, h) of an xyxy box, sizes at least 1."""
    x0, y0, x1, y1 = np.asarray(box, np.float64)
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, 1.0), max(y1 - y0, 1.0)])
