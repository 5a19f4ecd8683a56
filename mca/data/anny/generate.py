"""Seeded generators: :class:`AnnyCropRenderer` (one person centred, for pose training) and
:class:`AnnySceneRenderer` (full frames with several people and their boxes, for the detector).

``render(i)`` is deterministic in (seed, i): every random choice comes from ``np.random.default_rng([seed,
i, tag])``.  Both return an :class:`~mca.data.anny.render.AnnyScene`, whose people carry ``joints``,
``visible``, ``box`` and ``track_id`` as :mod:`mca.data.writers` expects (MPII-16 or COCO-17 as chosen), and
both joint sets with in-image flags in ``labels``.
"""

from __future__ import annotations

import math

import numpy as np

from mca.data.anny.body import get_body_model
from mca.data.anny.people import PersonMesh, PersonSampler
from mca.data.anny.poses import rot
from mca.data.anny.raster import Camera
from mca.data.anny.render import AnnyPerson, AnnyScene, amodal_box, box_prop, compose, orbit_camera, person_labels

__all__ = ["AnnyCropRenderer", "AnnySceneRenderer", "load_pose_bank"]

_Z = np.array([0.0, 0.0, 1.0])


def load_pose_bank(path: str | None) -> np.ndarray | None:
    """Pose-bank angles (N, len(ANGLE_KEYS)) from an ``.npz`` written by ``python -m mca.data.anny fit``."""
    if not path:
        return None
    with np.load(path, allow_pickle=False) as z:
        return np.asarray(z["angles"], np.float64)


class _Base:
    def __init__(self, joint_set: str, seed: int, supersample: int, collision_check: bool,
                 pose_bank: str | np.ndarray | None, effects: float) -> None:
        if joint_set not in ("mpii16", "coco17"):
            raise ValueError(f"joint_set must be mpii16 or coco17, got {joint_set!r}")
        self.joint_set, self.seed, self.supersample, self.effects = joint_set, int(seed), int(supersample), effects
        bank = load_pose_bank(pose_bank) if isinstance(pose_bank, str) else pose_bank
        self.body = get_body_model()
        self.sampler = PersonSampler(self.body, collision_check=collision_check, pose_bank=bank)

    def _labelled(self, p: PersonMesh, i: int, frame, cam: Camera, track: int) -> AnnyPerson | None:  # noqa: ANN001
        box, hp = amodal_box(p, cam)
        if box[2] - box[0] < 2 or box[3] - box[1] < 2 or not (frame.person == i).any():
            return None  # out of the frame or entirely hidden
        labels = person_labels(p, i, frame, cam)
        lab = labels[self.joint_set]
        return AnnyPerson(lab["joints"], lab["visible"], box, track, hp, labels, dict(p.meta))


