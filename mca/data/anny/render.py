"""Rendering Anny people: person-centred crops for pose training and full scenes for the detector.

One z-buffer pass draws every person of a picture (so people hide each other exactly), at ``supersample``
times the resolution; it is shaded per pixel (:mod:`mca.data.anny.looks`), averaged down (anti-aliased
edges) and composited over a background; occluders are drawn on top; camera effects come last.

Labels: each person's MPII-16 and COCO-17 joints projected with the same camera; a joint is ``visible`` when
it is inside the image and the surface over it (3 x 3 super-sampled pixels) belongs to this person, to one of
the joint's own body parts, and lies at most a tolerance in front of the joint (so a limb, another person or
an occluder in front hides it); ``in_image`` says whether it is inside the frame at all.  Boxes are amodal:
the whole projected body (hidden parts too), clipped to the frame, as the project's other renderers make them.

Side convention (the project's): a person facing the camera has its LEFT joints on the image's RIGHT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from mca.data.anny import looks as LK
from mca.data.anny.backgrounds import draw_occluders, finish, flat_background, ground_background
from mca.data.anny.body import PART_ID, PARTS
from mca.data.anny.people import ALLOWED_PARTS, COCO_SOURCES, MPII_SOURCES, TOLERANCE, PersonMesh
from mca.data.anny.raster import Camera, look_at_camera, rasterize

__all__ = ["JOINT_NAMES", "AnnyPerson", "AnnyScene", "Frame", "draw_people", "person_labels", "orbit_camera"]

JOINT_NAMES = {"mpii16": tuple(MPII_SOURCES), "coco17": tuple(COCO_SOURCES)}
_OCCLUDER = -2
_ALLOWED_IDS = {n: np.array([PART_ID[p] for p in parts]) for n, parts in ALLOWED_PARTS.items()}


@dataclass
class AnnyPerson:
    """One labelled person; ``joints``/``visible`` are in the renderer's primary joint set, ``labels`` has both
    (``joints`` (K, 2), ``visible``, ``in_image`` (K,) bool, ``depth`` (K,) metres)."""

    joints: np.ndarray
    visible: np.ndarray
    box: np.ndarray  # (4,) float32 xyxy, amodal, clipped to the frame
    track_id: int = 0
    height_px: float = 0.0
    labels: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


@dataclass
class AnnyScene:
    image: np.ndarray  # (H, W, 3) uint8 BGR
    people: list[AnnyPerson] = field(default_factory=list)
    index: int = 0


@dataclass
class Frame:
    """What one z-buffer pass produced, before effects: float image and the super-sampled label buffers."""

    image: np.ndarray  # (H, W, 3) float BGR 0..1, composited over the background
    person: np.ndarray  # (sH, sW) int16: person index, -1 background, -2 occluder
    part: np.ndarray  # (sH, sW) int8 PART_ID
    depth: np.ndarray  # (sH, sW) float32 view depth
    cam_ss: Camera


def orbit_camera(target: np.ndarray, azimuth: float, elevation: float, distance: float, f: float,
                 size: tuple[int, int], roll: float = 0.0) -> Camera:
    """A camera ``distance`` from ``target``; azimuth 0 = in front of the person (who faces -Y), 90 = on the
    person's left, 180 = behind; elevation > 0 looks down."""
    a, e = math.radians(azimuth), math.radians(elevation)
    d = np.array([math.sin(a) * math.cos(e), -math.cos(a) * math.cos(e), math.sin(e)])
    return look_at_camera(np.asarray(target) + distance * d, target, f, size, roll)


def _light(rng: np.random.Generator) -> tuple[np.ndarray, float, np.ndarray]:
    a, e = rng.uniform(0, 2 * np.pi), math.radians(rng.uniform(15, 80))
    L = np.array([math.cos(a) * math.cos(e), math.sin(a) * math.cos(e), math.sin(e)], np.float32)
    tint = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    return L, float(rng.uniform(0.25, 0.6)), tint / tint.mean()


def _shadows(img: np.ndarray, floor: np.ndarray, people: list[PersonMesh], cam: Camera, L: np.ndarray,
             ground_z: float, strength: float) -> None:
    """Soft shadows of the people on the floor (vertices projected along the light onto z = ground_z)."""
    h, w = floor.shape
    mask = np.zeros((h, w), np.float32)
    for p in people:
        v = p.vertices[::3]
        s = (v[:, 2] - ground_z) / max(float(L[2]), 0.2)
        g = v - s[:, None] * L[None].astype(np.float64)
        uv, z = cam.project(g)
        ok = (z > 0.05) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        if not ok.any():
            continue
        u = np.minimum(np.round(uv[ok]).astype(int), [w - 1, h - 1])
        mask[u[:, 1], u[:, 0]] = 1.0
        zz = float(np.median(z[ok]))
        r = max(1, int(round(0.04 * cam.f / zz)))
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    if mask.any():
        mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.01 * cam.f)) * floor
        img *= (1 - strength * mask)[..., None]


