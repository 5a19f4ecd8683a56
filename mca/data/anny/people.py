"""One synthetic person: shape, pose and look sampled, posed with Anny, dressed, and its 3-D joints.

* Shape: a morphological age (children to elders: 3-90 years) and a gender drawn here, then height, weight,
  muscle and proportions drawn from Anny's own age-conditional Beta distributions (calibrated by its authors
  on WHO height-for-age data), with this module's NumPy generator, so a seed fixes them.
* Pose: :mod:`mca.data.anny.poses` (families within hand-set joint limits), optionally from a pose bank;
  samples whose mesh intersects itself more than a threshold are redrawn.
* Mesh: the posed body plus, by the look, long hair cards and a skirt (Anny's helpers); cloth and hair stand
  off the skin along the normals by their thickness, so silhouettes change with the clothes.
* Joints: MPII-16 from the skeleton (bone heads; the head top is the highest scalp vertex), COCO-17 from
  Anny's own COCO regressor (surface points).  ``.L`` bones are the person's anatomical left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mca.data.anny import looks as LK
from mca.data.anny import poses as P
from mca.data.anny.body import PART_ID, BodyModel

__all__ = ["MPII_SOURCES", "COCO_SOURCES", "ALLOWED_PARTS", "TOLERANCE", "PersonMesh", "PersonSampler",
           "vertex_normals"]

# MPII-16 joint -> bone head(s) averaged (or "vertex:head_top")
MPII_SOURCES: dict[str, tuple[str, ...]] = {
    "r_ankle": ("foot.R",), "r_knee": ("lowerleg01.R",), "r_hip": ("upperleg01.R",), "l_hip": ("upperleg01.L",),
    "l_knee": ("lowerleg01.L",), "l_ankle": ("foot.L",), "pelvis": ("upperleg01.L", "upperleg01.R"),
    "thorax": ("neck01",), "upper_neck": ("neck03", "head"), "head_top": ("vertex:head_top",),
    "r_wrist": ("wrist.R",), "r_elbow": ("lowerarm01.R",), "r_shoulder": ("upperarm01.R",),
    "l_shoulder": ("upperarm01.L",), "l_elbow": ("lowerarm01.L",), "l_wrist": ("wrist.L",),
}
# COCO-17 joint -> index in Anny's COCO regressor (its first 17 outputs are in COCO order)
COCO_SOURCES: dict[str, int] = {n: i for i, n in enumerate(
    ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist",
     "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle"))}


def _sided(names: str, side: str) -> tuple[str, ...]:
    return tuple(f"{n}.{side}" for n in names.split())


# A joint is visible when the surface over it belongs to one of these parts (and is close enough in depth).
ALLOWED_PARTS: dict[str, tuple[str, ...]] = {"pelvis": ("hips.L", "hips.R", "torso.L", "torso.R", "thigh.L",
                                                         "thigh.R"),
                                             "thorax": ("torso.L", "torso.R", "neck"), "upper_neck": ("neck", "head"),
                                             "head_top": ("head",), "nose": ("head",)}
for _s, _p in (("L", "l_"), ("R", "r_")):
    ALLOWED_PARTS.update({
        _p + "ankle": _sided("shin foot", _s), _p + "knee": _sided("thigh shin", _s),
        _p + "hip": _sided("thigh hips torso", _s), _p + "wrist": _sided("forearm hand", _s),
        _p + "elbow": _sided("upperarm forearm", _s), _p + "shoulder": _sided("upperarm torso", _s) + ("neck",),
        _p + "eye": ("head",), _p + "ear": ("head",)})
# ...and the surface may lie at most this far (metres, for a 1.63 m adult) in front of the joint
TOLERANCE: dict[str, float] = {"nose": 0.03, "l_eye": 0.03, "r_eye": 0.03, "l_ear": 0.04, "r_ear": 0.04,
                               "head_top": 0.05, "l_wrist": 0.12, "r_wrist": 0.12, "l_elbow": 0.12,
                               "r_elbow": 0.12, "l_ankle": 0.12, "r_ankle": 0.12, "l_knee": 0.15, "r_knee": 0.15,
                               "upper_neck": 0.15, "l_shoulder": 0.15, "r_shoulder": 0.15, "l_hip": 0.2,
                               "r_hip": 0.2, "pelvis": 0.25, "thorax": 0.25}


def vertex_normals(v: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (unit) of a triangle mesh."""
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        for c in range(3):
            n[:, c] += np.bincount(faces[:, k], fn[:, c], minlength=len(v))
    return n / (np.linalg.norm(n, axis=1, keepdims=True) + 1e-12)


