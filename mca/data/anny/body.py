"""The Anny body model as the renderer needs it: posed vertices, body-part regions, limb coordinates, joints.

Anny (PyPI ``anny``, Apache-2.0, NAVER) is a MakeHuman-based parametric body with a 104-bone skeleton whose
data ship in the wheel.  Its world frame: metres, Z up, the body faces -Y, X is the person's anatomical LEFT
(bones ``*.L`` sit at +X).  A camera in front of the person therefore sees the left side on the image's right,
the project's convention (:mod:`mca.data.synthetic`).

This module loads the model once per process (``topology="anny-full"``: the helper hair cards and skirt are
skinned too), and precomputes, from the rest pose and the skinning weights, everything appearance and labels
need: a part per vertex (head, neck, torso, hips, arm and leg segments, each with its side), coordinates along
each limb for cutting sleeves and trouser legs, and the joint definitions of MPII-16 and COCO-17.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["ANNY_VERSION", "PARTS", "PART_ID", "anny_available", "cache_root", "setup_env", "model_ready",
           "BodyModel", "get_body_model", "Posed"]

ANNY_VERSION = "0.6.2"

# Body parts (the label a pixel carries).  Helpers (hair, skirt) take the part of the bones that move them.
PARTS = ("head", "neck", "torso.L", "torso.R", "hips.L", "hips.R", "upperarm.L", "upperarm.R", "forearm.L",
         "forearm.R", "hand.L", "hand.R", "thigh.L", "thigh.R", "shin.L", "shin.R", "foot.L", "foot.R")
PART_ID = {p: i for i, p in enumerate(PARTS)}

# bone-name prefix -> region (side added from the bone's suffix, or from the rest-pose X for central bones)
_BONE_REGION = (("eye", "head"), ("head", "head"), ("neck", "neck"), ("spine", "torso"),
                ("clavicle", "torso"), ("root", "hips"), ("pelvis", "hips"), ("shoulder01", "upperarm"),
                ("upperarm", "upperarm"), ("lowerarm", "forearm"), ("wrist", "hand"), ("finger", "hand"),
                ("metacarpal", "hand"), ("upperleg", "thigh"), ("lowerleg", "shin"), ("foot", "foot"),
                ("toe", "foot"))
_SIDED = {"torso", "hips", "upperarm", "forearm", "hand", "thigh", "shin", "foot"}


def anny_available() -> bool:
    """Whether the optional ``anny`` package (``pip install -e .[synth]``) is importable."""
    return importlib.util.find_spec("anny") is not None


def cache_root() -> Path:
    """Where Anny's parsed model (about 1 GB once) and Warp's kernels live: ``$MCA_ANNY_CACHE`` or
    ``~/.cache/mca-pose/anny`` -- outside the repository."""
    return Path(os.environ.get("MCA_ANNY_CACHE", Path.home() / ".cache" / "mca-pose" / "anny")).expanduser()


def model_ready() -> bool:
    """Whether Anny's model cache was built here (so loading takes seconds, not minutes)."""
    return (cache_root() / f"ready-anny-{ANNY_VERSION}").is_file()


def setup_env() -> None:
    """Point Anny's and Warp's caches into :func:`cache_root` (before either is imported)."""
    root = cache_root()
    os.environ.setdefault("ANNY_CACHE_DIR", str(root / "anny"))
    os.environ.setdefault("WARP_CACHE_PATH", str(root / "warp"))


def _import_anny():  # noqa: ANN202 - the module
    setup_env()
    if not anny_available():
        raise ImportError("the 'anny' package is not installed: pip install -e '.[synth]' (anny==0.6.2)")
    with contextlib.redirect_stdout(io.StringIO()):  # Warp announces itself (and the missing CUDA) on stdout
        import warp

        warp.config.quiet = True
        import anny
    if anny.__version__ != ANNY_VERSION:
        log.warning("anny %s installed; this renderer was written for %s", anny.__version__, ANNY_VERSION)
    return anny


def _read_obj_groups(path: Path, groups: set[str]) -> dict[str, np.ndarray]:
    """Triangles (quads split) of the named groups of MakeHuman's base.obj (vertex indices 0-based)."""
    out: dict[str, list[list[int]]] = {g: [] for g in groups}
    cur = None
    with open(path) as f:
        for line in f:
            if line.startswith("g "):
                cur = line.split()[1]
            elif line.startswith("f ") and cur in out:
                idx = [int(t.split("/")[0]) - 1 for t in line.split()[1:]]
                for k in range(1, len(idx) - 1):
                    out[cur].append([idx[0], idx[k], idx[k + 1]])
    return {g: np.asarray(v, np.int64).reshape(-1, 3) for g, v in out.items()}


