"""Plausible body poses for Anny: anatomical angles with hand-set joint limits, pose families, and rotations.

Anny ships no pose prior and no joint limits, so they are set here by hand.  A pose is a dict of
anatomical angles in degrees (trunk and neck flexion / side bend / twist; per side: arm elevation, plane
and twist, elbow, wrist, clavicle, finger curl, hip flexion / abduction / twist, knee, ankle), each clipped
to :data:`LIMITS`.  :func:`to_rotations` turns it into one rotation per bone in Anny's ``local-ref``
parameterisation: about the bone's head, relative to the parent's posed frame, in the world-aligned rest
axes (X = the person's left, Y = backwards, Z = up).  So, for example, hip flexion (the thigh swinging
forward) is a rotation about -X, knee flexion one about +X, turning the head to the person's left one about
+Z.  :func:`sample_angles` draws from a mixture of everyday families (standing, walking, running, sitting,
squatting, kneeling, reaching, bending, sport-like) with jitter, plus a share of uniform samples within the
limits for diversity; the renderer rejects samples whose mesh intersects itself.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["LIMITS", "SIDED", "ANGLE_KEYS", "FAMILIES", "sample_angles", "clip_angles", "mirror_angles",
           "RotationBuilder", "to_rotations", "rot", "aim", "lying_rotation"]

# Joint limits (degrees).  Sided entries apply to each side ("l_" and "r_" keys).
LIMITS: dict[str, tuple[float, float]] = {
    "trunk_flex": (-30, 90), "trunk_lat": (-35, 35), "trunk_twist": (-45, 45),
    "neck_flex": (-45, 60), "neck_lat": (-35, 35), "neck_twist": (-75, 75),
    "arm_elev": (0, 180), "arm_plane": (-60, 135), "arm_twist": (-90, 90), "elbow": (0, 150),
    "wrist_flex": (-60, 60), "wrist_dev": (-20, 30), "clav_raise": (-10, 30), "finger_curl": (-10, 60),
    "hip_flex": (-30, 130), "hip_abd": (-20, 55), "hip_twist": (-40, 40), "knee": (0, 155), "ankle": (-30, 45),
}
SIDED = ("arm_elev", "arm_plane", "arm_twist", "elbow", "wrist_flex", "wrist_dev", "clav_raise", "finger_curl",
         "hip_flex", "hip_abd", "hip_twist", "knee", "ankle")
_TRUNK = ("trunk_flex", "trunk_lat", "trunk_twist", "neck_flex", "neck_lat", "neck_twist")
ANGLE_KEYS = _TRUNK + tuple(f"{s}_{k}" for s in "lr" for k in SIDED)


def rot(axis: np.ndarray, deg: float) -> np.ndarray:
    """Rotation matrix about ``axis`` by ``deg`` (right-handed)."""
    a = np.asarray(axis, np.float64)
    a = a / np.linalg.norm(a)
    t = math.radians(deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * (k @ k)


def aim(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The shortest-arc rotation taking direction ``src`` to ``dst``."""
    a, b = src / np.linalg.norm(src), dst / np.linalg.norm(dst)
    c = float(a @ b)
    axis = np.cross(a, b)
    s = float(np.linalg.norm(axis))
    if s < 1e-8:
        if c > 0:
            return np.eye(3)
        perp = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
        return rot(perp, 180.0)
    return rot(axis, math.degrees(math.atan2(s, c)))


_X, _Y, _Z = np.eye(3)


def clip_angles(a: dict[str, float]) -> dict[str, float]:
    """Every angle of ``a`` inside :data:`LIMITS` (missing ones are 0)."""
    out = {}
    for k in ANGLE_KEYS:
        base = k[2:] if k[:2] in ("l_", "r_") and k[2:] in SIDED else k
        lo, hi = LIMITS[base]
        out[k] = float(np.clip(a.get(k, 0.0), lo, hi))
    return out


def mirror_angles(a: dict[str, float]) -> dict[str, float]:
    """The mirror-image pose: sides swapped, side bends and twists reversed."""
    out = {}
    for k, v in a.items():
        if k[:2] in ("l_", "r_") and k[2:] in SIDED:
            out[("r_" if k[0] == "l" else "l_") + k[2:]] = v
        elif k.endswith(("_lat", "_twist")):
            out[k] = -v
        else:
            out[k] = v
    return out


# ----------------------------------------------------------------------------- families
def _both(rng: np.random.Generator, d: dict, key: str, lo: float, hi: float, same: float = 0.0) -> None:
    """Per-side values in [lo, hi]; with probability ``same`` both sides share one."""
    v = rng.uniform(lo, hi)
    d[f"l_{key}"] = v
    d[f"r_{key}"] = v if rng.random() < same else rng.uniform(lo, hi)


