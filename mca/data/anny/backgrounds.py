"""Backgrounds, occluders and camera effects for the Anny renderer (NumPy + OpenCV).

Backgrounds are procedural only: the seven shared real photos are held out for evaluation and never used.
The main kind is a ground plane seen through the person's own camera (tiles, planks, grass, asphalt, carpet,
sand; fading with distance) under a wall (bricks, paint, panels, windows) or a sky with buildings, so people
stand on a floor in the right perspective and cast a shadow on it; the rest are cluttered 2-D layouts (the
project's existing synthetic backgrounds) and blurred noise fields.
"""

from __future__ import annotations

import cv2
import numpy as np

from mca.data.anny.raster import Camera

__all__ = ["ground_background", "flat_background", "draw_occluders", "finish", "value_noise"]


def value_noise(rng: np.random.Generator, h: int, w: int, cells: int, octaves: int = 3) -> np.ndarray:
    """Smooth noise in 0..1 (sum of upsampled random grids)."""
    out = np.zeros((h, w), np.float32)
    amp, tot = 1.0, 0.0
    for o in range(octaves):
        c = max(2, cells * 2 ** o)
        g = rng.random((c, max(2, int(c * w / max(h, 1))))).astype(np.float32)
        out += amp * cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
        tot += amp
        amp *= 0.5
    return np.clip(out / tot, 0, 1)


def _col(rng: np.random.Generator, lo: float = 0.1, hi: float = 0.9) -> np.ndarray:
    return rng.uniform(lo, hi, 3).astype(np.float32)


def _floor_texture(rng: np.random.Generator, gx: np.ndarray, gy: np.ndarray, h: int, w: int) -> np.ndarray:
    """Colour (h, w, 3) of ground points (metres) for one random floor kind."""
    kind = rng.choice(["tiles", "planks", "grass", "asphalt", "carpet", "sand"])
    n = value_noise(rng, h, w, 6)
    if kind == "tiles":
        s = rng.uniform(0.3, 1.0)
        c1, c2 = _col(rng), _col(rng)
        chk = ((np.floor(gx / s) + np.floor(gy / s)) % 2)[..., None] if rng.random() < 0.5 else 0.0
        base = c1 * (1 - chk) + c2 * chk if not np.isscalar(chk) else np.broadcast_to(c1, (h, w, 3))
        grout = ((np.abs((gx / s) % 1 - 0.5) > 0.47) | (np.abs((gy / s) % 1 - 0.5) > 0.47))[..., None]
        img = np.where(grout, c1 * 0.5, base)
    elif kind == "planks":
        s = rng.uniform(0.1, 0.25)
        c = np.array([0.25, 0.45, 0.65], np.float32) * rng.uniform(0.5, 1.3)
        row = np.floor(gy / s)
        grain = 0.85 + 0.15 * np.sin(gx * rng.uniform(20, 60) + row * 7.1)
        img = c * grain[..., None] * (0.8 + 0.2 * np.sin(row * 3.7))[..., None]
        img = np.where((np.abs((gy / s) % 1 - 0.5) > 0.47)[..., None], c * 0.4, img)
    elif kind == "grass":
        c = np.array([0.2, 0.55, 0.3], np.float32) * rng.uniform(0.6, 1.2)
        img = c * (0.6 + 0.6 * n)[..., None]
    elif kind == "asphalt":
        c = np.full(3, rng.uniform(0.25, 0.55), np.float32)
        img = c * (0.8 + 0.3 * n)[..., None]
        if rng.random() < 0.4:  # painted lines
            img = np.where((np.abs(gx % rng.uniform(2, 5)) < 0.1)[..., None], np.float32(0.85), img)
    elif kind == "carpet":
        img = _col(rng) * (0.85 + 0.2 * n)[..., None]
    else:
        img = np.array([0.55, 0.75, 0.85], np.float32) * rng.uniform(0.7, 1.1) * (0.85 + 0.25 * n)[..., None]
    return np.asarray(img, np.float32)


