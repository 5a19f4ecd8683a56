"""Real pose data sets: MPII (.mat, hourglass .h5, json), COCO keypoints, LSP, all into one record type.

Every loader returns :class:`PersonRecord` lists in frame pixels (0-based), so that all
of them go through the one augmentation path (:func:`mca.data.augment.make_sample`)
and the same heatmap codec as the synthetic people.  NumPy/OpenCV (+ scipy for .mat,
h5py for .h5, pycocotools for COCO, each imported only when used).

Conventions, per format:

- MPII official ``mpii_human_pose_v1_u12_1.mat``: ``RELEASE.annolist(i).annorect(r)`` with
  head box ``x1 y1 x2 y2`` (PCKh's normaliser: 0.6 x its diagonal), ``annopoints.point``
  (``id`` 0-15 in MPII order = ``mca.joints`` MPII-16, ``x``, ``y``, ``is_visible``),
  ``objpos`` and ``scale`` (person height / 200 px).  MATLAB coordinates are 1-based.
- MPII ``.h5`` of the stacked-hourglass code, two kinds: ``imgname``, ``center``, ``scale``, ``part``
  (N, 16, 2; 0 = not labelled), ``visible``, ``normalize`` (its PCKh head size: 0.6 x the head box
  diagonal).  The *split* files ``train.h5`` / ``valid.h5`` / ``test.h5`` (pose-hg-train's
  ``data/mpii/annot/``, also bundled with the MCA release) already hold the crop convention: their
  centre is ``objpos + (0, 15 s)`` and their scale ``1.25 s``, and the Lua code crops ``200 x scale``
  around ``center`` as stored.  The *combined* ``annot.h5`` (with ``istrain``) holds the raw
  ``objpos`` / ``scale``, and the Lua loader adds the convention in code.
  :func:`detect_h5_convention` tells them apart (``istrain``, and which of ``c_y`` or
  ``c_y - 12 x scale`` is a whole pixel), so the convention is applied exactly once.
- MPII json (later top-down code): ``[{image, center, scale, joints, joints_vis}]``, 1-based.
- The person box for MPII is the hourglass code's: a square of side ``200 x scale`` around
  ``center`` moved down by ``15 x scale`` (raw values: .mat, json, combined annot.h5);
  ``make_sample``'s 1.25 padding then gives the released ``scale x 1.25`` crop.  For the split
  .h5 files the box is ``200 x scale / 1.25`` around the stored centre, so the crop is the
  released ``200 x scale`` around it.
- COCO keypoints (pycocotools): person annotations with keypoints, not crowds; ``v > 0`` is
  labelled; the box is ``bbox``; ``area`` feeds OKS.
- LSP ``joints.mat``: (3, 14, N) in the original LSP, (14, 3, N) in LSP-extended; mapped onto
  MPII-16 (LSP's neck is MPII's upper neck); MPII's pelvis and thorax are not labelled.  LSP
  annotates every joint's position, occluded or not, so all 14 are used (the third row, whose
  meaning differs between the two releases, is ignored).  No box: the joints' extent.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mca.heatmaps import DEFAULT_PADDING
from mca.joints import get_joint_set

log = logging.getLogger(__name__)

__all__ = ["AnnotationError", "PersonRecord", "load_mpii", "load_coco", "load_lsp", "load_records",
           "LSP_TO_MPII", "RealPoseDataset", "DATASETS", "H5_CONVENTIONS", "detect_h5_convention",
           "record_head_size"]

DATASETS = ("mpii", "coco", "lsp")
# how an MPII .h5 stores centre and scale: auto-detected, the split files' (convention included) or annot.h5's (raw)
H5_CONVENTIONS = ("auto", "split", "combined")
# LSP's 14 joints -> MPII-16 indices (r_ankle .. l_ankle, r_wrist .. l_wrist, neck -> upper_neck, head_top)
LSP_TO_MPII = (0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 8, 9)


class AnnotationError(ValueError):
    """An annotation file that is missing, unreadable or not in the expected format."""


@dataclass
class PersonRecord:
    """One annotated person: image path (relative to the image root) and labels in frame pixels."""

    image: str
    joints: np.ndarray  # (K, 2) float32, 0-based pixels
    visible: np.ndarray  # (K,) bool: labelled (and used for training / scoring)
    box: np.ndarray  # xyxy float32
    head_box: np.ndarray | None = None  # MPII: x1 y1 x2 y2 (PCKh)
    head_size: float | None = None  # MPII h5: the hourglass code's normaliser
    area: float | None = None  # COCO: segment area (OKS)
    image_id: int | None = None  # COCO
    ann_id: int | None = None


def _hg_box(center: np.ndarray, scale: float) -> np.ndarray:
    """Person box of a raw MPII centre/scale: side 200 s around the centre moved down 15 s (the crop is 1.25x it)."""
    c = np.asarray(center, np.float64) + (0.0, 15.0 * scale)
    half = 100.0 * scale
    return np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half], np.float32)


def _adjusted_box(center: np.ndarray, scale: float, padding: float = DEFAULT_PADDING) -> np.ndarray:
    """Person box of a centre/scale that already hold the convention (``c + 15 s_raw``, ``1.25 s_raw``).

    The crop is ``200 x scale`` around ``center`` as stored, so the box (which ``make_sample`` pads by
    ``padding``) is ``200 x scale / padding``: the same box :func:`_hg_box` gives for the raw values.
    """
    c = np.asarray(center, np.float64)
    half = 100.0 * scale / padding
    return np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half], np.float32)


def detect_h5_convention(keys: set[str] | list[str], center: np.ndarray, scale: np.ndarray) -> tuple[str, str]:
    """``("split" | "combined", why)`` for an MPII .h5 with these keys and centres/scales.

    MPII's raw ``objpos`` are whole pixels, so a raw file has integer ``c_y``, and a split file
    (``c_y + 15 s_raw`` with ``s = 1.25 s_raw``, i.e. ``+ 12 s``) has integer ``c_y - 12 s``.  When
    that evidence is clear (90 % of the people one way, at most 10 % the other) it decides;
    otherwise the combined file's ``istrain`` key does.
    """
    center, scale = np.asarray(center, np.float64), np.asarray(scale, np.float64).reshape(-1)
    ok = (scale > 0) & (center[:, 0] >= 0)
    cy, s = center[ok, 1], scale[ok]
    if len(cy):
        raw = float(np.mean(np.abs(cy - np.round(cy)) < 1e-3))
        adj = float(np.mean(np.abs(cy - 12 * s - np.round(cy - 12 * s)) < 1e-3))
        if adj >= 0.9 and raw <= 0.1:
            return "split", f"centre y - 12 x scale is a whole pixel for {adj:.0%} of the people"
        if raw >= 0.9 and adj <= 0.1:
            return "combined", f"centre y is a whole pixel for {raw:.0%} of the people (raw objpos)"
    if "istrain" in keys:
        return "combined", "it has istrain (the combined annot.h5)"
    return "split", "no istrain key (a split train/valid/test .h5)"


def _check(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise AnnotationError(f"annotation file not found: {p}")
    return p


def _mpii_mat(p: Path) -> list[PersonRecord]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(p), struct_as_record=False, squeeze_me=True)
        release = mat["RELEASE"]
        annolist = np.atleast_1d(release.annolist)
        train = np.atleast_1d(getattr(release, "img_train", np.ones(len(annolist))))
    except Exception as e:  # noqa: BLE001 - scipy raises many types for garbage
        raise AnnotationError(f"{p} is not the MPII .mat annotation ({type(e).__name__}: {str(e)[:120]})") from None
    out = []
    for i, anno in enumerate(annolist):
        if i < len(train) and not int(train[i]):
            continue  # the test split has no joints
        name = str(anno.image.name)
        for rect in np.atleast_1d(getattr(anno, "annorect", [])):
            pts = getattr(getattr(rect, "annopoints", None), "point", None)
            if pts is None or not hasattr(rect, "objpos") or not hasattr(rect, "scale"):
                continue
            joints = np.zeros((16, 2), np.float32)
            vis = np.zeros(16, bool)
            for pt in np.atleast_1d(pts):
                j = int(pt.id)
                joints[j] = (float(pt.x) - 1, float(pt.y) - 1)
                vis[j] = True  # labelled; is_visible (occlusion) does not remove a labelled joint
            center = np.array([float(rect.objpos.x) - 1, float(rect.objpos.y) - 1])
            head = np.array([rect.x1, rect.y1, rect.x2, rect.y2], np.float32) - 1
            out.append(PersonRecord(name, joints, vis, _hg_box(center, float(rect.scale)), head_box=head))
    return out


def _h5_name(n: Any) -> str:
    """annot.h5 stores image names as bytes, str, or zero-padded character codes."""
    if isinstance(n, bytes):
        return n.decode().rstrip("\x00")
    if isinstance(n, str):
        return n
    return "".join(chr(int(c)) for c in np.asarray(n).ravel() if int(c))


def _mpii_h5(p: Path, convention: str = "auto") -> list[PersonRecord]:
    try:
        import h5py
    except ImportError:
        raise AnnotationError("reading annot.h5 needs h5py (pip install h5py)") from None
    if convention not in H5_CONVENTIONS:
        raise AnnotationError(f"h5 convention must be one of {', '.join(H5_CONVENTIONS)}, not {convention!r}")
    try:
        with h5py.File(p, "r") as f:
            keys = set(f.keys())
            names = [_h5_name(n) for n in f["imgname"][()]]
            center, scale, part = f["center"][()], f["scale"][()], f["part"][()]
            norm = f["normalize"][()] if "normalize" in f else None
            istrain = f["istrain"][()] if "istrain" in f else None
            index = f["index"][()] if "index" in f else None
            person = f["person"][()] if "person" in f else None
    except (OSError, KeyError) as e:
        raise AnnotationError(f"{p} is not the hourglass annot.h5 ({type(e).__name__}: {str(e)[:120]})") from None
    center, scale = np.asarray(center, np.float64).reshape(-1, 2), np.asarray(scale, np.float64).reshape(-1)
    if convention == "auto":
        convention, why = detect_h5_convention(keys, center, scale)
        log.info("%s: %s convention (%s)", p.name, convention, why)
    out = []
    for i, name in enumerate(names):
        if istrain is not None and int(istrain[i]) != 1:
            continue  # the combined file's test people (and training people without joints) have no labels
        if scale[i] <= 0 or center[i, 0] < 0:
            continue  # no centre/scale annotated
        labelled = (part[i] > 0).all(-1)
        c = center[i] - 1  # 1-based (MATLAB / Lua) -> 0-based
        box = _hg_box(c, float(scale[i])) if convention == "combined" else _adjusted_box(c, float(scale[i]))
        out.append(PersonRecord(name, (part[i] - 1).astype(np.float32), labelled, box,
                                head_size=float(norm[i]) if norm is not None else None,
                                image_id=int(index[i]) if index is not None else None,
                                ann_id=int(person[i]) if person is not None else None))
    return out


def _mpii_json(p: Path) -> list[PersonRecord]:
    try:
        items = json.loads(p.read_text())
        out = []
        for a in items:
            joints = np.asarray(a["joints"], np.float32).reshape(16, 2) - 1
            vis = np.asarray(a.get("joints_vis", [1] * 16), bool)  # missing joints: 0 here (and at (0, 0))
            out.append(PersonRecord(str(a["image"]), joints, vis,
                                    _hg_box(np.asarray(a["center"], float) - 1, float(a["scale"]))))
    except (ValueError, KeyError, TypeError) as e:
        raise AnnotationError(f"{p} is not an MPII json annotation ({type(e).__name__}: {str(e)[:120]})") from None
    return out


def load_mpii(path: str | Path, h5_convention: str = "auto") -> list[PersonRecord]:
    """MPII people from the official .mat, an hourglass .h5 or a json list (by suffix).

    ``h5_convention`` (.h5 only): ``auto`` tells the split files (centre/scale already adjusted)
    from the combined ``annot.h5`` (raw); ``split`` or ``combined`` forces one.
    """
    p = _check(path)
    suffix = p.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return _mpii_h5(p, h5_convention)
    loader = {".mat": _mpii_mat, ".json": _mpii_json}.get(suffix)
    if loader is None:
        raise AnnotationError(f"{p}: MPII annotations are .mat, .h5 or .json")
    return loader(p)


def load_coco(path: str | Path) -> list[PersonRecord]:
    """COCO keypoint people (non-crowd, with labelled keypoints) from a person_keypoints_*.json."""
    import contextlib
    import io

    p = _check(path)
    try:
        from pycocotools.coco import COCO
    except ImportError:
        raise AnnotationError("COCO needs pycocotools (pip install pycocotools)") from None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(p))
    except Exception as e:  # noqa: BLE001 - json or key errors
        raise AnnotationError(f"{p} is not a COCO annotation file ({type(e).__name__}: {str(e)[:120]})") from None
    out = []
    for ann in coco.loadAnns(coco.getAnnIds(catIds=coco.getCatIds(catNms=["person"]) or [1], iscrowd=False)):
        if not ann.get("num_keypoints", 0) or "keypoints" not in ann:
            continue
        kp = np.asarray(ann["keypoints"], np.float32).reshape(-1, 3)
        x, y, w, h = ann["bbox"]
        img = coco.imgs[ann["image_id"]]
        out.append(PersonRecord(img["file_name"], kp[:, :2].copy(), kp[:, 2] > 0,
                                np.array([x, y, x + w, y + h], np.float32), area=float(ann.get("area", w * h)),
                                image_id=int(ann["image_id"]), ann_id=int(ann["id"])))
    return out


def load_lsp(path: str | Path, image_pattern: str = "im{:04d}.jpg") -> list[PersonRecord]:
    """LSP / LSP-extended ``joints.mat`` onto MPII-16 (pelvis and thorax unlabelled)."""
    import scipy.io

    p = _check(path)
    try:
        j = np.asarray(scipy.io.loadmat(str(p))["joints"], np.float64)
    except Exception as e:  # noqa: BLE001
        raise AnnotationError(f"{p} is not an LSP joints.mat ({type(e).__name__}: {str(e)[:120]})") from None
    if j.ndim != 3 or 14 not in j.shape[:2] or 3 not in j.shape[:2]:
        raise AnnotationError(f"{p}: 'joints' is {j.shape}, expected (3, 14, N) or (14, 3, N)")
    xy = j[:2].transpose(2, 1, 0) if j.shape[0] == 3 else j[:, :2].transpose(2, 0, 1)  # (N, 14, 2)
    out = []
    for i, pts in enumerate(xy):
        joints = np.zeros((16, 2), np.float32)
        vis = np.zeros(16, bool)
        joints[list(LSP_TO_MPII)] = pts - 1
        vis[list(LSP_TO_MPII)] = (pts > 0).all(1)
        lo, hi = joints[vis].min(0), joints[vis].max(0)
        margin = 0.1 * float((hi - lo).max())
        out.append(PersonRecord(image_pattern.format(i + 1), joints, vis,
                                np.array([*(lo - margin), *(hi + margin)], np.float32)))
    return out


def load_records(dataset: str, annotations: str | Path, h5_convention: str = "auto") -> list[PersonRecord]:
    """Dispatch by data set name (mpii, coco, lsp)."""
    loaders = {"mpii": load_mpii, "coco": load_coco, "lsp": load_lsp}
    if dataset not in loaders:
        raise AnnotationError(f"unknown data set {dataset!r}; valid: {', '.join(loaders)}")
    recs = load_mpii(annotations, h5_convention) if dataset == "mpii" else loaders[dataset](annotations)
    if not recs:
        raise AnnotationError(f"{annotations}: no annotated people found")
    return recs


def record_head_size(r: PersonRecord) -> float:
    """MPII's official PCKh normaliser (0.6 x the head box diagonal, or the .h5's ``normalize``); nan if neither."""
    if r.head_box is not None:
        from mca.metrics import mpii_head_size_from_box

        return float(mpii_head_size_from_box(np.asarray(r.head_box, np.float64)[None])[0])
    return float(r.head_size) if r.head_size is not None else float("nan")


class RealPoseDataset:
    """Crops of real annotated people through the shared augmentation path (a torch ``Dataset`` by duck typing).

    Items are the same dicts as :class:`mca.data.datasets.SyntheticPoseDataset`'s, so
    training and validation code is shared.
    """

    def __init__(self, records: list[PersonRecord], image_root: str | Path, joint_set: str, input_size: int,
                 heatmap_size: int, train: bool = True, seed: int = 0, augment: Any = None) -> None:
        from mca.data.augment import AugmentConfig

        self.records, self.root = records, Path(image_root)
        self.js = get_joint_set(joint_set)
        k = len(self.js.names)
        if records and records[0].joints.shape[0] != k:
            raise AnnotationError(f"the records have {records[0].joints.shape[0]} joints, joint set {joint_set} "
                                  f"has {k}")
        self.input_size, self.heatmap_size, self.train, self.seed = input_size, heatmap_size, train, seed
        self.augment = augment or AugmentConfig()
        self.epoch = 0  # set by the training loop: a new augmentation of every person each epoch

    def __len__(self) -> int:
        return len(self.records)

    def image(self, i: int) -> np.ndarray:
        import cv2

        path = self.root / self.records[i].image
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise AnnotationError(f"image not found or unreadable: {path}")
        return img

    def sample(self, i: int) -> Any:
        from mca.data.augment import make_sample

        r = self.records[i]
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.train else None
        return make_sample(self.image(i), r.joints, r.visible, r.box, self.input_size, self.heatmap_size,
                           self.js.flip_index, rng, self.augment)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        s, r = self.sample(i), self.records[i]
        return {"crop": torch.from_numpy(s.crop), "target": torch.from_numpy(s.target),
                "weight": torch.from_numpy(s.weight), "joints_hm": torch.from_numpy(s.joints_hm),
                "frame_to_input": torch.from_numpy(s.frame_to_input.astype(np.float32)),
                "gt_joints": torch.from_numpy(r.joints), "gt_visible": torch.from_numpy(r.visible),
                "head_size": torch.tensor(record_head_size(r), dtype=torch.float64)}