def _relaxed_arms(rng: np.random.Generator, d: dict) -> None:
    _both(rng, d, "arm_elev", 3, 40, 0.3)
    _both(rng, d, "arm_plane", -30, 70)
    _both(rng, d, "arm_twist", -30, 30)
    _both(rng, d, "elbow", 5, 70)


def _stand(rng: np.random.Generator) -> dict:
    d = {"trunk_flex": rng.uniform(-5, 12)}
    _relaxed_arms(rng, d)
    _both(rng, d, "hip_flex", -8, 15)
    _both(rng, d, "hip_abd", -3, 12)
    _both(rng, d, "knee", 0, 20)
    return d


def _walk(rng: np.random.Generator, run: bool = False) -> dict:
    phase = rng.uniform(0, 2 * math.pi)
    amp = rng.uniform(30, 55) if run else rng.uniform(12, 30)
    s = math.sin(phase)
    d = {"trunk_flex": rng.uniform(5, 22) if run else rng.uniform(-3, 8), "trunk_twist": -8 * s}
    for side, sign in (("l", 1.0), ("r", -1.0)):
        flex = sign * amp * s + (15 if run else 3)
        d[f"{side}_hip_flex"] = flex
        swing = max(0.0, math.cos(phase) * sign)  # the leg moving forward bends its knee
        d[f"{side}_knee"] = (rng.uniform(20, 50) + (rng.uniform(40, 70) if run else 35) * swing
                             + (10 if run else 0))
        d[f"{side}_arm_elev"] = abs(-sign * amp * s * 0.8) + rng.uniform(5, 15)
        d[f"{side}_arm_plane"] = 90.0 if -sign * s > 0 else -50.0
        d[f"{side}_elbow"] = rng.uniform(70, 105) if run else rng.uniform(10, 50)
        d[f"{side}_ankle"] = rng.uniform(-10, 20)
        d[f"{side}_hip_abd"] = rng.uniform(-2, 6)
    return d


def _sit(rng: np.random.Generator) -> dict:
    d = {"trunk_flex": rng.uniform(-10, 25)}
    _both(rng, d, "hip_flex", 65, 105, 0.6)
    _both(rng, d, "knee", 60, 115, 0.4)
    _both(rng, d, "hip_abd", 0, 25)
    _both(rng, d, "arm_elev", 10, 45)
    _both(rng, d, "arm_plane", 40, 100)
    _both(rng, d, "elbow", 30, 100)
    return d


def _squat(rng: np.random.Generator) -> dict:
    d = {"trunk_flex": rng.uniform(15, 55)}
    _both(rng, d, "hip_flex", 85, 128, 0.7)
    _both(rng, d, "knee", 100, 150, 0.7)
    _both(rng, d, "hip_abd", 5, 35, 0.5)
    _both(rng, d, "ankle", -25, 5, 0.7)
    _both(rng, d, "arm_elev", 15, 90)
    _both(rng, d, "arm_plane", 50, 110)
    _both(rng, d, "elbow", 10, 110)
    return d


def _kneel(rng: np.random.Generator) -> dict:
    d = {"trunk_flex": rng.uniform(-5, 30)}
    _relaxed_arms(rng, d)
    one = rng.random() < 0.5
    d["l_hip_flex"], d["l_knee"] = rng.uniform(-5, 20), rng.uniform(85, 125)
    if one:
        d["r_hip_flex"], d["r_knee"] = rng.uniform(70, 100), rng.uniform(70, 100)
    else:
        d["r_hip_flex"], d["r_knee"] = rng.uniform(-5, 20), rng.uniform(85, 125)
    if rng.random() < 0.5:  # mirror which knee is down
        for k in ("hip_flex", "knee"):
            d[f"l_{k}"], d[f"r_{k}"] = d[f"r_{k}"], d[f"l_{k}"]
    d["l_ankle"] = d["r_ankle"] = rng.uniform(20, 45)
    return d


def _reach(rng: np.random.Generator) -> dict:
    d = _stand(rng)
    for side in ("l", "r") if rng.random() < 0.5 else (("l",) if rng.random() < 0.5 else ("r",)):
        d[f"{side}_arm_elev"] = rng.uniform(110, 178)
        d[f"{side}_arm_plane"] = rng.uniform(-20, 100)
        d[f"{side}_elbow"] = rng.uniform(0, 90)
        d[f"{side}_arm_twist"] = rng.uniform(-60, 20)
        d[f"{side}_clav_raise"] = rng.uniform(5, 25)
    return d


def _arms_out(rng: np.random.Generator) -> dict:
    d = _stand(rng)
    _both(rng, d, "arm_elev", 60, 110, 0.5)
    _both(rng, d, "arm_plane", -20, 60)
    _both(rng, d, "elbow", 0, 100)
    _both(rng, d, "arm_twist", -70, 30)
    return d