@dataclass
class Prop:
    """A solid object in the scene (a seat, a crate, a pillar): hides people like an occluder."""

    vertices: np.ndarray  # (n, 3) world
    faces: np.ndarray  # (m, 3), counter-clockwise seen from outside
    color: np.ndarray  # (3,) BGR 0..1


def box_prop(lo: np.ndarray, hi: np.ndarray, color: np.ndarray, R: np.ndarray | None = None,
             t: np.ndarray | None = None) -> Prop:
    """An axis-aligned box from ``lo`` to ``hi``, then rotated by ``R`` and moved by ``t``."""
    x0, y0, z0 = lo
    x1, y1, z1 = hi
    v = np.array([[x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0],
                  [x0, y0, z1], [x1, y0, z1], [x1, y1, z1], [x0, y1, z1]], np.float64)
    f = np.array([[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4], [1, 2, 6], [1, 6, 5],
                  [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]], np.int64)
    if R is not None:
        v = v @ R.T
    if t is not None:
        v = v + t
    return Prop(v, f, np.asarray(color, np.float32))


def draw_people(people: list[PersonMesh], cam: Camera, background: np.ndarray, rng: np.random.Generator,
                supersample: int = 2, light: tuple | None = None, props: list[Prop] = ()) -> Frame:
    """Rasterize, shade and composite ``people`` (world meshes) and ``props`` seen by ``cam`` over
    ``background`` (float)."""
    cs = cam.scaled(supersample)
    sw, sh = cs.size
    meshes = [(p.vertices, p.faces) for p in people] + [(q.vertices, q.faces) for q in props]
    offs = np.cumsum([0] + [len(v) for v, _ in meshes])
    V = np.concatenate([v for v, _ in meshes]) if meshes else np.zeros((0, 3))
    F = np.concatenate([f + o for (_, f), o in zip(meshes, offs)]) if meshes else np.zeros((0, 3), np.int64)
    fperson = np.concatenate([np.full(len(f), i, np.int16) for i, (_, f) in enumerate(meshes)] or
                             [np.zeros(0, np.int16)])
    fpart = np.concatenate([p.face_part for p in people] + [np.zeros(len(q.faces), np.int8) for q in props]
                           or [np.zeros(0, np.int8)])
    fhelper = np.concatenate([p.face_helper for p in people] + [np.zeros(len(q.faces), np.int8) for q in props]
                             or [np.zeros(0, np.int8)])
    uv, z = cs.project(V)
    r = rasterize(uv, z, F, (sw, sh), double_sided=fhelper > 0)
    person = np.full((sh, sw), -1, np.int16)
    part = np.zeros((sh, sw), np.int8)
    col_ss = np.zeros((sh, sw, 3), np.float32)
    m = r.mask
    if m.any():
        L, ambient, tint = light if light is not None else _light(rng)
        f = r.face[m]
        b = r.bary[m]
        vi = F[f]
        owner = fperson[f]
        person[m] = np.where(owner < len(people), owner, _OCCLUDER)
        part[m] = fpart[f]
        yy, xx = np.nonzero(m)
        ray = np.stack([(xx - cs.c[0]) / cs.f, (yy - cs.c[1]) / cs.f, np.ones(len(xx))], 1) @ cs.R
        view = -(ray / np.linalg.norm(ray, axis=1, keepdims=True)).astype(np.float32)
        colour = np.zeros((len(f), 3), np.float32)
        up = np.array([0.0, 0.0, 1.0], np.float32)
        for i, p in enumerate(people):
            sel = owner == i
            if not sel.any():
                continue
            lv = vi[sel] - offs[i]
            bb = b[sel]
            att = np.einsum("pk,pkc->pc", bb, p.attrs[lv])
            nrm = np.einsum("pk,pkc->pc", bb, p.normals[lv].astype(np.float32))
            c = p.consts
            fh = fhelper[f[sel]]
            eye = c["vertex_eye"][lv[:, 0]] & (fh == 0)
            mat = LK.materials(fpart[f[sel]], att[:, 3:6], att[:, :3], fh, eye, att[:, 6], p.look,
                               c["neck_base"], PART_ID)
            alb, spec, shin = LK.albedo(mat, att[:, :3], fpart[f[sel]], p.look, c["eye_centers"], c["eye_z"],
                                        PART_ID["head"], float(p.meta.get("phase", 0.37)))
            colour[sel] = LK.shade(alb, nrm, view[sel], spec, shin, L, ambient, tint, up)
        for k, q in enumerate(props):
            sel = owner == len(people) + k
            if not sel.any():
                continue
            fi = f[sel] - sum(len(x.faces) for x in people) - sum(len(x.faces) for x in props[:k])
            tri = q.vertices[q.faces[fi]]
            nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).astype(np.float32)
            alb = np.broadcast_to(q.color, (int(sel.sum()), 3)).astype(np.float32)
            colour[sel] = LK.shade(alb, nrm, view[sel], np.full(len(alb), 0.05, np.float32),
                                   np.full(len(alb), 8.0, np.float32), L, ambient, tint, up)
        col_ss[m] = colour
    w, h = cam.size
    cov = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    col = cv2.resize(col_ss, (w, h), interpolation=cv2.INTER_AREA)
    img = background * (1 - cov[..., None]) + col
    return Frame(np.clip(img, 0, 1.5).astype(np.float32), person, part, r.depth, cs)