class AnnyCropRenderer(_Base):
    """A square picture around one person (full body, or an upper-body / knees-up shot), sometimes with a
    second person beside or behind, over a background, for :func:`mca.data.augment.make_sample`.

    The person's box fills about ``fill`` of the picture, leaving the margin the augmentation (padding 1.25,
    scale up to 1.25, rotation) needs.  Camera: azimuth 0-360, elevation ``elevation`` (degrees), field of
    view 30-65 degrees."""

    def __init__(self, size: int = 256, joint_set: str = "mpii16", seed: int = 0, supersample: int = 2,
                 fill: tuple[float, float] = (0.5, 0.68), elevation: tuple[float, float] = (-15.0, 40.0),
                 partial_prob: float = 0.2, second_person_prob: float = 0.3, occluders: tuple[int, int] = (0, 2),
                 collision_check: bool = True, pose_bank: str | np.ndarray | None = None,
                 effects: float = 1.0) -> None:
        super().__init__(joint_set, seed, supersample, collision_check, pose_bank, effects)
        if size < 32:
            raise ValueError(f"size must be at least 32, got {size}")
        self.size, self.fill, self.elevation = int(size), fill, elevation
        self.partial_prob, self.second_prob, self.occluders = partial_prob, second_person_prob, occluders

    def render(self, index: int, azimuth: float | None = None, elevation: float | None = None,
               person: PersonMesh | None = None) -> AnnyScene:
        """Crop ``index``; ``azimuth``/``elevation``/``person`` override the drawn ones (tests, figures)."""
        rng = np.random.default_rng([self.seed, int(index), 101])
        p = person if person is not None else self.sampler.sample(rng)
        az = float(rng.uniform(0, 360)) if azimuth is None else float(azimuth)
        el = float(rng.uniform(*self.elevation)) if elevation is None else float(elevation)
        fov = math.radians(rng.uniform(30, 65))
        S = self.size
        f = (S / 2) / math.tan(fov / 2)
        # what to frame: the whole body, or the upper body / knees up (legs leave the picture)
        r = rng.random()
        focus = p.vertices
        partial = None
        if r < self.partial_prob and "lying" not in p.meta["family"]:
            keep = p.attrs[:, 5] > (0.25 if rng.random() < 0.6 else -0.55)  # trunk height: waist / knees up
            if keep.sum() > 100:
                focus, partial = p.vertices[keep], True
        lo, hi = focus.min(0), focus.max(0)
        target = (lo + hi) / 2
        radius = float(np.linalg.norm(hi - lo)) / 2
        cam = orbit_camera(target, az, el, radius / math.tan(fov / 2) * rng.uniform(1.3, 2.2) + 0.5, f, (S, S),
                           roll=float(rng.normal(0, 3)))
        people = [p]
        if rng.random() < self.second_prob:  # someone beside or behind
            q = self.sampler.sample(rng)
            right = cam.R[0]
            fwd = np.array([cam.R[2, 0], cam.R[2, 1], 0.0])
            fwd /= np.linalg.norm(fwd) + 1e-9
            off = right * rng.choice([-1, 1]) * rng.uniform(0.35, 0.9) + fwd * rng.uniform(-1.0, 2.5)
            people.append(q.moved(rot(_Z, rng.uniform(0, 360)), np.array([off[0], off[1], 0.0])))
        # zoom and shift so the framed part fills ``fill`` of the picture, centred (with a little jitter)
        uv, _ = cam.project(focus)
        bw, bh = uv.max(0) - uv.min(0)
        fill = rng.uniform(*self.fill) * (1.15 if partial else 1.0)
        k = fill * S / max(bw, bh, 1.0)
        ctr = (uv.max(0) + uv.min(0)) / 2
        jit = rng.normal(0, 0.03 * S, 2)
        cam = Camera(cam.R, cam.t, cam.f * k, (S / 2 - 0.5 + jit[0] - (ctr[0] - cam.c[0]) * k,
                                                S / 2 - 0.5 + jit[1] - (ctr[1] - cam.c[1]) * k), (S, S))
        if partial:  # push the framed part's bottom edge to the picture's bottom: the legs leave the frame
            uv, _ = cam.project(focus)
            dy = (S - 1) - uv[:, 1].max() + rng.uniform(-0.02, 0.08) * S
            cam = Camera(cam.R, cam.t, cam.f, (cam.c[0], cam.c[1] + dy), (S, S))
        box0, _ = amodal_box(p, cam)
        img, frame = compose(people, cam, rng, 0.0, self.supersample, self.occluders, box0, self.effects)
        main = self._labelled(p, 0, frame, cam, 0)
        scene = AnnyScene(img, [main] if main is not None else [], int(index))
        if main is not None:
            main.meta.update(azimuth=az, elevation=el, partial=bool(partial), people=len(people))
        return scene


