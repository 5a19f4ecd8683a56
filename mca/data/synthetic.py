"""Synthetic people: seeded scenes and videos of shaded human figures with exact labels.

No real pose data can be downloaded on the machines this project is built on, so
this renderer is its source of labelled people: it trains the bundled demo
models and is the realtime pipeline's ``demo`` source.  NumPy + OpenCV only.

A person is a 3-D kinematic skeleton (realistic proportions, joint limits, body
yaw, lean, head turn) projected orthographically; body parts are drawn as
shaded, tapered capsules and a torso box, back to front.  A per-pixel label map
drawn with the same polygons decides visibility: a joint is visible when the
pixel under it belongs to a body part adjacent to that joint (so self-occlusion,
other people and occluding objects all hide it) and lies inside the frame.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from mca.data import cues as _cues
from mca.joints import JointSet, get_joint_set

log = logging.getLogger(__name__)

__all__ = ["Person", "Scene", "SceneRenderer", "VideoRenderer", "SKELETON_JOINTS", "main"]

# ----------------------------------------------------------------------------- skeleton
SKELETON_JOINTS = (
    "head_top", "upper_neck", "nose", "l_eye", "r_eye", "l_ear", "r_ear", "thorax",
    "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
    "pelvis", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle", "head_center",
)
J = {n: i for i, n in enumerate(SKELETON_JOINTS)}

# Body parts: (name, joint a, joint b, width as a fraction of body height, colour slot)
PARTS = (
    ("l_thigh", "l_hip", "l_knee", 0.070, "pants"), ("r_thigh", "r_hip", "r_knee", 0.070, "pants"),
    ("l_shin", "l_knee", "l_ankle", 0.052, "pants"), ("r_shin", "r_knee", "r_ankle", 0.052, "pants"),
    ("l_upper_arm", "l_shoulder", "l_elbow", 0.048, "sleeve"), ("r_upper_arm", "r_shoulder", "r_elbow", 0.048, "sleeve"),
    ("l_forearm", "l_elbow", "l_wrist", 0.038, "forearm"), ("r_forearm", "r_elbow", "r_wrist", 0.038, "forearm"),
    ("neck", "thorax", "upper_neck", 0.045, "skin"),
)
PART_IDS = {name: i + 1 for i, name in enumerate(
    [p[0] for p in PARTS] + ["torso", "head", "l_hand", "r_hand", "l_shoe", "r_shoe"])}

# Which parts may cover each joint for it to count as visible.
ADJACENT = {
    "head_top": ("head",), "upper_neck": ("neck", "head"), "nose": ("head",), "l_eye": ("head",),
    "r_eye": ("head",), "l_ear": ("head",), "r_ear": ("head",), "thorax": ("torso", "neck"),
    "l_shoulder": ("torso", "l_upper_arm"), "r_shoulder": ("torso", "r_upper_arm"),
    "l_elbow": ("l_upper_arm", "l_forearm"), "r_elbow": ("r_upper_arm", "r_forearm"),
    "l_wrist": ("l_forearm", "l_hand"), "r_wrist": ("r_forearm", "r_hand"),
    "pelvis": ("torso", "l_thigh", "r_thigh"), "l_hip": ("torso", "l_thigh"), "r_hip": ("torso", "r_thigh"),
    "l_knee": ("l_thigh", "l_shin"), "r_knee": ("r_thigh", "r_shin"),
    "l_ankle": ("l_shin", "l_shoe"), "r_ankle": ("r_shin", "r_shoe"), "head_center": ("head",),
}

# Each joint set's joints in terms of the skeleton.
_SET_MAP = {
    "mpii16": ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "upper_neck",
               "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist"),
    "coco17": ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
               "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle"),
}

SKIN_TONES = np.array([[224, 200, 255], [180, 190, 240], [150, 170, 225], [110, 140, 200], [90, 120, 170],
                       [70, 90, 140], [50, 65, 100], [40, 50, 75]], np.float32)  # BGR
HAIR = np.array([[20, 20, 25], [30, 45, 70], [40, 70, 120], [90, 140, 190], [150, 150, 150], [25, 30, 40]], np.float32)


@dataclass
class Pose:
    """Angles (degrees) of one body; all within joint limits."""

    yaw: float = 0.0  # 0 = facing the camera
    lean: float = 0.0  # forward
    side_lean: float = 0.0
    head_yaw: float = 0.0
    head_pitch: float = 0.0
    arm_abd: tuple[float, float] = (10.0, 10.0)  # (left, right), 0 = down, 180 = up
    arm_flex: tuple[float, float] = (0.0, 0.0)  # forward swing
    elbow: tuple[float, float] = (10.0, 10.0)
    hip_flex: tuple[float, float] = (0.0, 0.0)
    hip_abd: tuple[float, float] = (5.0, 5.0)
    knee: tuple[float, float] = (5.0, 5.0)


LIMITS = dict(arm_abd=(0, 175), arm_flex=(-50, 170), elbow=(0, 150), hip_flex=(-25, 110), hip_abd=(0, 45),
              knee=(0, 140), lean=(-10, 35), side_lean=(-15, 15), head_yaw=(-60, 60), head_pitch=(-25, 25))


def _clip_pose(p: Pose) -> Pose:
    for k, (lo, hi) in LIMITS.items():
        v = getattr(p, k)
        setattr(p, k, tuple(float(np.clip(x, lo, hi)) for x in v) if isinstance(v, tuple) else float(np.clip(v, lo, hi)))
    return p


def _rot_y(deg: float) -> np.ndarray:
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_x(deg: float) -> np.ndarray:
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_z(deg: float) -> np.ndarray:
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _limb_dir(abd: float, flex: float, side: float) -> np.ndarray:
    a, f = math.radians(abd), math.radians(flex)
    return np.array([side * math.sin(a), math.cos(a) * math.cos(f), math.cos(a) * math.sin(f)])


def _bend(u: np.ndarray, toward: np.ndarray, deg: float) -> np.ndarray:
    v = toward - (toward @ u) * u
    n = np.linalg.norm(v)
    v = v / n if n > 1e-6 else np.array([0.0, -1.0, 0.0])
    t = math.radians(deg)
    return math.cos(t) * u + math.sin(t) * v


@dataclass(frozen=True)
class Build:
    """Per-person body proportions (fractions of height) and look."""

    shoulder: float = 0.115
    hip: float = 0.085
    upper_arm: float = 0.17
    forearm: float = 0.155
    thigh: float = 0.245
    shin: float = 0.235
    torso: float = 0.29
    girth: float = 1.0


def skeleton_3d(pose: Pose, build: Build) -> np.ndarray:
    """Joint positions (len(SKELETON_JOINTS), 3), body height 1, pelvis at the origin; y down, z towards camera."""
    P = np.zeros((len(SKELETON_JOINTS), 3))
    b = build
    upper = _rot_z(-pose.side_lean) @ _rot_x(-pose.lean)  # lean forward brings the chest towards +z
    P[J["thorax"]] = upper @ [0, -b.torso, 0]
    P[J["upper_neck"]] = upper @ [0, -b.torso - 0.055, 0]
    head = upper @ _rot_y(pose.head_yaw) @ _rot_x(-pose.head_pitch)
    hc = P[J["upper_neck"]] + upper @ [0, -0.075, 0]
    P[J["head_center"]] = hc
    P[J["head_top"]] = hc + head @ [0, -0.072, 0]
    P[J["nose"]] = hc + head @ [0, 0.008, 0.07]
    for side, s in (("l", 1.0), ("r", -1.0)):
        P[J[f"{side}_eye"]] = hc + head @ [s * 0.027, -0.012, 0.06]
        P[J[f"{side}_ear"]] = hc + head @ [s * 0.068, -0.002, 0.0]
        i = 0 if side == "l" else 1
        sh = upper @ [s * b.shoulder, -b.torso + 0.02, 0]
        P[J[f"{side}_shoulder"]] = sh
        ua = upper @ _limb_dir(pose.arm_abd[i], pose.arm_flex[i], s)
        el = sh + b.upper_arm * ua
        P[J[f"{side}_elbow"]] = el
        fa = _bend(ua, upper @ np.array([0.0, -0.3, 1.0]), pose.elbow[i])
        P[J[f"{side}_wrist"]] = el + b.forearm * fa
        hp = np.array([s * b.hip, 0.0, 0.0])
        P[J[f"{side}_hip"]] = hp
        th = _limb_dir(pose.hip_abd[i], pose.hip_flex[i], s)
        kn = hp + b.thigh * th
        P[J[f"{side}_knee"]] = kn
        sn = _bend(th, np.array([0.0, 0.2, -1.0]), pose.knee[i])
        P[J[f"{side}_ankle"]] = kn + b.shin * sn
    return P @ _rot_y(pose.yaw).T


# ----------------------------------------------------------------------------- data
@dataclass
class Person:
    """One rendered person: joints in the renderer's joint set, in frame pixels."""

    joints: np.ndarray  # (K, 2) float32
    visible: np.ndarray  # (K,) bool
    box: np.ndarray  # (4,) float32 xyxy, tight around the drawn body, clipped to the frame
    track_id: int = 0
    height_px: float = 0.0
    yaw: float = float("nan")  # body turn in degrees, 0 = facing the camera, +-180 = its back (nan: not rendered so)


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 BGR
    people: list[Person] = field(default_factory=list)
    index: int = 0