@dataclass
class PersonMesh:
    """A posed, dressed person in world coordinates (metres, Z up, feet on z = 0 unless moved)."""

    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3) body + helpers
    face_part: np.ndarray  # (F,) PART_ID
    face_helper: np.ndarray  # (F,) 0 body, 1 hair card, 2 skirt
    normals: np.ndarray  # (V, 3)
    attrs: np.ndarray  # (V, 7): rest xyz, arm_t, leg_t, trunk_h, hair weight
    joints3d: dict[str, np.ndarray]  # "mpii16" (16, 3), "coco17" (17, 3)
    look: LK.Look
    meta: dict
    body_scale: float  # height / 1.63 m
    consts: dict  # rest-pose constants of the body model the materials need (shared, not copied)
    props: list = field(default_factory=list)  # render.Prop objects that go with the person (a seat)

    def moved(self, R: np.ndarray, t: np.ndarray) -> "PersonMesh":
        """The same person rotated by ``R`` and then translated by ``t`` (world)."""
        def f(x: np.ndarray) -> np.ndarray:
            return x @ R.T + t
        return PersonMesh(f(self.vertices), self.faces, self.face_part, self.face_helper, self.normals @ R.T,
                          self.attrs, {k: f(v) for k, v in self.joints3d.items()}, self.look, self.meta,
                          self.body_scale, self.consts,
                          [type(q)(q.vertices @ R.T + t, q.faces, q.color) for q in self.props])


