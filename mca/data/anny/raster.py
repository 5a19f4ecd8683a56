"""A headless z-buffer rasterizer and pinhole camera in NumPy (no GL, no GPU).

Why NumPy: the training machines have no display and no GPU, and the person meshes are small (about 27k
triangles, most of them one or two pixels wide at crop size), so a vectorised scan of every triangle's
bounding box is fast enough and exact.  Pixel centres are at integer coordinates (the project's convention).

* :class:`Camera` -- look-at pinhole camera, world Z up; image x right, y down.
* :func:`rasterize` -- perspective-correct barycentrics, per-triangle back-face culling (or double-sided
  triangles), nearest-surface z-test; returns the face id, barycentrics and view depth of every pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Camera", "Raster", "rasterize", "look_at_camera"]

_NEAR = 1e-3


@dataclass
class Camera:
    """Pinhole camera: ``R`` rows are the camera's right, down and forward axes in world coordinates."""

    R: np.ndarray  # (3, 3)
    t: np.ndarray  # (3,) camera centre in world coordinates
    f: float  # focal length in pixels
    c: tuple[float, float]  # principal point (pixels)
    size: tuple[int, int]  # (width, height)

    def to_view(self, pts: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> camera coordinates (x right, y down, z forward = depth)."""
        return (np.asarray(pts, np.float64) - self.t) @ self.R.T

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) -> pixel coordinates (N, 2) and view depth (N,)."""
        v = self.to_view(pts)
        z = v[:, 2]
        zs = np.where(np.abs(z) < _NEAR, _NEAR, z)
        uv = np.stack([self.c[0] + self.f * v[:, 0] / zs, self.c[1] + self.f * v[:, 1] / zs], 1)
        return uv, z

    def scaled(self, s: float) -> "Camera":
        """The same view at ``s`` times the resolution (pixel centres stay consistent)."""
        w, h = self.size
        return Camera(self.R, self.t, self.f * s, ((self.c[0] + 0.5) * s - 0.5, (self.c[1] + 0.5) * s - 0.5),
                      (int(round(w * s)), int(round(h * s))))


def look_at_camera(eye: np.ndarray, target: np.ndarray, f: float, size: tuple[int, int],
                   roll_deg: float = 0.0) -> Camera:
    """Camera at ``eye`` looking at ``target`` with world +Z up (``roll_deg`` turns it about its axis)."""
    eye, target = np.asarray(eye, np.float64), np.asarray(target, np.float64)
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    up = np.array([0.0, 0.0, 1.0])
    if abs(fwd @ up) > 0.999:  # looking straight up or down: any horizontal right axis will do
        up = np.array([0.0, 1.0, 0.0])
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    if roll_deg:
        a = math.radians(roll_deg)
        right, down = math.cos(a) * right + math.sin(a) * down, -math.sin(a) * right + math.cos(a) * down
    w, h = size
    return Camera(np.stack([right, down, fwd]), eye, float(f), ((w - 1) / 2.0, (h - 1) / 2.0), (int(w), int(h)))


@dataclass
class Raster:
    """Per-pixel result: ``face`` (-1 = empty), perspective-correct ``bary`` (H, W, 3), view ``depth``."""

    face: np.ndarray  # (H, W) int32
    bary: np.ndarray  # (H, W, 3) float32
    depth: np.ndarray  # (H, W) float32, inf where empty

    @property
    def mask(self) -> np.ndarray:
        return self.face >= 0


def rasterize(uv: np.ndarray, z: np.ndarray, faces: np.ndarray, size: tuple[int, int],
              double_sided: np.ndarray | None = None, max_candidates: int = 40_000_000) -> Raster:
    """Rasterize triangles given their vertices' pixel coordinates ``uv`` (N, 2) and view depths ``z`` (N,).

    A triangle is front-facing when its vertices run counter-clockwise as seen on screen, i.e. negative
    signed area in (x right, y down) pixels, as the meshes (wound counter-clockwise seen from outside) project;
    others are culled unless ``double_sided[face]``.
    Triangles with a vertex behind the near plane are dropped (the cameras here never get that close).
    """
    w, h = size
    faces = np.asarray(faces)
    p = uv[faces].astype(np.float64)  # (F, 3, 2)
    zf = z[faces].astype(np.float64)  # (F, 3)
    x0, y0 = p[:, 0, 0], p[:, 0, 1]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]  # < 0: front face (see the docstring)
    keep = (zf > _NEAR).all(1) & (np.abs(area) > 1e-12)
    keep &= area < 0 if double_sided is None else (area < 0) | np.asarray(double_sided, bool)
    lo = np.ceil(p.min(1)).astype(np.int64)
    hi = np.floor(p.max(1)).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi[:, 0], hi[:, 1] = np.minimum(hi[:, 0], w - 1), np.minimum(hi[:, 1], h - 1)
    bw, bh = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    keep &= (bw > 0) & (bh > 0)
    idx = np.nonzero(keep)[0]
    n = (bw[idx] * bh[idx])
    total = int(n.sum())
    face_out = np.full((h, w), -1, np.int32)
    bary_out = np.zeros((h, w, 3), np.float32)
    depth_out = np.full((h, w), np.inf, np.float32)
    if total == 0:
        return Raster(face_out, bary_out, depth_out)
    if total > max_candidates:
        raise ValueError(f"rasterize: {total} candidate pixels (a triangle spans most of the image?)")
    # every pixel centre inside each kept triangle's bounding box
    tri = np.repeat(idx, n)
    start = np.repeat(np.cumsum(n) - n, n)
    off = np.arange(total, dtype=np.int64) - start
    bwr = bw[tri]
    px = lo[tri, 0] + off % bwr
    py = lo[tri, 1] + off // bwr
    # screen-space barycentrics of vertices 1 and 2 (edge functions), exact for any winding
    inv = 1.0 / area[tri]
    dx, dy = px - x0[tri], py - y0[tri]
    l1 = (dx * e2[tri, 1] - dy * e2[tri, 0]) * inv
    l2 = (e1[tri, 0] * dy - e1[tri, 1] * dx) * inv
    l0 = 1.0 - l1 - l2
    eps = -1e-9
    inside = (l0 >= eps) & (l1 >= eps) & (l2 >= eps)
    tri, px, py, l0, l1, l2 = tri[inside], px[inside], py[inside], l0[inside], l1[inside], l2[inside]
    # perspective-correct: 1/z is linear on screen
    iz = 1.0 / zf[tri]
    q0, q1, q2 = l0 * iz[:, 0], l1 * iz[:, 1], l2 * iz[:, 2]
    s = q0 + q1 + q2
    depth = 1.0 / s
    pix = py * w + px
    # nearest surface per pixel: a minimum depth buffer, then one winner per pixel among equal depths
    zbuf = np.full(w * h, np.inf)
    np.minimum.at(zbuf, pix, depth)
    win = np.nonzero(depth == zbuf[pix])[0]
    owner = np.full(w * h, -1, np.int64)
    owner[pix[win]] = win
    win = win[owner[pix[win]] == win]
    wp = pix[win]
    face_out.reshape(-1)[wp] = tri[win]
    depth_out.reshape(-1)[wp] = depth[win]
    b = np.stack([q0[win], q1[win], q2[win]], 1) / s[win, None]
    bary_out.reshape(-1, 3)[wp] = b
    return Raster(face_out, bary_out, depth_out)