def _bend(rng: np.random.Generator) -> dict:
    d = _stand(rng)
    d["trunk_flex"] = rng.uniform(35, 85)
    _both(rng, d, "hip_flex", 10, 60, 0.8)
    _both(rng, d, "knee", 0, 45, 0.6)
    _both(rng, d, "arm_elev", 20, 110)
    _both(rng, d, "arm_plane", 60, 100)
    return d


def _sport(rng: np.random.Generator) -> dict:
    d = _walk(rng, run=rng.random() < 0.5)
    kick = "l" if rng.random() < 0.5 else "r"
    if rng.random() < 0.5:  # kick or step high
        d[f"{kick}_hip_flex"] = rng.uniform(40, 110)
        d[f"{kick}_knee"] = rng.uniform(0, 100)
    else:  # lunge
        other = "r" if kick == "l" else "l"
        d[f"{kick}_hip_flex"], d[f"{kick}_knee"] = rng.uniform(60, 100), rng.uniform(70, 110)
        d[f"{other}_hip_flex"], d[f"{other}_knee"] = rng.uniform(-30, -5), rng.uniform(0, 40)
    throw = "l" if rng.random() < 0.5 else "r"
    d[f"{throw}_arm_elev"] = rng.uniform(60, 175)
    d[f"{throw}_arm_plane"] = rng.uniform(-50, 110)
    d[f"{throw}_elbow"] = rng.uniform(0, 130)
    d["trunk_twist"] = rng.uniform(-35, 35)
    d["trunk_lat"] = rng.uniform(-20, 20)
    return d


def _uniform(rng: np.random.Generator) -> dict:
    """Anywhere within the limits (legs biased towards standing): the diversity share."""
    d: dict[str, float] = {}
    for k in ANGLE_KEYS:
        base = k[2:] if k[:2] in ("l_", "r_") and k[2:] in SIDED else k
        lo, hi = LIMITS[base]
        if base in ("hip_flex", "knee"):
            hi = lo + (hi - lo) * rng.random() ** 0.5  # fewer extreme flexions
        d[k] = rng.uniform(lo, hi) * (0.6 if base.startswith(("trunk", "neck")) else 1.0)
    return d


FAMILIES: dict[str, tuple[float, Callable[[np.random.Generator], dict]]] = {
    "stand": (0.16, _stand), "walk": (0.16, _walk), "run": (0.08, lambda r: _walk(r, run=True)),
    "sit": (0.09, _sit), "squat": (0.06, _squat), "kneel": (0.05, _kneel), "reach": (0.09, _reach),
    "arms_out": (0.07, _arms_out), "bend": (0.06, _bend), "sport": (0.08, _sport), "uniform": (0.10, _uniform),
}


def sample_angles(rng: np.random.Generator, family: str | None = None) -> tuple[str, dict[str, float]]:
    """A pose family (drawn by weight unless given) and its clipped, jittered anatomical angles."""
    names = list(FAMILIES)
    if family is None:
        w = np.array([FAMILIES[n][0] for n in names])
        family = names[int(rng.choice(len(names), p=w / w.sum()))]
    d = FAMILIES[family][1](rng)
    # everyday variation on top of every family
    d.setdefault("trunk_lat", 0.0)
    d["trunk_lat"] += rng.normal(0, 4)
    d["trunk_twist"] = d.get("trunk_twist", 0.0) + rng.normal(0, 6)
    d["neck_flex"] = d.get("neck_flex", 0.0) + rng.normal(0, 10)
    d["neck_lat"] = d.get("neck_lat", 0.0) + rng.normal(0, 6)
    d["neck_twist"] = d.get("neck_twist", 0.0) + rng.normal(0, 25)
    for side in "lr":
        for k, sd in (("arm_twist", 15), ("wrist_flex", 15), ("wrist_dev", 8), ("hip_twist", 8), ("ankle", 6),
                      ("hip_abd", 3), ("clav_raise", 3)):
            d[f"{side}_{k}"] = d.get(f"{side}_{k}", 0.0) + rng.normal(0, sd)
        d[f"{side}_finger_curl"] = rng.uniform(0, 45)
        d[f"{side}_elbow"] = d.get(f"{side}_elbow", 0.0) + rng.normal(0, 6)
    return family, clip_angles(d)


def lying_rotation(rng: np.random.Generator) -> np.ndarray:
    """A global rotation that lays a standing body down (on the back, front or a side), with some tilt."""
    k = int(rng.integers(4))
    base = [rot(_X, -90), rot(_X, 90), rot(_Y, 90), rot(_Y, -90)][k]
    return rot(_Z, rng.uniform(0, 360)) @ base @ rot(_Z, rng.normal(0, 10))


