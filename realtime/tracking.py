"""Stable track ids across frames, One Euro smoothing, and boxes from keypoints.

- :class:`Tracker` matches this frame's people to live tracks greedily (best pair
  first) by the larger of box IoU and keypoint similarity (an OKS-style score on
  the joints both poses are confident about), each predicted one step ahead with
  the track's velocity, so ids stay put while people move, cross, or change shape
  (arms raised, a box that jumps between detector and keypoint-follow frames).
- :class:`OneEuroFilter` (Casiez et al., CHI 2012): an adaptive low-pass filter whose
  cut-off rises with speed, removing jitter at rest without lag in motion.
- :func:`boxes_from_keypoints` lets the pipeline follow people between detector runs
  (``--detect-every N``) from their previous keypoints, as top-down systems do.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from realtime.types import Detections, Poses

log = logging.getLogger(__name__)

__all__ = ["iou_matrix", "keypoint_similarity", "Tracker", "OneEuroFilter", "Smoother", "boxes_from_keypoints"]


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


def keypoint_similarity(a: np.ndarray, a_ok: np.ndarray, b: np.ndarray, b_ok: np.ndarray,
                        scale: np.ndarray, kappa: float = 0.1, min_joints: int = 3) -> np.ndarray:
    """OKS-style similarity of poses ``a`` (Na, K, 2) and ``b`` (Nb, K, 2): (Na, Nb) in [0, 1].

    Mean over the joints confident in both of ``exp(-d^2 / (2 (kappa * scale)^2))``,
    ``scale`` (Na,) being each ``a`` person's size in pixels; pairs sharing fewer than
    ``min_joints`` confident joints score 0.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    d2 = ((a[:, None] - b[None]) ** 2).sum(-1)  # (Na, Nb, K)
    both = a_ok[:, None, :] & b_ok[None, :, :]
    s2 = (kappa * np.maximum(np.asarray(scale, np.float64), 1.0)) ** 2
    e = np.exp(-d2 / (2 * s2[:, None, None]))
    cnt = both.sum(-1)
    sim = (e * both).sum(-1) / np.maximum(cnt, 1)
    return np.where(cnt >= min_joints, sim, 0.0)


@dataclass
class _Track:
    id: int
    box: np.ndarray
    keypoints: np.ndarray | None = None
    keypoint_ok: np.ndarray | None = None
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    missed: int = 0

    def predicted(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Box and keypoints at the coming frame (constant velocity over the frames missed)."""
        steps = self.missed + 1
        box = self.box + steps * self.velocity
        if self.keypoints is None:
            return box, None
        shift = 0.5 * (self.velocity[:2] + self.velocity[2:])  # the box centre's motion
        return box, self.keypoints + steps * shift


class Tracker:
    """``update(poses) -> poses`` with ``track_ids`` filled in: stable ids across frames.

    A person is matched to the live track with the highest similarity, the larger of
    box IoU and keypoint similarity, if it reaches ``threshold``; unmatched people
    start new tracks; tracks unmatched for more than ``max_missed`` frames end.
    ``use_keypoints=False`` matches on boxes alone.
    """

    def __init__(self, iou_threshold: float = 0.25, max_missed: int = 15, use_keypoints: bool = True,
                 keypoint_threshold: float = 0.5, min_score: float = 0.2) -> None:
        self.iou_threshold, self.max_missed = iou_threshold, max_missed
        self.use_keypoints, self.keypoint_threshold, self.min_score = use_keypoints, keypoint_threshold, min_score
        self.tracks: list[_Track] = []
        self._next = 0

    def _similarity(self, poses: Poses, boxes: np.ndarray) -> np.ndarray:
        pred = [t.predicted() for t in self.tracks]
        iou = iou_matrix(np.stack([p[0] for p in pred]), boxes)
        # each cue must pass its own threshold; pairs that pass neither are marked -1 (never matched)
        sim = np.where(iou >= self.iou_threshold, iou, -1.0)
        if not self.use_keypoints or not len(boxes):
            return sim
        with_kp = [i for i, t in enumerate(self.tracks) if t.keypoints is not None]
        if not with_kp:
            return sim
        kp_a = np.stack([pred[i][1] for i in with_kp])
        ok_a = np.stack([self.tracks[i].keypoint_ok for i in with_kp])
        tb = np.stack([self.tracks[i].box for i in with_kp])
        scale = np.sqrt(np.maximum((tb[:, 2] - tb[:, 0]) * (tb[:, 3] - tb[:, 1]), 1.0))
        oks = keypoint_similarity(kp_a, ok_a, poses.keypoints, poses.scores >= self.min_score, scale)
        sim[with_kp] = np.maximum(sim[with_kp], np.where(oks >= self.keypoint_threshold, oks, -1.0))
        return sim

    def update(self, poses: Poses) -> Poses:
        """Assign ``poses.track_ids`` (in place) and advance the tracks by one frame."""
        boxes = np.asarray(poses.boxes, np.float64)
        ids = np.full(len(boxes), -1, np.int64)
        ok = poses.scores >= self.min_score
        if self.tracks and len(boxes):
            sim = self._similarity(poses, boxes)
            pairs = sorted(((sim[i, j], i, j) for i, j in zip(*np.nonzero(sim >= 0))), reverse=True)
            used_t, used_d = set(), set()
            for _v, i, j in pairs:
                if i in used_t or j in used_d:
                    continue
                used_t.add(i)
                used_d.add(j)
                t = self.tracks[i]
                t.velocity = 0.5 * t.velocity + 0.5 * (boxes[j] - t.box)
                t.box, t.missed = boxes[j].copy(), 0
                t.keypoints, t.keypoint_ok = poses.keypoints[j].astype(np.float64), ok[j].copy()
                ids[j] = t.id
        matched = set(ids[ids >= 0].tolist())
        for t in self.tracks:
            if t.id not in matched:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for j in np.nonzero(ids < 0)[0]:
            t = _Track(self._next, boxes[j].copy(), poses.keypoints[j].astype(np.float64), ok[j].copy())
            self._next += 1
            self.tracks.append(t)
            ids[j] = t.id
        poses.track_ids = ids
        return poses


class OneEuroFilter:
    """Vectorised One Euro filter over an array of values (e.g. (K, 2) keypoints), each filtered on its own.

    ``x_hat = a x + (1 - a) x_hat_prev`` with ``a = 1 / (1 + tau / dt)``, ``tau = 1 / (2 pi fc)``
    and ``fc = min_cutoff + beta |dx_hat|``, ``dx_hat`` being the derivative low-passed at ``d_cutoff``.
    A time that does not move forward restarts the filter.
    """

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
    """``smooth(poses, t) -> poses``: One Euro filters per track, one per joint coordinate.

    ``min_cutoff`` and ``d_cutoff`` are in Hz; ``beta`` is per pixel/s of joint speed for
    a person 100 px tall and is divided by each person's size, so large and small
    people are smoothed alike.  A track that disappears loses its filters (no lag
    from a stale state when it comes back).
    """

    def __init__(self, min_cutoff: float = 1.5, beta: float = 0.3, d_cutoff: float = 1.0) -> None:
        self.params = (min_cutoff, beta, d_cutoff)
        self.filters: dict[int, OneEuroFilter] = {}

    def smooth(self, poses: Poses, t: float) -> Poses:
        """Filter ``poses.keypoints`` in place at stream time ``t`` (seconds); untracked people pass through."""
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