def _wall(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A wall, or a sky with buildings, filling (h, w)."""
    kind = rng.choice(["paint", "bricks", "panels", "sky", "foliage"])
    n = value_noise(rng, h, w, 4)
    if kind == "sky":
        top, bot = np.array([0.9, 0.6, 0.35], np.float32) * rng.uniform(0.7, 1.1), _col(rng, 0.6, 0.95)
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        img = top * (1 - t) + bot * t + np.zeros((1, w, 1), np.float32)
        x = 0
        while x < w:  # buildings
            bw = int(rng.integers(max(4, w // 12), max(8, w // 3)))
            bh = int(rng.uniform(0.2, 0.9) * h)
            c = _col(rng, 0.15, 0.7)
            img[h - bh:, x:x + bw] = c
            for _ in range(int(rng.integers(0, 12))):
                wx, wy = x + int(rng.integers(0, max(1, bw))), h - int(rng.integers(0, max(1, bh)))
                img[max(0, wy - 4):wy, wx:wx + 4] = c * 0.5
            x += bw + int(rng.integers(0, max(1, w // 10)))
        return img
    c = _col(rng)
    img = c * (0.85 + 0.25 * n)[..., None]
    if kind == "bricks":
        bh = int(rng.integers(4, 14))
        bw = bh * 2 + int(rng.integers(0, 6))
        yy, xx = np.mgrid[0:h, 0:w]
        row = yy // bh
        mortar = (yy % bh == 0) | (((xx + (row % 2) * bw // 2) % bw) == 0)
        img = np.where(mortar[..., None], np.float32(0.75), img * (0.9 + 0.2 * rng.random((1, 1, 3))))
    elif kind == "panels":
        for _ in range(int(rng.integers(2, 8))):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            img[y0:y0 + int(rng.integers(h // 8, h // 2 + 1)), x0:x0 + int(rng.integers(w // 10, w // 3 + 1))] = \
                _col(rng)
    elif kind == "foliage":
        img = np.array([0.2, 0.45, 0.25], np.float32) * (0.4 + 0.9 * value_noise(rng, h, w, 16))[..., None]
    return np.asarray(img, np.float32)


def ground_background(rng: np.random.Generator, cam: Camera, ground_z: float) -> tuple[np.ndarray, np.ndarray]:
    """A floor at height ``ground_z`` seen by ``cam`` under a wall or sky; float BGR (h, w, 3) in 0..1 and the
    floor mask (where shadows may fall)."""
    w, h = cam.size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.stack([(xx - cam.c[0]) / cam.f, (yy - cam.c[1]) / cam.f, np.ones_like(xx)], -1) @ cam.R.astype(np.float32)
    dz = d[..., 2]
    height = cam.t[2] - ground_z
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(dz < -1e-4, height / -dz, np.inf)
    dist_max = rng.uniform(6, 40)
    floor = np.isfinite(t) & (t * np.linalg.norm(d, axis=-1) < dist_max)
    gx = np.where(floor, cam.t[0] + t * d[..., 0], 0).astype(np.float32)
    gy = np.where(floor, cam.t[1] + t * d[..., 1], 0).astype(np.float32)
    img = _wall(rng, h, w)
    fl = _floor_texture(rng, gx, gy, h, w)
    fog = np.clip(np.where(floor, t / dist_max, 1), 0, 1)[..., None] ** 2
    fl = fl * (1 - 0.6 * fog) + img * 0.6 * fog
    img = np.where(floor[..., None], fl, img)
    if floor.any() and (~floor).any():  # a skirting board / kerb where the floor meets the wall
        edge = cv2.dilate(floor.astype(np.uint8), np.ones((3, 3), np.uint8)) - floor.astype(np.uint8)
        img[edge > 0] *= 0.6
    return img.astype(np.float32), floor


def flat_background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A cluttered 2-D background (the project's synthetic ones) or a blurred noise field; float BGR 0..1."""
    if rng.random() < 0.6:
        from mca.data.synthetic import make_background

        return make_background(rng, w, h).astype(np.float32) / 255.0
    img = np.stack([value_noise(rng, h, w, int(rng.integers(2, 10))) for _ in range(3)], -1)
    img = img * rng.uniform(0.4, 1.0, 3) + rng.uniform(0, 0.4, 3)
    return cv2.GaussianBlur(img.astype(np.float32), (0, 0), rng.uniform(0.5, 4))


def draw_occluders(rng: np.random.Generator, img: np.ndarray, label: np.ndarray, n: int, near: np.ndarray | None,
                   occ_id: int) -> None:
    """``n`` objects drawn over everything (poles, boxes, a table edge, blobs, sticks), each also written into
    ``label`` (``occ_id``) at its scale, so the joints they cover become invisible.  ``near``: a box (xyxy in
    image pixels) they prefer to overlap."""
    h, w = img.shape[:2]
    s = label.shape[0] / h
    for _ in range(n):
        col = tuple(float(v) for v in rng.uniform(0.05, 0.95, 3))
        if near is not None and rng.random() < 0.8:
            x0, y0, x1, y1 = near
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            size = max(x1 - x0, y1 - y0)
        else:
            cx, cy, size = rng.uniform(0, w), rng.uniform(0, h), min(w, h) * 0.6
        kind = rng.choice(["pole", "box", "table", "blob", "stick"], p=[0.3, 0.27, 0.05, 0.2, 0.18])
        if kind == "pole":
            hw = size * rng.uniform(0.015, 0.06)
            poly = np.array([[cx - hw, -1], [cx + hw, -1], [cx + hw, h + 1], [cx - hw, h + 1]])
        elif kind == "box":
            bw, bh = size * rng.uniform(0.05, 0.22), size * rng.uniform(0.05, 0.22)
            poly = np.array([[cx - bw, cy - bh], [cx + bw, cy - bh], [cx + bw, cy + bh], [cx - bw, cy + bh]])
        elif kind == "table":
            top = max(cy, near[1] + 0.45 * (near[3] - near[1])) if near is not None else cy
            poly = np.array([[-1, top], [w + 1, top + rng.normal(0, 3)], [w + 1, h + 1], [-1, h + 1]])
        elif kind == "blob":
            r = size * rng.uniform(0.04, 0.15)
            a = np.sort(rng.uniform(0, 2 * np.pi, 9))
            rr = r * rng.uniform(0.6, 1.3, 9)
            poly = np.stack([cx + rr * np.cos(a), cy + rr * np.sin(a)], 1)
        else:
            a = rng.uniform(0, np.pi)
            L, t = size * rng.uniform(0.2, 0.6), size * rng.uniform(0.015, 0.04)
            d, nrm = np.array([np.cos(a), np.sin(a)]) * L / 2, np.array([-np.sin(a), np.cos(a)]) * t
            c = np.array([cx, cy])
            poly = np.array([c - d - nrm, c + d - nrm, c + d + nrm, c - d + nrm])
        pts = np.round(poly * 16).astype(np.int32)
        cover = np.zeros((h, w), np.float32)
        cv2.fillPoly(cover, [pts], 1.0, cv2.LINE_AA, shift=4)
        shade = 0.75 + 0.4 * value_noise(rng, h, w, int(rng.integers(2, 12)), 2)
        if rng.random() < 0.5:  # lit from one side
            shade = shade * np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0), w, dtype=np.float32)[None]
        tex = np.asarray(col, np.float32) * shade[..., None]
        img[:] = img * (1 - cover[..., None]) + tex * cover[..., None]
        cv2.fillPoly(label, [np.round(poly * s * 16).astype(np.int32)], int(occ_id), cv2.LINE_8, shift=4)