def person_labels(p: PersonMesh, index: int, frame: Frame, cam: Camera) -> dict[str, dict[str, np.ndarray]]:
    """Joints, visibility and in-image flags of person ``index`` in both joint sets."""
    w, h = cam.size
    s = frame.cam_ss.size[0] / w
    sh, sw = frame.person.shape
    extra = max(p.look.top.thickness, p.look.bottom.thickness)
    out = {}
    for js, names in JOINT_NAMES.items():
        X = p.joints3d[js]
        uv, z = cam.project(X)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1) & (z > 0)
        vis = np.zeros(len(names), bool)
        for k, n in enumerate(names):
            if not inside[k]:
                continue
            cx, cy = int(round((uv[k, 0] + 0.5) * s - 0.5)), int(round((uv[k, 1] + 0.5) * s - 0.5))
            y0, y1, x0, x1 = max(cy - 1, 0), min(cy + 2, sh), max(cx - 1, 0), min(cx + 2, sw)
            pid = frame.person[y0:y1, x0:x1]
            prt = frame.part[y0:y1, x0:x1]
            dep = frame.depth[y0:y1, x0:x1]
            tol = TOLERANCE[n] * p.body_scale + (p.look.hair_thickness if n in ("head_top", "l_ear", "r_ear")
                                                 else (0.0 if n in ("nose", "l_eye", "r_eye") else extra))
            ok = (pid == index) & np.isin(prt, _ALLOWED_IDS[n]) & (dep >= z[k] - tol)
            vis[k] = bool(ok.any())
        out[js] = {"joints": uv.astype(np.float32), "visible": vis, "in_image": inside, "depth": z.astype(np.float32)}
    return out


def amodal_box(p: PersonMesh, cam: Camera) -> tuple[np.ndarray, float]:
    """The whole projected body's box clipped to the frame, and the body's projected height (pixels)."""
    uv, z = cam.project(p.vertices)
    ok = z > 0.01
    if not ok.any():
        return np.zeros(4, np.float32), 0.0
    uv = uv[ok]
    w, h = cam.size
    x0, y0 = uv.min(0) - 0.5
    x1, y1 = uv.max(0) + 0.5
    hp = float(y1 - y0)
    return np.array([max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)], np.float32), hp


def compose(people: list[PersonMesh], cam: Camera, rng: np.random.Generator, ground_z: float = 0.0,
            supersample: int = 2, occluders: tuple[int, int] = (0, 3), occlude_near: np.ndarray | None = None,
            effects: float = 1.0, flat_prob: float = 0.3, props: list[Prop] = ()) -> tuple[np.ndarray, Frame]:
    """Background, people, shadows, occluders and camera effects: the finished uint8 image and its buffers."""
    w, h = cam.size
    L, ambient, tint = _light(rng)
    if rng.random() < flat_prob:
        bg, floor = flat_background(rng, w, h), None
    else:
        bg, floor = ground_background(rng, cam, ground_z)
        _shadows(bg, floor.astype(np.float32), people, cam, L, ground_z, float(rng.uniform(0.2, 0.6)))
    frame = draw_people(people, cam, bg, rng, supersample, (L, ambient, tint),
                        [q for p in people for q in p.props] + list(props))
    n_occ = int(rng.integers(max(occluders[0], 1), occluders[1] + 1)) if occluders[1] and rng.random() < 0.45 else 0
    if n_occ:
        draw_occluders(rng, frame.image, frame.person, n_occ, occlude_near, _OCCLUDER)
    return finish(frame.image, rng, effects), frame
