"""A pose bank from real people: Anny's pose fitted to a 2-D teacher's COCO-17 keypoints.

The teacher (MoveNet thunder, run by ``tools/pseudo_label.py`` on the training frames of ``vtest.avi``; the
held-out frames and the seven shared photos are never used) gives 2-D keypoints with scores.  For each person
the anatomical angles of :mod:`mca.data.anny.poses`, the body's yaw, the camera's elevation and roll and a
weak-perspective camera are fitted to minimise

* the reprojection error of the scored keypoints (weighted by score, in units of the person's size),
* the hand-set joint limits (a steep penalty outside them), a weak prior towards the rest of each angle, a
  range for the camera's elevation and a prior on its roll (the body itself stays upright),

from several starts (facing the camera, away, either side), keeping the best; all people and starts are fitted
at once by gradient descent on a batched PyTorch forward kinematics of the bone heads (the same rotations as
:class:`mca.data.anny.poses.RotationBuilder`; its NumPy twin :class:`SkeletonFK` is checked against Anny's
own skinning).  The skeleton is Anny's default adult, with the COCO points rigidly attached to their bones as
Anny's regressor places them at rest.  A 2-D fit cannot tell a limb pointing towards the camera from one
pointing away; the priors pick the plausible one, so the bank is "poses consistent with real 2-D poses", not
ground-truth 3-D.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from mca.data.anny import poses as P

log = logging.getLogger(__name__)

__all__ = ["SkeletonFK", "TorchFK", "fit_people", "fit_bank", "fit_file"]

_COCO_BONES = ("head", "head", "head", "head", "head", "upperarm01.L", "upperarm01.R", "lowerarm01.L",
               "lowerarm01.R", "wrist.L", "wrist.R", "upperleg01.L", "upperleg01.R", "lowerleg01.L",
               "lowerleg01.R", "foot.L", "foot.R")


class SkeletonFK:
    """Bone-head forward kinematics (NumPy) of Anny's ``local-ref`` rotations, and COCO-17 points on the bones."""

    def __init__(self, body) -> None:  # noqa: ANN001 - BodyModel
        ph = np.full((1, len(body.phenotype_labels)), 0.5, np.float32)
        rest = body.forward(None, ph)
        self.rest = rest.bone_heads[0].astype(np.float64)
        self.parents = list(body.bone_parents)
        self.labels = list(body.bone_labels)
        self.builder = P.RotationBuilder(body.bone_labels, body.rest_heads)
        bi = body.bone_index
        self.coco_bone = np.array([bi[b] for b in _COCO_BONES])
        self.coco_offset = rest.coco[0, :17].astype(np.float64) - self.rest[self.coco_bone]
        need = set()
        for b in set(self.coco_bone.tolist()):  # only the chains the keypoints hang on
            while b >= 0:
                need.add(b)
                b = self.parents[b]
        self.order = sorted(need)

    def chain(self, angles: dict[str, float], G: np.ndarray, bones: list[int] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """World rotations (J, 3, 3) and heads (J, 3) of ``bones`` (default: those the COCO points hang on;
        the rest stay unset) for the clipped ``angles``, the whole body rotated by ``G`` about the root."""
        R = self.builder(angles)
        W = np.full((len(self.parents), 3, 3), np.nan)
        H = np.full((len(self.parents), 3), np.nan)
        for j in self.order if bones is None else bones:
            p = self.parents[j]
            if p < 0:
                W[j], H[j] = G @ R[j], G @ self.rest[j]
            else:
                W[j] = W[p] @ R[j]
                H[j] = H[p] + W[p] @ (self.rest[j] - self.rest[p])
        return W, H

    def coco(self, angles: dict[str, float], G: np.ndarray) -> np.ndarray:
        """COCO-17 points (17, 3) of the default adult in ``angles``, rotated by ``G`` about the root."""
        W, H = self.chain(angles, G)
        return H[self.coco_bone] + np.einsum("kij,kj->ki", W[self.coco_bone], self.coco_offset)


def _rodrigues(axis, ang):  # noqa: ANN001, ANN202 - torch (..., 3) unit axes, (...) radians -> (..., 3, 3)
    import torch

    x, y, z = axis.unbind(-1)
    o = torch.zeros_like(x)
    K = torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*x.shape, 3, 3)
    eye = torch.eye(3, dtype=axis.dtype).expand_as(K)
    s, c = torch.sin(ang)[..., None, None], torch.cos(ang)[..., None, None]
    return eye + s * K + (1 - c) * (K @ K)