@dataclass
class Posed:
    """One batch of posed bodies (NumPy, float32, metres, world frame)."""

    vertices: np.ndarray  # (B, V, 3)
    bone_heads: np.ndarray  # (B, J, 3)
    coco: np.ndarray  # (B, 23, 3) Anny's COCO regressor (17 COCO points + 6 foot points)
    height: np.ndarray  # (B,) standing height (rest pose), metres


class BodyModel:
    """Anny loaded once, with the rest-pose tables the renderer and the labels use.

    ``threads``: torch threads (default 1: one sample's tensors are small, and data loaders parallelise
    across processes; more threads only contend on a shared machine)."""

    def __init__(self, threads: int | None = 1) -> None:
        import torch

        anny = _import_anny()
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        with contextlib.redirect_stdout(io.StringIO()):
            self.model = anny.Anny(topology="anny-full", rig="anny", local_changes="none", facial_actions="none",
                                   phenotypes="default").to(dtype=torch.float32)
            self.coco_regressor = anny.KeypointsRegressor.coco(self.model)
        m = self.model
        self.bone_labels: list[str] = list(m.bone_labels)
        self.bone_index = {b: i for i, b in enumerate(self.bone_labels)}
        self.bone_parents = list(m.bone_parents)
        self.phenotype_labels: list[str] = list(m.phenotype_labels)
        self.body_faces = m.faces.numpy().astype(np.int64)
        self.num_vertices = int(m.template_vertices.shape[0])
        objs = _read_obj_groups(Path(anny.__file__).parent / "data" / "mpfb2" / "3dobjs" / "base.obj",
                                {"helper-hair", "helper-skirt"})
        base = m.base_mesh_vertex_indices.numpy()
        if not np.array_equal(base, np.arange(len(base))):  # anny-full keeps the base mesh's numbering
            raise RuntimeError("unexpected anny-full vertex numbering")
        self.hair_faces, self.skirt_faces = objs["helper-hair"], objs["helper-skirt"]
        with torch.no_grad():
            rest = m(pose_parameters=None, phenotype_kwargs=None)
        self.rest_vertices = rest["vertices"][0].numpy().astype(np.float64)
        self.rest_heads = rest["bone_poses"][0, :, :3, 3].numpy().astype(np.float64)
        self._regions()
        self._limb_coordinates()
        self.head_top_vertex = self._head_top_vertex()

    # ------------------------------------------------------------------ rest-pose tables
    def _bone_region(self, name: str) -> str:
        for prefix, region in _BONE_REGION:
            if name.startswith(prefix):
                return region
        raise KeyError(name)

    def _regions(self) -> None:
        """Part of every vertex: argmax of its skinning weight summed per region (central regions split by X)."""
        m = self.model
        regions = sorted({r for _, r in _BONE_REGION})
        rid = {r: i for i, r in enumerate(regions)}
        bone_region = np.array([rid[self._bone_region(b)] for b in self.bone_labels])
        w = m.vertex_bone_weights.numpy()
        bi = m.vertex_bone_indices.numpy()
        acc = np.zeros((self.num_vertices, len(regions)))
        for k in range(w.shape[1]):
            np.add.at(acc, (np.arange(self.num_vertices), bone_region[bi[:, k]]), w[:, k])
        best = acc.argmax(1)
        # the side of a sided region: from the dominant bone's suffix if sided, else from X
        dom = bi[np.arange(self.num_vertices), w.argmax(1)]
        suffix = np.array([1 if b.endswith(".L") else (-1 if b.endswith(".R") else 0) for b in self.bone_labels])
        side = suffix[dom]
        side = np.where(side == 0, np.where(self.rest_vertices[:, 0] >= 0, 1, -1), side)
        part = np.empty(self.num_vertices, np.int64)
        for r, i in rid.items():
            sel = best == i
            if r in _SIDED:
                part[sel & (side > 0)] = PART_ID[f"{r}.L"]
                part[sel & (side < 0)] = PART_ID[f"{r}.R"]
            else:
                part[sel] = PART_ID[r]
        self.vertex_part = part
        eye_bones = [self.bone_index["eye.L"], self.bone_index["eye.R"]]
        self.vertex_is_eye = np.isin(dom, eye_bones) & (w.max(1) > 0.5)

    def _limb_coordinates(self) -> None:
        """Per-vertex positions along the arms (0 shoulder, 1 elbow, 2 wrist, 3 finger tips) and legs
        (0 hip, 1 knee, 2 ankle, 3 toes), and height on the trunk (0 hip joints, 1 neck base)."""
        V, H, bi = self.rest_vertices, self.rest_heads, self.bone_index
        part = self.vertex_part
        self.arm_t = np.full(self.num_vertices, -1.0)
        self.leg_t = np.full(self.num_vertices, -1.0)
        for s in ("L", "R"):
            chains = {
                "arm": [H[bi[f"upperarm01.{s}"]], H[bi[f"lowerarm01.{s}"]], H[bi[f"wrist.{s}"]],
                        H[bi[f"finger3-3.{s}"]]],
                "leg": [H[bi[f"upperleg01.{s}"]], H[bi[f"lowerleg01.{s}"]], H[bi[f"foot.{s}"]],
                        H[bi[f"toe3-1.{s}"]]],
            }
            segs = {"arm": (f"upperarm.{s}", f"forearm.{s}", f"hand.{s}"),
                    "leg": (f"thigh.{s}", f"shin.{s}", f"foot.{s}")}
            for limb, pts in chains.items():
                out = self.arm_t if limb == "arm" else self.leg_t
                for k, pname in enumerate(segs[limb]):
                    sel = part == PART_ID[pname]
                    a, b = pts[k], pts[k + 1]
                    d = b - a
                    t = ((V[sel] - a) @ d) / (d @ d)
                    out[sel] = k + np.clip(t, -0.3 if k == 0 else 0.0, 1.0)
        z_hip = H[bi["upperleg01.L"], 2]
        z_neck = H[bi["neck01"], 2]
        self.trunk_h = (V[:, 2] - z_hip) / (z_neck - z_hip)
        self.neck_base = H[bi["neck01"]]
        self.head_center = 0.5 * (H[bi["head"]] + V[np.argmax(np.where(np.abs(V[:, 0]) < 0.01, V[:, 2], -9))])

    def _head_top_vertex(self) -> int:
        """The highest scalp vertex near the mid-sagittal plane (MPII's head top)."""
        V = self.rest_vertices
        body_v = np.unique(self.body_faces)
        cand = body_v[(np.abs(V[body_v, 0]) < 0.006) & (self.vertex_part[body_v] == PART_ID["head"])]
        return int(cand[np.argmax(V[cand, 2])])

    # ------------------------------------------------------------------ forward
    def forward(self, pose: np.ndarray | None, phenotypes: np.ndarray, root: np.ndarray | None = None) -> Posed:
        """Posed bodies for ``pose`` (B, J, 3, 3) local-ref rotations (None = rest) and ``phenotypes`` (B, 6)
        in ``self.phenotype_labels`` order; ``root`` (B, 4, 4) replaces the root bone's transform."""
        torch = self.torch
        ph = np.asarray(phenotypes, np.float32).reshape(-1, len(self.phenotype_labels))
        b = len(ph)
        T = torch.eye(4).repeat(b, len(self.bone_labels), 1, 1)
        if pose is not None:
            T[:, :, :3, :3] = torch.from_numpy(np.asarray(pose, np.float32))
        if root is not None:
            T[:, 0] = torch.from_numpy(np.asarray(root, np.float32))
        kw = {k: torch.from_numpy(ph[:, i].copy()) for i, k in enumerate(self.phenotype_labels)}
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            out = self.model(pose_parameters=T, phenotype_kwargs=kw)
            coco = self.coco_regressor(out)
        rz = out["rest_vertices"][..., 2]
        return Posed(out["vertices"].numpy(), out["bone_poses"][:, :, :3, 3].numpy(), coco.numpy(),
                     (rz.max(1).values - rz.min(1).values).numpy())


_MODELS: dict[int, BodyModel] = {}


def get_body_model() -> BodyModel:
    """The process's :class:`BodyModel` (built on first use: about 1 s from the cache, minutes the first
    time ever, when Anny parses its MakeHuman assets into :func:`cache_root`)."""
    pid = os.getpid()
    if pid not in _MODELS:
        log.info("loading the Anny body model (cache: %s)", cache_root())
        _MODELS[pid] = BodyModel()
        marker = cache_root() / f"ready-anny-{ANNY_VERSION}"
        if not marker.is_file():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("built\n")
    return _MODELS[pid]
