"""Test-time protocols: how heatmaps become joint positions in the frame (numpy + OpenCV, no torch).

Three settings, as in the authors' ``test/main.lua``:

- **decode**: ``quarter`` (this project's default: argmax on the heatmap grid plus a quarter pixel
  towards the larger neighbour, the rule of Newell's hourglass code; ``test/util.lua`` defines it but
  ``test/main.lua`` never calls it), ``gaussian`` (a log-parabola refinement), or ``image`` (what
  ``test/main.lua`` runs: negative values clamped to zero, the heatmaps bilinearly upsampled into the
  original image over the crop's region, and the argmax taken there, on whole image pixels).
- **flip**: average with the heatmaps of the mirrored crop (joints swapped back).
- **scales**: a pyramid of crop sizes around the same centre (the paper used 0.7, 0.8, ..., 1.2 of
  the person's scale; the shipped script 1.0).  Each scale's maps are brought onto one grid (the image
  for ``image``, else the scale-1 heatmap grid) and averaged (``fuse="max"`` takes the maximum, the
  script's second option).

Crops come from :func:`mca.data.augment.make_sample` without augmentation (the one crop path).
The upsampling uses this project's geometry (heatmap pixel ``j`` covers the crop's ``j``-th 1/64th,
centre at ``j + 0.5``, the convention the training targets are drawn in, the release's included).
The shipped script upsamples with torch's ``image.scale``, which aligns the corner pixels instead
(node 0 on the crop's first image pixel, node 63 on its last): its positions lie further from the
crop centre by up to half a heatmap pixel at the crop border.  That quirk is not reproduced.
MPII's summary table (:func:`mpii_table`) groups joints as the common Python port of the MPII
evaluation does (pose-hg-train, HRNet, mmpose): head = head top; shoulder ... ankle = the mean of the
two sides; the total is over the 14 joints without pelvis and thorax, weighted by their counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from mca import heatmaps as H

log = logging.getLogger(__name__)

__all__ = ["Protocol", "PRESETS", "PAPER_SCALES", "person_crops", "fuse_maps", "image_argmax", "predict_people",
           "mpii_table"]

PAPER_SCALES = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2)
DECODES = ("quarter", "gaussian", "image")


@dataclass(frozen=True)
class Protocol:
    """One test-time protocol (see the module docstring); the default is this project's single-scale rule."""

    decode: str = "quarter"
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    fuse: str = "mean"

    def __post_init__(self) -> None:
        if self.decode not in DECODES:
            raise ValueError(f"decode must be one of {', '.join(DECODES)}, not {self.decode!r}")
        if self.fuse not in ("mean", "max"):
            raise ValueError(f"fuse must be mean or max, not {self.fuse!r}")
        if not self.scales or any(not (0.1 <= s <= 10) for s in self.scales):
            raise ValueError(f"scales must be positive factors of the person's scale (got {self.scales})")

    def describe(self) -> str:
        dec = {"quarter": "heatmap argmax + quarter pixel", "gaussian": "heatmap argmax + log-parabola",
               "image": "heatmaps upsampled into the image, argmax there (test/main.lua)"}[self.decode]
        sc = "single scale" if self.scales == (1.0,) else \
            f"scales {', '.join(f'{s:g}' for s in self.scales)} ({self.fuse})"
        return f"decode: {dec}; flip: {'yes' if self.flip else 'no'}; {sc}"


PRESETS = {
    "project": Protocol(),
    "released": Protocol(decode="image", flip=True),  # test/main.lua as shipped (scale_search {1.0})
    "paper": Protocol(decode="image", flip=True, scales=PAPER_SCALES),  # the pyramid "used in our paper"
}


