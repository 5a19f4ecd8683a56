"""Stable track ids across frames, One Euro smoothing, and boxes from keypoints.

- :class:`Tracker` matches this frame's people to live tracks greedily by box IoU
  (highest first), so ids stay put while people move smoothly and cross.
- :class:`OneEuroFilter` (Casiez et al., CHI 2012): an adaptive low-pass filter whose
  cut-off rises with speed, removing jitter at rest without lag in motion.
- :func:`boxes_from_keypoints` lets the pipeline follow people between detector runs
  (``--detect-every N``) from their previous keypoints, as top-down systems do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from realtime.types import Detections, Poses

__all__ = ["iou_matrix", "Tracker", "OneEuroFilter", "Smoother", "boxes_from_keypoints"]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: (len(a), len(b))."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = (x1 - x0).clip(0) * (y1 - y0).clip(0)
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None, :]
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


@dataclass
class _Track:
    id: int
    box: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    missed: int = 0


class Tracker:
    """``update(poses) -> poses`` with ``track_ids`` filled in."""

    def __init__(self, iou_threshold: float = 0.25, max_missed: int = 15) -> None:
        self.iou_threshold, self.max_missed = iou_threshold, max_missed
        self.tracks: list[_Track] = []
        self._next = 0

    def update(self, poses: Poses) -> Poses:
        boxes = np.asarray(poses.boxes, np.float64)
        ids = np.full(len(boxes), -1, np.int64)
        if self.tracks and len(boxes):
            predicted = np.stack([t.box + t.velocity for t in self.tracks])
            iou = iou_matrix(predicted, boxes)
            pairs = sorted(((iou[i, j], i, j) for i in range(iou.shape[0]) for j in range(iou.shape[1])
                            if iou[i, j] >= self.iou_threshold), reverse=True)
            used_t, used_d = set(), set()
            for _v, i, j in pairs:
                if i in used_t or j in used_d:
                    continue
                used_t.add(i)
                used_d.add(j)
                t = self.tracks[i]
                t.velocity = 0.5 * t.velocity + 0.5 * (boxes[j] - t.box)
                t.box, t.missed = boxes[j].copy(), 0
                ids[j] = t.id
        matched = set(ids[ids >= 0].tolist())
        for t in self.tracks:
            if t.id not in matched:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for j in np.nonzero(ids < 0)[0]:
            t = _Track(self._next, boxes[j].copy())
            self._next += 1
            self.tracks.append(t)
            ids[j] = t.id
        poses.track_ids = ids
        return poses


class OneEuroFilter:
    """Vectorised One Euro filter over an array of values (e.g. (K, 2) keypoints)."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    @staticmethod
    def _alpha(dt: float, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None or self.t is None or t <= self.t:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self.t
        dx = (x - self.x) / dt
        a_d = self._alpha(dt, self.d_cutoff)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        a = self._alpha(dt, cutoff)
        self.x = a * x + (1 - a) * self.x
        self.t = t
        return self.x.copy()


class Smoother:
    """``smooth(poses, t) -> poses``: a One Euro filter per track over its keypoints.

    Cut-offs are in frame pixels per second; ``beta`` scales with the person's size so
    large and small people are treated alike.
    """

    def __init__(self, min_cutoff: float = 1.5, beta: float = 0.3, d_cutoff: float = 1.0) -> None:
        self.params = (min_cutoff, beta, d_cutoff)
        self.filters: dict[int, OneEuroFilter] = {}

    def smooth(self, poses: Poses, t: float) -> Poses:
        live = set()
        for i, tid in enumerate(poses.track_ids.tolist()):
            if tid < 0:
                continue
            live.add(tid)
            f = self.filters.get(tid)
            if f is None:
                b = poses.boxes[i]
                size = max(1.0, float(max(b[2] - b[0], b[3] - b[1])))
                mc, beta, dc = self.params
                f = self.filters[tid] = OneEuroFilter(mc, beta / size * 100.0, dc)
            poses.keypoints[i] = f(poses.keypoints[i], t).astype(np.float32)
        for tid in list(self.filters):
            if tid not in live:
                del self.filters[tid]
        return poses


def boxes_from_keypoints(poses: Poses, frame_wh: tuple[int, int], min_score: float = 0.2,
                         margin: float = 0.12) -> Detections:
    """Boxes around each person's confident keypoints (for frames without detection)."""
    w, h = frame_wh
    boxes, scores = [], []
    for i in range(len(poses)):
        ok = poses.scores[i] >= min_score
        if ok.sum() < 3:
            continue
        pts = poses.keypoints[i][ok]
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        m = margin * max(x1 - x0, y1 - y0)
        box = np.array([max(x0 - m, 0), max(y0 - m, 0), min(x1 + m, w - 1), min(y1 + m, h - 1)], np.float32)
        if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
            boxes.append(box)
            scores.append(float(poses.box_scores[i]))
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32))