# ----------------------------------------------------------------------------- angles -> bone rotations
class RotationBuilder:
    """Turns anatomical angles into per-bone ``local-ref`` rotations for one rig (rest-pose geometry)."""

    def __init__(self, bone_labels: list[str], rest_heads: np.ndarray) -> None:
        self.labels = bone_labels
        self.bi = {b: i for i, b in enumerate(bone_labels)}
        H = rest_heads
        self.rest: dict[str, dict[str, np.ndarray | float]] = {}
        for s in "LR":
            ua = H[self.bi[f"lowerarm01.{s}"]] - H[self.bi[f"upperarm01.{s}"]]
            fa = H[self.bi[f"wrist.{s}"]] - H[self.bi[f"lowerarm01.{s}"]]
            hinge = np.cross(ua, fa)
            hinge /= np.linalg.norm(hinge)
            flex0 = math.degrees(math.acos(float(ua @ fa / np.linalg.norm(ua) / np.linalg.norm(fa))))
            # a positive rotation about ``hinge`` bends the elbow further (hinge = ua x fa)
            knuckles = H[self.bi[f"finger5-1.{s}"]] - H[self.bi[f"finger2-1.{s}"]]
            f1 = H[self.bi[f"finger3-2.{s}"]] - H[self.bi[f"finger3-1.{s}"]]
            f2 = H[self.bi[f"finger3-3.{s}"]] - H[self.bi[f"finger3-2.{s}"]]
            curl = np.cross(f1, f2)
            curl_axis = knuckles / np.linalg.norm(knuckles)
            if curl @ curl_axis < 0:
                curl_axis = -curl_axis
            self.rest[s] = {"ua": ua / np.linalg.norm(ua), "hinge": hinge, "flex0": flex0, "curl": curl_axis}
        self.spine = [b for b in ("spine05", "spine04", "spine03", "spine02", "spine01") if b in self.bi]
        self.neck = [b for b in ("neck01", "neck02", "neck03", "head") if b in self.bi]
        self.fingers = {s: [b for b in bone_labels if b.startswith("finger") and b.endswith(f".{s}")
                            and not b.startswith("finger1-")] for s in "LR"}
        self.thumbs = {s: [b for b in bone_labels if b.startswith("finger1-") and b.endswith(f".{s}")] for s in "LR"}

    def __call__(self, a: dict[str, float]) -> np.ndarray:
        """(J, 3, 3) rotations for the clipped angle dict ``a``."""
        R = np.tile(np.eye(3), (len(self.labels), 1, 1))
        bi = self.bi

        def trunk(bones: list[str], flex: float, lat: float, twist: float) -> None:
            n = len(bones)
            for b in bones:
                R[bi[b]] = rot(_Z, twist / n) @ rot(_Y, lat / n) @ rot(_X, flex / n)

        trunk(self.spine, a["trunk_flex"], a["trunk_lat"], a["trunk_twist"])
        trunk(self.neck, a["neck_flex"], a["neck_lat"], a["neck_twist"])
        for s, p, sign in (("L", "l_", 1.0), ("R", "r_", -1.0)):
            rest = self.rest[s]
            e, pl = math.radians(a[p + "arm_elev"]), math.radians(a[p + "arm_plane"])
            target = np.array([sign * math.sin(e) * math.cos(pl), -math.sin(e) * math.sin(pl), -math.cos(e)])
            ua = rest["ua"]
            R[bi[f"upperarm01.{s}"]] = rot(target, sign * a[p + "arm_twist"]) @ aim(ua, target)
            R[bi[f"lowerarm01.{s}"]] = rot(rest["hinge"], a[p + "elbow"] - rest["flex0"])
            R[bi[f"wrist.{s}"]] = rot(rest["hinge"], a[p + "wrist_flex"]) @ rot(_Y, -sign * a[p + "wrist_dev"])
            R[bi[f"clavicle.{s}"]] = rot(_Y, -sign * a[p + "clav_raise"])
            for b in self.fingers[s]:
                R[bi[b]] = rot(rest["curl"], a[p + "finger_curl"] / (1.0 if b.endswith(("-2." + s, "-3." + s))
                                                                      else 2.0))
            for b in self.thumbs[s]:
                R[bi[b]] = rot(rest["curl"], 0.3 * a[p + "finger_curl"])
            R[bi[f"upperleg01.{s}"]] = (rot(_X, -a[p + "hip_flex"]) @ rot(_Y, -sign * a[p + "hip_abd"])
                                         @ rot(_Z, sign * a[p + "hip_twist"]))
            R[bi[f"lowerleg01.{s}"]] = rot(_X, a[p + "knee"])
            R[bi[f"foot.{s}"]] = rot(_X, a[p + "ankle"])
        return R


def to_rotations(builder: RotationBuilder, a: dict[str, float]) -> np.ndarray:
    """Bone rotations (J, 3, 3) for the angle dict ``a`` (clipped first)."""
    return builder(clip_angles(a))