def finish(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Camera effects on a float BGR image: exposure, white balance, gamma, vignette, blur (focus or motion),
    sensor noise, JPEG; returns uint8."""
    h, w = img.shape[:2]
    out = img * rng.uniform(0.75, 1.25) * rng.uniform(0.9, 1.1, 3) + rng.uniform(-0.05, 0.05)
    out = np.clip(out, 0, 1) ** rng.uniform(0.8, 1.25)
    if rng.random() < 0.4 * strength:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2
        out = out * (1 - rng.uniform(0.1, 0.5) * r2)[..., None]
    u8 = np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)
    r = rng.random()
    if r < 0.25 * strength:
        u8 = cv2.GaussianBlur(u8, (0, 0), rng.uniform(0.4, 1.5))
    elif r < 0.35 * strength:  # motion blur
        k = int(rng.integers(3, 8))
        ker = np.zeros((k, k), np.float32)
        ker[k // 2] = 1.0 / k
        rm = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), rng.uniform(0, 180), 1.0)
        ker = cv2.warpAffine(ker, rm, (k, k))
        u8 = cv2.filter2D(u8, -1, ker / max(ker.sum(), 1e-6))
    if rng.random() < 0.5 * strength:
        noise = rng.normal(0, rng.uniform(1, 7), (h, w, 1 if rng.random() < 0.5 else 3))
        u8 = np.clip(u8 + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.4 * strength:
        ok, enc = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 90))])
        if ok:
            u8 = cv2.imdecode(enc, cv2.IMREAD_COLOR)
    return u8