class AnnySceneRenderer(_Base):
    """Full frames of ``min_people``..``max_people`` people standing, walking, sitting or lying on a floor,
    seen from a camera 0.8-8 m high (eye level to CCTV), near and far (small people), cut by the frame edges
    and by occluders, with amodal person boxes: for detector training (YOLO export via
    :func:`mca.data.writers.write_dataset`)."""

    def __init__(self, size: tuple[int, int] = (640, 480), joint_set: str = "mpii16", seed: int = 0,
                 min_people: int = 1, max_people: int = 6, supersample: int = 2, occluders: tuple[int, int] = (0, 1),
                 collision_check: bool = True, pose_bank: str | np.ndarray | None = None, effects: float = 1.0
                 ) -> None:
        super().__init__(joint_set, seed, supersample, collision_check, pose_bank, effects)
        if not 0 <= min_people <= max_people:
            raise ValueError("need 0 <= min_people <= max_people")
        self.size = (int(size[0]), int(size[1]))
        self.min_people, self.max_people, self.occluders = min_people, max_people, occluders

    def render(self, index: int) -> AnnyScene:
        rng = np.random.default_rng([self.seed, int(index), 202])
        w, h = self.size
        height = float(rng.choice([rng.uniform(0.8, 2.0), rng.uniform(2.0, 8.0)], p=[0.6, 0.4]))
        pitch = float(rng.uniform(-5, 12) if height < 2 else rng.uniform(10, 45))
        fov = math.radians(rng.uniform(40, 75))
        f = (w / 2) / math.tan(fov / 2)
        yaw = math.radians(rng.uniform(0, 360))
        eye = np.array([0.0, 0.0, height])
        fwd = np.array([math.sin(yaw) * math.cos(math.radians(pitch)), math.cos(yaw) * math.cos(math.radians(pitch)),
                        -math.sin(math.radians(pitch))])
        from mca.data.anny.raster import look_at_camera

        cam = look_at_camera(eye, eye + fwd, f, (w, h), roll_deg=float(rng.normal(0, 2)))
        n = int(rng.integers(self.min_people, self.max_people + 1))
        people: list[PersonMesh] = []
        spots: list[np.ndarray] = []
        for _ in range(n):
            p = self.sampler.sample(rng, allow_lying=True)
            for _try in range(20):  # a free spot on the floor inside the view (partly outside is fine)
                u, v = rng.uniform(-0.1 * w, 1.1 * w), rng.uniform(0.35 * h, 1.15 * h)
                d = np.array([(u - cam.c[0]) / f, (v - cam.c[1]) / f, 1.0]) @ cam.R
                if d[2] >= -1e-3:
                    continue
                t = height / -d[2]
                g = eye + t * d
                dist = float(np.hypot(g[0], g[1]))
                if not 1.5 < dist < 30 or any(np.hypot(*(g[:2] - s)) < 0.6 for s in spots):
                    continue
                spots.append(g[:2])
                people.append(p.moved(rot(_Z, rng.uniform(0, 360)), np.array([g[0], g[1], 0.0])))
                break
        props = []
        for _ in range(int(rng.integers(0, 4))):  # crates, pillars, walls, car-sized blocks on the floor
            u, v = rng.uniform(0, w), rng.uniform(0.45 * h, 1.1 * h)
            d = np.array([(u - cam.c[0]) / f, (v - cam.c[1]) / f, 1.0]) @ cam.R
            if d[2] >= -1e-3:
                continue
            g = eye + height / -d[2] * d
            kind = rng.choice(["crate", "pillar", "wall", "block"], p=[0.4, 0.25, 0.2, 0.15])
            sx, sy, sz = {"crate": (rng.uniform(0.15, 0.4), rng.uniform(0.15, 0.4), rng.uniform(0.3, 0.9)),
                          "pillar": (rng.uniform(0.08, 0.25), rng.uniform(0.08, 0.25), rng.uniform(2.0, 4.0)),
                          "wall": (rng.uniform(0.6, 2.0), rng.uniform(0.05, 0.15), rng.uniform(0.6, 1.2)),
                          "block": (rng.uniform(0.7, 1.6), rng.uniform(0.4, 0.9), rng.uniform(0.8, 1.5))}[kind]
            if not 3.0 < float(np.hypot(g[0], g[1])) < 25 or any(
                    np.hypot(*(g[:2] - sp)) < max(sx, sy) + 0.5 for sp in spots):
                continue  # not right in front of the lens, and never through a person
            props.append(box_prop(np.array([-sx, -sy, 0.0]), np.array([sx, sy, sz]), rng.uniform(0.1, 0.85, 3),
                                  rot(_Z, rng.uniform(0, 360)), np.array([g[0], g[1], 0.0])))
        order = list(range(len(people)))
        img, frame = compose(people, cam, rng, 0.0, self.supersample, self.occluders, None, self.effects,
                             flat_prob=0.0, props=props)
        out = []
        for i in order:
            lab = self._labelled(people[i], i, frame, cam, i)
            if lab is not None:
                lab.meta.update(distance=float(np.hypot(*spots[i])))
                out.append(lab)
        return AnnyScene(img, out, int(index))