def _scaled_box(box: Sequence[float], factor: float) -> np.ndarray:
    """A square box ``factor`` times the crop box's side around its centre (what ``scale * factor`` crops in Lua)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    c = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    half = 0.5 * factor * max(x1 - x0, y1 - y0)
    return np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half], np.float64)


def person_crops(image: np.ndarray, box: Sequence[float], input_size: int, heatmap_size: int,
                 flip_index: tuple[int, ...], scales: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Crops (n_scales, S, S, 3) uint8 BGR and their frame -> input matrices (n_scales, 2, 3)."""
    from mca.data.augment import make_sample

    k = len(flip_index)
    crops, mats = [], []
    for f in scales:
        s = make_sample(image, np.zeros((k, 2)), np.zeros(k, bool), _scaled_box(box, f), input_size, heatmap_size,
                        flip_index)
        crops.append(s.crop)
        mats.append(s.frame_to_input)
    return np.stack(crops), np.stack(mats)


def _warp_onto(maps: np.ndarray, grid_to_heatmap: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """(K, h, w) maps sampled bilinearly at the points of another grid: (size_h, size_w, K), zero outside."""
    src = np.ascontiguousarray(np.transpose(maps, (1, 2, 0)), np.float32)
    k = src.shape[2]
    out = np.empty((size_wh[1], size_wh[0], k), np.float32)
    for lo in range(0, k, 256):  # OpenCV takes up to 512 channels at once
        part = cv2.warpAffine(np.ascontiguousarray(src[:, :, lo:lo + 256]), grid_to_heatmap, size_wh,
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=0)
        out[:, :, lo:lo + 256] = part.reshape(size_wh[1], size_wh[0], -1)
    return out


def fuse_maps(maps: np.ndarray, frame_to_heatmap: np.ndarray, grid_to_frame: np.ndarray, size_wh: tuple[int, int],
              fuse: str = "mean") -> np.ndarray:
    """Every scale's maps (n, K, h, w), with their frame -> heatmap matrices (n, 2, 3), on one grid of ``size_wh``
    whose pixels sit at ``grid_to_frame``: (K, size_h, size_w), averaged (or the maximum) over the scales."""
    if len(maps) == 0:
        raise ValueError("fuse_maps needs the maps of at least one scale")
    acc = None
    for m, f2h in zip(maps, frame_to_heatmap):
        w = _warp_onto(m, H.compose_affine(f2h, grid_to_frame), size_wh)
        acc = w if acc is None else (acc + w if fuse == "mean" else np.maximum(acc, w))
    if fuse == "mean":
        acc /= len(maps)
    return np.ascontiguousarray(np.transpose(acc, (2, 0, 1)))


def image_argmax(maps: np.ndarray, frame_to_heatmap: np.ndarray, image_wh: tuple[int, int],
                 fuse: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """test/main.lua's decoding: clamp, upsample every scale's maps into the image, fuse, argmax per joint.

    Only the image pixels some crop covers can hold a maximum, so the maps are built over the bounding
    box of the crops (clipped to the image).  Returns (K, 2) whole-pixel frame coordinates and (K,) peaks.
    """
    maps = np.maximum(np.asarray(maps, np.float32), 0)
    n, k, h, w = maps.shape
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]])
    pts = np.concatenate([H.apply_affine(H.invert_affine(m), corners) for m in frame_to_heatmap])
    x0, y0 = (max(0, int(np.floor(v))) for v in pts.min(0))
    x1 = min(image_wh[0] - 1, int(np.ceil(pts[:, 0].max())))
    y1 = min(image_wh[1] - 1, int(np.ceil(pts[:, 1].max())))
    if x1 < x0 or y1 < y0:  # the crops lie outside the image: nothing to take the maximum over
        return np.full((k, 2), np.nan, np.float32), np.zeros(k, np.float32)
    grid = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0]])
    fused = fuse_maps(maps, frame_to_heatmap, grid, (x1 - x0 + 1, y1 - y0 + 1), fuse)
    flat = fused.reshape(k, -1)
    idx = flat.argmax(1)
    py, px = np.divmod(idx, fused.shape[2])
    return np.stack([px + x0, py + y0], 1).astype(np.float32), flat[np.arange(k), idx]


