"""Front/back cues of a synthetic person: what tells a viewer which way a body faces, hence its left from right.

Under an orthographic camera a body seen from the front and the same body seen from behind have the same
outline, mirrored: only surface detail tells them apart, and with it which limb is the person's left.  The
first renderer had one such cue, a tiny face, invisible on dark skin under dark hair at the 128-px input, so
the models learnt identical left and right heatmaps (issue 16).  This module draws cues that real people
carry, on every part of the body, sized to survive a 128-px crop:

- torso, front: a skin neckline and a button placket or an open jacket, on the chest's front surface (it
  shifts towards the way the chest turns); back: a plain back with a collar band;
- waist: trousers up to the waist with a belt buckle in front, back pockets behind;
- shoes: a light sole all round, laces/tongue on the front of the foot, a dark heel counter behind;
- face (drawn by the renderer): eye whites, brows and mouth, and hair whose brightness differs from the skin.

Every cue is a physical surface feature: it is mirror-symmetric in meaning, so horizontal-flip augmentation
(which swaps left and right labels) stays consistent.  No cue marks a side directly (no "watch on the left
wrist"): that would not exist on real people.  Cues are drawn into the colour image only, clipped to the
person's own visible parts through the label map, so labels and visibility do not change.  NumPy + OpenCV.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["body_forward", "draw_cues", "contrasting_hair", "fill_masked", "luminance"]

_SHIFT = 2  # sub-pixel bits, as the renderer's canvas


def luminance(bgr: np.ndarray) -> float:
    """Rec. 601 luma of a BGR colour."""
    b, g, r = (float(v) for v in np.asarray(bgr, np.float64)[:3])
    return 0.114 * b + 0.587 * g + 0.299 * r


def contrasting_hair(rng: np.random.Generator, skin: np.ndarray, palette: np.ndarray, min_delta: float = 40.0
                     ) -> np.ndarray:
    """A hair colour from ``palette`` whose brightness differs from ``skin`` by at least ``min_delta``.

    Black hair over dark skin (and blond hair over fair skin) made the back of the head and the face the same
    blob at 128 px; where no palette colour is far enough, the farthest one is taken."""
    order = rng.permutation(len(palette))
    lum = luminance(skin)
    best, best_d = palette[order[0]], -1.0
    for i in order:
        c = palette[i] * rng.uniform(0.85, 1.15)
        d = abs(luminance(c) - lum)
        if d >= min_delta:
            return np.clip(c, 0, 255).astype(np.float32)
        if d > best_d:
            best, best_d = c, d
    return np.clip(best, 0, 255).astype(np.float32)


def body_forward(left: np.ndarray, right: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Unit forward direction (x right, y down, z towards the camera) of a body segment from 3-D points.

    ``left``/``right`` are the segment's left and right joints (shoulders or hips), ``lower``/``upper`` two
    points along its axis (pelvis and thorax): forward = up x (left - right) in these axes."""
    up = np.asarray(upper, np.float64) - np.asarray(lower, np.float64)
    across = np.asarray(left, np.float64) - np.asarray(right, np.float64)
    f = np.cross(up, across)
    n = float(np.linalg.norm(f))
    return f / n if n > 1e-9 else np.array([0.0, 0.0, 1.0])


def fill_masked(image: np.ndarray, allowed: np.ndarray, x0: int, y0: int, polys: list[np.ndarray],
          color: tuple[int, int, int], ellipses: tuple = ()) -> None:
    """Fill polygons (frame pixels) into ``image`` where the ROI mask ``allowed`` (at x0, y0) is set."""
    h, w = allowed.shape
    m = np.zeros((h, w), np.uint8)
    s = 1 << _SHIFT
    for p in polys:
        q = np.round((np.asarray(p, np.float64) - [x0, y0]) * s).astype(np.int32)
        cv2.fillPoly(m, [q], 255, cv2.LINE_AA, _SHIFT)
    for c, ax, ang in ellipses:
        cc = (int(round((c[0] - x0) * s)), int(round((c[1] - y0) * s)))
        cv2.ellipse(m, cc, (max(1, int(round(ax[0] * s))), max(1, int(round(ax[1] * s)))), ang, 0, 360, 255, -1,
                    cv2.LINE_AA, _SHIFT)
    a = (m.astype(np.float32) / 255.0) * allowed
    if not a.any():
        return
    roi = image[y0:y0 + h, x0:x0 + w].astype(np.float32)
    roi = roi * (1 - a[..., None]) + np.asarray(color, np.float32) * a[..., None]
    image[y0:y0 + h, x0:x0 + w] = np.clip(roi, 0, 255).astype(np.uint8)


