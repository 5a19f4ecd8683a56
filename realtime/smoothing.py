"""One Euro smoothing of tracked keypoints (Casiez et al., CHI 2012).

:class:`OneEuroFilter` is an adaptive low-pass filter whose cut-off rises with speed, removing jitter at rest
without lag in motion; :class:`Smoother` keeps one per track.
"""

from __future__ import annotations

import math

import numpy as np

from realtime.types import Poses

__all__ = ["OneEuroFilter", "Smoother"]


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