class TorchFK:
    """The same kinematics batched in PyTorch (differentiable in the angles): the bones the COCO points need."""

    def __init__(self, fk: SkeletonFK) -> None:
        import torch

        self.t = torch
        self.fk = fk
        self.keys = list(P.ANGLE_KEYS)
        self.kidx = {k: i for i, k in enumerate(self.keys)}
        b = fk.builder
        self.rest_dirs = {s: {k: torch.tensor(np.asarray(v, np.float64)) for k, v in b.rest[s].items()
                              if k != "flex0"} for s in "LR"}
        self.flex0 = {s: float(b.rest[s]["flex0"]) for s in "LR"}
        self.rest = torch.tensor(fk.rest)
        self.coco_offset = torch.tensor(fk.coco_offset)

    def _axis(self, v: np.ndarray, n: int):  # noqa: ANN202
        return self.t.tensor(np.asarray(v, np.float64)).expand(n, 3)

    def coco(self, deg, G):  # noqa: ANN001, ANN201 - (N, K) degrees, (N, 3, 3) -> (N, 17, 3)
        t = self.t
        n = deg.shape[0]
        a = {k: deg[:, i] * (math.pi / 180) for k, i in self.kidx.items()}
        X, Y, Z = (self._axis(e, n) for e in np.eye(3))
        eye = t.eye(3, dtype=deg.dtype).expand(n, 3, 3)
        R: dict[str, object] = {}
        fkb = self.fk.builder
        for group, (fl, la, tw) in ((fkb.spine, ("trunk_flex", "trunk_lat", "trunk_twist")),
                                    (fkb.neck, ("neck_flex", "neck_lat", "neck_twist"))):
            m = len(group)
            for bone in group:
                R[bone] = _rodrigues(Z, a[tw] / m) @ _rodrigues(Y, a[la] / m) @ _rodrigues(X, a[fl] / m)
        for s, p, sign in (("L", "l_", 1.0), ("R", "r_", -1.0)):
            e, pl = a[p + "arm_elev"], a[p + "arm_plane"]
            target = t.stack([sign * t.sin(e) * t.cos(pl), -t.sin(e) * t.sin(pl), -t.cos(e)], -1)
            ua = self.rest_dirs[s]["ua"].expand(n, 3)
            cr = t.cross(ua, target, dim=-1)
            sn = t.linalg.norm(cr, dim=-1).clamp_min(1e-9)
            aim = _rodrigues(cr / sn[:, None], t.atan2(sn, (ua * target).sum(-1)))
            R[f"upperarm01.{s}"] = _rodrigues(target, sign * a[p + "arm_twist"]) @ aim
            R[f"lowerarm01.{s}"] = _rodrigues(self.rest_dirs[s]["hinge"].expand(n, 3),
                                              a[p + "elbow"] - self.flex0[s] * math.pi / 180)
            R[f"wrist.{s}"] = (_rodrigues(self.rest_dirs[s]["hinge"].expand(n, 3), a[p + "wrist_flex"])
                               @ _rodrigues(Y, -sign * a[p + "wrist_dev"]))
            R[f"foot.{s}"] = _rodrigues(X, a[p + "ankle"])
            R[f"clavicle.{s}"] = _rodrigues(Y, -sign * a[p + "clav_raise"])
            R[f"upperleg01.{s}"] = (_rodrigues(X, -a[p + "hip_flex"]) @ _rodrigues(Y, -sign * a[p + "hip_abd"])
                                    @ _rodrigues(Z, sign * a[p + "hip_twist"]))
            R[f"lowerleg01.{s}"] = _rodrigues(X, a[p + "knee"])
        W: dict[int, object] = {}
        H: dict[int, object] = {}
        rest = self.rest.to(deg.dtype)
        for j in self.fk.order:
            Rj = R.get(self.fk.labels[j], eye)
            p = self.fk.parents[j]
            if p < 0:
                W[j], H[j] = G @ Rj, (G @ rest[j])
            else:
                W[j] = W[p] @ Rj
                H[j] = H[p] + (W[p] @ (rest[j] - rest[p]))
        Hs = t.stack([H[int(b)] for b in self.fk.coco_bone], 1)
        Ws = t.stack([W[int(b)] for b in self.fk.coco_bone], 1)
        return Hs + (Ws @ self.coco_offset.to(deg.dtype)[None, :, :, None])[..., 0]


def _euler_t(t, yaw, elevation, roll):  # noqa: ANN001, ANN202 - torch twin of _euler (radians)
    n = yaw.shape[0]
    e = [t.tensor(v, dtype=yaw.dtype).expand(n, 3) for v in np.eye(3)]
    return _rodrigues(e[1], roll) @ _rodrigues(e[0], elevation) @ _rodrigues(e[2], yaw)


def _euler(yaw: float, elevation: float, roll: float) -> np.ndarray:
    """The upright body turned by ``yaw`` (degrees; 0 faces the camera, as the renderer's azimuth), seen from
    ``elevation`` degrees above (the world tipped towards the camera), with the picture rolled by ``roll``."""
    return P.rot([0, 1.0, 0], roll) @ P.rot([1.0, 0, 0], elevation) @ P.rot([0, 0, 1.0], yaw)