@dataclass
class _Figure:
    """A person to draw: skeleton in pixels + look."""

    pts: np.ndarray  # (J, 3) pixel x, y and depth (larger = nearer)
    height: float
    colors: dict[str, np.ndarray]
    girth: float
    pattern: int
    track_id: int


def _capsule(a: np.ndarray, b: np.ndarray, r0: float, r1: float, n: int = 8) -> np.ndarray:
    """Polygon of a tapered capsule from a (radius r0) to b (radius r1)."""
    d = b - a
    L = float(np.hypot(*d))
    ang = math.atan2(d[1], d[0]) if L > 1e-6 else 0.0
    t0 = np.linspace(ang + math.pi / 2, ang + 3 * math.pi / 2, n)
    t1 = np.linspace(ang - math.pi / 2, ang + math.pi / 2, n)
    c0 = a + r0 * np.stack([np.cos(t0), np.sin(t0)], 1)
    c1 = b + r1 * np.stack([np.cos(t1), np.sin(t1)], 1)
    return np.concatenate([c0, c1])


def _shade(color: np.ndarray, f: float) -> tuple[int, int, int]:
    c = np.clip(color * f, 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


class _Canvas:
    """Colour image + label map drawn with the same polygons."""

    SHIFT = 2  # sub-pixel bits for cv2 drawing

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.label = np.zeros(image.shape[:2], np.uint16)
        self.extent: dict[int, np.ndarray] = {}  # label // 32 -> xyxy of all it drew, occluded later or not

    def _grow(self, label: int, lo: np.ndarray, hi: np.ndarray) -> None:
        e = np.array([lo[0], lo[1], hi[0], hi[1]], np.float64)
        old = self.extent.get(int(label) // 32)
        if old is not None:
            e = np.concatenate([np.minimum(old[:2], e[:2]), np.maximum(old[2:], e[2:])])
        self.extent[int(label) // 32] = e

    def poly(self, pts: np.ndarray, color: np.ndarray, label: int, shade: bool = True) -> None:
        p = np.round(pts * (1 << self.SHIFT)).astype(np.int32)
        cv2.fillPoly(self.image, [p], _shade(color, 1.0), cv2.LINE_AA, self.SHIFT)
        cv2.fillPoly(self.label, [p], int(label), cv2.LINE_8, self.SHIFT)
        self._grow(label, pts.min(0), pts.max(0))
        if shade:
            cv2.polylines(self.image, [p], True, _shade(color, 0.6), 1, cv2.LINE_AA, self.SHIFT)

    def ellipse(self, c: np.ndarray, axes: tuple[float, float], angle: float, color: np.ndarray, label: int) -> None:
        s = 1 << self.SHIFT
        cc = (int(round(c[0] * s)), int(round(c[1] * s)))
        ax = (max(1, int(round(axes[0] * s))), max(1, int(round(axes[1] * s))))
        cv2.ellipse(self.image, cc, ax, angle, 0, 360, _shade(color, 1.0), -1, cv2.LINE_AA, self.SHIFT)
        cv2.ellipse(self.label, cc, ax, angle, 0, 360, int(label), -1, cv2.LINE_8, self.SHIFT)
        t = math.radians(angle)
        ex = math.hypot(axes[0] * math.cos(t), axes[1] * math.sin(t))
        ey = math.hypot(axes[0] * math.sin(t), axes[1] * math.cos(t))
        self._grow(label, np.asarray(c[:2]) - (ex, ey), np.asarray(c[:2]) + (ex, ey))
        cv2.ellipse(self.image, cc, ax, angle, 0, 360, _shade(color, 0.6), 1, cv2.LINE_AA, self.SHIFT)


def _draw_figure(cv: _Canvas, fig: _Figure, person_slot: int) -> None:
    """Draw one person back to front; labels = person_slot * 32 + part id."""
    P, h, col = fig.pts, fig.height, fig.colors
    base = person_slot * 32

    def pid(name: str) -> int:
        return base + PART_IDS[name]

    items: list[tuple[float, str]] = []
    for name, a, b, _w, _c in PARTS:
        items.append(((P[J[a], 2] + P[J[b], 2]) / 2, name))
    torso_z = (P[J["l_shoulder"], 2] + P[J["r_shoulder"], 2] + P[J["l_hip"], 2] + P[J["r_hip"], 2]) / 4
    items.append((torso_z, "torso"))
    items.append((P[J["head_center"], 2], "head"))
    for s in "lr":
        items.append((P[J[f"{s}_wrist"], 2] + 1e-3, f"{s}_hand"))
        items.append((P[J[f"{s}_ankle"], 2] + 1e-3, f"{s}_shoe"))
    items.sort(key=lambda t: t[0])
    xy = P[:, :2]
    for _z, name in items:
        if name == "torso":
            # A box of depth around shoulders and hips, projected: its hull is the torso's outline.
            sh_l, sh_r, hp_l, hp_r = xy[J["l_shoulder"]], xy[J["r_shoulder"]], xy[J["l_hip"]], xy[J["r_hip"]]
            w = 0.05 * h * fig.girth
            quad = np.array([sh_l, sh_r, hp_r, hp_l])
            centre = quad.mean(0)
            grow = quad + (quad - centre) * 0.08
            extra = [centre + (sh_l - sh_r) * 0.0 + np.array([0, -0.02 * h])]
            pts = np.vstack([grow, extra, grow + [w * 0.35, 0], grow - [w * 0.35, 0]])
            hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
            cv.poly(hull, col["shirt"], pid("torso"))
            if fig.pattern == 1:  # stripes clipped to the torso through the label map
                _stripes(cv, hull, col["shirt2"], pid("torso"), max(2, int(0.02 * h)))
        elif name == "head":
            c = xy[J["head_center"]]
            r = 0.068 * h
            cv.ellipse(c, (r * 0.86, r), 0, col["skin"], pid("head"))
            _draw_face(cv, fig, c, r, pid("head"))
        elif name.endswith("_hand"):
            s = name[0]
            wr, el = xy[J[f"{s}_wrist"]], xy[J[f"{s}_elbow"]]
            d = wr - el
            n = float(np.hypot(*d)) or 1.0
            c = wr + d / n * 0.022 * h
            cv.ellipse(c, (0.03 * h, 0.022 * h), math.degrees(math.atan2(d[1], d[0])), col["skin"], pid(name))
        elif name.endswith("_shoe"):
            s = name[0]
            an = xy[J[f"{s}_ankle"]]
            fwd = np.array([math.sin(math.radians(fig.colors["yaw"][0])), 0.0]) * 0.04 * h
            c = an + fwd * 0.6 + np.array([0, 0.012 * h])
            cv.ellipse(c, (0.04 * h * (0.55 + 0.45 * abs(fwd[0]) / (0.04 * h + 1e-9)), 0.022 * h), 0, col["shoe"], pid(name))
        else:
            _n, a, b, w, slot = next(p for p in PARTS if p[0] == name)
            r0 = 0.5 * w * h * fig.girth
            r1 = r0 * 0.82
            color = col[slot]
            cv.poly(_capsule(xy[J[a]], xy[J[b]], r0, r1), color, pid(name))
            # a highlight stripe down the limb: cheap shading that reads as volume
            hl = _capsule(xy[J[a]] - [r0 * 0.25, r0 * 0.25], xy[J[b]] - [r1 * 0.25, r1 * 0.25], r0 * 0.35, r1 * 0.3, 6)
            p = np.round(hl * 4).astype(np.int32)
            cv2.fillPoly(cv.image, [p], _shade(color, 1.18), cv2.LINE_AA, 2)
    _cues.draw_cues(cv.image, cv.label, P, J, h, fig.girth, col, {n: pid(n) for n in PART_IDS})


def _stripes(cv: _Canvas, hull: np.ndarray, color: np.ndarray, label: int, period: int) -> None:
    x0, y0 = np.floor(hull.min(0)).astype(int)
    x1, y1 = np.ceil(hull.max(0)).astype(int) + 1
    H, W = cv.label.shape
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if x1 <= x0 or y1 <= y0:
        return
    roi = cv.image[y0:y1, x0:x1]
    mask = (cv.label[y0:y1, x0:x1] == label) & ((np.arange(y0, y1)[:, None] // period) % 2 == 0)
    roi[mask] = _shade(color, 1.0)


def _draw_face(cv: _Canvas, fig: _Figure, c: np.ndarray, r: float, head_label: int) -> None:
    """Hair, and a face on the side the head faces: what tells front from back at the head (see mca.data.cues)."""
    P, col = fig.pts, fig.colors
    facing = P[J["nose"], 2] > P[J["head_center"], 2]
    hair = col["hair"]
    s = 1 << cv.SHIFT
    cc = (int(round(c[0] * s)), int(round(c[1] * s)))
    ax = (max(1, int(round(r * 0.9 * s))), max(1, int(round(r * 1.03 * s))))
    if not facing:  # the back of the head: all hair
        cv2.ellipse(cv.image, cc, ax, 0, 0, 360, _shade(hair, 1.0), -1, cv2.LINE_AA, cv.SHIFT)
        return
    # a cap on the top, and the back of the head behind the face in a turned head (clipped to the head)
    n = P[J["nose"], :2]
    back = c - 1.3 * (n - c) - np.array([0.0, 0.25 * r])
    x0, y0 = max(int(c[0] - 1.2 * r), 0), max(int(c[1] - 1.2 * r), 0)
    x1, y1 = min(int(c[0] + 1.2 * r) + 2, cv.label.shape[1]), min(int(c[1] + 1.2 * r) + 2, cv.label.shape[0])
    if x1 > x0 and y1 > y0:
        head = (cv.label[y0:y1, x0:x1] == head_label).astype(np.float32)
        _cues.fill_masked(cv.image, head, x0, y0, [], _shade(hair, 1.0),
                    ((c - np.array([0.0, 0.55 * r]), (r * 0.95, r * 0.6), 0.0), (back, (r * 0.95, r * 1.05), 0.0)))
    if r < 3:
        return
    white, dark = np.array([235, 240, 245], np.float32), np.array([25, 25, 35], np.float32)
    for side in "lr":
        e = P[J[f"{side}_eye"]]
        if e[2] > P[J["head_center"], 2] - 0.2 * r:
            ec = (int(round(e[0] * s)), int(round(e[1] * s)))
            cv2.ellipse(cv.image, ec, (max(1, int(round(0.2 * r * s))), max(1, int(round(0.12 * r * s)))), 0, 0, 360,
                        _shade(white, 1.0), -1, cv2.LINE_AA, cv.SHIFT)
            cv2.circle(cv.image, ec, max(1, int(round(0.09 * r * s))), _shade(dark, 1.0), -1, cv2.LINE_AA, cv.SHIFT)
            b0 = e[:2] + np.array([-0.2 * r, -0.25 * r])
            b1 = e[:2] + np.array([0.2 * r, -0.27 * r])
            cv2.line(cv.image, (int(round(b0[0] * s)), int(round(b0[1] * s))), (int(round(b1[0] * s)), int(round(b1[1] * s))),
                     _shade(hair, 0.8), max(1, int(round(0.07 * r))), cv2.LINE_AA, cv.SHIFT)
    tip = n + (n - c) * 0.15
    cv2.line(cv.image, (int(round(n[0] * s)), int(round(n[1] * s))), (int(round(tip[0] * s)), int(round(tip[1] * s))),
             _shade(col["skin"], 0.7), max(1, int(round(0.08 * r))), cv2.LINE_AA, cv.SHIFT)
    m = c + (n - c) * 0.55 + np.array([0, 0.45 * r])
    cv2.ellipse(cv.image, (int(round(m[0] * s)), int(round(m[1] * s))),
                (max(1, int(round(0.28 * r * s))), max(1, int(round(0.09 * r * s)))), 0, 0, 360,
                (60, 60, 150), -1, cv2.LINE_AA, cv.SHIFT)


# ----------------------------------------------------------------------------- scenes
def _noise_texture(rng: np.random.Generator, h: int, w: int, scale: int) -> np.ndarray:
    small = rng.random((max(2, h // scale), max(2, w // scale), 3)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def make_background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Cluttered procedural background: gradient, textures, shapes, a horizon."""
    c0, c1 = rng.uniform(30, 230, 3), rng.uniform(30, 230, 3)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = (c0 * (1 - t) + c1 * t) * np.ones((1, w, 1), np.float32)
    img += (_noise_texture(rng, h, w, int(rng.integers(8, 64))) - 0.5) * rng.uniform(20, 90)
    if rng.random() < 0.7:  # floor
        y = int(h * rng.uniform(0.45, 0.8))
        img[y:] = img[y:] * 0.6 + rng.uniform(40, 200, 3) * 0.4
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(4, 16))):
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(0, 4)
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        sz = int(rng.integers(max(4, min(w, h) // 30), max(8, min(w, h) // 4)))
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + sz, y + int(sz * rng.uniform(0.3, 2))), col, -1)
        elif kind == 1:
            cv2.circle(img, (x, y), sz // 2, col, -1, cv2.LINE_AA)
        elif kind == 2:
            cv2.line(img, (x, y), (int(rng.integers(0, w)), int(rng.integers(0, h))), col,
                     int(rng.integers(1, 6)), cv2.LINE_AA)
        else:
            pts = rng.integers(-sz, sz, (int(rng.integers(3, 7)), 2)) + [x, y]
            cv2.fillPoly(img, [pts.astype(np.int32)], col, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.5))


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Uniform in [lo, hi], tolerant of hi < lo on tiny frames."""
    return float(rng.uniform(lo, max(lo, hi)))


def _distractors(cv: _Canvas, rng: np.random.Generator, n: int, occluder_label: int) -> None:
    """Objects that are not people: poles, boxes, blobs, limb-like sticks; drawn over the people."""
    h, w = cv.label.shape
    for _ in range(n):
        col = rng.uniform(20, 235, 3).astype(np.float32)
        kind = rng.integers(0, 4)
        if kind == 0:  # pole
            x = rng.uniform(0, w)
            wd = _u(rng, 4, w / 40)
            y0 = rng.uniform(0, h * 0.5)
            pts = np.array([[x, y0], [x + wd, y0], [x + wd, h], [x, h]])
        elif kind == 1:  # box
            x, y = rng.uniform(0, w), rng.uniform(h * 0.3, h)
            bw, bh = _u(rng, min(20, w / 8), w / 5), _u(rng, min(20, h / 8), h / 4)
            pts = np.array([[x, y], [x + bw, y], [x + bw, y + bh], [x, y + bh]])
        elif kind == 2:  # blob
            c = rng.uniform([0, 0], [w, h])
            r = _u(rng, min(8, min(w, h) / 20), min(w, h) / 10)
            t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
            rr = r * rng.uniform(0.7, 1.3, 12)
            pts = c + np.stack([rr * np.cos(t), rr * np.sin(t)], 1)
        else:  # a limb-like stick pair (hard negative)
            a = rng.uniform([0, 0], [w, h])
            L = _u(rng, min(20, min(w, h) / 10), min(w, h) / 5)
            ang = rng.uniform(0, 2 * np.pi)
            b = a + L * np.array([np.cos(ang), np.sin(ang)])
            pts = _capsule(a, b, L * 0.1, L * 0.08)
        cv.poly(pts, col, occluder_label)


def _look(rng: np.random.Generator) -> dict[str, np.ndarray]:
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.1)
    shirt = rng.uniform(10, 245, 3).astype(np.float32)
    long_sleeve = rng.random() < 0.5
    return {
        "skin": skin, "hair": _cues.contrasting_hair(rng, skin, HAIR), "shirt": shirt,
        "shirt2": rng.uniform(10, 245, 3).astype(np.float32), "sleeve": shirt * rng.uniform(0.85, 1.0),
        "forearm": shirt * 0.9 if long_sleeve else skin, "pants": rng.uniform(10, 200, 3).astype(np.float32),
        "shoe": rng.uniform(0, 90, 3).astype(np.float32), "front_style": np.array([int(rng.integers(0, 2))]),
    }


def random_pose(rng: np.random.Generator) -> Pose:
    """A plausible random pose: standing, walking, reaching, crouching, arms up, waving ..."""
    kind = rng.choice(["stand", "walk", "reach", "crouch", "arms_up", "wave", "random"],
                      p=[0.15, 0.2, 0.15, 0.1, 0.1, 0.1, 0.2])
    p = Pose(yaw=float(rng.uniform(-180, 180)), head_yaw=float(rng.normal(0, 20)), head_pitch=float(rng.normal(0, 8)),
             lean=float(rng.normal(5, 6)), side_lean=float(rng.normal(0, 4)))
    n = lambda m, s: float(rng.normal(m, s))  # noqa: E731
    if kind == "stand":
        p.arm_abd, p.arm_flex, p.elbow = (n(10, 6), n(10, 6)), (n(0, 10), n(0, 10)), (n(15, 10), n(15, 10))
        p.hip_flex, p.hip_abd, p.knee = (n(0, 5), n(0, 5)), (n(6, 3), n(6, 3)), (n(5, 4), n(5, 4))
    elif kind == "walk":
        ph = rng.uniform(0, 2 * np.pi)
        a = 30 * np.sin(ph)
        p.arm_abd, p.arm_flex, p.elbow = (n(8, 4), n(8, 4)), (-a, a), (n(25, 10), n(25, 10))
        p.hip_flex = (a, -a)
        p.knee = (max(0.0, 40 * np.sin(ph + 1.2)) + 5, max(0.0, 40 * np.sin(ph + 1.2 + np.pi)) + 5)
        p.hip_abd = (n(4, 2), n(4, 2))
    elif kind == "reach":
        p.arm_abd = (n(30, 25), n(15, 10))
        p.arm_flex = (n(80, 30), n(10, 20))
        p.elbow = (n(20, 15), n(40, 30))
        p.hip_flex, p.knee = (n(10, 10), n(0, 8)), (n(10, 10), n(5, 5))
    elif kind == "crouch":
        f = n(80, 15)
        p.hip_flex, p.knee = (f, f + n(0, 10)), (n(100, 15), n(100, 15))
        p.lean = n(25, 8)
        p.arm_flex, p.elbow = (n(40, 20), n(40, 20)), (n(40, 20), n(40, 20))
        p.hip_abd = (n(15, 6), n(15, 6))
    elif kind == "arms_up":
        p.arm_abd, p.elbow = (n(150, 15), n(150, 15)), (n(20, 15), n(20, 15))
        p.hip_abd = (n(10, 6), n(10, 6))
    elif kind == "wave":
        p.arm_abd = (n(120, 20), n(10, 6))
        p.elbow = (n(70, 25), n(20, 10))
        p.arm_flex = (n(10, 10), n(0, 10))
    else:
        lo_hi = LIMITS
        p.arm_abd = tuple(rng.uniform(*lo_hi["arm_abd"], 2))  # type: ignore[assignment]
        p.arm_flex = tuple(rng.uniform(-40, 120, 2))  # type: ignore[assignment]
        p.elbow = tuple(rng.uniform(*lo_hi["elbow"], 2))  # type: ignore[assignment]
        p.hip_flex = tuple(rng.uniform(-20, 90, 2))  # type: ignore[assignment]
        p.hip_abd = tuple(rng.uniform(0, 35, 2))  # type: ignore[assignment]
        p.knee = tuple(rng.uniform(0, 110, 2))  # type: ignore[assignment]
    return _clip_pose(p)


def random_build(rng: np.random.Generator) -> Build:
    g = lambda s: float(rng.normal(1.0, s))  # noqa: E731
    return Build(shoulder=0.115 * g(0.08), hip=0.085 * g(0.08), upper_arm=0.17 * g(0.04), forearm=0.155 * g(0.04),
                 thigh=0.245 * g(0.04), shin=0.235 * g(0.04), torso=0.29 * g(0.04), girth=float(rng.uniform(0.8, 1.35)))


def place(pose: Pose, build: Build, foot_xy: tuple[float, float], height: float) -> np.ndarray:
    """Skeleton in pixels: (J, 3) with depth in pixels (larger = nearer the camera)."""
    P = skeleton_3d(pose, build)
    lowest = max(P[J["l_ankle"], 1], P[J["r_ankle"], 1])
    out = np.empty_like(P)
    out[:, 0] = foot_xy[0] + P[:, 0] * height
    out[:, 1] = foot_xy[1] + (P[:, 1] - lowest) * height
    out[:, 2] = P[:, 2] * height
    return out


def _labels_for(fig_pts: np.ndarray, height: float, label: np.ndarray, slot: int, names: Sequence[str],
                image_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Joints of one figure in a joint set, and their visibility from the label map."""
    w, h = image_wh
    joints = np.array([fig_pts[J[n], :2] for n in names], np.float32)
    vis = np.zeros(len(names), bool)
    head_z = fig_pts[J["head_center"], 2]
    for k, n in enumerate(names):
        xi, yi = int(round(float(joints[k, 0]))), int(round(float(joints[k, 1])))
        if not (0 <= xi < w and 0 <= yi < h):
            continue
        z = fig_pts[J[n], 2]
        if n in ("nose", "l_eye", "r_eye") and z <= head_z:
            continue  # the face looks away: hidden by the head itself
        if n in ("l_ear", "r_ear") and z < head_z - 0.03 * height:
            continue  # the far ear
        if n in ("head_top", "l_ear", "r_ear"):  # on the head's outline: judge by the head just inside it
            c = fig_pts[J["head_center"], :2]
            q = c + 0.7 * (joints[k] - c)
            xi, yi = min(max(int(round(float(q[0]))), 0), w - 1), min(max(int(round(float(q[1]))), 0), h - 1)
        lab = int(label[yi, xi])
        vis[k] = lab in {slot * 32 + PART_IDS[p] for p in ADJACENT[n]}
    return joints, vis


def _box(extent: np.ndarray | None, fig_pts: np.ndarray, height: float, wh: tuple[int, int]) -> np.ndarray:
    """Tight box of the person's extent (all parts, occluded or not), clipped to the frame.

    ``extent`` is the xyxy of everything drawn for the person (``_Canvas.extent``): raised hands
    and shoes reach past the joints' margins."""
    xs, ys = fig_pts[:, 0], fig_pts[:, 1]
    m = 0.05 * height
    top = fig_pts[J["head_center"], 1] - 0.075 * height
    x0, x1 = xs.min() - m, xs.max() + m
    y0, y1 = min(ys.min(), top), ys.max() + 0.035 * height
    if extent is not None:  # + half a pixel of anti-aliased outline
        x0, y0 = min(x0, extent[0] - 0.5), min(y0, extent[1] - 0.5)
        x1, y1 = max(x1, extent[2] + 0.5), max(y1, extent[3] + 0.5)
    w, h = wh
    return np.array([max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)], np.float32)


def _finish(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Blur, noise, lighting."""
    if rng.random() < 0.3 * strength:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.6))
    gain, bias = rng.uniform(0.7, 1.25), rng.uniform(-25, 25)
    out = img.astype(np.float32) * gain + bias
    if rng.random() < 0.5 * strength:
        out += rng.normal(0, rng.uniform(2, 9), img.shape[:2])[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


SIDE_VIEW = (45.0, 135.0)  # |body yaw| in degrees of a person seen side on (mca.evaluate's "side" view)


class SceneRenderer:
    """Seeded still scenes of 0..N people; ``render(i)`` is deterministic in (seed, i)."""

    def __init__(self, joint_set: str = "mpii16", size: tuple[int, int] = (640, 480), seed: int = 0,
                 min_people: int = 0, max_people: int = 6, min_height: float | None = None,
                 max_height: float | None = None,
                 distractors: tuple[int, int] = (0, 5), effects: bool = True, side_share: float = 0.0) -> None:
        self.joint_set: JointSet = get_joint_set(joint_set)
        self.names = _SET_MAP[self.joint_set.name]
        self.size = (int(size[0]), int(size[1]))
        if self.size[0] < 32 or self.size[1] < 32:
            raise ValueError(f"size must be at least 32x32, got {size}")
        if not 0 <= min_people <= max_people:
            raise ValueError("need 0 <= min_people <= max_people")
        self.seed, self.min_people, self.max_people = seed, min_people, max_people
        self.max_height = float(max_height or self.size[1])
        # default: people 60 px tall or more (but no taller than the frame allows on small frames)
        self.min_height = float(min_height) if min_height is not None else min(60.0, self.max_height)
        if not 0 < self.min_height <= self.max_height:
            raise ValueError("need 0 < min_height <= max_height")
        if not 0.0 <= side_share <= 1.0:
            raise ValueError(f"side_share must be in [0, 1], got {side_share}")
        self.distractors, self.effects, self.side_share = distractors, effects, float(side_share)

    def _side_view(self, pose: Pose, index: int, k: int) -> None:
        """With probability ``side_share``, turn person ``k`` into a side view (45-135 degrees either way).

        Side views are where left and right are hardest to tell (one limb hides the other; issue 16): a training
        set may ask for more of them.  A separate random stream decides, so with ``side_share=0`` every scene is
        exactly what it was (the held-out test scenes included)."""
        if self.side_share <= 0.0:
            return
        r = np.random.default_rng([self.seed, int(index), k, 11])
        if r.random() < self.side_share:
            pose.yaw = float(r.uniform(*SIDE_VIEW) * (1 if r.random() < 0.5 else -1))

    def render(self, index: int) -> Scene:
        rng = np.random.default_rng([self.seed, int(index), 7])
        w, h = self.size
        bg = make_background(rng, w, h)
        n = int(rng.integers(self.min_people, self.max_people + 1))
        figs = []
        for k in range(n):
            height = float(np.exp(rng.uniform(np.log(self.min_height), np.log(self.max_height))))
            pose, build = random_pose(rng), random_build(rng)
            self._side_view(pose, index, k)
            foot = (float(rng.uniform(-0.1 * w, 1.1 * w)), float(rng.uniform(0.5 * h, h + 0.25 * height)))
            pts = place(pose, build, foot, height)
            look = _look(rng)
            look["yaw"] = np.array([pose.yaw])
            figs.append(_Figure(pts, height, look, build.girth, int(rng.integers(0, 2)), k))
        return self._compose(bg, figs, rng, index)

    def _compose(self, bg: np.ndarray, figs: list[_Figure], rng: np.random.Generator, index: int,
                 effects: bool | None = None, n_distractors: int | None = None) -> Scene:
        w, h = self.size
        canvas = _Canvas(bg.copy())
        order = sorted(range(len(figs)), key=lambda i: (figs[i].pts[:, 1].max(), figs[i].height))
        for slot, i in enumerate(order, start=1):
            _draw_figure(canvas, figs[i], slot)
        nd = int(rng.integers(*self.distractors)) if n_distractors is None else n_distractors
        _distractors(canvas, rng, nd, 65535)
        people = []
        for slot, i in enumerate(order, start=1):
            f = figs[i]
            joints, vis = _labels_for(f.pts, f.height, canvas.label, slot, self.names, (w, h))
            box = _box(canvas.extent.get(slot), f.pts, f.height, (w, h))
            if box[2] - box[0] < 2 or box[3] - box[1] < 2 or not (canvas.label // 32 == slot).any():
                continue  # entirely out of frame or hidden
            yaw = f.colors.get("yaw")
            people.append(Person(joints, vis, box, f.track_id, f.height,
                                 float(np.asarray(yaw).reshape(-1)[0]) if yaw is not None else float("nan")))
        people.sort(key=lambda p: p.track_id)
        img = canvas.image
        if self.effects if effects is None else effects:
            img = _finish(img, rng)
        return Scene(img, people, index)


# ----------------------------------------------------------------------------- video
@dataclass
class _Actor:
    track_id: int
    start: float  # seconds at which the actor enters
    x0: float
    y: float  # foot line
    vx: float  # px / s
    height: float
    build: Build
    look: dict[str, np.ndarray]
    action: str
    phase: float
    turn_rate: float
    pattern: int


class VideoRenderer:
    """A synthetic multi-person video: walking, waving, turning, entering/leaving; exact per-frame labels.

    The background is rendered once per video; a frame costs a copy plus the people
    (a few milliseconds at 720p), so it can feed the realtime pipeline live.
    """

    def __init__(self, joint_set: str = "mpii16", size: tuple[int, int] = (1280, 720), fps: float = 25.0,
                 num_people: int = 4, seed: int = 0, min_height: float | None = None,
                 max_height: float | None = None, distractors: int = 2, noise: bool = True) -> None:
        if fps <= 0:
            raise ValueError("fps must be > 0")
        if num_people < 0:
            raise ValueError("num_people must be >= 0")
        self._scene = SceneRenderer(joint_set, size, seed, effects=False)
        self.size, self.fps, self.num_people, self.seed = self._scene.size, float(fps), num_people, seed
        w, h = self.size
        rng = np.random.default_rng([seed, 99])
        self.background = make_background(rng, w, h)
        self._noise = [rng.normal(0, 3, (h, w, 1)).astype(np.float32) for _ in range(4)] if noise else []
        hi = max_height or 0.85 * h
        lo = min(min_height or max(60.0, 0.25 * h), hi)
        self.actors: list[_Actor] = []
        for k in range(num_people):
            height = float(rng.uniform(lo, hi))
            action = str(rng.choice(["walk", "walk", "wave", "turn", "walk_across"]))
            direction = 1.0 if rng.random() < 0.5 else -1.0
            speed = float(rng.uniform(0.25, 0.6)) * height * (1.0 if action.startswith("walk") else 0.15)
            if action == "walk_across":
                x0 = -0.3 * height if direction > 0 else w + 0.3 * height
            else:
                x0 = float(rng.uniform(0.1 * w, 0.9 * w))
            self.actors.append(_Actor(
                track_id=k, start=float(rng.uniform(0, 2.0)) if action == "walk_across" else 0.0, x0=x0,
                y=float(rng.uniform(0.55 * h + 0.6 * height * 0.5, h * 0.98)) if height < 0.8 * h else h * 0.98,
                vx=direction * speed, height=height, build=random_build(rng), look=_look(rng), action=action,
                phase=float(rng.uniform(0, 2 * np.pi)), turn_rate=float(rng.uniform(30, 90)) * direction,
                pattern=int(rng.integers(0, 2))))
        self._distractor_rng_seed = (seed, 5)
        self._n_distractors = distractors

    def _pose_at(self, a: _Actor, t: float) -> tuple[Pose, float] | None:
        tt = t - a.start
        if tt < 0:
            return None
        w = self.size[0]
        x = a.x0 + a.vx * tt
        if not a.action == "walk_across":  # bounce inside the frame
            span = 0.8 * w
            u = (x - 0.1 * w) % (2 * span)
            x = 0.1 * w + (u if u < span else 2 * span - u)
            # turn round through facing the camera over ~0.6 s about each turning point (no 180-degree jump)
            ramp = max(1e-6, min(0.3 * abs(a.vx), span / 2))
            dist = min(u, span - u) if u < span else min(u - span, 2 * span - u)
            facing = min(1.0, dist / ramp) * (1.0 if u < span else -1.0) * (1.0 if a.vx > 0 else -1.0)
        else:
            facing = 1.0 if a.vx > 0 else -1.0
        gait = a.phase + tt * 2 * np.pi * 0.9  # ~0.9 strides / s
        walk_yaw = 90.0 * facing
        p = Pose(yaw=walk_yaw, lean=4.0, head_yaw=10 * math.sin(0.5 * tt + a.phase))
        sw = 28.0 if a.action in ("walk", "walk_across") else 8.0
        s = math.sin(gait)
        p.arm_flex = (-sw * s, sw * s)
        p.arm_abd = (8.0, 8.0)
        p.elbow = (20 + 10 * max(0.0, s), 20 + 10 * max(0.0, -s))
        p.hip_flex = (sw * s, -sw * s)
        p.knee = (5 + 35 * max(0.0, math.sin(gait + 1.2)), 5 + 35 * max(0.0, math.sin(gait + 1.2 + math.pi)))
        p.hip_abd = (4.0, 4.0)
        if a.action == "wave":
            p.yaw = 15 * math.sin(0.3 * tt)
            p.arm_abd = (130 + 25 * math.sin(2 * np.pi * 1.5 * tt), 10.0)
            p.elbow = (60 + 20 * math.sin(2 * np.pi * 1.5 * tt + 1), 20.0)
            p.arm_flex = (10.0, 0.0)
        elif a.action == "turn":
            p.yaw = (a.turn_rate * tt + a.phase * 57.3) % 360 - 180
        return _clip_pose(p), x

    def frame(self, i: int) -> Scene:
        """Frame ``i`` (random access, deterministic)."""
        t = i / self.fps
        figs = []
        for a in self.actors:
            res = self._pose_at(a, t)
            if res is None:
                continue
            pose, x = res
            pts = place(pose, a.build, (x, a.y), a.height)
            look = dict(a.look)
            look["yaw"] = np.array([pose.yaw])
            figs.append(_Figure(pts, a.height, look, a.build.girth, a.pattern, a.track_id))
        rng = np.random.default_rng(self._distractor_rng_seed)
        scene = self._scene._compose(self.background, figs, rng, i, effects=False, n_distractors=self._n_distractors)
        if self._noise:
            n = self._noise[i % len(self._noise)]
            scene.image = np.clip(scene.image.astype(np.float32) + n, 0, 255).astype(np.uint8)
        return scene

    def frames(self, n: int, start: int = 0) -> Iterator[Scene]:
        for i in range(start, start + n):
            yield self.frame(i)


# ----------------------------------------------------------------------------- CLI
def _parse_size(s: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {s!r}") from None
    return w, h


def main(argv: list[str] | None = None) -> int:
    from mca.data.writers import write_dataset

    p = argparse.ArgumentParser(
        prog="python -m mca.data.synthetic",
        description="Render a seeded synthetic people data set (images + COCO keypoints JSON, YOLO labels and an "
                    "MPII-style json), or a synthetic video with per-frame ground truth.")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--num", type=int, default=100, help="number of images (or frames with --video)")
    p.add_argument("--joint-set", default="mpii16", choices=["mpii16", "coco17"], help="keypoint convention")
    p.add_argument("--size", type=_parse_size, default=(640, 480), help="image size WxH (default 640x480)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed -> same data)")
    p.add_argument("--max-people", type=int, default=6, help="at most this many people per image")
    p.add_argument("--min-people", type=int, default=0, help="at least this many people per image")
    p.add_argument("--video", action="store_true", help="render a video (frames of one moving scene)")
    p.add_argument("--people", type=int, default=4, help="people in the video")
    p.add_argument("--fps", type=float, default=25.0, help="video frame rate")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.num < 1:
        p.error("--num must be >= 1")
    try:
        if args.video:
            scenes = VideoRenderer(args.joint_set, args.size, args.fps, args.people, args.seed).frames(args.num)
        else:
            r = SceneRenderer(args.joint_set, args.size, args.seed, args.min_people, args.max_people)
            scenes = (r.render(i) for i in range(args.num))
        stats = write_dataset(scenes, args.out, args.joint_set, total=args.num)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {stats['images']} images with {stats['people']} people to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
