"""Heatmap codec and the geometry between frame, network input and heatmap grid.

One module that training, evaluation and the realtime pipeline all use, so the
three agree to the sub-pixel.  NumPy and OpenCV only (no torch).

Coordinate convention everywhere: pixel centres sit at integer coordinates
(pixel ``i`` covers ``[i - 0.5, i + 0.5)``), as in OpenCV's ``warpAffine``.
A heatmap of size ``H`` on an input of size ``S`` (``S = 4H``) therefore maps
``x_in = (x_hm + 0.5) * S / H - 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "encode_heatmaps", "decode_heatmaps", "flip_heatmaps", "flip_test",
    "box_to_center_size", "crop_matrix", "invert_affine", "apply_affine", "compose_affine",
    "scale_matrix", "heatmap_to_input_matrix", "CropTransform", "warp_crop",
]

DEFAULT_SIGMA = 1.75  # the released code: torch image.gaussian(7, 0.25) -> std 0.25 * 7 px
DEFAULT_PADDING = 1.25  # the hourglass convention enlarges the person's scale by 1.25


# ----------------------------------------------------------------------------- encode
def encode_heatmaps(
    joints: np.ndarray,
    visible: np.ndarray | None,
    size: int | tuple[int, int],
    sigma: float = DEFAULT_SIGMA,
    radius: int | None = None,
) -> np.ndarray:
    """Gaussian target maps (K, H, W), peak 1 at each visible joint (heatmap coords).

    The Gaussian is centred at the sub-pixel joint location and truncated to a
    (2r+1)^2 window (r = 3 by default: the released 7x7).  Invisible joints, or
    joints whose window lies off the map, give an all-zero map.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 2 or joints.shape[1] != 2:
        raise ValueError(f"joints must be (K, 2), got {joints.shape}")
    w, h = (size, size) if isinstance(size, int) else (size[0], size[1])
    k = joints.shape[0]
    vis = np.ones(k, bool) if visible is None else np.asarray(visible).astype(bool).reshape(k)
    # torch's image.gaussian(size, 0.25) has std = size / 4: size 7 <-> sigma 1.75 <-> radius 3.
    r = max(int(round(2 * sigma - 0.5)), 1) if radius is None else int(radius)
    out = np.zeros((k, h, w), np.float32)
    xs, ys = np.arange(w), np.arange(h)
    for j in range(k):
        x, y = joints[j]
        if not vis[j] or not np.isfinite([x, y]).all():
            continue
        cx, cy = int(round(x)), int(round(y))
        x0, x1, y0, y1 = max(cx - r, 0), min(cx + r + 1, w), max(cy - r, 0), min(cy + r + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        gx = np.exp(-((xs[x0:x1] - x) ** 2) / (2 * sigma**2))
        gy = np.exp(-((ys[y0:y1] - y) ** 2) / (2 * sigma**2))
        out[j, y0:y1, x0:x1] = np.outer(gy, gx)
    return out


# ----------------------------------------------------------------------------- decode
def decode_heatmaps(heatmaps: np.ndarray, refine: str = "quarter") -> tuple[np.ndarray, np.ndarray]:
    """Peak locations (..., K, 2) in heatmap pixels and confidences (..., K).

    ``refine="quarter"``: argmax shifted a quarter pixel towards the larger
    neighbour on each axis (Newell's hourglass rule; the MCA release defines it in
    ``test/util.lua`` but its ``test/main.lua`` upsamples into the image instead, see
    :mod:`mca.protocol`).  ``refine="gaussian"``:
    the vertex of a parabola through the log of the peak and its two neighbours
    per axis, exact for a sampled Gaussian (falls back to the quarter rule where
    the log-parabola is not concave).  ``refine="none"``: integer argmax.
    Confidence is the peak value.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    if hm.ndim < 3:
        raise ValueError(f"heatmaps must be (..., K, H, W), got {hm.shape}")
    if refine not in ("quarter", "gaussian", "none"):
        raise ValueError(f"refine must be 'quarter', 'gaussian' or 'none', got {refine!r}")
    *lead, h, w = hm.shape
    flat = hm.reshape(-1, h * w)
    idx = flat.argmax(axis=1)
    conf = flat[np.arange(flat.shape[0]), idx]
    py, px = np.divmod(idx, w)
    coords = np.stack([px, py], axis=1).astype(np.float32)
    if refine != "none":
        maps = hm.reshape(-1, h, w)
        n = np.arange(maps.shape[0])
        for axis, (p, lim) in enumerate(((px, w), (py, h))):
            inner = (p > 0) & (p < lim - 1)
            lo_idx, hi_idx = np.clip(p - 1, 0, lim - 1), np.clip(p + 1, 0, lim - 1)
            if axis == 0:
                lo, mid, hi = maps[n, py, lo_idx], maps[n, py, px], maps[n, py, hi_idx]
            else:
                lo, mid, hi = maps[n, lo_idx, px], maps[n, py, px], maps[n, hi_idx, px]
            shift = 0.25 * np.sign(hi - lo)
            if refine == "gaussian":
                eps = 1e-10
                llo, lmid, lhi = (np.log(np.maximum(v, eps)) for v in (lo, mid, hi))
                denom = llo - 2 * lmid + lhi
                ok = inner & (denom < -1e-6) & (lo > eps) & (hi > eps) & (mid > eps)
                with np.errstate(divide="ignore", invalid="ignore"):
                    g = np.clip(0.5 * (llo - lhi) / np.where(ok, denom, -1.0), -0.5, 0.5)
                shift = np.where(ok, g, shift)
            coords[:, axis] += np.where(inner, shift, 0.0).astype(np.float32)
    return coords.reshape(*lead, 2), conf.reshape(*lead)


# ----------------------------------------------------------------------------- flip
def flip_heatmaps(heatmaps: np.ndarray, flip_index: Sequence[int]) -> np.ndarray:
    """Heatmaps of a mirrored image brought back: mirror W and swap left/right joints."""
    hm = np.asarray(heatmaps)
    idx = np.asarray(flip_index)
    if hm.shape[-3] != len(idx):
        raise ValueError(f"{hm.shape[-3]} heatmaps but a flip index of {len(idx)} joints")
    return np.ascontiguousarray(hm[..., idx, :, ::-1])


def flip_test(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, flip_index: Sequence[int],
              channels_last: bool = False) -> np.ndarray:
    """Average of the heatmaps of ``batch`` and of its mirror image (joints swapped back).

    ``run`` maps an image batch to heatmaps (N, K, H, W): any backend.  Both passes
    go through one call, as a batch of 2N, so a backend with a batch dimension
    pays one launch.
    """
    batch = np.asarray(batch)
    w_axis = -2 if channels_last else -1
    both = np.concatenate([batch, np.flip(batch, axis=w_axis)], axis=0)
    hm = np.asarray(run(np.ascontiguousarray(both)))
    n = batch.shape[0]
    return 0.5 * (hm[:n] + flip_heatmaps(hm[n:], flip_index))


# ----------------------------------------------------------------------------- geometry
def box_to_center_size(box_xyxy: Sequence[float], aspect: float = 1.0,
                       padding: float = DEFAULT_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """Centre and (w, h) of the crop around a person box, at the input's aspect (w / h).

    The box is grown to the aspect ratio (never shrunk) and enlarged by ``padding``.
    """
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"degenerate box {box_xyxy}")
    c = np.array([(x0 + x1) / 2, (y0 + y1) / 2], np.float64)
    w, h = x1 - x0, y1 - y0
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return c, np.array([w * padding, h * padding], np.float64)


def crop_matrix(center: Sequence[float], size_wh: Sequence[float], output_wh: tuple[int, int],
                rotation_deg: float = 0.0, flip: bool = False) -> np.ndarray:
    """2x3 affine mapping frame pixels to crop pixels (for ``cv2.warpAffine``).

    The frame region of ``size_wh`` around ``center``, rotated by ``rotation_deg``
    (counter-clockwise in the image), fills an ``output_wh`` crop; ``flip``
    mirrors it horizontally.
    """
    ow, oh = output_wh
    sx, sy = ow / float(size_wh[0]), oh / float(size_wh[1])
    t = np.deg2rad(rotation_deg)
    cos, sin = np.cos(t), np.sin(t)
    rot = np.array([[cos, sin], [-sin, cos]])
    lin = np.diag([sx * (-1 if flip else 1), sy]) @ rot
    off = np.array([(ow - 1) / 2, (oh - 1) / 2]) - lin @ np.asarray(center, np.float64)
    return np.hstack([lin, off[:, None]])


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    m = np.asarray(m, np.float64)
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``outer`` after ``inner`` as one 2x3 matrix."""
    a = np.vstack([np.asarray(outer, np.float64), [0, 0, 1]])
    b = np.vstack([np.asarray(inner, np.float64), [0, 0, 1]])
    return (a @ b)[:2]


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 2x3 (or batched (..., 2, 3)) affine to points (..., K, 2)."""
    m = np.asarray(m, np.float64)
    pts = np.asarray(pts, np.float64)
    return np.einsum("...ij,...kj->...ki", m[..., :, :2], pts) + m[..., None, :, 2]


def scale_matrix(src_wh: tuple[float, float], dst_wh: tuple[float, float]) -> np.ndarray:
    """Pixel-centre-preserving resize from a ``src_wh`` grid to a ``dst_wh`` grid."""
    sx, sy = dst_wh[0] / src_wh[0], dst_wh[1] / src_wh[1]
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]], np.float64)


def heatmap_to_input_matrix(heatmap_wh: tuple[int, int], input_wh: tuple[int, int]) -> np.ndarray:
    """Heatmap pixels -> network input pixels."""
    return scale_matrix(heatmap_wh, input_wh)


@dataclass(frozen=True)
class CropTransform:
    """The maps of one person crop: frame -> input, and heatmap -> frame.

    Built once per person so that cropping and decoding use the same numbers.
    """

    frame_to_input: np.ndarray  # 2x3
    input_wh: tuple[int, int]
    heatmap_wh: tuple[int, int]

    @classmethod
    def from_box(cls, box_xyxy: Sequence[float], input_wh: tuple[int, int], heatmap_wh: tuple[int, int],
                 padding: float = DEFAULT_PADDING, rotation_deg: float = 0.0) -> "CropTransform":
        c, s = box_to_center_size(box_xyxy, input_wh[0] / input_wh[1], padding)
        return cls(crop_matrix(c, s, input_wh, rotation_deg), tuple(input_wh), tuple(heatmap_wh))  # type: ignore[arg-type]

    @property
    def input_to_frame(self) -> np.ndarray:
        return invert_affine(self.frame_to_input)

    @property
    def heatmap_to_frame(self) -> np.ndarray:
        return compose_affine(self.input_to_frame, heatmap_to_input_matrix(self.heatmap_wh, self.input_wh))

    @property
    def frame_to_heatmap(self) -> np.ndarray:
        return invert_affine(self.heatmap_to_frame)


def warp_crop(image: np.ndarray, transform: CropTransform, border_value: int | float = 0) -> np.ndarray:
    """Crop (and resize/rotate) a person from a frame with bilinear interpolation."""
    import cv2

    return cv2.warpAffine(image, transform.frame_to_input, transform.input_wh, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)