def _project(X: np.ndarray, s: float, tx: float, ty: float) -> np.ndarray:
    """Weak perspective from in front of the person (-Y): image x = world X, image y = -world Z."""
    return np.stack([s * X[:, 0] + tx, -s * X[:, 2] + ty], 1)


def fit_people(tfk: TorchFK, kps: np.ndarray, scores: np.ndarray, min_score: float = 0.3,
               yaws: tuple[float, ...] = (0.0, 90.0, 180.0, 270.0), steps: int = 150, refine: int = 150,
               seed: int = 0, elevation: tuple[float, float] = (-10.0, 60.0)
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit (N, 17, 2) keypoints with (N, 17) scores, all at once; returns the clipped angles (N, K) degrees, the
    RMS reprojection error of each as a fraction of its keypoints' extent (N,), and the fitted yaw and camera
    elevation (N,) degrees.

    The body stands upright (its lean is the trunk's flexion); the camera looks from a free ``elevation``
    (degrees, kept in the range by a steep penalty), so foreshortened legs seen from above are not taken
    for bent knees."""
    t = tfk.t
    keys = tfk.keys
    lim = np.array([P.LIMITS[k[2:] if k[:2] in ("l_", "r_") and k[2:] in P.SIDED else k] for k in keys], float)
    N, S = len(kps), len(yaws)
    ok = t.tensor(scores >= min_score, dtype=t.float64)
    w = t.tensor(np.sqrt(np.clip(scores, 0, 1)), dtype=t.float64) * ok
    pts = t.tensor(kps, dtype=t.float64)
    big = np.where(scores[..., None] >= min_score, kps, np.nan)
    size = np.maximum(np.nanmax(big, 1) - np.nanmin(big, 1), 1.0).max(1)
    size_t = t.tensor(size, dtype=t.float64)
    rest_h = float(np.ptp(tfk.fk.coco(P.clip_angles({}), np.eye(3))[:, 2]))
    # starts: every person x every yaw, from standing angles; pelvis-free weak-perspective camera
    rng = np.random.default_rng(seed)
    init = np.array([[P.sample_angles(rng, "stand")[1][k] for k in keys] for _ in range(N * S)])
    deg = t.tensor(init, dtype=t.float64, requires_grad=True)
    glob = t.zeros((N * S, 3), dtype=t.float64)
    glob[:, 0] = t.tensor(np.repeat(np.radians(yaws)[None], N, 0).ravel())
    glob[:, 1] = math.radians(float(np.clip(15.0, *elevation)))
    e_lo, e_hi = (math.radians(v) for v in elevation)
    glob.requires_grad_(True)
    mean = np.nanmean(big, 1)
    cam = t.tensor(np.repeat(np.stack([np.log(size / rest_h), mean[:, 0] / size, mean[:, 1] / size], 1), S, 0),
                   requires_grad=True)  # log scale, translation in units of the person's extent
    lo, hi = t.tensor(lim[:, 0]), t.tensor(lim[:, 1])
    rep = lambda x: x.repeat_interleave(S, 0)  # noqa: E731
    P2, W2, Z2 = rep(pts), rep(w), rep(size_t)
    opt = t.optim.Adam([{"params": [deg], "lr": 2.0}, {"params": [glob], "lr": 0.03}, {"params": [cam], "lr": 0.03}])

    def losses():  # noqa: ANN202
        G = _euler_t(t, glob[:, 0], glob[:, 1], glob[:, 2])
        X = tfk.coco(deg, G)
        s = t.exp(cam[:, 0])[:, None]
        uv = t.stack([s * X[..., 0] + cam[:, 1:2] * Z2[:, None], -s * X[..., 2] + cam[:, 2:3] * Z2[:, None]], -1)
        r2d = (((uv - P2) * W2[..., None]) / Z2[:, None, None]).pow(2).sum((1, 2))
        over = ((t.relu(deg - hi) + t.relu(lo - deg)) / 5.0).pow(2).sum(1)
        e = glob[:, 1]
        prior = ((deg / 90.0 * 0.04).pow(2).sum(1) + (glob[:, 2] * 180 / math.pi / 15.0 * 0.3).pow(2)
                 + ((t.relu(e - e_hi) + t.relu(e_lo - e)) * 180 / math.pi / 5.0).pow(2))
        return r2d, r2d + over + prior

    for _ in range(steps):  # Adam finds the basin from each start...
        opt.zero_grad()
        _, total = losses()
        total.sum().backward()
        opt.step()
    lbfgs = t.optim.LBFGS([deg, glob, cam], lr=1.0, max_iter=refine, line_search_fn="strong_wolfe")

    def closure():  # noqa: ANN202 - ...L-BFGS settles in it (the problems are independent: their sum is fine)
        lbfgs.zero_grad()
        _, total = losses()
        loss = total.sum()
        loss.backward()
        return loss

    if refine:
        lbfgs.step(closure)
    with t.no_grad():
        r2d, total = losses()
        best = total.reshape(N, S).argmin(1)
        pick = t.arange(N) * S + best
        n_ok = ok.sum(1).clamp_min(1)
        rms = t.sqrt(r2d[pick] / n_ok).numpy()
        out = np.clip(deg[pick].numpy(), lim[:, 0], lim[:, 1])
        yaw = (np.degrees(glob[pick, 0].numpy()) % 360.0)
        elev = np.degrees(glob[pick, 1].numpy())
    return out, rms, yaw, elev


def fit_bank(kps: np.ndarray, scores: np.ndarray, min_score: float = 0.3, min_keypoints: int = 10,
             max_rms: float = 0.05, limit: int | None = None, seed: int = 0, batch: int = 64,
             steps: int = 150, elevation: tuple[float, float] = (-10.0, 60.0)
             ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fit every person with at least ``min_keypoints`` confident keypoints; the accepted angle rows
    (M, len(ANGLE_KEYS)) degrees, their RMS errors (M,) and a report."""
    import torch
    from tqdm import tqdm

    from mca.data.anny.body import get_body_model

    torch.manual_seed(seed)
    tfk = TorchFK(SkeletonFK(get_body_model()))
    good = np.nonzero((scores >= min_score).sum(1) >= min_keypoints)[0]
    order = np.random.default_rng(seed).permutation(good)
    if limit:
        order = order[:limit]
    rows, errs, elevs = [], [], []
    for k in tqdm(range(0, len(order), batch), desc="fitting", unit="batch"):
        idx = order[k:k + batch]
        ang, rms, _, el = fit_people(tfk, kps[idx], scores[idx], min_score, steps=steps, refine=steps,
                                    seed=seed + k, elevation=elevation)
        elevs += el.tolist()
        errs += rms.tolist()
        rows += [(a, r) for a, r in zip(ang, rms) if r <= max_rms]
    bank = np.asarray([a for a, _ in rows], np.float32).reshape(-1, len(P.ANGLE_KEYS))
    bank_rms = np.asarray([r for _, r in rows], np.float32)
    report = {"people": int(len(scores)), "with_enough_keypoints": int(len(good)), "fitted": len(errs),
              "accepted": int(len(bank)), "max_rms": max_rms,
              "median_rms": float(np.median(errs)) if errs else None, "elevation_range": list(elevation),
              "median_elevation": float(np.median(elevs)) if elevs else None}
    return bank, bank_rms, report


def fit_file(labels: str | Path, out: str | Path, sources: str = "vtest.avi*", key: str = "teacher",
             min_score: float = 0.3, min_keypoints: int = 10, max_rms: float = 0.05, limit: int | None = None,
             seed: int = 0, steps: int = 150, elevation: tuple[float, float] = (-10.0, 60.0)) -> dict:
    """Fit the people of a pseudo-label file (``tools/pseudo_label.py``: ``teacher`` (N, 17, 3) x, y, score and
    ``sources``) whose source matches the glob ``sources``; writes the bank ``out`` (.npz: ``angles``, ``keys``,
    ``rms``) and ``out`` with ``.json`` (the report); returns the report.  Raises ValueError on a bad file."""
    labels, out = Path(labels), Path(out)
    with np.load(labels, allow_pickle=False) as z:
        if key not in z.files or "sources" not in z.files:
            raise ValueError(f"{labels} has no '{key}' and 'sources' arrays (a tools/pseudo_label.py split?)")
        kp, src = np.asarray(z[key], np.float64), np.asarray(z["sources"]).astype(str)
    if kp.ndim != 3 or kp.shape[1:] != (17, 3):
        raise ValueError(f"{labels}: '{key}' must be (N, 17, 3) COCO-17 x, y, score; got {kp.shape}")
    keep = np.array([fnmatch.fnmatch(s, sources) for s in src], bool)
    if not keep.any():
        raise ValueError(f"{labels}: no person from a source matching {sources!r}")
    t0 = time.time()
    bank, rms, report = fit_bank(kp[keep, :, :2], kp[keep, :, 2], min_score, min_keypoints, max_rms, limit, seed,
                                  steps=steps, elevation=elevation)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, angles=bank, keys=np.array(P.ANGLE_KEYS), rms=rms)
    report.update(labels=str(labels), labels_sha256=hashlib.sha256(labels.read_bytes()).hexdigest()[:16],
                  teacher_key=key, sources=sources, people_from_sources=int(keep.sum()), min_score=min_score,
                  min_keypoints=min_keypoints, seed=seed, steps=steps, seconds=round(time.time() - t0, 1))
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    return report