class PersonSampler:
    """Draws people; every random choice comes from the generator passed in (deterministic per seed)."""

    def __init__(self, body: BodyModel, collision_check: bool = True, max_collisions: int = 40,
                 pose_bank: np.ndarray | None = None, bank_fraction: float = 0.3, lying_fraction: float = 0.04
                 ) -> None:
        import anny.shape_distribution as sd

        self.body = body
        self.rotations = P.RotationBuilder(body.bone_labels, body.rest_heads)
        self.shape = sd.SimpleShapeDistribution(body.model)
        self.collision = None
        if collision_check:
            from anny.utils.collision import SelfInterpenetrationModule

            self.collision = SelfInterpenetrationModule(body.model)
        self.max_collisions = max_collisions
        bases = sorted({p.split(".")[0] for p in PART_ID})
        base_of = {p: bases.index(p.split(".")[0]) for p in PART_ID}
        self.face_base = np.array([base_of[p] for p in PART_ID])[body.vertex_part[body.body_faces[:, 0]]]
        self.contact = np.zeros((len(bases), len(bases)), bool)
        for x, y in (("upperarm", "torso"), ("forearm", "torso"), ("hand", "thigh"), ("forearm", "thigh"),
                     ("hand", "hand"), ("thigh", "shin"), ("thigh", "torso"), ("thigh", "hips"), ("hand", "shin"),
                     ("upperarm", "thigh"), ("thigh", "thigh"), ("torso", "torso"), ("hand", "torso")):
            self.contact[bases.index(x), bases.index(y)] = self.contact[bases.index(y), bases.index(x)] = True
        self.bank = pose_bank
        self.bank_fraction = bank_fraction if pose_bank is not None and len(pose_bank) else 0.0
        self.lying_fraction = lying_fraction
        self.eye_z = float(body.rest_heads[body.bone_index["eye.L"], 2])
        self.eye_centers = body.rest_heads[[body.bone_index["eye.L"], body.bone_index["eye.R"]]]
        self.is_head = (body.vertex_part == PART_ID["head"]) & ~body.vertex_is_eye
        hc = body.rest_vertices[body.hair_faces]
        self.hair_over_face = ((hc[..., 1] < -0.055) & (np.abs(hc[..., 0]) < 0.085) & (hc[..., 2] < self.eye_z + 0.04)
                               ).any(1)
        self.consts = {"vertex_eye": body.vertex_is_eye, "neck_base": body.neck_base,
                       "eye_centers": self.eye_centers, "eye_z": self.eye_z}
        self.mpii_bones = [[body.bone_index[b] for b in src] if src[0] != "vertex:head_top" else []
                           for src in MPII_SOURCES.values()]

    # ------------------------------------------------------------------ shape
    def sample_shape(self, rng: np.random.Generator) -> tuple[np.ndarray, float, bool]:
        """Phenotypes (6,) in the model's label order, morphological age (years), female."""
        import torch

        band = rng.choice(4, p=[0.12, 0.1, 0.58, 0.2])
        age = float(rng.uniform(*[(3, 12), (12, 18), (18, 60), (60, 90)][band]))
        gender = float(rng.random())
        d = self.shape
        a = d.morphological_age_mapping.morphological_to_anny_age(torch.tensor([age], dtype=torch.float32))
        who = "girls" if gender > 0.5 else "boys"
        vals = {"age": float(a[0]), "gender": gender}
        for name in ("height", "weight", "muscle", "proportions"):
            alpha, beta = getattr(d, f"{who}_conditional_{name}_distribution").get_distribution_params(a)
            vals[name] = float(rng.beta(max(float(alpha[0]), 1e-3), max(float(beta[0]), 1e-3)))
        ph = np.array([vals[k] for k in self.body.phenotype_labels], np.float32)
        return np.clip(ph, 0.0, 1.0), age, gender > 0.5

    # ------------------------------------------------------------------ pose
    def sample_pose(self, rng: np.random.Generator) -> tuple[str, np.ndarray]:
        if self.bank_fraction and rng.random() < self.bank_fraction:
            k = int(rng.integers(len(self.bank)))
            a = dict(zip(P.ANGLE_KEYS, self.bank[k].tolist()))
            a = {key: v + rng.normal(0, 4) for key, v in a.items()}
            if rng.random() < 0.5:  # the mirrored pose is as plausible
                a = P.mirror_angles(a)
            return "bank", self.rotations(P.clip_angles(a))
        family, a = P.sample_angles(rng)
        return family, self.rotations(a)

    def _collisions(self, vertices: np.ndarray) -> tuple[int, int]:
        """(intersecting triangles between parts that touch in life -- arm on trunk, hand on thigh, calf on
        thigh -- , intersecting triangles elsewhere: a hand through the head, crossed legs through each other)."""
        import torch

        hit = self.collision.detect_self_intersections(torch.from_numpy(vertices.astype(np.float32))).numpy()
        idx = np.nonzero(hit >= 0)[0]
        a, b = self.face_base[idx], self.face_base[hit[idx]]
        contact = self.contact[a, b]
        return int(contact.sum()), int((~contact).sum())

    # ------------------------------------------------------------------ the person
    def sample(self, rng: np.random.Generator, allow_lying: bool = True, tries: int = 4) -> PersonMesh:
        """A posed, dressed person standing at the origin (feet on z = 0), facing -Y (before ``moved``)."""
        b = self.body
        ph, age, female = self.sample_shape(rng)
        look = LK.sample_look(rng, age, female)
        for k in range(tries):
            family, R = self.sample_pose(rng)
            posed = b.forward(R[None], ph[None])
            if self.collision is None:
                break
            soft, hard = self._collisions(posed.vertices[0])
            if (hard <= self.max_collisions and soft <= 8 * self.max_collisions) or k == tries - 1:
                break
        return self.build(posed, ph, age, female, look, family, rng, allow_lying)

    def make(self, angles: dict[str, float], rng: np.random.Generator, phenotypes: np.ndarray | None = None,
             look: LK.Look | None = None) -> PersonMesh:
        """A person in the given pose (anatomical angles, clipped to the limits), shape and look (drawn from
        ``rng`` when not given); standing, never lying: for tests and figures."""
        ph, age, female = self.sample_shape(rng)
        if phenotypes is not None:
            ph = np.asarray(phenotypes, np.float32)
        look = look if look is not None else LK.sample_look(rng, age, female)
        posed = self.body.forward(self.rotations(P.clip_angles(angles))[None], ph[None])
        return self.build(posed, ph, age, female, look, "given", rng, allow_lying=False)

    def build(self, posed, ph: np.ndarray, age: float, female: bool, look: LK.Look, family: str,  # noqa: ANN001
              rng: np.random.Generator, allow_lying: bool) -> PersonMesh:
        """Dress and label one posed body (``body.Posed`` of batch 1)."""
        b = self.body
        v = posed.vertices[0].astype(np.float64)
        heads = posed.bone_heads[0].astype(np.float64)
        coco = posed.coco[0, :17].astype(np.float64)
        if look.skirt and family not in ("stand", "walk", "reach", "arms_out", "bank", "given"):
            look.skirt, look.leg = False, float(rng.uniform(0.4, 0.8))  # skirts stretch badly on raised knees
        faces = [b.body_faces]
        helper = [np.zeros(len(b.body_faces), np.int8)]
        if look.long_hair:  # the hair cards, cut to a length, without those hanging in front of the face
            hv = b.rest_vertices[b.hair_faces]
            cut = float(rng.uniform(0.2, 0.55))
            keep = ~self.hair_over_face & (hv[..., 2].min(1) > cut)
            faces.append(b.hair_faces[keep])
            helper.append(np.ones(int(keep.sum()), np.int8))
        if look.skirt:
            faces.append(b.skirt_faces)
            helper.append(np.full(len(b.skirt_faces), 2, np.int8))
        faces_all = np.concatenate(faces)
        face_helper = np.concatenate(helper)
        normals = vertex_normals(v, b.body_faces)
        hair_w = LK.hair_mask(b.rest_vertices, self.eye_z, look, self.is_head)
        attrs = np.concatenate([b.rest_vertices, b.arm_t[:, None], b.leg_t[:, None], b.trunk_h[:, None],
                                hair_w[:, None]], 1).astype(np.float32)
        # cloth and hair thickness: each vertex stands off along its normal by its material's thickness
        mat = LK.materials(b.vertex_part, attrs[:, 3:6], b.rest_vertices, np.zeros(len(v), np.int8),
                           b.vertex_is_eye, hair_w, look, b.neck_base, PART_ID)
        thick = np.zeros(len(v))
        thick[mat == LK.TOP] = look.top.thickness
        thick[mat == LK.BOTTOM] = look.bottom.thickness
        thick[mat == LK.SHOES] = 0.006
        thick = np.maximum(thick, hair_w * look.hair_thickness)
        v = v + normals * thick[:, None]
        head_top = v[b.head_top_vertex]
        mpii = np.stack([heads[ids].mean(0) if ids else head_top for ids in self.mpii_bones])
        height = float(posed.height[0])
        shift = np.array([0.0, 0.0, -v[:, 2].min()])
        person = PersonMesh(v + shift, faces_all, b.vertex_part[faces_all[:, 0]].astype(np.int8), face_helper,
                            normals, attrs, {"mpii16": mpii + shift, "coco17": coco + shift}, look,
                            {"age": age, "female": female, "family": family, "phenotypes": ph.tolist(),
                             "height_m": height, "phase": float(rng.random())},
                            float(np.clip(height / 1.63, 0.5, 1.3)), self.consts)
        if family == "sit" and rng.random() < 0.85:  # something to sit on
            person.props.append(self._seat(person, rng))
        elif allow_lying and rng.random() < self.lying_fraction:
            person = person.moved(P.lying_rotation(rng), np.zeros(3))
            person = person.moved(np.eye(3), np.array([0, 0, -person.vertices[:, 2].min()]))
            person.meta["family"] = family + "+lying"
        return person


    def _seat(self, p: PersonMesh, rng: np.random.Generator):  # noqa: ANN202 - render.Prop
        """A box under the buttocks of a sitting person (a stool, bench or crate)."""
        from mca.data.anny.render import box_prop

        base = np.array([n.split(".")[0] for n in PART_ID])[p.face_part]
        v = p.vertices[np.unique(p.faces[np.isin(base, ["hips", "torso", "thigh"])])]
        v = v[v[:, 2] < np.percentile(v[:, 2], 8)]
        seat_z = float(v[:, 2].min())
        cx, cy = float(np.median(v[:, 0])), float(np.median(v[:, 1]))
        w, d = rng.uniform(0.2, 0.5), rng.uniform(0.15, 0.3)
        col = rng.uniform(0.1, 0.8, 3) if rng.random() < 0.5 else np.array([0.2, 0.35, 0.5]) * rng.uniform(0.5, 1.2)
        return box_prop(np.array([cx - w, cy - 0.1, 0.0]), np.array([cx + w, cy + d, seat_z]), col)


def mirror_check(rest_heads: np.ndarray, bone_index: dict[str, int]) -> bool:
    """Anny's ``.L`` bones are on +X, the person's left (the body faces -Y, Z up)."""
    return bool(rest_heads[bone_index["upperarm01.L"], 0] > 0 > rest_heads[bone_index["upperarm01.R"], 0]
                and math.isclose(rest_heads[bone_index["upperarm01.L"], 0],
                                 -rest_heads[bone_index["upperarm01.R"], 0], rel_tol=0.05))
