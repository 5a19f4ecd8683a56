"""What a rendered person looks like: skin tone, clothes cut by body region, hair, shoes, face details.

Everything is decided per pixel from attributes interpolated over the mesh (rest-pose position, position
along each limb, height on the trunk), so hems and stripes are sharp whatever the triangle size:

* skin: a continuous range from very light to very dark tones, slightly redder lips and cheeks, eyebrows,
  eyes with iris and pupil (the face is the strongest front/back cue, which left/right depends on);
* a top (tank, T-shirt, long sleeves, jacket) and a bottom (shorts, knee-length, trousers, or a skirt made of
  Anny's skirt helper), each solid, striped, checked, heathered (noise) or woven, some with a chest print
  (front only) or an open jacket front;
* hair: a cap over the scalp (given volume by the renderer) with a jittered hairline, optionally long hair
  cards (Anny's hair helper), or none; shoes over the feet; Lambert + ambient + Blinn-Phong specular.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Look", "Garment", "sample_look", "SKIN", "TOP", "BOTTOM", "SHOES", "HAIR", "EYE", "shade"]

SKIN, TOP, BOTTOM, SHOES, HAIR, EYE = range(6)

# skin tones, light to dark (BGR, 0..1), interpolated continuously
_SKIN = np.array([[196, 224, 255], [167, 194, 241], [138, 172, 224], [99, 134, 198], [70, 102, 161],
                  [54, 80, 125], [40, 58, 92], [30, 40, 62]], np.float32) / 255.0
_HAIR = np.array([[15, 15, 18], [20, 28, 45], [30, 45, 80], [45, 75, 125], [80, 130, 190], [150, 150, 155],
                  [205, 205, 210], [25, 40, 110]], np.float32) / 255.0  # black..blond, grey, white, auburn (BGR)
_CLOTH = np.array([[30, 30, 30], [235, 235, 235], [120, 60, 20], [60, 40, 140], [40, 110, 40], [30, 30, 150],
                   [150, 150, 150], [60, 90, 130], [140, 100, 60], [160, 140, 20], [40, 160, 200],
                   [90, 40, 90], [200, 170, 120], [20, 60, 100], [120, 120, 60]], np.float32) / 255.0


@dataclass
class Garment:
    color: np.ndarray  # (3,) BGR 0..1
    color2: np.ndarray  # second colour of the pattern
    pattern: str  # solid, stripes, checks, noise, weave
    period: float  # metres
    angle: float  # stripe direction (radians, in the body's frontal plane)
    shininess: float = 8.0
    spec: float = 0.04
    thickness: float = 0.006  # metres the cloth stands off the skin
    print_color: np.ndarray | None = None  # a chest print (tops only)
    open_front: bool = False  # an open jacket: a vertical strip of the shirt below shows


@dataclass
class Look:
    skin: np.ndarray
    top: Garment
    bottom: Garment
    shoe_color: np.ndarray
    hair_color: np.ndarray
    sleeve: float  # arm_t the sleeve ends at (0 shoulder, 1 elbow, 2 wrist); < 0: sleeveless
    hem: float  # trunk_h the top ends at (0 hip joints, 1 neck base)
    waist: float  # trunk_h the bottom reaches up to
    leg: float  # leg_t the bottom ends at (0 hip, 1 knee, 2 ankle)
    skirt: bool
    shoe_top: float  # leg_t the shoes reach up to
    hair_style: str  # none, short, long
    hairline: float  # metres above the eyes the front hairline sits
    hair_thickness: float
    long_hair: bool
    neckline: float  # metres: radius of bare skin around the neck base
    top_under: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))


def _color(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.6:
        c = _CLOTH[int(rng.integers(len(_CLOTH)))] * rng.uniform(0.7, 1.2)
    else:
        c = rng.uniform(0.05, 0.95, 3)
    return np.clip(c + rng.normal(0, 0.04, 3), 0.02, 0.98).astype(np.float32)


def _garment(rng: np.random.Generator, top: bool) -> Garment:
    pattern = str(rng.choice(["solid", "stripes", "checks", "noise", "weave"], p=[0.45, 0.18, 0.12, 0.13, 0.12]))
    c = _color(rng)
    c2 = _color(rng) if rng.random() < 0.7 else np.clip(c * rng.uniform(0.4, 0.8), 0, 1).astype(np.float32)
    angle = 0.0 if rng.random() < 0.6 else (np.pi / 2 if rng.random() < 0.5 else rng.uniform(0, np.pi))
    g = Garment(c, c2, pattern, float(rng.uniform(0.01, 0.08)), float(angle),
                shininess=float(rng.uniform(4, 20)), spec=float(rng.uniform(0.0, 0.12)),
                thickness=float(rng.uniform(0.003, 0.02)))
    if top and rng.random() < 0.3:
        g.print_color = _color(rng)
    if top and rng.random() < 0.15:
        g.open_front = True
    if not top and rng.random() < 0.25:  # denim-like trousers
        g.color = np.array([0.45, 0.28, 0.12], np.float32) * rng.uniform(0.6, 1.3)
        g.pattern, g.period = "weave", 0.004
    return g


def sample_look(rng: np.random.Generator, age: float, female: bool) -> Look:
    """A random outfit, skin tone and hair for a person of morphological ``age`` (years)."""
    t = rng.beta(1.3, 1.3) * (len(_SKIN) - 1)
    i = min(int(t), len(_SKIN) - 2)
    skin = (_SKIN[i] * (1 - (t - i)) + _SKIN[i + 1] * (t - i)) * rng.uniform(0.93, 1.05)
    skin = np.clip(skin + rng.normal(0, 0.015, 3), 0, 1).astype(np.float32)
    top, bottom = _garment(rng, True), _garment(rng, False)
    kind = rng.choice(["tank", "tee", "long", "jacket", "bare"], p=[0.08, 0.42, 0.3, 0.17, 0.03])
    sleeve = {"tank": -0.2, "tee": rng.uniform(0.25, 0.7), "long": rng.uniform(1.75, 2.0),
              "jacket": rng.uniform(1.85, 2.02), "bare": -0.2}[kind]
    if kind == "jacket":
        top.thickness = float(rng.uniform(0.012, 0.03))
    hem = float(rng.uniform(-0.2, 0.15)) if kind != "bare" else 1.5
    skirt = bool(female and age > 4 and rng.random() < 0.3)
    leg = float(rng.choice([rng.uniform(0.35, 0.75), rng.uniform(0.9, 1.2), rng.uniform(1.75, 1.98)],
                           p=[0.25, 0.1, 0.65]))
    if skirt:
        leg = -1.0 if rng.random() < 0.5 else float(rng.uniform(0.2, 1.0))  # bare legs under it, or tights
    waist = float(rng.uniform(0.22, 0.42))
    shoe_top = float(rng.choice([rng.uniform(1.9, 2.05), rng.uniform(1.5, 1.8)], p=[0.85, 0.15]))
    shoe = (_color(rng) * 0.6 if rng.random() < 0.6 else _color(rng)).astype(np.float32)
    old = age > 55
    p_hair = np.array([.22, .2, .16, .1, .07, .12 if old else .01, .1 if old else .005, .05])
    hair = _HAIR[int(rng.choice(len(_HAIR), p=p_hair / p_hair.sum()))]
    hair = np.clip(hair * rng.uniform(0.8, 1.2) + rng.normal(0, 0.02, 3), 0, 1).astype(np.float32)
    p_bald = 0.25 if (not female and age > 35) else 0.03
    style = "none" if rng.random() < p_bald else ("long" if rng.random() < (0.55 if female else 0.08) else "short")
    return Look(
        skin=skin, top=top, bottom=bottom, shoe_color=shoe, hair_color=hair, sleeve=float(sleeve), hem=hem,
        waist=waist, leg=leg, skirt=skirt, shoe_top=shoe_top, hair_style=style,
        hairline=float(rng.uniform(0.035, 0.06) + (rng.uniform(0, 0.03) if not female and age > 40 else 0)),
        hair_thickness=float(rng.uniform(0.004, 0.02) if style != "none" else 0.0),
        long_hair=bool(style == "long" and rng.random() < 0.8),
        neckline=float(rng.uniform(0.045, 0.1)),
        top_under=_color(rng))


# ----------------------------------------------------------------------------- per-pixel materials
_BASES: dict[int, np.ndarray] = {}


def _part_base(part_ids: dict[str, int]) -> np.ndarray:
    """Part id -> its name without the side ("thigh.L" -> "thigh")."""
    key = id(part_ids)
    if key not in _BASES:
        name = {v: k for k, v in part_ids.items()}
        _BASES[key] = np.array([name[i].split(".")[0] for i in range(len(name))])
    return _BASES[key]


def hair_mask(rest: np.ndarray, eye_z: float, look: Look, is_head: np.ndarray) -> np.ndarray:
    """Scalp points (rest-pose coordinates) under the hair cap, as a soft 0..1 weight."""
    if look.hair_style == "none":
        return np.zeros(len(rest), np.float32)
    x, y, z = rest[:, 0], rest[:, 1], rest[:, 2]
    back = np.clip((y + 0.06) / 0.10, 0, 1)  # 0 ahead of the ears, 1 at the back of the head
    line = eye_z + look.hairline - back * (look.hairline + 0.06)
    ear = (np.abs(x) > 0.06) & (z < eye_z + 0.012) & (y < 0.005) & (back < 0.7)
    wiggle = 0.004 * np.sin(x * 180.0) * np.cos(y * 150.0)
    w = np.clip((z - line + wiggle) / 0.008, 0, 1)
    w[ear] = 0
    return (w * is_head).astype(np.float32)


def materials(part: np.ndarray, t: np.ndarray, rest: np.ndarray, helper: np.ndarray, eye: np.ndarray,
              hair_w: np.ndarray, look: Look, neck_base: np.ndarray, part_ids: dict[str, int]) -> np.ndarray:
    """The material of each pixel from its part, limb coordinates ``t`` = (arm_t, leg_t, trunk_h) and flags.

    ``helper``: 0 body, 1 hair card, 2 skirt."""
    arm_t, leg_t, trunk_h = t[:, 0], t[:, 1], t[:, 2]
    m = np.full(len(part), SKIN, np.int8)
    base = _part_base(part_ids)[part]
    body = np.isin(base, ["torso", "hips"])
    armish = np.isin(base, ["upperarm", "forearm"])
    legish = np.isin(base, ["thigh", "shin"])
    # bottom: the trunk below the waist, the legs to its length (a skirt's legs are bare: its helper covers them)
    bottom = body & (trunk_h < look.waist)
    if look.skirt:
        bottom |= legish & (leg_t < 0.12)
    else:
        bottom |= legish & (leg_t < look.leg)
    m[bottom] = BOTTOM
    # top (worn over the bottom): the trunk above its hem, the arms to the sleeve length, bare around the neck
    d = rest - neck_base
    behind = d[:, 1] > 0  # a round neckline at the back, a deeper one (by the look) at the front
    near_neck = np.where(behind, np.linalg.norm(d * [1.0, 1.0, 1.3], axis=1) < 0.05,
                         np.linalg.norm(d * [1.0, 1.6, 1.0], axis=1) < look.neckline)
    top = ((np.isin(base, ["torso", "hips", "neck", "thigh"]) & (trunk_h > look.hem) & ~near_neck
            & ((base != "neck") | (d[:, 2] < 0)))
           | (armish & (arm_t < look.sleeve)))
    m[top] = TOP
    feet = (base == "foot") | ((base == "shin") & (leg_t > look.shoe_top))
    m[feet] = SHOES
    m[hair_w > 0.5] = HAIR
    m[eye] = EYE
    m[helper == 1] = HAIR
    m[helper == 2] = BOTTOM
    return m


def _pattern(g: Garment, rest: np.ndarray, rng_phase: float) -> np.ndarray:
    """Pattern weight in 0..1 (0 = colour, 1 = colour2) at rest-pose points."""
    x, z = rest[:, 0], rest[:, 2]
    u = x * np.cos(g.angle) + z * np.sin(g.angle)
    v = -x * np.sin(g.angle) + z * np.cos(g.angle)
    k = 2 * np.pi / g.period
    if g.pattern == "stripes":
        return (np.sin(v * k + rng_phase) > 0.3).astype(np.float32)
    if g.pattern == "checks":
        return 0.5 * (np.sin(u * k + rng_phase) > 0) + 0.5 * (np.sin(v * k) > 0)
    if g.pattern == "noise":
        s = 0.5 + 0.25 * np.sin(x * 61 + z * 17 + rng_phase) * np.sin(z * 53 - rest[:, 1] * 37) \
            + 0.25 * np.sin(x * 23 - z * 41 + rest[:, 1] * 29 + rng_phase)
        return np.clip(s, 0, 1).astype(np.float32)
    if g.pattern == "weave":
        return (0.5 + 0.25 * np.sin(u * 2 * np.pi / 0.004) * np.sin(v * 2 * np.pi / 0.004)).astype(np.float32) * 0.3
    return np.zeros(len(rest), np.float32)


def albedo(mat: np.ndarray, rest: np.ndarray, part: np.ndarray, look: Look, eye_centers: np.ndarray,
           eye_z: float, head_id: int, phase: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour (P, 3), specular strength (P,) and shininess (P,) of every pixel."""
    n = len(mat)
    col = np.empty((n, 3), np.float32)
    spec = np.zeros(n, np.float32)
    shin = np.full(n, 10.0, np.float32)
    x, y, z = rest[:, 0], rest[:, 1], rest[:, 2]
    sk = mat == SKIN
    col[sk] = look.skin
    spec[sk], shin[sk] = 0.12, 18.0
    face = sk & (part == head_id) & (y < -0.07)
    brows = face & (np.abs(np.abs(x) - 0.032) < 0.017) & (np.abs(z - (eye_z + 0.021 + 0.004 * np.cos(x * 60)))
                                                          < 0.003)
    col[brows] = col[brows] * 0.55 + look.hair_color * 0.45 * 0.7
    mouth_z = eye_z - 0.062
    lips = face & (np.abs(x) < 0.021) & (np.abs(z - mouth_z) < 0.0065) & (y < -0.10)
    col[lips] = col[lips] * np.array([0.72, 0.68, 0.95], np.float32)
    cheeks = face & (np.abs(np.abs(x) - 0.04) < 0.015) & (np.abs(z - eye_z + 0.028) < 0.015)
    col[cheeks] = col[cheeks] * np.array([0.95, 0.95, 1.03], np.float32)
    for code, g in ((TOP, look.top), (BOTTOM, look.bottom)):
        sel = mat == code
        if not sel.any():
            continue
        w = _pattern(g, rest[sel], phase)[:, None]
        c = g.color * (1 - w) + g.color2 * w
        if code == TOP and g.print_color is not None:
            pr = (np.abs(x[sel]) < 0.07) & (np.abs(z[sel] - 0.33) < 0.05) & (y[sel] < -0.05)
            c[pr] = g.print_color
        if code == TOP and g.open_front:
            pr = (np.abs(x[sel]) < 0.05) & (y[sel] < -0.05)
            c[pr] = look.top_under
        col[sel] = c
        spec[sel], shin[sel] = g.spec, g.shininess
    sh = mat == SHOES
    col[sh], spec[sh], shin[sh] = look.shoe_color, 0.3, 25.0
    hr = mat == HAIR
    col[hr] = look.hair_color * (0.85 + 0.15 * np.sin(x[hr] * 900 + z[hr] * 300))[:, None]
    spec[hr], shin[hr] = 0.2, 30.0
    ey = mat == EYE
    if ey.any():
        c = np.full((int(ey.sum()), 3), 0.92, np.float32)
        pts = rest[ey]
        side = np.where(pts[:, 0] > 0, 0, 1)
        d = pts - eye_centers[side]
        d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
        fwd = -d[:, 1]
        c[fwd > 0.86] = np.array([0.25, 0.3, 0.35], np.float32) * (0.6 + 0.8 * (phase % 1))
        c[fwd > 0.955] = 0.03
        col[ey], spec[ey], shin[ey] = c, 0.6, 60.0
    col *= (1.0 + 0.04 * np.sin(x * 400 + phase) * np.sin(z * 370))[:, None]  # a little surface grain
    return col, spec, shin


def shade(col: np.ndarray, normal: np.ndarray, view: np.ndarray, spec: np.ndarray, shin: np.ndarray,
          light: np.ndarray, ambient: float, light_color: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Lambert + hemispheric ambient + Blinn-Phong for unit ``normal`` and ``view`` (towards the eye)."""
    n = normal / (np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9)
    flip = (n * view).sum(1) < 0  # double-sided helpers seen from behind
    n[flip] = -n[flip]
    ndl = np.clip(n @ light, 0, 1)
    hemi = ambient * (0.7 + 0.3 * (n @ up))
    h = light + view
    h /= np.linalg.norm(h, axis=1, keepdims=True) + 1e-9
    sp = spec * np.clip((n * h).sum(1), 0, 1) ** shin * (ndl > 0)
    out = col * (hemi[:, None] + (1 - ambient) * ndl[:, None] * light_color) + sp[:, None] * light_color
    return out