def _heatmap_decode(maps: np.ndarray, frame_to_heatmap: np.ndarray, refine: str, fuse: str, base: int = 0,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Argmax (+ refinement) on the heatmap grid of scale ``base``; other scales are resampled onto it first."""
    to_frame = H.invert_affine(frame_to_heatmap[base])
    if len(maps) == 1:
        hm = maps[0]
    else:
        hm = fuse_maps(maps, frame_to_heatmap, to_frame, (maps.shape[-1], maps.shape[-2]), fuse)
    coords, conf = H.decode_heatmaps(hm[None], refine=refine)
    return H.apply_affine(to_frame, coords[0]).astype(np.float32), conf[0]


def predict_people(run: Callable[[np.ndarray], np.ndarray], people: Iterable[tuple[np.ndarray, Sequence[float]]],
                   input_size: int, heatmap_size: int, flip_index: tuple[int, ...], protocol: Protocol = Protocol(),
                   batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions (N, K, 2) in frame pixels and peaks (N, K) of ``run`` (uint8 NHWC BGR crops -> heatmaps)
    for each ``(image, person box)``, under ``protocol``."""
    ns = len(protocol.scales)
    base = int(np.argmin(np.abs(np.asarray(protocol.scales) - 1.0)))  # the grid multi-scale maps are fused on
    per_chunk = max(1, batch // ns)
    s2h = H.scale_matrix((input_size, input_size), (heatmap_size, heatmap_size))
    coords, confs = [], []
    chunk: list[tuple[tuple[int, int], np.ndarray, np.ndarray]] = []

    def flush() -> None:
        crops = np.concatenate([c for _, c, _ in chunk])
        heat = (H.flip_test(run, crops, flip_index, channels_last=True) if protocol.flip else run(crops))
        heat = np.asarray(heat, np.float32).reshape(len(chunk), ns, *np.shape(heat)[1:])
        for (wh, _, mats), maps in zip(chunk, heat):
            f2h = np.stack([H.compose_affine(s2h, m) for m in mats])
            if protocol.decode == "image":
                c, p = image_argmax(maps, f2h, wh, protocol.fuse)
            else:
                c, p = _heatmap_decode(maps, f2h, protocol.decode, protocol.fuse, base)
            coords.append(c)
            confs.append(p)
        chunk.clear()

    for image, box in people:
        crops, mats = person_crops(image, box, input_size, heatmap_size, flip_index, protocol.scales)
        chunk.append(((image.shape[1], image.shape[0]), crops, mats))
        if len(chunk) >= per_chunk:
            flush()
    if chunk:
        flush()
    k = len(flip_index)
    if not coords:
        return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
    return np.stack(coords), np.stack(confs)


MPII_GROUPS = (("head", ("head_top",)), ("shoulder", ("r_shoulder", "l_shoulder")),
               ("elbow", ("r_elbow", "l_elbow")), ("wrist", ("r_wrist", "l_wrist")), ("hip", ("r_hip", "l_hip")),
               ("knee", ("r_knee", "l_knee")), ("ankle", ("r_ankle", "l_ankle")))


def mpii_table(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, head_size: np.ndarray,
               thr: float = 0.5) -> dict[str, float]:
    """MPII's PCKh summary (fractions): head, shoulder, ..., ankle and the total without pelvis and thorax."""
    from mca.joints import get_joint_set

    names = get_joint_set("mpii16").names
    vis = np.asarray(visible, bool) & (np.asarray(head_size, float)[:, None] > 0)
    d = np.linalg.norm(np.asarray(pred, float) - np.asarray(gt, float), axis=-1) / np.maximum(
        np.asarray(head_size, float)[:, None], 1e-9)
    hit, cnt = ((d <= thr) & vis).sum(0), vis.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(cnt > 0, hit / np.maximum(cnt, 1), np.nan)
    out = {g: float(np.nanmean([per[names.index(j)] for j in js])) for g, js in MPII_GROUPS}
    keep = [i for i, n in enumerate(names) if n not in ("pelvis", "thorax")]
    out["total"] = float(hit[keep].sum() / max(cnt[keep].sum(), 1))
    return out