def _shade(c: np.ndarray, f: float) -> tuple[int, int, int]:
    v = np.clip(np.asarray(c, np.float64) * f, 0, 255)
    return int(v[0]), int(v[1]), int(v[2])


def draw_cues(image: np.ndarray, label: np.ndarray, pts: np.ndarray, idx: dict[str, int], height: float,
              girth: float, colors: dict[str, np.ndarray], part_label: dict[str, int]) -> None:
    """Draw one person's front/back surface cues (after the whole person is drawn).

    ``pts`` (J, 3): the skeleton in pixels with depth (larger = nearer), ``idx`` joint name -> row,
    ``part_label`` part name -> this person's label value in ``label``; a cue lands only on pixels still
    showing the part it belongs to (a forearm in front of the chest hides the placket)."""
    P = np.asarray(pts, np.float64)
    xy = P[:, :2]
    hgt = float(height)
    if hgt < 12:
        return
    H, W = label.shape
    b = P[:, :2]
    lo = np.floor(b.min(0) - 0.15 * hgt).astype(int)
    hi = np.ceil(b.max(0) + 0.15 * hgt).astype(int)
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), W), min(int(hi[1]), H)
    if x1 <= x0 or y1 <= y0:
        return
    lab = label[y0:y1, x0:x1]

    def mask(*parts: str) -> np.ndarray:
        return np.isin(lab, [part_label[p] for p in parts]).astype(np.float32)

    sh_l, sh_r = P[idx["l_shoulder"]], P[idx["r_shoulder"]]
    hp_l, hp_r = P[idx["l_hip"]], P[idx["r_hip"]]
    thorax, pelvis = P[idx["thorax"]], P[idx["pelvis"]]
    f_chest = body_forward(sh_l, sh_r, pelvis, thorax)
    f_hips = body_forward(hp_l, hp_r, pelvis, thorax)
    depth = 0.05 * hgt * girth  # half the torso's depth, as the renderer's torso hull
    A = (xy[idx["l_shoulder"]] - xy[idx["r_shoulder"]]) / 2  # half the projected shoulder line
    Ah = (xy[idx["l_hip"]] - xy[idx["r_hip"]]) / 2
    D = xy[idx["pelvis"]] - xy[idx["thorax"]]  # projected torso axis, downwards
    dn = D / (np.linalg.norm(D) + 1e-9)
    torso = mask("torso")
    style = int(colors.get("front_style", np.array([0]))[0])
    shirt = colors["shirt"]

    # ------------------------------------------------------------------ chest
    if f_chest[2] > 0.15:  # the chest faces the camera
        neck0 = xy[idx["thorax"]] + depth * f_chest[:2] - 0.01 * hgt * dn
        vee = [neck0 + 0.55 * A, neck0 - 0.55 * A, neck0 + 0.2 * D]
        fill_masked(image, torso, x0, y0, [np.array(vee)], _shade(colors["skin"], 1.0))
        if style == 0:  # button placket: a dark line with light buttons
            top, bot = neck0 + 0.2 * D, xy[idx["pelvis"]] + depth * f_hips[:2] - 0.12 * D
            half = dn[::-1] * np.array([1, -1]) * max(0.8, 0.012 * hgt)
            fill_masked(image, torso, x0, y0, [np.array([top + half, top - half, bot - half, bot + half])],
                  _shade(shirt, 0.45))
            r = max(0.7, 0.011 * hgt)
            fill_masked(image, torso, x0, y0, [], _shade(np.array([235.0, 235.0, 235.0]), 1.0),
                  tuple((top + (bot - top) * t, (r, r), 0.0) for t in (0.15, 0.45, 0.75)))
        else:  # open jacket: a band of undershirt down the front
            top, bot = neck0 + 0.1 * D, xy[idx["pelvis"]] + depth * f_hips[:2] - 0.08 * D
            half = 0.28 * A * max(0.35, f_chest[2])
            fill_masked(image, torso, x0, y0, [np.array([top + half, top - half, bot - half, bot + half])],
                  _shade(colors["shirt2"], 1.0))
    elif f_chest[2] < -0.15:  # the back: a collar band across the top, a seam down the spine
        neck0 = xy[idx["thorax"]] - depth * f_chest[:2] - 0.02 * hgt * dn
        band = [neck0 + 0.6 * A, neck0 - 0.6 * A, neck0 - 0.6 * A + 0.09 * D, neck0 + 0.6 * A + 0.09 * D]
        fill_masked(image, mask("torso", "neck"), x0, y0, [np.array(band)], _shade(shirt, 0.6))

    # ------------------------------------------------------------------ waist
    waist = xy[idx["pelvis"]] - 0.22 * D  # trousers reach the waist
    band_lo = xy[idx["pelvis"]] + 0.05 * D
    ext = 1.6
    trousers = [np.array([waist + ext * Ah, waist - ext * Ah, band_lo - ext * Ah, band_lo + ext * Ah])]
    fill_masked(image, torso, x0, y0, trousers, _shade(colors["pants"], 1.0))
    if f_hips[2] > 0.15:  # belt buckle and fly in front
        c = waist + depth * f_hips[:2] + 0.04 * D
        bw, bh = max(1.0, 0.03 * hgt), max(0.8, 0.018 * hgt)
        ang = math.degrees(math.atan2(Ah[1], Ah[0]))
        fill_masked(image, torso, x0, y0, [], _shade(np.array([200.0, 215.0, 225.0]), 1.0), ((c, (bw, bh), ang),))
        fly_top, fly_bot = c + 0.08 * D, xy[idx["pelvis"]] + depth * f_hips[:2] + 0.1 * D
        half = dn[::-1] * np.array([1, -1]) * max(0.6, 0.007 * hgt)
        fill_masked(image, mask("torso", "l_thigh", "r_thigh"), x0, y0,
              [np.array([fly_top + half, fly_top - half, fly_bot - half, fly_bot + half])],
              _shade(colors["pants"], 0.5))
    elif f_hips[2] < -0.15:  # back pockets over the seat
        for s in (1.0, -1.0):
            c = xy[idx["pelvis"]] - depth * f_hips[:2] + s * 0.55 * Ah + 0.12 * D
            u = Ah / (np.linalg.norm(Ah) + 1e-9) * 0.05 * hgt * max(0.35, -f_hips[2])
            v = dn * 0.055 * hgt
            quad = np.array([c - u - v * 0.5, c + u - v * 0.5, c + 0.8 * u + v * 0.5, c - 0.8 * u + v * 0.5])
            fill_masked(image, mask("torso", "l_thigh", "r_thigh"), x0, y0, [quad], _shade(colors["pants"], 0.55))

    # ------------------------------------------------------------------ shoes
    for side in "lr":
        an = P[idx[f"{side}_ankle"]]
        shoe = mask(f"{side}_shoe")
        if not shoe.any():
            continue
        c = an[:2] + np.array([0.0, 0.012 * hgt])
        sole = [np.array([c + [-0.05 * hgt, 0.012 * hgt], c + [0.05 * hgt, 0.012 * hgt],
                          c + [0.05 * hgt, 0.03 * hgt], c + [-0.05 * hgt, 0.03 * hgt]])]
        fill_masked(image, shoe, x0, y0, sole, _shade(np.array([225.0, 225.0, 225.0]), 1.0))
        if f_hips[2] > 0.3:  # laces/tongue face the camera
            fill_masked(image, shoe, x0, y0, [], _shade(colors["shoe"] * 0.4 + 150, 1.0),
                  ((c + [0.0, -0.004 * hgt], (0.016 * hgt, 0.012 * hgt), 0.0),))
        elif f_hips[2] < -0.3:  # a dark heel counter
            fill_masked(image, shoe, x0, y0, [], _shade(colors["shoe"], 0.35),
                  ((c + [0.0, -0.002 * hgt], (0.024 * hgt, 0.014 * hgt), 0.0),))
